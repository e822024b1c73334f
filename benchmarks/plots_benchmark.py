"""make-plots speed: 300 histograms x 4 categories from one output, -j 1 vs -j 2.

Prints wall time, plots per second and peak memory (parent and workers) for each worker
count, and the speed-up. The output is loaded once per run; workers receive only the arrays
of the histogram they draw.

    .venv/bin/python benchmarks/plots_benchmark.py [--histograms 300] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hist
import numpy as np

CATEGORIES = ["baseline", "1lep", "2lep", "SR"]
YEAR = "2022_postEE"


def build_output(n_hist: int, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    samples = {"TTTo": ("TTTo_2022_postEE", True, 98.0), "DY": ("DY_2022_postEE", True, 2000.0),
               "DATA": ("DATA_2022_postEE", False, None)}
    variables = {}
    for i in range(n_hist):
        name = f"var_{i:03d}"
        variables[name] = {}
        for sample, (ds, mc, _) in samples.items():
            variations = ["nominal", "pileupUp", "pileupDown", "sfUp", "sfDown"] if mc else ["nominal"]
            h = hist.Hist(hist.axis.StrCategory(CATEGORIES, name="cat"),
                          hist.axis.StrCategory(variations, name="variation"),
                          hist.axis.Regular(30, 0, 300, name=name, label=f"variable {i}"),
                          storage=hist.storage.Weight())
            x = rng.exponential(70, 4000)
            for c in CATEGORIES:
                for v in variations:
                    h.fill(cat=c, variation=v, **{name: x}, weight=rng.normal(1.0, 0.1, x.size) if mc else 1.0)
            variables[name][sample] = {ds: h}
    by_dataset = {ds: {"sample": s, "year": YEAR, "isMC": str(mc), **({"xsec": xs} if mc else {})}
                  for s, (ds, mc, xs) in samples.items()}
    return {
        "sum_genweights": {ds: 1e6 for s, (ds, mc, _) in samples.items() if mc},
        "sum_signOf_genweights": {ds: 1e6 for s, (ds, mc, _) in samples.items() if mc},
        "cutflow": {"initial": {ds: 10000 for _, (ds, _, _) in samples.items()},
                    **{c: {ds: {s: 4000} for s, (ds, _, _) in samples.items()} for c in CATEGORIES}},
        "sumw": {c: {ds: {s: 4000.0} for s, (ds, _, _) in samples.items()} for c in CATEGORIES},
        "sumw2": {c: {ds: {s: 4000.0} for s, (ds, _, _) in samples.items()} for c in CATEGORIES},
        "variables": variables,
        "columns": {},
        "datasets_metadata": {"by_datataking_period": {YEAR: {s: [ds] for s, (ds, _, _) in samples.items()}},
                              "by_dataset": by_dataset},
        "processing_metadata": {"normalised": False, "lumi_pb": {YEAR: 26671.7}, "events": {}, "chunks": {},
                                "skipped_files": []},
    }


RUNNER = """
import resource, sys, time
from pc_plots.runner import MakePlotsRequest, make_plots
t = time.perf_counter()
r = make_plots(MakePlotsRequest(input_files=(sys.argv[1],), outputdir=sys.argv[2], workers=int(sys.argv[3]),
                                progress=False))
wall = time.perf_counter() - t
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{wall} {r.n_plots} {self_kb} {child_kb}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histograms", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    from pc_core.output import save_output

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "output_all.coffea"
        t = time.perf_counter()
        save_output(build_output(args.histograms), path)
        print(f"built {args.histograms} histograms x {len(CATEGORIES)} categories "
              f"({path.stat().st_size / 1e6:.1f} MB on disk) in {time.perf_counter() - t:.1f} s")
        results = {}
        for workers in args.workers:
            out = Path(tmp) / f"plots_j{workers}"
            proc = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(out), str(workers)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr)
                sys.exit(1)
            wall, n_plots, self_kb, child_kb = proc.stdout.split()[-4:]
            wall, n_plots = float(wall), int(n_plots)
            results[workers] = wall
            print(f"-j {workers}: {n_plots} plots in {wall:.1f} s ({n_plots / wall:.1f} plots/s); "
                  f"peak RSS parent {int(self_kb) / 1024:.0f} MB, largest worker {int(child_kb) / 1024:.0f} MB")
        if 1 in results:
            for workers, wall in results.items():
                if workers != 1:
                    print(f"speed-up -j {workers} vs -j 1: {results[1] / wall:.2f}x")


if __name__ == "__main__":
    main()
