"""dask and parsl executors on the real one-node HTCondor pool (services/start_condor.sh) and on
a dask scheduler the test starts itself.

- ``dask@<user site>``: a site defined only in the user's run-options YAML, HTCondor workers
  (dask-jobqueue) reaching a scheduler on 127.0.0.1 through ``scheduler-host``: output equal to
  ``iterative`` bin for bin, performance report written, no worker job left in the queue;
- a worker-side probe (``-e dask`` with ``jobqueue-system: htcondor``): the worker runs in the
  submitting virtualenv (set without ``source``), sees the transferred grid proxy and the
  effect of ``custom-setup-commands``;
- worker jobs that can never start stop the run within ``worker-timeout`` with the job ids and
  why they are idle, and are removed;
- ``-e parsl`` with ``jobqueue-system: htcondor`` (CondorProvider): output equal to ``iterative``;
- ``dask@swan`` (``jobqueue-system: external``) on a ``distributed.LocalCluster`` started here.

Jobs run inside the pool's chroot as uid 2001 with /tmp, the checkout and the Python prefix
visible: everything they touch lives in a world-writable folder under /tmp, and the runs use
umask 0 so that the log folders dask-jobqueue and parsl create are writable by the job user.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from condor_testlib import assert_outputs_equal, copy_for_jobs, invoke_run, make_analysis, standard_fileset

pytestmark = pytest.mark.integration

# the run's own bookkeeping legitimately differs between executors (timing, which worker)
SKIP = ("processing_metadata",)
JOB_UID = 2001  # the pool's job user (services/start_condor.sh, CONDOR_SUBMIT_UID)


@pytest.fixture(scope="module")
def shared_dir():
    """A folder the job user (uid 2001) can read and write; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pc-dask-parsl-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def open_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.fixture(scope="module")
def analysis(shared_dir, nanoaod_dir) -> Path:
    """The test analysis and its NanoAOD files where the jobs can read them."""
    data = copy_for_jobs(nanoaod_dir, shared_dir / "data")
    config = make_analysis(shared_dir / "analysis", standard_fileset(data))
    for path in (shared_dir / "analysis").iterdir():
        path.chmod(0o644)
    return config


@pytest.fixture(scope="module")
def reference(analysis, shared_dir):
    from pc_core.output import load_output

    outdir = shared_dir / "reference"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    return load_output(outdir / "output_all.coffea")


@pytest.fixture()
def proxy(shared_dir) -> Path:
    path = shared_dir / "x509up_test"
    path.write_text("-----BEGIN CERTIFICATE-----\nfake proxy of the test\n")
    path.chmod(0o644)  # the pool's shadow (uid 2001) transfers it
    return path


def _outdir(shared_dir: Path, name: str) -> Path:
    path = shared_dir / name
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    return path


def _queued(cluster_ids: set[int]) -> list:
    import htcondor2

    if not cluster_ids:
        return []
    constraint = " || ".join(f"ClusterId == {c}" for c in sorted(cluster_ids))
    return htcondor2.Schedd().query(constraint=constraint, projection=["ClusterId", "ProcId", "JobStatus"])


def _worker_clusters(log_dir: Path) -> set[int]:
    """Cluster ids of the worker jobs, from the HTCondor user logs dask-jobqueue writes."""
    return {int(m) for p in log_dir.glob("worker-*.log") for m in re.findall(r"worker-(\d+)\.log", p.name)}


def _probe_function():
    """The probe, defined in a function so that cloudpickle ships it by value (the worker
    cannot import this test module)."""

    def probe() -> dict:
        import os
        import shutil
        import sys

        proxy = os.environ.get("X509_USER_PROXY")
        readable = bool(proxy) and os.access(proxy, os.R_OK)
        with open(proxy) if readable else open(os.devnull) as stream:
            text = stream.read()
        return {
            "prefix": sys.prefix,
            "virtual_env": os.environ.get("VIRTUAL_ENV"),
            "python_on_path": shutil.which("python"),
            "proxy": proxy,
            "proxy_readable": readable,
            "proxy_text": text if readable else None,
            "probe": os.environ.get("PC_PROBE"),
            "uid": os.getuid(),
        }

    return probe


# ------------------------------------------------------------------------------------ dask


def test_user_defined_dask_site_on_htcondor_equals_iterative(condor_pool, shared_dir, analysis, reference, open_umask):
    from pc_core.output import load_output

    options = shared_dir / "mysite.yaml"
    options.write_text(
        "dask@testpool:\n"
        "  jobqueue-system: htcondor\n"
        "  scheduler-host: 127.0.0.1\n"
        "  scaleout: 2\n"
        "  mem-per-worker: 1GB\n"
        "  disk-per-worker: 1GB\n"
        "  local-virtualenv: true\n"
        "  performance-report: true\n"
        "  worker-timeout: 90\n"
    )
    outdir = _outdir(shared_dir, "out_dask_site")
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "dask@testpool", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    output = load_output(outdir / "output_all.coffea")
    assert_outputs_equal(reference, output, skip=SKIP)
    assert output["processing_metadata"]["ledger"]["files"] == reference["processing_metadata"]["ledger"]["files"]
    report = outdir / "dask-performance-report.html"
    assert report.is_file() and "Dask Performance Report" in report.read_text()[:100_000]
    clusters = _worker_clusters(outdir / "dask_logs")
    assert clusters, list((outdir / "dask_logs").iterdir())
    assert _queued(clusters) == []


def test_dask_htcondor_worker_probe(condor_pool, shared_dir, proxy, open_umask, monkeypatch):
    from pc_core.executors import get_executor_factory
    from pc_core.run_options import load_run_options

    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    options = load_run_options("dask", {
        "jobqueue-system": "htcondor", "scheduler-host": "127.0.0.1", "scaleout": 1, "mem-per-worker": "1GB",
        "local-virtualenv": True, "voms-proxy": str(proxy), "worker-timeout": 90,
        "custom-setup-commands": ["export PC_PROBE=1", "PC_PROBE=$((PC_PROBE + 1))"],
    })
    outdir = _outdir(shared_dir, "out_probe")
    with get_executor_factory("dask", options, outputdir=outdir) as factory:
        probe = factory.client.submit(_probe_function(), pure=False).result(timeout=60)
        job_ids = factory._current_job_ids()
    venv = os.environ.get("VIRTUAL_ENV") or __import__("sys").prefix
    assert probe["uid"] == JOB_UID  # really a condor job of the pool
    assert probe["prefix"] == venv and probe["virtual_env"] == venv
    assert probe["python_on_path"] == f"{venv}/bin/python"
    assert probe["proxy"] and probe["proxy"] != str(proxy)  # the transferred copy in the job's folder
    assert probe["proxy_readable"] and probe["proxy_text"] == proxy.read_text()
    assert probe["probe"] == "2"  # the commands ran, in order, in the worker's shell
    assert job_ids and _queued({int(j.split(".")[0]) for j in job_ids}) == []


def test_workers_that_never_start_stop_the_run(condor_pool, shared_dir, analysis, open_umask):
    options = shared_dir / "never.yaml"
    options.write_text(
        "jobqueue-system: htcondor\n"
        "scheduler-host: 127.0.0.1\n"
        "scaleout: 2\n"
        "worker-timeout: 8\n"
        "job-extra-directives:\n"
        "  requirements: 'False'\n"
    )
    outdir = _outdir(shared_dir, "out_never")
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "dask", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert type(result.exception).__name__ == "WorkersNeverCame", (result.output, result.exception)
    assert "executor 'dask': no worker connected within 8 s (worker-timeout)" in message
    assert "HTCondor worker jobs:" in message and "RequestMemory = 1907 MB" in message, message
    assert "Requirements = (false)" in message and "The worker jobs were removed" in message, message
    job_ids = re.findall(r"\b(\d+\.\d+) idle", message)
    assert len(job_ids) == 2, message
    assert _queued({int(j.split(".")[0]) for j in job_ids}) == []
    assert not (outdir / "output_all.coffea").exists()


def test_external_scheduler_site(shared_dir, analysis, reference):
    """``dask@swan`` (jobqueue-system external) on a scheduler started here."""
    from distributed import LocalCluster
    from pc_core.output import load_output

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                      processes=True) as cluster:
        options = shared_dir / "external.yaml"
        options.write_text(f"scheduler-address: {cluster.scheduler_address}\nworker-timeout: 30\n")
        outdir = _outdir(shared_dir, "out_external")
        result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "dask@swan", "-ro", options, "-ll", "WARNING"])
        assert result.exit_code == 0, (result.output, result.exception)
        # the run closed its client only: the scheduler and its workers are still there
        assert len(cluster.scheduler_info["workers"]) == 2
    assert_outputs_equal(reference, load_output(outdir / "output_all.coffea"), skip=SKIP)


# ------------------------------------------------------------------------------------ parsl


@pytest.fixture()
def job_user_reads_parsl_keys(shared_dir):
    """The test pool runs jobs as uid 2001 while this process (root) submits them, which no real
    site does: hand the CurveZMQ keys parsl writes for the run (a private 0700 folder) to the
    job user, so that its workers can read them as a real user's workers do."""
    if os.getuid() != 0:
        pytest.skip("the parsl-on-HTCondor test hands parsl's keys to the pool's job user, which needs root")
    stop = threading.Event()

    def share():
        while not stop.is_set():
            for folder in shared_dir.glob("*/logs_parsl/*/*/certificates"):
                for path in (folder, *folder.iterdir()):
                    if path.stat().st_uid != JOB_UID:
                        os.chown(path, JOB_UID, JOB_UID)
            time.sleep(0.05)

    thread = threading.Thread(target=share, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_parsl_htcondor_equals_iterative(condor_pool, shared_dir, analysis, reference, open_umask,
                                         job_user_reads_parsl_keys):
    from pc_core.output import load_output

    options = shared_dir / "parsl.yaml"
    options.write_text(
        "jobqueue-system: htcondor\n"
        "scheduler-host: 127.0.0.1\n"
        "scaleout: 1\n"
        "cores-per-worker: 2\n"
        "mem-per-worker: 1GB\n"
        "local-virtualenv: true\n"
        "worker-timeout: 90\n"
        "queue: espresso\n"
    )
    outdir = _outdir(shared_dir, "out_parsl")
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "parsl", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert_outputs_equal(reference, load_output(outdir / "output_all.coffea"), skip=SKIP)
    # the block asked for what the run options say
    submits = list((outdir / "logs_parsl").rglob("*.submit"))
    assert submits, list((outdir / "logs_parsl").rglob("*"))
    text = submits[0].read_text()
    assert "RequestMemory = 1024" in text.replace(".0", "") and "RequestCpus = 2" in text, text
    assert '+JobFlavour = "espresso"' in text, text
    # the blocks left the queue (parsl submits them with leave_in_queue)
    logs = "".join(p.read_text() for p in (outdir / "logs_parsl").rglob("*.log") if "submit_scripts" in str(p))
    clusters = {int(c) for c in re.findall(r"\((\d+)\.\d+\.\d+\)", logs)}
    assert clusters and _queued(clusters) == []
