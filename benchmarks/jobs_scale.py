"""10,000 manual jobs: preparing the jobs folder, and check-jobs polls of it.

Targets (issue 11): preparing 10,000 jobs < 15 s without pickling the Configurator per job;
a check-jobs poll of the folder with 6,000 done, 500 failed, 1,500 running and 2,000 idle
jobs < 3 s for the first poll and < 1 s for the later ones; the view readable at 80 columns.

1. **prepare**: ``pocket-coffea run -e condor@lxplus -s 10000`` with ``dry-run: true`` (in this
   process, through click's runner, so the interpreter start and imports are not counted) of
   the test analysis on a fileset of 10,000 small file entries (3 datasets; the files do
   not exist, a dry-run never opens them). Prints the seconds, the size of the shared
   ``configurator.pkl`` and of the per-job ``config_job_{i}.pkl``.
2. **folder state**: flags and logs as HTCondor and the wrapper leave them: done jobs have
   an event log ending with exit 0 (``tests/pc_jobs/data/condor_event_logs/exit_0.log``
   with the job's own ``cluster.proc``) and ``.out``/``.err``; failed jobs exit 3 with a
   traceback in ``.err``; running jobs a log up to the execute event; idle jobs the submit
   event. The schedd is a fake answering the running/idle jobs (no pool needed).
3. **polls**: what ``check-jobs -j <folder>`` does per refresh (poll + tables rendered to an
   80-column console), for ``--by none`` and the default ``--by sample`` (with ``--details``
   also ``--by none -d``, the per-job table with each failed job's error line): the first poll of
   a new check-jobs process (``first``; the same again: ``restart``) and the later polls
   (``later``, median of 5), between which 10 running jobs end each time (terminated
   event appended to their log, stdout written, flag done), so the folder keeps changing.

    .venv/bin/python benchmarks/jobs_scale.py [--jobs 10000] [--keep DIR] [--profile first|later|prepare] [--details]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
LOGS = REPO / "tests" / "pc_jobs" / "data" / "condor_event_logs"
CLUSTER = 4242
DATASETS = (("DYJetsToLL_M-50", "DYJetsToLL", "2018", True, 0.5), ("DATA_DoubleMuon", "DATA_DoubleMuon", "2018", False, 0.3),
            ("TTTo2L2Nu_2022_postEE", "TTTo2L2Nu", "2022_postEE", True, 0.2))
TRACEBACK = """Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/pc_run/processor.py", line 120, in process
    raise ValueError("bad jet collection")
ValueError: bad jet collection
[pocket-coffea job {i}] pocket-coffea run failed (exit 3)
"""


def fileset(n_files: int) -> dict:
    from analysis_testlib import DATA, DY, TT

    names = {"DYJetsToLL_M-50": DY, "DATA_DoubleMuon": DATA, "TTTo2L2Nu_2022_postEE": TT}
    out, start = {}, 0
    for n, (key, sample, year, is_mc, share) in enumerate(DATASETS):
        count = n_files - start if n == len(DATASETS) - 1 else int(n_files * share)
        files = [f"root://eos.example.ch//store/{sample}/nano_{start + i:05d}.root" for i in range(count)]
        metadata = {"sample": sample, "year": year, "isMC": is_mc, "nevents": 1000 * count}
        if is_mc:
            metadata["xsec"] = 87.3
        out[names[key]] = {"files": files, "metadata": metadata}
        start += count
    return out


def prepare(workdir: Path, n_jobs: int) -> tuple[Path, float]:
    from analysis_testlib import invoke_run, make_analysis

    config = make_analysis(workdir / "analysis", fileset(n_jobs))
    options = workdir / "ro.yaml"
    options.write_text("dry-run: true\n")
    outdir = workdir / "out"
    start = time.perf_counter()
    result = invoke_run(["--cfg", config, "-o", outdir, "-e", "condor@lxplus", "-s", n_jobs, "-ro", options,
                         "-ll", "WARNING"])
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"preparing failed: {result.output}\n{result.exception!r}")
    return outdir / "job", elapsed


def event_log(name: str, index: int, upto: str | None = None) -> str:
    text = (LOGS / name).read_text()
    if upto is not None:  # keep the events up to and including the first one starting with ``upto``
        events = text.split("...\n")
        kept = []
        for event in events:
            kept.append(event)
            if event.startswith(upto):
                break
        text = "...\n".join(kept) + "...\n"
    return re.sub(r"\(\d+\.\d+\.\d+\)", f"({CLUSTER:03d}.{index:03d}.000)", text)


def fill_states(folder: Path, n_jobs: int) -> dict[int, str]:
    """6,000 done, 500 failed, 1,500 running, 2,000 idle (scaled to ``n_jobs``), with their logs."""
    from pc_jobs.jobs_dir import JobsDir

    jobs = JobsDir(folder)
    shares = (("done", 0.6), ("failed", 0.05), ("running", 0.15), ("idle", 0.2))
    states: dict[int, str] = {}
    index = 0
    for state, share in shares:
        count = int(round(n_jobs * share)) if state != "idle" else n_jobs - index
        for _ in range(count):
            states[index] = state
            index += 1
    for index, state in states.items():
        jobs.set_flag(index, state)
        if state == "idle":
            text = event_log("exit_0.log", index, upto="000 ")
        elif state == "running":
            text = event_log("exit_0.log", index, upto="001 ")
        else:
            text = event_log("exit_0.log" if state == "done" else "exit_3.log", index)
        (folder / "logs" / f"job_{index}.log").write_text(text)
        if state != "idle":
            (folder / "logs" / f"job_{index}.out").write_text(
                f"[pocket-coffea job {index}] start on node in /scratch, chunksize 100000\n")
            (folder / "logs" / f"job_{index}.err").write_text(
                TRACEBACK.format(i=index) if state == "failed" else "INFO processing\n")
    return states


def finish(folder: Path, indices: list[int]) -> None:
    """What 10 jobs ending between two polls leave behind: the terminated event, stdout, the done flag."""
    from pc_jobs.jobs_dir import JobsDir

    for index in indices:
        tail = "...\n".join(event_log("exit_0.log", index).split("...\n")[2:])
        with (folder / "logs" / f"job_{index}.log").open("a") as handle:
            handle.write(tail)
        (folder / "logs" / f"job_{index}.out").write_text(f"[pocket-coffea job {index}] done\n")
        JobsDir(folder).set_flag(index, "done")


def fake_schedd(states: dict[int, str]):
    ads = [{"ClusterId": CLUSTER, "ProcId": i, "JobStatus": 2 if s == "running" else 1, "NumJobStarts": int(s == "running"),
            "EnteredCurrentStatus": int(time.time()), "UserLog": ""} for i, s in states.items() if s in ("running", "idle")]

    def query(constraint, projection):
        return list(ads)

    return query


def one_watch(folder: Path, query, group_by: str, polls: int, profile: str | None,
              details: bool = False) -> tuple[float, list[float], str]:
    """What check-jobs does: the first poll of a new process, then ``polls`` later ones (poll + render;
    ``details``: with the per-job table of ``check-jobs -d``)."""
    from rich.console import Console

    from pc_jobs import check_jobs as cj

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False, color_system=None)
    profiler = cProfile.Profile() if profile else None

    def step(monitor, groups):
        result = monitor.poll()
        console.print(cj.render(result, monitor, groups, group_by, details, [], console.width))
        return result

    if profile == "first":
        profiler.enable()
    start = time.perf_counter()
    monitor = cj.JobsMonitor(folder, schedd_query=query)
    groups = cj.load_groups(monitor.folder, group_by)
    step(monitor, groups)
    first = time.perf_counter() - start
    if profile == "first":
        profiler.disable()
    first_view = out.getvalue()
    later = []
    running = [i for i, s in sorted(monitor.reader.read().items()) if s.state == "running"]
    for n in range(polls):
        out.seek(0)
        out.truncate()
        finish(folder, running[n * 10:(n + 1) * 10])  # jobs keep ending between polls
        if profile == "later":
            profiler.enable()
        start = time.perf_counter()
        step(monitor, groups)
        later.append(time.perf_counter() - start)
        if profile == "later":
            profiler.disable()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return first, later, first_view


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--profile", choices=("prepare", "first", "later"))
    parser.add_argument("--details", action="store_true",
                        help="also time check-jobs -d (the per-job table) for --by none")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="pc-jobs-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        profiler = cProfile.Profile() if args.profile == "prepare" else None
        if profiler:
            profiler.enable()
        folder, seconds = prepare(workdir, args.jobs)
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        job_files = list(folder.glob("config_job_*.pkl"))
        shared = folder / "configurator.pkl"
        print(f"prepare {args.jobs} jobs: {seconds:.2f} s (target < 15 s); configurator.pkl "
              f"{shared.stat().st_size / 1024:.0f} KB once, config_job_*.pkl {len(job_files)} files, "
              f"{sum(p.stat().st_size for p in job_files) / len(job_files) / 1024:.2f} KB each, "
              f"{sum(p.stat().st_size for p in job_files) / 1e6:.1f} MB in total")

        states = fill_states(folder, args.jobs)
        query = fake_schedd(states)
        counts = {s: sum(1 for v in states.values() if v == s) for s in ("done", "failed", "running", "idle")}
        print(f"folder: {counts}, {len(os.listdir(folder / 'logs'))} files in logs/")
        for group_by in ("none", "sample"):
            first, later, view = one_watch(folder, query, group_by, 5, args.profile)
            restart, _, _ = one_watch(folder, query, group_by, 0, None)
            print(f"check-jobs --by {group_by}: first poll {first:.2f} s (target < 3 s), after a restart "
                  f"{restart:.2f} s, later polls median {statistics.median(later):.3f} s "
                  f"(max {max(later):.3f} s; target < 1 s)")
            width = max(len(line) for line in view.splitlines())
            print(f"  view at 80 columns: {len(view.splitlines())} lines, widest {width} characters")
            if group_by == "sample":
                print(view)
        if args.details:
            first, later, view = one_watch(folder, query, "none", 5, None, details=True)
            restart, _, _ = one_watch(folder, query, "none", 0, None, details=True)
            print(f"check-jobs --by none -d: first poll {first:.2f} s (target < 3 s), after a restart "
                  f"{restart:.2f} s, later polls median {statistics.median(later):.3f} s "
                  f"(max {max(later):.3f} s; target < 1 s); {len(view.splitlines())} lines")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
