"""check-jobs --resubmit against the real one-node HTCondor pool (services/start_condor.sh).

A failed job with an XRootD error in its log is fixed (pickle rewritten to another replica)
and resubmitted through the htcondor2 bindings; the trivial job really runs, flags itself
done, and check-jobs ends with "All jobs are completed".
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import cloudpickle
import pytest
from rich.console import Console

from service_guard import require_service
from test_check_jobs import SITE_A, SITE_B, XROOTD_OUT, FakeLookup, make_configurator, url

from pc_jobs.check_jobs import JobsMonitor, check_jobs
from pc_jobs.job_config import job_fileset, load_job_config

SERVICES_DIR = Path(os.environ.get("PC_SERVICES_DIR", "/tmp/pc-services"))
TIMEOUT = 120


def _condor_env() -> dict[str, str]:
    """CONDOR_CONFIG from the environment, else from services/start_condor.sh's condor.env."""
    if os.environ.get("CONDOR_CONFIG"):
        return {"CONDOR_CONFIG": os.environ["CONDOR_CONFIG"]}
    env_file = SERVICES_DIR / "condor.env"
    if not env_file.is_file():
        return {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export CONDOR_CONFIG="):
            return {"CONDOR_CONFIG": line.split("=", 1)[1].strip()}
    return {}


@pytest.fixture
def schedd(monkeypatch):
    env = _condor_env()
    require_service("HTCondor", bool(env), f"no CONDOR_CONFIG and no {SERVICES_DIR}/condor.env; "
                    "run `bash services/start_condor.sh` (as root)")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import htcondor2

    # the bindings read CONDOR_CONFIG when configured: another test may have configured them without it
    htcondor2.reload_config()
    try:
        handle = htcondor2.Schedd()
        handle.query(constraint="false", projection=["ClusterId"])
        reason = ""
    except Exception as exc:  # the bindings raise several types when the pool is down
        handle, reason = None, f"{type(exc).__name__}: {exc}"
    require_service("HTCondor", handle is not None, f"schedd does not answer ({reason}); run services/start_condor.sh")
    yield handle
    monkeypatch.undo()
    htcondor2.reload_config()


@pytest.fixture
def shared_dir():
    """Jobs run as an unprivileged user inside the pool's chroot: a world-writable folder under /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="pc-check-jobs-", dir="/tmp"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.integration
def test_resubmit_really_submits_and_the_job_completes(schedd, shared_dir, tmp_path):
    folder = shared_dir / "job"
    (folder / "logs").mkdir(parents=True)
    for path in (folder, folder / "logs"):
        path.chmod(0o777)
    (folder / "job_0.sub").write_text(
        f"""universe = vanilla
executable = /bin/sh
arguments = "-c 'rm -f {folder}/job_0.idle; touch {folder}/job_0.done'"
initialdir = {folder}
output = {folder}/logs/job_0.out
error = {folder}/logs/job_0.err
log = {folder}/logs/job_0.log
should_transfer_files = NO
+JobFlavour = "espresso"
queue
""")
    cfg = make_configurator(tmp_path, [url(SITE_A, "A"), url(SITE_A, "B")])
    (folder / "config_job_0.pkl").write_bytes(cloudpickle.dumps(cfg))
    (folder / "job_0.failed").touch()
    (folder / "logs" / "job_0.out").write_text(XROOTD_OUT)

    monitor = JobsMonitor(folder, resubmit=True, lookup=FakeLookup())
    first = monitor.poll()
    assert first.states == {0: "idle"}
    (cluster,) = monitor.state.clusters
    assert monitor.state.clusters == {cluster: 0} and monitor.state.resubmissions == {0: 1}
    assert job_fileset(load_job_config(folder / "config_job_0.pkl"))["DY_2018"]["files"] == [
        url(SITE_A, "A"), url(SITE_B, "B")]
    assert (folder / "logs" / "processedlogs" / "job_0.out").read_text() == XROOTD_OUT

    deadline = time.monotonic() + TIMEOUT
    result = first
    while not result.finished and time.monotonic() < deadline:
        time.sleep(1)
        result = monitor.poll()
    assert result.finished and result.states == {0: "done"}, f"job not done after {TIMEOUT}s: {result.states}"

    history = []
    while time.monotonic() < deadline and not history:
        history = list(schedd.history(constraint=f"ClusterId == {cluster}", projection=["ExitCode", "JobStatus"],
                                      match=1))
        time.sleep(0.5) if not history else None
    assert history and history[0]["JobStatus"] == 4 and history[0]["ExitCode"] == 0

    console = Console(record=True, width=200)
    check_jobs(folder, resubmit=True, once=True, console=console, lookup=FakeLookup())
    text = console.export_text()
    assert "All jobs are completed" in text and f"merge-outputs -jc {folder}" in text
