"""The demo analysis on batch workers: 2 HTCondor-dask and 2 SLURM-dask workers against ``futures -s 2``.

Builds the throughput benchmark's input (``benchmarks/throughput.py``: replicated ``nano_dy.root``
events, LZMA 9, a few files) in a folder the batch jobs can read, then runs ``pocket-coffea run``
of the demo analysis (``examples/dilepton``) on it with

- ``-e futures -s 2`` (two forked processes on this machine: the reference),
- ``-e dask`` with ``jobqueue-system: htcondor`` (dask-jobqueue ``HTCondorCluster``, 2 worker
  jobs of 1 core on the pool of ``services/start_condor.sh``),
- ``-e dask`` with ``jobqueue-system: slurm`` (``SLURMCluster``, 2 worker jobs of 1 core in
  partition ``standard`` of ``services/start_slurm.sh``),

and prints for each: events/s over the processing phase (the run's ``processing_report.json``)
and over the whole command, their ratios to ``futures -s 2``, and the time from launching
``run`` to the first chunk's result coming back (the first chunk the run records as processed;
for the batch systems this includes submitting the worker jobs, their start and the workers'
connection). The scheduler listens on 127.0.0.1 (the test services are loopback only). After
every run the script checks that no worker job is left and removes any it finds.

A measurement, never a test. The HTCondor pool has 2 slots and the machine 2 cores: anything
else running on them (other tests) shows in the figures.

    .venv/bin/python benchmarks/batch_workers.py [--events 1000000] [--files 4] [--repeat 1] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CONFIG, build_input  # noqa: E402

import uproot  # noqa: E402

SERVICES_DIR = Path(os.environ.get("PC_SERVICES_DIR", "/tmp/pc-services"))

# runs ``pocket-coffea run`` in this fresh process and writes when the first chunk's result was
# recorded (pc_run.runner._record_chunk with status "processed") to argv[1]
DRIVER = r"""
import json, sys, time
from pc_run import runner
stamp = sys.argv[1]
first = {}
record = runner._record_chunk
def timed(accounting, chunk, entries, status, **extra):
    if status == "processed" and "t" not in first:
        first["t"] = time.time()
        with open(stamp, "w") as stream:
            json.dump(first, stream)
    return record(accounting, chunk, entries, status, **extra)
runner._record_chunk = timed
from pocket_coffea.cli import main
sys.argv = ["pocket-coffea", *sys.argv[2:]]
main()
"""


def condor_env() -> dict[str, str]:
    """CONDOR_CONFIG and the condor_* wrappers of the test pool (services/start_condor.sh)."""
    env = {}
    path = SERVICES_DIR / "condor.env"
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"')
    if "PATH" in env:
        env["PATH"] = env["PATH"].replace("$PATH", os.environ.get("PATH", ""))
    return env


def worker_job_ids(outdir: Path) -> list[str]:
    """The batch job ids dask-jobqueue's logs name: worker-<cluster>.<proc>.{log,err} (HTCondor),
    dask-worker-<id>.err (SLURM)."""
    ids = set()
    for path in (outdir / "dask_logs").glob("*") if (outdir / "dask_logs").is_dir() else []:
        ids |= {f"{c}.0" for c in re.findall(r"^worker-(\d+)\.log$", path.name)}  # one job per cluster
        ids |= set(re.findall(r"^dask-worker-(\d+)\.err$", path.name))
    return sorted(ids)


def remove_leftovers(system: str, outdir: Path) -> str:
    from pc_run.executors import remove_condor_jobs, remove_slurm_jobs

    ids = worker_job_ids(outdir)
    if system == "htcondor":
        left = remove_condor_jobs(ids, wait=30)
    else:
        left = remove_slurm_jobs(ids, wait=30)
    ran = [i for i in ids if list((outdir / "dask_logs").glob(f"*worker-{i}.err"))]
    return (f"{len(ids)} worker jobs submitted ({', '.join(ids)}), {len(ran)} started, "
            f"{'none' if not left else ', '.join(left)} left in the queue")


def run(fileset: Path, outdir: Path, args: list[str], env: dict[str, str]) -> dict:
    stamp = outdir.parent / f"{outdir.name}.first_chunk.json"
    stamp.unlink(missing_ok=True)
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(mode=0o777)
    outdir.chmod(0o777)
    command = [sys.executable, "-c", DRIVER, str(stamp), "run", "--cfg", str(CONFIG), "-o", str(outdir), *args,
               "-ll", "WARNING"]
    launched = time.time()
    start = time.perf_counter()
    res = subprocess.run(command, env=dict(os.environ, **env, POCKET_COFFEA_DEMO_FILESET=str(fileset)),
                         capture_output=True, text=True, cwd=outdir.parent)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    totals = json.loads((outdir / "processing_report.json").read_text())["totals"]
    first = json.loads(stamp.read_text())["t"] - launched if stamp.is_file() else None
    return {"wall": wall, "events": totals["events"], "rate": totals["events"] / totals["processing_seconds"],
            "first_chunk": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="rounds (each: futures, htcondor, slurm)")
    parser.add_argument("--keep", help="folder for the input and outputs (default: a temporary one under /tmp)")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pc-bench-batch-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o1777)  # the pool's job user writes the worker logs here
    previous_umask = os.umask(0)  # and the log folders dask-jobqueue creates
    try:
        data = sorted(work.glob("nano_dy_replicated_*.root"))
        if len(data) != args.files:
            for old in data:
                old.unlink()
            data = build_input(work, args.events, args.files)
        for path in data:
            path.chmod(0o644)
        n_events = sum(uproot.open(p)["Events"].num_entries for p in data)
        fileset = work / "fileset.json"
        fileset.write_text(json.dumps({"DYJetsToLL_M-50_2018": {"files": [str(p) for p in data], "metadata": {
            "sample": "DYJetsToLL_M-50", "year": "2018", "isMC": True, "xsec": 6077.22, "nevents": n_events}}}))
        fileset.chmod(0o644)
        common = ("scheduler-host: 127.0.0.1\nscaleout: 2\ncores-per-worker: 1\nmem-per-worker: 1GB\n"
                  "local-virtualenv: true\nworker-timeout: 300\n")
        options = {
            "htcondor": work / "htcondor.yaml",
            "slurm": work / "slurm.yaml",
        }
        options["htcondor"].write_text(common + "jobqueue-system: htcondor\ndisk-per-worker: 1GB\n")
        options["slurm"].write_text(common + "jobqueue-system: slurm\nqueue: standard\nwalltime: '00:30:00'\n")
        kinds = {
            "futures -s 2": (["-e", "futures", "-s", "2"], {}, None),
            "dask, 2 HTCondor workers": (["-e", "dask", "-ro", str(options["htcondor"])], condor_env(), "htcondor"),
            "dask, 2 SLURM workers": (["-e", "dask", "-ro", str(options["slurm"])], {}, "slurm"),
        }
        results: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for round_index in range(args.repeat):
            for kind in kinds if round_index % 2 == 0 else reversed(list(kinds)):
                executor_args, env, system = kinds[kind]
                outdir = work / f"out-{kind.split(',')[0].replace(' ', '_')}-{system or 'local'}"
                try:
                    results[kind].append(run(fileset, outdir, executor_args, env))
                finally:
                    if system:
                        previous = os.environ.copy()
                        os.environ.update(env)
                        try:
                            print(f"  {kind}: {remove_leftovers(system, outdir)}")
                        finally:
                            os.environ.clear()
                            os.environ.update(previous)

        print(f"\ninput: {n_events:,} events in {len(data)} files ({work})")
        print(f"{args.repeat} round(s); events/s of the processing phase and of the whole command, "
              "ratio to futures -s 2 within the round (median over rounds), time from launch to the first chunk")
        reference = results["futures -s 2"]
        for kind, runs in results.items():
            ratios = sorted(r["rate"] / f["rate"] for r, f in zip(runs, reference))
            whole = sorted(f["wall"] / r["wall"] for r, f in zip(runs, reference))
            best = max(runs, key=lambda r: r["rate"])
            firsts = ", ".join(f"{r['first_chunk']:.1f} s" if r["first_chunk"] is not None else "?" for r in runs)
            print(f"{kind:>26}: {best['rate']:>9,.0f} events/s processing ({ratios[len(ratios) // 2]:.2f}x), "
                  f"{n_events / best['wall']:>9,.0f} events/s whole command ({best['wall']:.1f} s, "
                  f"{whole[len(whole) // 2]:.2f}x); first chunk after {firsts}")
    finally:
        os.umask(previous_umask)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
