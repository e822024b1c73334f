"""A dask-jobqueue worker job removed mid-run (``condor_rm`` on the real one-node HTCondor pool):
dask reruns its tasks, the factory replaces the lost job, and the result is exact.

- two workers, one removed once a chunk is done: output equal to ``iterative`` bin for bin, no
  worker job left in the queue;
- the only worker removed: the run does not hang; the replacement job the factory submits
  finishes the run (the processor is a recomputable task, not scattered data that would be
  lost with its last holder), output equal to ``iterative``.

The analysis is tests/reliability/fault_analysis.py with ``PC_FAULT_SLEEP`` (set on the workers
through ``custom-setup-commands``) so that every chunk takes a little time and the removal
falls in the middle of the run. The pool and folder fixtures are those of
test_dask_parsl_sites.py.
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from condor_testlib import assert_outputs_equal, copy_for_jobs, invoke_run, standard_fileset
from test_dask_parsl_sites import SKIP, _outdir, _queued, _worker_clusters, open_umask, shared_dir  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from fault_analysis import make_fault_analysis  # noqa: E402

pytestmark = pytest.mark.integration

CHUNKSIZE = 20  # 14 chunks of the standard fileset
SLEEP = 0.3     # seconds per chunk on the workers


@pytest.fixture(scope="module")
def fault_analysis(shared_dir, nanoaod_dir) -> Path:  # noqa: F811
    data = copy_for_jobs(nanoaod_dir, shared_dir / "lost_data")
    folder = shared_dir / "lost_analysis"
    config = make_fault_analysis(folder, standard_fileset(data))
    for path in folder.iterdir():
        path.chmod(0o644)
    return config


@pytest.fixture(scope="module")
def fault_reference(fault_analysis, shared_dir):  # noqa: F811
    from pc_core.output import load_output

    outdir = shared_dir / "lost_reference"
    result = invoke_run(["--cfg", fault_analysis, "-o", outdir, "-e", "iterative", "-c", CHUNKSIZE, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    return load_output(outdir / "output_all.coffea")


def _a_chunk_is_done() -> bool:
    """Whether the run's dask scheduler finished a chunk task (asked through the run's client)."""
    from distributed import default_client

    def done(dask_scheduler) -> bool:
        prefix = dask_scheduler.task_prefixes.get("pocket-coffea-chunk")
        return prefix is not None and prefix.all_durations.get("compute", 0) > 0

    try:
        return bool(default_client().run_on_scheduler(done))
    except Exception:  # noqa: BLE001 - no client yet, or it is closing
        return False


def _running_worker_jobs(log_dir: Path) -> list[str]:
    import htcondor2

    clusters = _worker_clusters(log_dir)
    if not clusters:
        return []
    constraint = " || ".join(f"ClusterId == {c}" for c in sorted(clusters))
    ads = htcondor2.Schedd().query(constraint=f"({constraint}) && JobStatus == 2", projection=["ClusterId", "ProcId"])
    return sorted(f"{ad['ClusterId']}.{ad['ProcId']}" for ad in ads)


class RemoveOneWorkerJob(threading.Thread):
    """Once a chunk is done and ``running`` worker jobs run, ``condor_rm`` one of them."""

    def __init__(self, log_dir: Path, running: int):
        super().__init__(daemon=True)
        self.log_dir, self.running = log_dir, running
        self.removed: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.3):
            if not (self.log_dir.is_dir() and _a_chunk_is_done()):
                continue
            jobs = _running_worker_jobs(self.log_dir)
            if len(jobs) >= self.running:
                self.removed = jobs[0]
                subprocess.run(["condor_rm", self.removed], check=True, capture_output=True, timeout=30)
                return


def _run_with_removal(fault_analysis, shared_dir, name: str, scaleout: int) -> tuple[object, Path, str | None]:
    options = shared_dir / f"{name}.yaml"
    options.write_text(
        "jobqueue-system: htcondor\n"
        "scheduler-host: 127.0.0.1\n"
        f"scaleout: {scaleout}\n"
        "mem-per-worker: 1GB\n"
        "disk-per-worker: 1GB\n"
        "local-virtualenv: true\n"
        "worker-timeout: 60\n"
        f"custom-setup-commands: ['export PC_FAULT_SLEEP={SLEEP}']\n"
    )
    outdir = _outdir(shared_dir, name)
    remover = RemoveOneWorkerJob(outdir / "dask_logs", running=scaleout)
    remover.start()
    try:
        result = invoke_run(["--cfg", fault_analysis, "-o", outdir, "-e", "dask", "-ro", options, "-c", CHUNKSIZE,
                             "-ll", "INFO"])
    finally:
        remover.stop.set()
        remover.join(timeout=10)
    return result, outdir, remover.removed


def test_worker_job_removed_mid_run_result_stays_exact(condor_pool, shared_dir, fault_analysis, fault_reference,  # noqa: F811
                                                      open_umask):  # noqa: F811
    from pc_core.output import load_output

    result, outdir, removed = _run_with_removal(fault_analysis, shared_dir, "out_lost_one", scaleout=2)
    assert removed, "no worker job was removed: the run ended before a chunk was done and two jobs ran"
    assert result.exit_code == 0, (result.output, result.exception)
    output = load_output(outdir / "output_all.coffea")
    assert_outputs_equal(fault_reference, output, skip=SKIP)
    assert output["processing_metadata"]["ledger"]["files"] == fault_reference["processing_metadata"]["ledger"]["files"]
    clusters = _worker_clusters(outdir / "dask_logs")
    assert int(removed.split(".")[0]) in clusters
    assert _queued(clusters) == []


def test_last_worker_job_removed_a_replacement_finishes_the_run(condor_pool, shared_dir, fault_analysis,  # noqa: F811
                                                               fault_reference, open_umask):  # noqa: F811
    from pc_core.output import load_output

    result, outdir, removed = _run_with_removal(fault_analysis, shared_dir, "out_lost_last", scaleout=1)
    assert removed, "no worker job was removed: the run ended before a chunk was done"
    assert result.exit_code == 0, (result.output, result.exception)
    log = (outdir / "run.log").read_text()
    assert re.search(r"worker job\(s\) .*\(job " + re.escape(removed) + r"\) left the cluster", log), log[-3000:]
    assert_outputs_equal(fault_reference, load_output(outdir / "output_all.coffea"), skip=SKIP)
    clusters = _worker_clusters(outdir / "dask_logs")
    assert len(clusters) >= 2, clusters  # the removed job and its replacement
    assert _queued(clusters) == []
