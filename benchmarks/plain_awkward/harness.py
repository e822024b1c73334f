"""Throughput of the plain-awkward benchmark analysis (``config.py`` here) against uproot's
raw read of the branches it reads, on two inputs of >= 1M events in >= 4 files:

- ``real``: the real ``nano_dy.root`` events replicated (the 170 branches of the muon,
  electron, jet and MET collections, triggers, event ids; LZMA 9, NanoAOD-sized clusters;
  built by ``benchmarks/throughput.py``'s ``build_input``),
- ``synthetic``: the varied synthetic events of ``pocket-coffea generate-demo-data`` (its DY
  sample: ``--files`` files of ``--events / --files`` events, LZMA 9).

Per input and per round, alternating the order every other round, it measures: uproot
opening the files and reading + decompressing those branches (1 process, and the files
shared by 2 forked processes), ``pocket-coffea run`` with ``iterative`` (the default
``pipelined-reading: auto`` reads ahead there on 2 cores; also run with ``false``) and
``futures -s 2`` (``auto`` does not read ahead there on 2 cores) (whole command, chunk
phase from the run's processing report, launch to first chunk from the report's
``processing_started``, peak RSS of its processes). Then the medians of the within-round
ratios. Separately (also in rounds), launch to first chunk of
``iterative`` on the 40-event ``nano_dy.root`` and on 4 copies of it (1499 branches each):
start-up, and preprocessing of wide trees.

The fileset carries per-file event counts (``file_nevents``) unless ``--no-counts``.

With ``--peer PYTHON`` (the interpreter of a PocketCoffea 0.9.13 environment, made by
``pocketcoffea/make_env.sh DIR``), PocketCoffea's own ``iterative`` and ``futures -s 2`` runs of
the same analysis (``pocketcoffea/config.py`` and ``workflow.py``: the same code on its base
processor) are measured in the same rounds, and the histograms of the two ``iterative`` runs
are compared bin for bin (it raises if any differs by more than 1e-6).

    .venv/bin/python benchmarks/plain_awkward/harness.py [--events 1000000] [--files 4]
        [--repeat 5] [--chunksize 100000] [--inputs startup,real,synthetic] [--keep DIR] [--no-counts]
        [--baseline DIR] [--peer PYTHON]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = HERE / "config.py"
NANO = REPO.parent / "shared" / "data" / "nanoaod"
DATASET, SAMPLE = "DYJetsToLL_M-50_2018", "DYJetsToLL_M-50"
sys.path.insert(0, str(REPO / "benchmarks"))


def _fileset(path: Path, files: list[Path], counts: bool, peer: bool = False) -> Path:
    """The fileset (``peer``: in PocketCoffea 0.9's spelling, ``isMC: "True"``)."""
    n = [uproot.open(f)["Events"].num_entries for f in files]
    meta = {"sample": SAMPLE, "year": "2018", "isMC": "True" if peer else True, "xsec": 6077.22, "nevents": sum(n)}
    if counts:
        meta["file_nevents"] = n
    path.write_text(json.dumps({DATASET: {"files": [str(f) for f in files], "metadata": meta}}))
    return path


def build_real(folder: Path, events: int, files: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("nano_dy_replicated_*.root"))
    if len(existing) == files:
        return existing
    from throughput import build_input  # the replicated real events of the demo benchmark

    return build_input(folder, events, files)


def build_synthetic(folder: Path, events: int, files: int) -> list[Path]:
    if not (folder / "fileset_demo.json").exists():
        subprocess.run([sys.executable, "-m", "pocket_coffea.cli", "generate-demo-data", "-o", str(folder),
                        "-n", str(-(-events // files)), "-f", str(files), "--data-files", "1", "-j", "2"],
                       check=True, stdout=subprocess.DEVNULL)
    demo = json.loads((folder / "fileset_demo.json").read_text())
    entry = next(e for e in demo.values() if e["metadata"]["sample"] == SAMPLE)
    return [Path(f) for f in entry["files"]]


def branches_read(fileset: Path) -> list[str]:
    """The branches the analysis reads (coffea's access log on the first 5000 events)."""
    code = (
        "import json, sys\n"
        "from coffea.nanoevents import NanoAODSchema, NanoEventsFactory\n"
        "from pc_core.config_loading import load_configurator\n"
        f"cfg = load_configurator({str(CONFIG)!r})\n"
        "dataset, entry = next(iter(cfg.fileset.items()))\n"
        "path = entry['files'][0]; log = []\n"
        "meta = dict(entry['metadata'], dataset=dataset, filename=path, entrystart=0, entrystop=5000)\n"
        "ev = NanoEventsFactory.from_root({path: 'Events'}, mode='virtual', entry_stop=5000, schemaclass=NanoAODSchema,"
        " access_log=log, metadata=meta).events()\n"
        "cfg.workflow(cfg).process(ev)\n"
        "print(json.dumps(sorted({a.branch for a in log})))\n"
    )
    env = dict(os.environ, POCKET_COFFEA_BENCH_FILESET=str(fileset))
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def raw_rate(files: list[Path], branches: list[str], processes: int) -> float:
    from throughput import raw_read_rate

    return raw_read_rate(files, branches, processes)


def _launch(command: list[str], env: dict) -> tuple[float, float, float]:
    """Run ``command`` (quiet) from a fresh parent: (wall seconds, launch epoch, peak RSS of its processes in MB)."""
    probe = (
        "import resource, subprocess, sys, time;"
        "t = time.time();"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    start = time.perf_counter()
    launched, peak_kb = subprocess.run([sys.executable, "-c", probe, *command], env=env, check=True,
                                       capture_output=True, text=True).stdout.split()[-2:]
    return time.perf_counter() - start, float(launched), int(peak_kb) / 1024


def run(fileset: Path, outdir: Path, executor: list[str], code: Path | None = None) -> dict:
    """``pocket-coffea run`` in a fresh parent process: wall time, report, peak RSS, launch to first chunk.

    ``code``: another checkout (or export) of the repository whose packages are imported instead."""
    shutil.rmtree(outdir, ignore_errors=True)
    env = dict(os.environ, POCKET_COFFEA_BENCH_FILESET=str(fileset))
    if code is not None:
        sources = [str(p) for p in sorted((code / "packages").glob("*/src"))] + [str(code / "src")]
        env["PYTHONPATH"] = os.pathsep.join([*sources, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "pocket_coffea.cli", "run", "--cfg", str(CONFIG), "-o", str(outdir), *executor]
    wall, launched, peak_mb = _launch(command, env)
    report = json.loads((outdir / "processing_report.json").read_text())
    totals = report["totals"]
    return {
        "wall": wall,
        "events": totals["events"],
        "chunk_rate": totals["events"] / totals["processing_seconds"],
        "whole_rate": totals["events"] / wall,
        # launch to the first chunk handed out (None: code without processing_started in its report)
        "first_chunk": (totals["processing_started"] - launched) if totals.get("processing_started") else None,
        "peak_mb": peak_mb,
        "chunks": totals["chunks"],
    }


PEER = HERE / "pocketcoffea"


def run_peer(python: Path, fileset: Path, outdir: Path, executor: list[str]) -> dict:
    """PocketCoffea 0.9.13's ``pocket-coffea run`` of the same analysis (``pocketcoffea/``), in
    the interpreter ``python`` of its own environment: wall time and peak RSS (it writes no
    processing report: no chunk phase, no launch to first chunk)."""
    shutil.rmtree(outdir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["POCKET_COFFEA_BENCH_FILESET"] = str(fileset)
    command = [str(python), str(PEER / "run_peer.py"), "run", "--cfg", str(PEER / "config.py"),
               "-ro", str(PEER / "run_options.yaml"), "-o", str(outdir), *executor]
    wall, _, peak_mb = _launch(command, env)
    events = sum(d["metadata"]["nevents"] for d in json.loads(fileset.read_text()).values())
    return {"wall": wall, "events": events, "chunk_rate": None, "whole_rate": events / wall, "first_chunk": None,
            "peak_mb": peak_mb, "chunks": None}


def same_as_peer(ours: Path, peer: Path, python: Path) -> str:
    """Our histograms against PocketCoffea's, bin for bin. PocketCoffea saves them divided by its
    sum of genWeight (summed in float32), pocket-coffea saves the sums (scaled when plotting):
    the peer's are multiplied back by its own sum. Raises if any bin differs by more than 1e-6."""
    dumps = []
    for interpreter, output in ((sys.executable, ours), (python, peer)):
        dump = output.parent / f"{output.parent.name}-histograms.npz"
        subprocess.run([str(interpreter), str(PEER / "dump_histograms.py"), str(output), str(dump)], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        dumps.append(np.load(dump))
    mine, theirs = dumps
    if sorted(mine.files) != sorted(theirs.files):
        raise AssertionError(f"different histograms: {sorted(set(mine.files) ^ set(theirs.files))}")
    worst = 0.0
    for key in mine.files:
        if key.startswith("sum_genweights/"):
            continue
        scale = theirs[f"sum_genweights/{key.split('/')[2]}"] ** (1 if key.endswith("/values") else 2)
        a, b = mine[key], theirs[key] * scale
        if not np.array_equal(a == 0, b == 0):
            raise AssertionError(f"{key}: filled bins differ from PocketCoffea's")
        filled = a != 0
        if filled.any():
            worst = max(worst, float(np.max(np.abs(b[filled] / a[filled] - 1))))
    if worst > 1e-6:
        raise AssertionError(f"histograms differ from PocketCoffea's by up to {worst:.2g} (relative)")
    return f"{len(mine.files) // 2} histograms (values, variances) equal to PocketCoffea's within {worst:.1g}"


def _fmt(values, spec=".2f"):
    return "[" + ", ".join(format(v, spec) for v in values) + "]"


def _median_s(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.2f} s" if values else "n/a"


def _no_read_ahead_options(work: Path) -> Path:
    path = work / "no-read-ahead.yaml"
    path.write_text("pipelined-reading: false\n")
    return path


def measure_input(name: str, files: list[Path], fileset: Path, work: Path, repeat: int, chunking: list[str],
                  baseline: Path | None = None, peer: Path | None = None) -> dict:
    branches = branches_read(fileset)
    n_events = sum(uproot.open(f)["Events"].num_entries for f in files)
    total_branches = len(uproot.open(files[0])["Events"].keys())
    executors = {"iterative": ["-e", "iterative"], "futures": ["-e", "futures", "-s", "2"],
                 "iterative no read-ahead": ["-e", "iterative", "-ro", str(_no_read_ahead_options(work))]}
    if baseline is not None:
        executors.update({"iterative baseline": ["-e", "iterative"], "futures baseline": ["-e", "futures", "-s", "2"]})
    if peer is not None:
        executors.update({"iterative PocketCoffea": ["-e", "iterative"], "futures PocketCoffea": ["-e", "futures", "-s", "2"]})
        peer_fileset = _fileset(fileset.with_name(fileset.stem + "_peer.json"), files, "file_nevents" in fileset.read_text(),
                                peer=True)
    kinds = ["raw", "raw2", *executors]
    results: dict[str, list] = {k: [] for k in kinds}
    print(f"\n== {name}: {n_events} events in {len(files)} files, {total_branches} branches, "
          f"{len(branches)} read by the analysis", flush=True)
    for round_index in range(repeat):
        for kind in kinds if round_index % 2 == 0 else reversed(kinds):
            if kind == "raw":
                results[kind].append(raw_rate(files, branches, 1))
            elif kind == "raw2":
                results[kind].append(raw_rate(files, branches, 2))
            elif kind.endswith("PocketCoffea"):
                results[kind].append(run_peer(peer, peer_fileset, _outdir(work, name, kind), executors[kind] + chunking))
            else:
                code = baseline if kind.endswith("baseline") else None
                results[kind].append(run(fileset, _outdir(work, name, kind), executors[kind] + chunking, code))
        line = f"round {round_index + 1}: raw {results['raw'][-1]:,.0f}/s, raw 2 proc {results['raw2'][-1]:,.0f}/s"
        for kind in executors:
            r = results[kind][-1]
            first = f"{r['first_chunk']:.2f} s" if r["first_chunk"] is not None else "n/a"
            chunk = f"{r['chunk_rate']:,.0f}/s" if r["chunk_rate"] is not None else "n/a"
            line += (f" | {kind} chunk {chunk} whole {r['whole_rate']:,.0f}/s first chunk {first} "
                     f"RSS {r['peak_mb']:.0f} MB")
        print(line, flush=True)
    raw, raw2 = results["raw"], results["raw2"]
    it, fu = results["iterative"], results["futures"]
    ratios = {
        "iterative chunk phase / raw read": [i["chunk_rate"] / r for i, r in zip(it, raw)],
        "iterative whole command / raw read": [i["whole_rate"] / r for i, r in zip(it, raw)],
        "futures -s 2 chunk phase / raw read": [f["chunk_rate"] / r for f, r in zip(fu, raw)],
        "futures -s 2 whole command / raw read": [f["whole_rate"] / r for f, r in zip(fu, raw)],
        "futures -s 2 / iterative, chunk phase": [f["chunk_rate"] / i["chunk_rate"] for f, i in zip(fu, it)],
        "futures -s 2 / iterative, whole command": [f["whole_rate"] / i["whole_rate"] for f, i in zip(fu, it)],
        "raw read, 2 processes / 1 (the machine)": [b / a for a, b in zip(raw, raw2)],
        "iterative with / without read-ahead, chunk phase": [
            i["chunk_rate"] / n["chunk_rate"] for i, n in zip(it, results["iterative no read-ahead"])],
        "iterative with / without read-ahead, whole command": [
            i["whole_rate"] / n["whole_rate"] for i, n in zip(it, results["iterative no read-ahead"])],
    }
    if baseline is not None:
        for kind in ("iterative", "futures"):
            new, old = results[kind], results[f"{kind} baseline"]
            label = kind if kind == "iterative" else "futures -s 2"
            ratios[f"{label} / baseline, chunk phase"] = [n["chunk_rate"] / o["chunk_rate"] for n, o in zip(new, old)]
            ratios[f"{label} / baseline, whole command"] = [n["whole_rate"] / o["whole_rate"] for n, o in zip(new, old)]
    if peer is not None:
        for kind in ("iterative", "futures"):
            label = kind if kind == "iterative" else "futures -s 2"
            ratios[f"{label} / PocketCoffea 0.9.13, whole command"] = [
                n["whole_rate"] / o["whole_rate"] for n, o in zip(results[kind], results[f"{kind} PocketCoffea"])]
    print(f"-- {name}: medians over {repeat} rounds (events/s; ratios within a round)")
    print(f"raw read 1 process {statistics.median(raw):,.0f}, 2 processes {statistics.median(raw2):,.0f}")
    for label, runs in results.items():
        if label in ("raw", "raw2"):
            continue
        if runs[0]["chunk_rate"] is None:  # PocketCoffea: no processing report
            print(f"{label}: whole command {statistics.median(r['whole_rate'] for r in runs):,.0f}, "
                  f"peak RSS {max(r['peak_mb'] for r in runs):.0f} MB")
            continue
        print(f"{label}: chunk phase {statistics.median(r['chunk_rate'] for r in runs):,.0f}, whole command "
              f"{statistics.median(r['whole_rate'] for r in runs):,.0f}, launch to first chunk "
              f"{_median_s(r['first_chunk'] for r in runs)}, peak RSS {max(r['peak_mb'] for r in runs):.0f} MB, "
              f"{runs[0]['chunks']} chunks")
    for label, values in ratios.items():
        print(f"{label:54s} = {statistics.median(values):.2f} {_fmt(values)}")
    if peer is not None:
        print(same_as_peer(_outdir(work, name, "iterative") / "output_all.coffea",
                           _outdir(work, name, "iterative PocketCoffea") / "output_all.coffea", peer))
    return {"results": results, "ratios": ratios}


def _outdir(work: Path, name: str, kind: str) -> Path:
    return work / f"out-{name.split()[0]}-{kind.replace(' ', '-')}"


def measure_startup(work: Path, repeat: int, counts: bool, baseline: Path | None = None,
                    peer: Path | None = None) -> None:
    """Launch to first chunk of ``iterative`` on the 40-event nano_dy.root, and on 4 copies of it
    (1499-branch trees: what preprocessing costs on wide production trees)."""
    one = _fileset(work / "fileset_40.json", [NANO / "nano_dy.root"], counts)
    copies = []
    for i in range(4):
        target = work / f"nano_dy_copy_{i}.root"
        if not target.exists():
            shutil.copyfile(NANO / "nano_dy.root", target)  # a temp copy, removed with the work folder
        copies.append(target)
    four = _fileset(work / "fileset_4x1499.json", copies, counts)
    no_counts = _fileset(work / "fileset_4x1499_no_counts.json", copies, False)
    cases = {"40 events, 1 file": one, "4 files of 1499 branches": four}
    if counts:
        cases["4 files of 1499 branches, no counts"] = no_counts
    if baseline is not None:
        cases.update({f"{label}, baseline": fileset for label, fileset in list(cases.items())})
    if peer is not None:
        cases.update({"40 events, 1 file, PocketCoffea": _fileset(work / "fileset_40_peer.json", [NANO / "nano_dy.root"],
                                                                  counts, peer=True),
                      "4 files of 1499 branches, PocketCoffea": _fileset(work / "fileset_4x1499_peer.json", copies,
                                                                         counts, peer=True)})
    first: dict[str, list] = {label: [] for label in cases}
    whole: dict[str, list] = {label: [] for label in cases}
    for round_index in range(repeat):
        order = list(cases) if round_index % 2 == 0 else list(reversed(list(cases)))
        for label in order:
            if label.endswith("PocketCoffea"):
                result = run_peer(peer, cases[label], work / "out-startup-peer", ["-e", "iterative"])
            else:
                result = run(cases[label], work / "out-startup", ["-e", "iterative"],
                             baseline if label.endswith("baseline") else None)
            first[label].append(result["first_chunk"])
            whole[label].append(result["wall"])
    print(f"\n== iterative on small inputs, {repeat} rounds: launch to first chunk, whole command; median [every round]")
    for label in cases:
        shown = [v for v in first[label] if v is not None]
        print(f"{label:44s}: first chunk {_median_s(first[label])} {_fmt(shown) if shown else ''}, "
              f"whole command {_median_s(whole[label])} {_fmt(whole[label])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--inputs", default="real,synthetic", help="comma-separated: real, synthetic, startup")
    parser.add_argument("--no-counts", action="store_true", help="no per-file event counts in the filesets")
    parser.add_argument("--keep", help="folder to keep the inputs (and reuse them) and outputs in")
    parser.add_argument("--baseline", type=Path, help="an export of an earlier revision (git archive REV packages src | "
                        "tar -x -C DIR): its iterative and futures runs are measured in the same rounds")
    parser.add_argument("--peer", type=Path, help="the python of a PocketCoffea 0.9.13 environment: its iterative and "
                        "futures runs of the same analysis (pocketcoffea/) are measured in the same rounds, and its "
                        "histograms compared with ours")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pc-plain-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    chunking = ["-c", str(args.chunksize)]
    counts = not args.no_counts
    try:
        inputs = [s.strip() for s in args.inputs.split(",") if s.strip()]
        if "startup" in inputs:
            measure_startup(work, args.repeat, counts, args.baseline, args.peer)
        if "real" in inputs:
            t0 = time.perf_counter()
            files = build_real(work / f"real-{args.events}-{args.files}", args.events, args.files)
            print(f"real input ready in {time.perf_counter() - t0:.0f} s", flush=True)
            measure_input("real (replicated nano_dy)", files, _fileset(work / "fileset_real.json", files, counts),
                          work, args.repeat, chunking, args.baseline, args.peer)
        if "synthetic" in inputs:
            t0 = time.perf_counter()
            files = build_synthetic(work / f"synthetic-{args.events}-{args.files}", args.events, args.files)
            print(f"synthetic input ready in {time.perf_counter() - t0:.0f} s", flush=True)
            measure_input("synthetic (generate-demo-data)", files,
                          _fileset(work / "fileset_synthetic.json", files, counts), work, args.repeat, chunking,
                          args.baseline, args.peer)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
