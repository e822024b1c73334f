"""Throughput of the demo analysis against uproot's raw read of the same branches.

Builds an input of >= 1M events by replicating the real ``nano_dy.root`` events (the muon,
electron, jet and MET collections, triggers and event ids; LZMA level 9 in NanoAOD-sized
clusters, like production NanoAOD) as a dataset of a few files in a temporary folder, then
measures in one run:

- uproot alone reading and decompressing the branches the demo reads (events/s),
- the same read with the files shared by two forked processes (the machine's own scaling),
- ``pocket-coffea run`` of the demo analysis with ``iterative`` in one process
  (``pipelined-reading: false``: the targets below are about one process) and ``futures -s 2``
  (events/s over the processing phase, from the run's processing report, and over the
  whole command), and ``iterative`` as it runs by default (``pipelined-reading: auto``: a
  read-ahead helper process on the second core),
- the ratios against the targets (iterative >= 60% of raw read; futures -s 2 >= 1.7x
  iterative) and the peak resident memory of any process of each run,
- the cost of the exactly-once bookkeeping (processing ledger, checkpoints; target <= 3%):
  ``iterative`` checkpointing every second against the default (every 30 s, i.e. once at
  the end here), and, with ``--baseline DIR`` (a checkout of a revision without it, e.g.
  ``git worktree add /tmp/before 9dbb62f``), ``iterative`` of that code in the same rounds.

The measurements are repeated in rounds (``--repeat``; raw read, raw read in 2 processes, iterative, futures, one
after the other, in reversed order every other round). The machine's speed drifts by tens
of percent over minutes on shared hardware, so the ratios are taken within each round and
their median is the result; the best rate of each kind is printed too.

    .venv/bin/python benchmarks/throughput.py [--events 1000000] [--files 4] [--repeat 6] [--keep DIR] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from pc_demo import NanoLZMA

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "nanoaod" / "nano_dy.root"
CONFIG = REPO / "examples" / "dilepton" / "config.py"
PREFIXES = ("Muon_", "Electron_", "Jet_", "MET_")
SCALARS = (
    "run", "luminosityBlock", "event", "genWeight", "PV_npvs",
    "HLT_IsoMu24", "HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8", "HLT_Ele32_WPTight_Gsf",
)
COLLECTIONS = ("Muon", "Electron", "Jet")


def selected_branches(tree) -> list[str]:
    names = [n for n in tree.keys() if n.startswith(PREFIXES) or n in SCALARS]
    return names + [f"n{c}" for c in COLLECTIONS]


# Production NanoAOD flushes a cluster (one basket per branch) every 10 MB
# (NanoAODOutputModule's autoFlush = -10000000), a few thousand events; so does the input here.
CLUSTER_BYTES = 10_000_000


def build_file(target: Path, n_events: int) -> int:
    """Write ``n_events`` (rounded up to whole copies) replicated nano_dy events, LZMA level 9,
    in clusters of about ``CLUSTER_BYTES`` uncompressed bytes like production NanoAOD."""
    source = uproot.open(SOURCE)["Events"]
    branches = selected_branches(source)
    event_bytes = sum(source[n].uncompressed_bytes for n in branches) / source.num_entries
    flat = [n for n in branches if not n.startswith(tuple(f"{c}_" for c in COLLECTIONS))]
    flat = [n for n in flat if n not in {f"n{c}" for c in COLLECTIONS}]
    arrays = source.arrays(flat, library="np")
    jagged = {c: source.arrays([n for n in source.keys() if n.startswith(c + "_")], library="ak") for c in COLLECTIONS}
    copies_per_batch = max(1, round(CLUSTER_BYTES / event_bytes / source.num_entries))
    copies = -(-n_events // source.num_entries)
    written = 0
    with uproot.recreate(target, compression=NanoLZMA(9)) as out:
        def batch(ncopies: int) -> dict:
            # one extend() is one cluster; tile flat contents and per-event counts with numpy (ak.concatenate of many copies is slow)
            data = {name: np.tile(values, ncopies) for name, values in arrays.items()}
            for coll, table in jagged.items():
                counts = np.tile(ak.to_numpy(ak.num(table[table.fields[0]])), ncopies)
                data[coll] = ak.zip(
                    {f[len(coll) + 1:]: ak.unflatten(np.tile(ak.to_numpy(ak.flatten(table[f])), ncopies), counts)
                     for f in table.fields}
                )
            return data
        remaining = copies
        while remaining > 0:
            ncopies = min(copies_per_batch, remaining)
            data = batch(ncopies)
            if "Events" not in out:  # mktree: a NanoAOD-like TTree (nMuon, Muon_pt), not an RNTuple
                out.mktree(
                    "Events",
                    {name: (v.dtype if isinstance(v, np.ndarray) else v.type) for name, v in data.items()},
                    counter_name=lambda counted: f"n{counted}",
                    field_name=lambda outer, inner: inner if outer == "" else f"{outer}_{inner}",
                )
            out["Events"].extend(data)
            written += ncopies * source.num_entries
            remaining -= ncopies
    return written


def build_input(folder: Path, n_events: int, n_files: int) -> list[Path]:
    """A dataset of ``n_files`` files sharing ``n_events``, written by two processes."""
    targets = [folder / f"nano_dy_replicated_{i}.root" for i in range(n_files)]
    sizes = [n_events // n_files + (1 if i < n_events % n_files else 0) for i in range(n_files)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(build_file, targets, sizes))
    return targets


def branches_read_by_demo(fileset: Path) -> list[str]:
    """The branches the demo analysis actually reads (coffea's access log on a small slice)."""
    os.environ["POCKET_COFFEA_DEMO_FILESET"] = str(fileset)
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    from pc_core.config_loading import load_configurator

    cfg = load_configurator(CONFIG)
    dataset, entry = next(iter(cfg.fileset.items()))
    path = entry["files"][0]  # every file holds the same replicated events
    accessed: list = []
    metadata = dict(entry["metadata"], dataset=dataset, filename=path, entrystart=0, entrystop=5000)
    events = NanoEventsFactory.from_root(
        {path: "Events"}, mode="virtual", entry_stop=5000, schemaclass=NanoAODSchema, access_log=accessed, metadata=metadata
    ).events()
    cfg.workflow(cfg).process(events)
    return sorted({a.branch for a in accessed})


def _raw_read(paths: list[Path], branches: list[str]) -> int:
    total = 0
    for path in paths:
        with uproot.open(path) as file:
            for batch in file["Events"].iterate(branches, step_size=150_000, library="ak"):
                total += len(batch)
    return total


def raw_read_rate(paths: list[Path], branches: list[str], processes: int = 1) -> float:
    """uproot alone: open each file and read and decompress ``branches`` of every event, in
    150k-event steps (the run opens each file too: opening is part of reading a file). With
    ``processes`` > 1 the files are shared among that many forked processes, as ``futures``
    does: the machine's own parallel scaling, for reading the futures figure."""
    start = time.perf_counter()
    if processes == 1:
        total = _raw_read(paths, branches)
    else:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
            total = sum(pool.map(_raw_read, [paths[i::processes] for i in range(processes)], [branches] * processes))
    return total / (time.perf_counter() - start)


def run_demo(fileset: Path, outdir: Path, executor: list[str], code: Path | None = None) -> dict:
    """``pocket-coffea run`` of the demo in a subprocess; its report and the peak RSS of its processes.

    ``code``: another checkout whose packages are imported instead of this one's."""
    env = dict(os.environ, POCKET_COFFEA_DEMO_FILESET=str(fileset))
    if code is not None:
        sources = [str(p) for p in sorted((code / "packages").glob("*/src"))] + [str(code / "src")]
        env["PYTHONPATH"] = os.pathsep.join([*sources, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    config = CONFIG if code is None else code / CONFIG.relative_to(REPO)  # the analysis as that code had it
    command = [sys.executable, "-m", "pocket_coffea.cli", "run", "--cfg", str(config), "-o", str(outdir), *executor]
    # a fresh parent per run, so that the peak RSS of its waited-for descendants is this run's alone
    probe = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    start = time.perf_counter()
    peak_kb = int(subprocess.run([sys.executable, "-c", probe, *command], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()[-1])
    wall = time.perf_counter() - start
    report = json.loads((outdir / "processing_report.json").read_text())
    return {"wall": wall, "report": report, "peak_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4, help="files the events are spread over (default 4)")
    parser.add_argument("--repeat", type=int, default=6, help="rounds of measurements (default 6)")
    parser.add_argument("--chunksize", type=int, help="chunk size of both runs (default: the run-options default)")
    parser.add_argument("--keep", help="folder to keep the input and outputs in (default: a temporary one)")
    parser.add_argument("--baseline", type=Path,
                        help="a checkout of an earlier revision: its iterative run is measured in the same rounds")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pc-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = sorted(work.glob("nano_dy_replicated_*.root"))
        if len(data) != args.files:
            for old in data:
                old.unlink()
            t0 = time.perf_counter()
            data = build_input(work, args.events, args.files)
            size = sum(p.stat().st_size for p in data) / 1e6
            print(f"built {args.events} events in {len(data)} files in {time.perf_counter() - t0:.0f} s ({size:.0f} MB, LZMA 9)")
        n_events = sum(uproot.open(p)["Events"].num_entries for p in data)
        fileset = work / "fileset.json"
        fileset.write_text(json.dumps({"DYJetsToLL_M-50_2018": {"files": [str(p) for p in data], "metadata": {
            "sample": "DYJetsToLL_M-50", "year": "2018", "isMC": True, "xsec": 6077.22, "nevents": n_events}}}))

        branches = branches_read_by_demo(fileset)
        chunking = ["-c", str(args.chunksize)] if args.chunksize else []
        # the targets concern one process: iterative without the read-ahead helper (which takes a second
        # core where there is one); the default (pipelined-reading: auto) is measured beside it
        one_process = work / "no_read_ahead.yaml"
        one_process.write_text("pipelined-reading: false\n")
        every_second = work / "checkpoint_every_second.yaml"
        every_second.write_text("pipelined-reading: false\ncheckpoint-interval: 1\n")
        executors = {"iterative": ["-e", "iterative", "-ro", str(one_process)],
                     "futures -s 2": ["-e", "futures", "-s", "2"],
                     "iterative, checkpoint 1 s": ["-e", "iterative", "-ro", str(every_second)],
                     "iterative, read-ahead (default)": ["-e", "iterative"]}
        if args.baseline:
            executors["iterative, baseline"] = ["-e", "iterative"]
        raw_rates: list[float] = []
        raw_parallel_rates: list[float] = []
        runs: dict[str, list[dict]] = {label: [] for label in executors}
        kinds = ["raw", "raw 2 processes", *executors]
        for round_index in range(args.repeat):
            # every kind in each round, in reversed order every other round, so that neither a
            # slow spell of the machine nor the position in the round favours one kind
            for kind in kinds if round_index % 2 == 0 else reversed(kinds):
                if kind == "raw":
                    raw_rates.append(raw_read_rate(data, branches))
                    continue
                if kind == "raw 2 processes":
                    raw_parallel_rates.append(raw_read_rate(data, branches, processes=2))
                    continue
                outdir = work / f"out-{kind.replace(' ', '_').replace(',', '')}"
                shutil.rmtree(outdir, ignore_errors=True)
                result = run_demo(fileset, outdir, executors[kind] + chunking,
                                  args.baseline if kind.endswith("baseline") else None)
                totals = result["report"]["totals"]
                result["rate"] = totals["events"] / totals["processing_seconds"]
                runs[kind].append(result)

        total_branches = len(uproot.open(data[0])["Events"].keys())
        chunks = runs["iterative"][0]["report"]["totals"]["chunks"]
        print(f"\ninput: {n_events} events in {len(data)} files ({chunks} chunks), {total_branches} branches, "
              f"{len(branches)} read by the demo analysis{', chunksize ' + str(args.chunksize) if args.chunksize else ''}")
        print(f"{args.repeat} rounds (best, then every round in brackets; events/s)")
        raw_rate = max(raw_rates)
        print(f"uproot raw read + decompress of those {len(branches)} branches: {raw_rate:,.0f} events/s "
              f"[{', '.join(f'{r:,.0f}' for r in raw_rates)}]")
        print(f"  the same, files shared by 2 forked processes: {max(raw_parallel_rates):,.0f} events/s "
              f"[{', '.join(f'{r:,.0f}' for r in raw_parallel_rates)}]")
        rates = {label: [r["rate"] for r in results] for label, results in runs.items()}
        for label, results in runs.items():
            res = max(results, key=lambda r: r["rate"])
            peak = max(r["peak_mb"] for r in results)
            every = ", ".join(f"{rate:,.0f}" for rate in rates[label])
            print(f"{label:>13}: {res['rate']:,.0f} events/s processing, {n_events / res['wall']:,.0f} events/s whole command "
                  f"({res['wall']:.1f} s), peak RSS {peak:.0f} MB [{every}]")
        to_raw = [i / r for i, r in zip(rates["iterative"], raw_rates)]
        scaling = [f / i for f, i in zip(rates["futures -s 2"], rates["iterative"])]
        print("\nratios within each round: median [every round]")
        print(f"iterative / raw read      = {statistics.median(to_raw):.2f}   (target >= 0.60) "
              f"[{', '.join(f'{x:.2f}' for x in to_raw)}]")
        print(f"futures -s 2 / iterative  = {statistics.median(scaling):.2f}   (target >= 1.70) "
              f"[{', '.join(f'{x:.2f}' for x in scaling)}]")
        machine = [p / r for p, r in zip(raw_parallel_rates, raw_rates)]
        print(f"raw read, 2 processes / 1 = {statistics.median(machine):.2f}   (the machine's own scaling, for reference) "
              f"[{', '.join(f'{x:.2f}' for x in machine)}]")
        peak = max(r["peak_mb"] for results in runs.values() for r in results)
        print(f"peak memory per worker    = {peak:.0f} MB (target < 2048 MB)")
        checkpointing = [c / i for c, i in zip(rates["iterative, checkpoint 1 s"], rates["iterative"])]
        print(f"checkpoint every 1 s / default = {statistics.median(checkpointing):.3f} (target >= 0.97) "
              f"[{', '.join(f'{x:.3f}' for x in checkpointing)}]")
        read_ahead = [a / i for a, i in zip(rates["iterative, read-ahead (default)"], rates["iterative"])]
        print(f"iterative with / without read-ahead = {statistics.median(read_ahead):.2f} "
              f"[{', '.join(f'{x:.2f}' for x in read_ahead)}]")
        if args.baseline:
            bookkeeping = [i / b for i, b in zip(rates["iterative"], rates["iterative, baseline"])]
            print(f"iterative / baseline {args.baseline} = {statistics.median(bookkeeping):.3f} (target >= 0.97) "
                  f"[{', '.join(f'{x:.3f}' for x in bookkeeping)}]")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
