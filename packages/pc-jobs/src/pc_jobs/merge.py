"""``merge-outputs``: merge per-job ``.coffea`` outputs and prove that no input was lost.

Inputs are ``.coffea`` files (or glob patterns) and/or a jobs directory written by the
manual-job executors (``-jc``), whose ``jobs_config.yaml`` lists every job and its output.
Before anything is written the command checks that every job output exists and that, for
every dataset, the ``cutflow["initial"]`` events summed over the outputs equal the dataset's
``nevents`` metadata. The merged output is written atomically; inputs are only read.

``jobs_config.yaml`` (written by the condor executors, documented in docs/merging.md)::

    version: 1
    jobs:
      0:
        fileset: {dataset: {files: [...], metadata: {...}}}   # this job's slice
        config: config_job_0.pkl                              # relative to the jobs dir
        output: /path/to/output/output_job_0.coffea           # relative to the jobs dir
"""
from __future__ import annotations

import copy
import glob
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pc_core.cli_support import LOGLEVELS, run_cli, setup_logging
from pc_core.errors import DatasetError, OutputError
from pc_core.fileset import normalise_dataset, save_fileset_json
from pc_core.output import accumulate, check_output_keys, load_output, save_output

log = logging.getLogger(__name__)

JOBS_CONFIG_NAME = "jobs_config.yaml"
MERGED_OUTPUT_NAME = "output_merged.coffea"
SKIMMED_DEFINITION_NAME = "skimmed_dataset_definition.json"
# what merging itself relies on; the full format is pc_core.output.REQUIRED_KEYS
MERGE_REQUIRED_KEYS = ("cutflow", "datasets_metadata")


class IncompleteOutputError(OutputError):
    """Job outputs are missing or events were lost: merging would give a wrong result."""


# --------------------------------------------------------------------------- jobs_config.yaml


@dataclass(frozen=True)
class JobEntry:
    """One manual job: its fileset slice, pickled config and expected output file."""

    name: str
    output: Path
    config: Path | None
    fileset: dict[str, Any]


@dataclass(frozen=True)
class JobsConfig:
    path: Path
    jobs_dir: Path
    jobs: tuple[JobEntry, ...]

    def expected_datasets(self) -> dict[str, dict[str, Any]]:
        """Per dataset, the metadata summed over every job's slice: what the merge must contain.

        ``nevents`` is the sum of the jobs' slice ``nevents`` (None when a job does not know
        it); ``nevents_estimated`` is set when any slice is an estimate.
        """
        result: dict[str, dict[str, Any]] = {}
        for job in self.jobs:
            for dataset, entry in job.fileset.items():
                meta = entry["metadata"]
                total = result.setdefault(dataset, {"nevents": 0})
                if total["nevents"] is None or meta.get("nevents") is None:
                    total["nevents"] = None
                else:
                    total["nevents"] += int(meta["nevents"])
                if meta.get("nevents_estimated"):
                    total["nevents_estimated"] = True
        return result

    def datasets_of(self, job_names: Iterable[str]) -> set[str]:
        names = set(job_names)
        return {ds for job in self.jobs if job.name in names for ds in job.fileset}


def find_jobs_config(path: str | os.PathLike) -> Path:
    """Accept the YAML itself, the jobs dir, or an output dir holding a single ``job/`` folder."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / JOBS_CONFIG_NAME, path / "job" / JOBS_CONFIG_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise OutputError(
        f"No {JOBS_CONFIG_NAME} found for --jobs-config {path} (looked for "
        f"{', '.join(str(c) for c in candidates)}); pass the jobs folder written by the condor executor"
    )


def _resolve(base: Path, value: Any, where: str, key: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise OutputError(f"{where}: {key!r} must be a file path, got {value!r}")
    path = Path(value)
    return path if path.is_absolute() else base / path


def load_jobs_config(path: str | os.PathLike) -> JobsConfig:
    """Read and validate ``jobs_config.yaml`` (schema in the module docstring)."""
    config_path = find_jobs_config(path)
    jobs_dir = config_path.parent
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise OutputError(f"{config_path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("jobs"), dict):
        raise OutputError(
            f"{config_path}: expected a mapping with a 'jobs' mapping {{job: {{fileset, config, output}}}}, "
            f"got {type(raw.get('jobs') if isinstance(raw, dict) else raw).__name__}"
        )
    if not raw["jobs"]:
        raise OutputError(f"{config_path}: 'jobs' is empty, there is nothing to merge")
    jobs = []
    for name, job in raw["jobs"].items():
        where = f"{config_path}: job {name!r}"
        if not isinstance(job, dict):
            raise OutputError(f"{where} must be a mapping with keys 'fileset', 'config', 'output'")
        if "output" not in job:
            raise OutputError(f"{where} lacks the key 'output' (the path of the job's .coffea output)")
        fileset_raw = job.get("fileset") or {}
        if not isinstance(fileset_raw, dict):
            raise OutputError(f"{where}: 'fileset' must be a mapping {{dataset: {{files, metadata}}}}")
        try:
            fileset = {ds: normalise_dataset(ds, entry, f"{where} fileset") for ds, entry in fileset_raw.items()}
        except DatasetError as exc:
            raise OutputError(str(exc)) from None
        jobs.append(
            JobEntry(
                name=str(name),
                output=_resolve(jobs_dir, job["output"], where, "output"),
                config=_resolve(jobs_dir, job["config"], where, "config") if job.get("config") else None,
                fileset=fileset,
            )
        )
    return JobsConfig(path=config_path, jobs_dir=jobs_dir, jobs=tuple(jobs))


# --------------------------------------------------------------------------- inputs


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files and glob patterns to a list of files; a pattern matching nothing is an error."""
    files: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise OutputError(f"No file matches the input pattern {pattern!r}")
            files.extend(Path(m) for m in matches)
        else:
            path = Path(pattern)
            if not path.exists():
                raise OutputError(f"Input file {pattern} does not exist")
            files.append(path)
    return files


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    result = []
    for path in paths:
        key = path.resolve()
        if key in seen:
            log.warning("Input %s given twice: merged once", path)
            continue
        seen.add(key)
        result.append(path)
    return result


# --------------------------------------------------------------------------- checks


@dataclass
class EventsCheck:
    """One dataset's initial-events comparison."""

    dataset: str
    expected: int | None
    found: int
    status: str  # "ok", "mismatch", "skipped", "unknown", "estimated"


def check_initial_events(
    output: Mapping[str, Any],
    skip: Iterable[str] = (),
    expected_datasets: Mapping[str, Mapping[str, Any]] | None = None,
    tolerated: Iterable[str] = (),
) -> list[EventsCheck]:
    """Compare ``cutflow["initial"]`` to the ``nevents`` metadata of every dataset.

    Raises IncompleteOutputError for mismatches, except for datasets in ``skip``
    (--skip-initial-events-check) or ``tolerated`` (touched by a job output that
    --allow-missing let go), which only warn. ``expected_datasets`` (from jobs_config.yaml,
    summed over all jobs) replaces the merged metadata's ``nevents`` for its datasets and
    adds datasets that no merged output mentions.
    """
    skip = set(skip)
    tolerated = set(tolerated)
    by_dataset = {name: dict(meta) for name, meta in output.get("datasets_metadata", {}).get("by_dataset", {}).items()}
    for dataset, meta in (expected_datasets or {}).items():
        entry = by_dataset.setdefault(dataset, {})
        entry["nevents"] = meta.get("nevents")
        if meta.get("nevents_estimated"):
            entry["nevents_estimated"] = True
    initial = output.get("cutflow", {}).get("initial", {})
    unknown_skips = sorted(skip - set(by_dataset))
    if unknown_skips:
        log.warning("--skip-initial-events-check names datasets not in the outputs: %s (present: %s)",
                    unknown_skips, sorted(by_dataset))
    checks: list[EventsCheck] = []
    errors: list[str] = []
    for dataset, meta in by_dataset.items():
        found = int(initial.get(dataset, 0))
        nevents = meta.get("nevents")
        if nevents is None:
            checks.append(EventsCheck(dataset, None, found, "unknown"))
            continue
        expected = int(float(nevents))
        if meta.get("nevents_estimated"):
            log.warning("Dataset %s: nevents %d is an estimate (--limit-files), initial events %d not checked",
                        dataset, expected, found)
            checks.append(EventsCheck(dataset, expected, found, "estimated"))
            continue
        if expected == found:
            checks.append(EventsCheck(dataset, expected, found, "ok"))
            continue
        message = (
            f"Inconsistent number of initial events for dataset {dataset!r}: metadata nevents = {expected}, "
            f"cutflow['initial'] summed over the merged outputs = {found}"
        )
        if dataset in skip or dataset in tolerated:
            why = "--skip-initial-events-check" if dataset in skip else "--allow-missing (a job output is missing)"
            log.warning("%s (downgraded to a warning by %s)", message, why)
            checks.append(EventsCheck(dataset, expected, found, "skipped"))
        else:
            errors.append(message)
            checks.append(EventsCheck(dataset, expected, found, "mismatch"))
    if errors:
        raise IncompleteOutputError(
            "\n".join(errors)
            + "\nEvents were lost (a missing job output, a skipped file or chunk). Nothing was written. "
            "If the loss is intended, pass --skip-initial-events-check DATASET for each dataset."
        )
    return checks


# --------------------------------------------------------------------------- skimming


def skimmed_dataset_definition(output: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fileset JSON of the skimmed files, or None when the outputs carry no skim.

    ``nevents`` is the number of skimmed events, ``skim_efficiency`` = skim / initial, and
    MC datasets keep the *original* ``sum_genweights`` so a later run on the skim can
    still normalise to the full sample.
    """
    processing = output.get("processing_metadata", {})
    skimmed = processing.get("skimmed_files") or output.get("skimmed_files")
    if not skimmed:
        return None
    nskimmed = processing.get("nskimmed_events") or output.get("nskimmed_events") or {}
    by_dataset = output.get("datasets_metadata", {}).get("by_dataset", {})
    cutflow = output.get("cutflow", {})
    definition: dict[str, Any] = {}
    for dataset, files in skimmed.items():
        if dataset not in by_dataset:
            raise OutputError(f"Skimmed files of dataset {dataset!r} but no metadata for it in datasets_metadata")
        meta = copy.deepcopy(dict(by_dataset[dataset]))
        initial = int(cutflow.get("initial", {}).get(dataset, 0))
        skim = int(cutflow.get("skim", {}).get(dataset, 0))
        per_file = [int(n) for n in nskimmed.get(dataset, [])]
        meta.pop("file_nevents", None)
        meta.pop("nevents_estimated", None)
        meta["nevents"] = sum(per_file) if per_file else skim
        if per_file and len(per_file) == len(files):
            meta["file_nevents"] = per_file
        meta["skim_efficiency"] = skim / initial if initial else 0.0
        meta["isSkim"] = True
        if dataset in output.get("sum_genweights", {}):
            meta["sum_genweights"] = float(output["sum_genweights"][dataset])
        definition[dataset] = {"files": list(files), "metadata": meta}
    return definition


# --------------------------------------------------------------------------- merging


@dataclass
class MergeResult:
    outputfile: Path
    inputs: list[Path]
    missing_jobs: list[str] = field(default_factory=list)
    checks: list[EventsCheck] = field(default_factory=list)
    skimmed_definition: Path | None = None


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[cyan]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def merge_outputs(
    inputs: Sequence[str] = (),
    outputfile: str | os.PathLike | None = None,
    jobs_config: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    allow_missing: bool = False,
    skip_initial_events_check: Iterable[str] = (),
    console: Console | None = None,
) -> MergeResult:
    """Merge outputs after checking completeness; see the module docstring."""
    console = console or Console(stderr=True)
    skip = list(skip_initial_events_check)
    files = expand_inputs(inputs)
    jobs: JobsConfig | None = None
    missing: list[str] = []
    missing_names: list[str] = []
    if jobs_config is not None:
        jobs = load_jobs_config(jobs_config)
        for job in jobs.jobs:
            if job.output.is_file():
                files.append(job.output)
            else:
                missing.append(f"job {job.name}: {job.output}")
                missing_names.append(job.name)
        if missing:
            listing = "\n  ".join(missing)
            if not allow_missing:
                raise IncompleteOutputError(
                    f"{len(missing)} of {len(jobs.jobs)} job outputs listed in {jobs.path} are missing:\n  {listing}\n"
                    "Nothing was written. Wait for/resubmit those jobs, or pass --allow-missing to merge the rest."
                )
            log.warning("Merging without %d missing job outputs (--allow-missing):\n  %s", len(missing), listing)
    if outputfile is None:
        if jobs is None:
            raise OutputError("No output file: pass -o/--outputfile (required unless -jc/--jobs-config is given)")
        outputfile = jobs.jobs_dir.parent / MERGED_OUTPUT_NAME
    outputfile = Path(outputfile)
    files = _dedupe(files)
    if not files:
        raise OutputError("No input outputs to merge: pass .coffea files/globs and/or -jc/--jobs-config")
    if outputfile.exists() and not overwrite:
        raise OutputError(f"Output file {outputfile} already exists; pass --overwrite to replace it")
    if outputfile.resolve() in {f.resolve() for f in files}:
        raise OutputError(f"Output file {outputfile} is also one of the inputs; choose another -o/--outputfile")

    current: dict[str, Path] = {}

    def loaded(progress: Progress, task: Any) -> Iterator[dict[str, Any]]:
        for path in files:
            current["path"] = path
            output = load_output(path)
            check_output_keys(output, MERGE_REQUIRED_KEYS, str(path))
            yield output
            progress.advance(task)

    with _progress(console) as progress:
        task = progress.add_task("Merging outputs", total=len(files))
        try:
            merged = accumulate(loaded(progress, task))
        except OutputError as exc:
            path = current.get("path")
            if path is None or str(path) in str(exc):
                raise
            raise OutputError(f"While merging {path}: {exc}") from None

    checks = check_initial_events(
        merged,
        skip,
        jobs.expected_datasets() if jobs else None,
        tolerated=jobs.datasets_of(missing_names) if jobs else (),
    )

    skimmed = skimmed_dataset_definition(merged)
    skimmed_path = outputfile.parent / SKIMMED_DEFINITION_NAME if skimmed is not None else None
    if skimmed_path is not None and skimmed_path.exists() and not overwrite:
        raise OutputError(f"{skimmed_path} already exists; pass --overwrite to replace it")

    save_output(merged, outputfile)
    if skimmed_path is not None:
        save_fileset_json(skimmed, skimmed_path)
    return MergeResult(outputfile, files, missing, checks, skimmed_path)


def summary_table(result: MergeResult) -> Table:
    table = Table(title=f"Merged {len(result.inputs)} outputs into {result.outputfile}")
    for column in ("dataset", "initial events", "metadata nevents", "check"):
        table.add_column(column, justify="left" if column in ("dataset", "check") else "right")
    styles = {"ok": "green", "mismatch": "red", "skipped": "yellow", "estimated": "yellow", "unknown": "dim"}
    for check in result.checks:
        expected = "-" if check.expected is None else str(check.expected)
        table.add_row(check.dataset, str(check.found), expected, f"[{styles[check.status]}]{check.status}")
    return table


@click.command("merge-outputs")
@click.argument("inputs", nargs=-1, metavar="[OUTPUTS]...")
@click.option("-jc", "--jobs-config", type=click.Path(), default=None,
              help="Jobs folder (or its jobs_config.yaml) of a condor run: merge every job's output.")
@click.option("-o", "--outputfile", type=click.Path(dir_okay=False), default=None,
              help="Merged output file [default with -jc: output_merged.coffea next to the jobs folder].")
@click.option("-f", "--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--allow-missing", is_flag=True, help="With -jc: merge even if some job outputs are missing (warns).")
@click.option("--skip-initial-events-check", "skip_check", multiple=True, metavar="DATASET",
              help="Only warn when DATASET's initial events differ from its nevents metadata (repeatable).")
@click.option("-ll", "--loglevel", default="INFO", type=click.Choice(LOGLEVELS, case_sensitive=False),
              help="Console logging level.")
def merge_outputs_command(inputs, jobs_config, outputfile, overwrite, allow_missing, skip_check, loglevel) -> None:
    """Merge .coffea outputs (files, globs and/or a jobs folder), checking that no event was lost."""
    setup_logging(loglevel)
    if not inputs and jobs_config is None:
        raise OutputError("Nothing to merge: pass .coffea files/globs and/or -jc/--jobs-config JOBS_DIR")
    result = merge_outputs(
        inputs, outputfile, jobs_config,
        overwrite=overwrite, allow_missing=allow_missing, skip_initial_events_check=skip_check,
    )
    console = Console()
    console.print(summary_table(result))
    console.print(f"[green]Merged output written to {result.outputfile}")
    if result.skimmed_definition is not None:
        console.print(f"[green]Skimmed dataset definition written to {result.skimmed_definition}")


def main() -> None:
    run_cli(merge_outputs_command, prog_name="merge-outputs")


__all__ = [
    "IncompleteOutputError",
    "JobsConfig",
    "MergeResult",
    "check_initial_events",
    "load_jobs_config",
    "merge_outputs",
    "merge_outputs_command",
    "skimmed_dataset_definition",
]
