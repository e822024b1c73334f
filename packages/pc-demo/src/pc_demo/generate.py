"""The demo files of a folder: events of each file, parallel writing, the manifest and the fileset JSON."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pc_core.cli_support import progress_bar

from .detector import simulate_detector
from .physics import GENERATORS, Truth, generate_drell_yan, generate_ttbar_dilepton
from .samples import DATA, DY, ERA_A_RUNS, FILESET_NAME, MANIFEST_NAME, SAMPLES, TTBAR, YEAR, DemoDataError, DemoDataParameters
from .writer import COMPRESSIONS, write_json, write_nanoaod

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- events of one file


def _file_rng(seed: int, sample_index: int, file_index: int) -> np.random.Generator:
    """An independent, reproducible stream per (seed, sample, file)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(sample_index, file_index)))


def _gen_weights(rng: np.random.Generator, sample: str, n: int) -> np.ndarray:
    """Generator weights as float32: aMC@NLO-like +-constant for DY, near-constant for powheg ttbar."""
    if sample == DY.sample:
        sign = np.where(rng.random(n) < 0.16, -1.0, 1.0)
        return (sign * 23_630.0).astype(np.float32)
    sign = np.where(rng.random(n) < 0.03, -1.0, 1.0)
    return (sign * 72.9 * rng.normal(1.0, 0.04, n)).astype(np.float32)


def mc_file_events(params: DemoDataParameters, sample_index: int, file_index: int) -> dict[str, Any]:
    """All branches of one MC file (Events tree)."""
    spec = SAMPLES[sample_index]
    rng = _file_rng(params.seed, sample_index, file_index)
    n = params.events_per_file
    truth = GENERATORS[spec.sample](rng, n)
    branches = simulate_detector(rng, truth, is_mc=True, pileup_mean=32.0)
    first = file_index * n
    index = np.arange(first, first + n, dtype=np.uint64)
    ids = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": (1 + index // 400).astype(np.uint32),
        "event": index + np.uint64(1 + 1_000_000 * sample_index),
        "genWeight": _gen_weights(rng, spec.sample, n),
    }
    return {**ids, **branches}


def data_file_events(params: DemoDataParameters, file_index: int) -> tuple[dict[str, Any], int]:
    """All branches of one data file and its number of candidate (pre-trigger) events.

    ``events_per_file`` collisions are drawn from DY and ttbar with probabilities proportional
    to their cross-sections; only those firing the double-muon trigger are kept.
    """
    sample_index = SAMPLES.index(DATA)
    rng = _file_rng(params.seed, sample_index, file_index)
    n = params.events_per_file
    n_dy = int(rng.binomial(n, DY.xsec / (DY.xsec + TTBAR.xsec)))
    truth = Truth.concatenate([generate_drell_yan(rng, n_dy), generate_ttbar_dilepton(rng, n - n_dy)])
    truth = truth.permuted(rng.permutation(n))
    branches = simulate_detector(rng, truth, is_mc=False, pileup_mean=30.5)
    fired = np.asarray(branches["HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8"])
    kept = {name: values[fired] for name, values in branches.items()}
    runs, lumis = _data_run_lumi(params, file_index)
    # event numbers increase along the file and never repeat between files
    first = np.uint64(file_index) * np.uint64(n) * np.uint64(4000)
    event = first + np.cumsum(rng.integers(1, 4000, n)).astype(np.uint64)
    ids = {"run": runs[fired], "luminosityBlock": lumis[fired], "event": event[fired]}
    return {**ids, **kept}, n


def _data_run_lumi(params: DemoDataParameters, file_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(run, luminosityBlock) of each candidate of a data file: consecutive era-A runs, ~23 s lumi sections."""
    events_per_lumi, lumis_per_run = 300, 60
    start = file_index * params.events_per_file
    index = np.arange(start, start + params.events_per_file)
    lumi_index = index // events_per_lumi
    run_rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(99,)))
    total_runs = -(-params.data_files * params.events_per_file // (events_per_lumi * lumis_per_run))
    span = ERA_A_RUNS[1] - ERA_A_RUNS[0] + 1
    run_numbers = np.sort(run_rng.choice(span, size=total_runs, replace=False)) + ERA_A_RUNS[0]
    run = run_numbers[lumi_index // lumis_per_run].astype(np.uint32)
    lumi = (1 + lumi_index % lumis_per_run).astype(np.uint32)
    return run, lumi


# --------------------------------------------------------------------------- one file, manifest, fileset


@dataclass(frozen=True)
class _FileJob:
    """One output file: which sample, which file, where. Picklable, so workers can run it."""

    params: DemoDataParameters
    sample_index: int
    file_index: int
    target: str


def _compression(params: DemoDataParameters) -> Any:
    factory, _ = COMPRESSIONS[params.compression]
    return None if factory is None else factory(params.compression_level)


def _make_file(job: _FileJob) -> int:
    """Generate and write one file; returns its number of entries in Events."""
    spec = SAMPLES[job.sample_index]
    if spec.is_mc:
        events = mc_file_events(job.params, job.sample_index, job.file_index)
        weights = np.asarray(events["genWeight"], dtype=np.float64)
        runs = {
            "run": np.array([1], np.uint32),
            "genEventCount": np.array([weights.size], np.int64),
            "genEventSumw": np.array([weights.sum()], np.float64),
            "genEventSumw2": np.array([np.sum(weights**2)], np.float64),
        }
    else:
        events, _ = data_file_events(job.params, job.file_index)
        runs = {"run": np.unique(np.asarray(events["run"])).astype(np.uint32)}
    return write_nanoaod(Path(job.target), events, runs, _compression(job.params))


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise DemoDataError(
            f"{path} exists but is not a readable demo-data manifest ({exc}); remove it or pass --overwrite"
        ) from None
    return manifest if isinstance(manifest, dict) else None


def _up_to_date(manifest: Mapping[str, Any] | None, params: DemoDataParameters, outdir: Path) -> bool:
    if manifest is None or manifest.get("parameters") != asdict(params):
        return False
    return (outdir / FILESET_NAME).is_file() and all((outdir / f).is_file() for f in manifest.get("files", []))


def equivalent_luminosity_pb(events_per_file: int, data_files: int) -> float:
    """Integrated luminosity (pb^-1) the data sample corresponds to: candidates / (xsec_DY + xsec_ttbar)."""
    return events_per_file * data_files / (DY.xsec + TTBAR.xsec)


def _run_jobs(jobs: list[_FileJob], workers: int, progress: bool) -> dict[str, int]:
    """Run the file jobs (in ``workers`` processes when > 1) under a rich progress bar; entries per target."""
    entries: dict[str, int] = {}
    with progress_bar(enabled=progress) as bar:
        tasks = {}
        for job in jobs:
            dataset = SAMPLES[job.sample_index].dataset
            if dataset not in tasks:
                n = sum(1 for j in jobs if j.sample_index == job.sample_index)
                tasks[dataset] = bar.add_task(f"{dataset} (files)", total=n)
        if workers <= 1:
            for job in jobs:
                entries[job.target] = _make_file(job)
                bar.advance(tasks[SAMPLES[job.sample_index].dataset])
            return entries
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # no fork of a process running rich's refresh thread
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_make_file, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                entries[job.target] = future.result()
                bar.advance(tasks[SAMPLES[job.sample_index].dataset])
    return entries


def default_workers() -> int:
    """Processes used by default: the usable cores, at most 4 (the default demo has 8 files)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def generate_demo_data(
    outdir: str | os.PathLike,
    *,
    seed: int = 42,
    events_per_file: int = 20_000,
    files_per_sample: int = 3,
    data_files: int = 2,
    compression: str = "lzma",
    compression_level: int | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the demo NanoAOD files and their fileset JSON into ``outdir``; returns the fileset path.

    Nothing is regenerated when ``outdir`` already holds files made with the same
    parameters (recorded in ``demo_data_manifest.json``). Files made with different
    parameters are only replaced with ``overwrite=True``. ``workers`` processes write
    files in parallel (default: :func:`default_workers`); the bytes do not depend on it.
    """
    compression = str(compression).lower()
    if compression_level is None:
        compression_level = COMPRESSIONS[compression][1] if compression in COMPRESSIONS else 0
    params = DemoDataParameters(seed, events_per_file, files_per_sample, data_files, compression, compression_level)
    params.validate()
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise DemoDataError(f"workers = {workers!r} is not accepted; give a positive integer")
    outdir = Path(outdir).expanduser().resolve()
    if outdir.exists() and not outdir.is_dir():
        raise DemoDataError(f"output folder {outdir} exists and is not a directory; choose another -o/--outdir")
    outdir.mkdir(parents=True, exist_ok=True)
    manifest_path = outdir / MANIFEST_NAME
    fileset_path = outdir / FILESET_NAME
    manifest = _read_manifest(manifest_path)
    if _up_to_date(manifest, params, outdir) and not overwrite:
        log.info("Demo data in %s is up to date (same parameters); not regenerating", outdir)
        return fileset_path
    if manifest is not None and manifest.get("parameters") != asdict(params) and not overwrite:
        raise DemoDataError(
            f"{outdir} holds demo data made with other parameters ({manifest_path}: {manifest.get('parameters')}); "
            "pass --overwrite to replace it, or choose another -o/--outdir"
        )

    jobs: list[_FileJob] = []
    for sample_index, spec in enumerate(SAMPLES):
        (outdir / spec.dataset).mkdir(exist_ok=True)
        for file_index in range(files_per_sample if spec.is_mc else data_files):
            target = outdir / spec.dataset / f"nanoaod_{file_index}.root"
            jobs.append(_FileJob(params, sample_index, file_index, str(target)))
    entries = _run_jobs(jobs, min(workers, len(jobs)), progress)

    fileset: dict[str, Any] = {}
    for sample_index, spec in enumerate(SAMPLES):
        files = [job.target for job in jobs if job.sample_index == sample_index]
        file_nevents = [entries[f] for f in files]
        metadata: dict[str, Any] = {"sample": spec.sample, "year": YEAR, "isMC": spec.is_mc}
        if spec.xsec is not None:
            metadata["xsec"] = spec.xsec
        metadata["nevents"] = int(sum(file_nevents))
        metadata["file_nevents"] = file_nevents
        metadata.update(spec.extra_metadata)
        if not spec.is_mc:
            metadata["lumi_pb"] = round(equivalent_luminosity_pb(events_per_file, data_files), 6)
        fileset[spec.dataset] = {"files": files, "metadata": metadata}

    written = [str(Path(job.target).relative_to(outdir)) for job in jobs]
    stale = [] if manifest is None else [f for f in manifest.get("files", []) if f not in written]
    for name in stale:  # files of a previous, overwritten generation that the new one does not have
        (outdir / name).unlink(missing_ok=True)
    write_json(fileset_path, fileset)
    write_json(manifest_path, {"parameters": asdict(params), "files": written, "fileset": FILESET_NAME})
    log.info("Wrote %d demo NanoAOD files and %s", len(written), fileset_path)
    return fileset_path
