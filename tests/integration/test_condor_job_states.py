"""check-jobs asks HTCondor, on the real one-node pool (services/start_condor.sh): held, killed, removed, lost.

Each test writes a small jobs folder whose ``job_{i}.sub`` runs a wrapper that behaves like
``job.sh`` (flags itself ``.running``, says ``[pocket-coffea job i] start``, then sleeps
instead of running an analysis), submits it through the ``htcondor2`` bindings, does to it
what a user or the pool would (``condor_hold``, ``kill -9`` of the job's process,
``condor_rm``) and checks what ``pc_jobs.job_state.reconcile`` and ``check-jobs`` say.
The flag stays ``.running`` in every case: the state comes from HTCondor.
"""
from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from condor_testlib import SERVICES_DIR
from rich.console import Console
from test_condor_jobs import _open_dir, condor_pool, shared_dir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

WAIT = 90

WRAPPER = """#!/bin/sh
index=$1; jobs_dir=$2
rm -f "$jobs_dir/job_$index.idle"; : > "$jobs_dir/job_$index.running"
echo "[pocket-coffea job $index] start on $(hostname)"
echo $$ > "$jobs_dir/job_$index.pid"
exec sleep 300
"""


def _write_jobs(folder: Path, n: int) -> Path:
    _open_dir(folder)
    _open_dir(folder / "logs")
    script = folder / "job.sh"
    script.write_text(WRAPPER)
    script.chmod(0o755)
    for i in range(n):
        (folder / f"job_{i}.sub").write_text(f"""universe = vanilla
executable = {script}
arguments = "{i} {folder}"
should_transfer_files = NO
output = {folder}/logs/job_{i}.out
error = {folder}/logs/job_{i}.err
log = {folder}/logs/job_{i}.log
request_memory = 100
queue
""")
        (folder / f"job_{i}.idle").touch()
    return folder


def _submit(folder: Path, index: int) -> int:
    from pc_jobs.submission import submit_file

    return submit_file(folder / f"job_{index}.sub", 1).cluster


def _status(cluster: int) -> int | None:
    import htcondor2

    ads = htcondor2.Schedd().query(constraint=f"ClusterId == {cluster}", projection=["JobStatus"])
    return int(ads[0]["JobStatus"]) if ads else None


def _wait(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what} not seen after {timeout}s")


def _running(folder: Path, index: int, cluster: int) -> int:
    """Wait until the job runs and has written its pid; returns the pid."""
    pid_file = folder / f"job_{index}.pid"
    _wait(lambda: _status(cluster) == 2 and pid_file.is_file() and pid_file.read_text().strip(),
          f"job {cluster}.0 running")
    return int(pid_file.read_text())


def _condor_tool(tool: str, *args: str) -> str:
    """The CLI a user types (services/start_condor.sh's wrappers), else the bindings."""
    wrapper = SERVICES_DIR / "bin" / tool
    if wrapper.exists():
        done = subprocess.run([str(wrapper), *args], capture_output=True, text=True, timeout=60, check=True)
        return done.stdout
    import htcondor2

    action = {"condor_hold": htcondor2.JobAction.Hold, "condor_rm": htcondor2.JobAction.Remove}[tool]
    reason = args[args.index("-reason") + 1] if "-reason" in args else None
    htcondor2.Schedd().act(action, args[-1], reason)
    return ""


def _remove(cluster: int) -> None:
    import htcondor2

    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}")


def test_condor_hold_is_shown_held_with_its_reason_and_ends_the_live_view(condor_pool, shared_dir):
    from pc_jobs.check_jobs import JobsFailedError, check_jobs
    from pc_jobs.job_state import reconcile

    folder = _write_jobs(shared_dir / "job", 1)
    cluster = _submit(folder, 0)
    try:
        _running(folder, 0, cluster)
        # the live view runs while the job runs, and ends by itself once the job is held
        output = io.StringIO()
        outcome: dict = {}

        def watch() -> None:
            try:
                outcome["result"] = check_jobs(folder, interval=0.5, group_by="none",
                                               console=Console(file=output, width=400))
            except JobsFailedError as exc:
                outcome["error"] = str(exc)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(2)
        assert watcher.is_alive(), output.getvalue()  # still watching a running job
        _condor_tool("condor_hold", "-reason", "operator: node drained", str(cluster))
        watcher.join(timeout=30)
        assert not watcher.is_alive(), f"check-jobs still watching a held job: {output.getvalue()[-3000:]}"
        text = output.getvalue()
        assert outcome["error"] == (
            f"1 of 1 jobs failed: job_0 (held). Their logs are in {folder}/logs; release held jobs (condor_release) "
            "once their hold reason is fixed, resubmit the others with check-jobs --resubmit (or pocket-coffea run "
            "--recreate-jobs), or merge the rest with merge-outputs --allow-missing")
        assert (f"job_0 (HTCondor job {cluster}.0) is held: operator: node drained (by user cmsuser) "
                "(code 1 UserRequest). What to do: held on request (condor_hold): condor_release") in text
        assert "1 job(s) held in HTCondor wait for you" in text
        job = reconcile(folder)[0]
        assert (job.state, job.job_id, job.hold_code, job.hold_kind, job.flag) == (
            "held", f"{cluster}.0", 1, "user", "running")
        assert job.hold_reason == "operator: node drained (by user cmsuser)"
        assert job.advice() == (f"held on request (condor_hold): condor_release {cluster}.0 to let it run, "
                                f"or condor_rm {cluster}.0")

        # condor_rm of the held job: removed (the hold is remembered), and the watch says so
        _condor_tool("condor_rm", str(cluster))
        _wait(lambda: _status(cluster) is None, f"job {cluster}.0 leaving the queue")
        _wait(lambda: reconcile(folder)[0].state == "removed", "the abort event in the log", 20)
        job = reconcile(folder)[0]
        assert (job.state, job.hold_code, job.remove_reason) == ("removed", 1, "via condor_rm (by user cmsuser)")
    finally:
        _remove(cluster)


def test_kill_9_of_the_jobs_process_is_killed_not_running(condor_pool, shared_dir):
    from pc_jobs.check_jobs import JobsFailedError, JobsMonitor, check_jobs
    from pc_jobs.job_state import reconcile

    folder = _write_jobs(shared_dir / "job", 1)
    cluster = _submit(folder, 0)
    try:
        pid = _running(folder, 0, cluster)
        assert reconcile(folder)[0].state == "running"
        os.kill(pid, 9)
        _wait(lambda: _status(cluster) is None, f"job {cluster}.0 leaving the queue after kill -9")
        _wait(lambda: reconcile(folder)[0].state == "killed", "the terminate event in the log", 20)
        job = reconcile(folder)[0]
        assert (job.state, job.signal, job.exit_code, job.job_id, job.flag) == (
            "killed", 9, None, f"{cluster}.0", "running")
        assert job.last_event.endswith("terminated by signal 9")
        result = JobsMonitor(folder).poll()
        assert result.states == {0: "killed"} and result.finished
        assert result.messages == [
            f"job_0 (HTCondor job {cluster}.0) was killed by signal 9. What to do: killed by signal 9 (SIGKILL: the "
            "out-of-memory killer, an admin or a kill -9): resubmit it (check-jobs --resubmit)"]
        console = Console(record=True, width=220)
        with pytest.raises(JobsFailedError, match=r"1 of 1 jobs failed: job_0 \(killed, signal 9\)"):
            check_jobs(folder, once=True, details=True, group_by="none", console=console)
        text = console.export_text()
        row = next(line for line in text.splitlines() if line.startswith("│ job_0"))
        assert [c.strip() for c in row.split("│")[1:5]] == ["job_0", "killed", f"{cluster}.0", "signal 9"]
        assert (folder / "job_0.running").exists()  # read-only: the flag is left as the job wrote it
    finally:
        _remove(cluster)


def test_condor_rm_is_removed_and_a_vanished_job_is_lost(condor_pool, shared_dir):
    from pc_jobs.check_jobs import JobsMonitor
    from pc_jobs.job_state import reconcile

    folder = _write_jobs(shared_dir / "job", 2)
    clusters = [_submit(folder, 0), _submit(folder, 1)]
    try:
        for index, cluster in enumerate(clusters):
            _running(folder, index, cluster)
        for cluster in clusters:
            _condor_tool("condor_rm", str(cluster))
        _wait(lambda: all(_status(c) is None for c in clusters), "both jobs leaving the queue")
        _wait(lambda: all(j.state == "removed" for j in reconcile(folder).values()), "the abort events", 20)
        # job 1's log loses its last event (as when the submit node's disk filled up): the schedd no
        # longer has the job, its log records no end and its flag says running: lost
        log = folder / "logs" / "job_1.log"
        text = log.read_text()
        log.write_text(text[: text.rindex("009 (")])
        jobs = reconcile(folder)
        assert (jobs[0].state, jobs[0].remove_reason, jobs[0].job_id) == (
            "removed", "via condor_rm (by user cmsuser)", f"{clusters[0]}.0")
        assert (jobs[1].state, jobs[1].job_id, jobs[1].flag) == ("lost", f"{clusters[1]}.0", "running")
        assert jobs[1].last_event.endswith(" evicted")  # condor_rm of a running job: evicted, then aborted
        result = JobsMonitor(folder).poll()
        assert result.states == {0: "removed", 1: "lost"} and result.finished
        assert result.messages[0] == (f"job_0 (HTCondor job {clusters[0]}.0) was removed by HTCondor (via condor_rm "
                                      "(by user cmsuser)); use --resubmit to resubmit it")
        assert result.messages[1].startswith(f"job_1 (HTCondor job {clusters[1]}.0) is lost: HTCondor no longer "
                                             "has it and its log records no end (flag: running; last event: ")
    finally:
        for cluster in clusters:
            _remove(cluster)


def test_memory_hold_is_held_memory_with_what_to_do(condor_pool, shared_dir):
    import sys

    from pc_jobs.check_jobs import JobsMonitor
    from pc_jobs.job_state import reconcile

    folder = _write_jobs(shared_dir / "job", 1)
    hog = folder / "hog.py"
    hog.write_text("import time\nx = bytearray(300 * 1024 * 1024)\nfor i in range(0, len(x), 4096):\n"
                   "    x[i] = 1\ntime.sleep(300)\n")
    hog.chmod(0o644)
    (folder / "job.sh").write_text(WRAPPER.replace("exec sleep 300", f"exec {sys.executable} {hog}"))
    sub = folder / "job_0.sub"
    sub.write_text(sub.read_text().replace("queue\n", "periodic_hold = MemoryUsage > RequestMemory\n"
                                           "periodic_hold_reason = strcat(\"memory usage \", MemoryUsage, "
                                           "\" MB above request_memory \", RequestMemory, \" MB\")\n"
                                           "periodic_hold_subcode = 34\nqueue\n"))
    cluster = _submit(folder, 0)
    try:
        _wait(lambda: _status(cluster) == 5, f"job {cluster}.0 held for memory")
        job = reconcile(folder)[0]
        assert (job.state, job.hold_code, job.hold_subcode, job.hold_kind) == ("held", 3, 34, "memory")
        assert job.hold_reason.startswith("memory usage ") and job.hold_reason.endswith(
            " MB above request_memory 100 MB")
        assert job.exceeded_memory and "raise mem-per-worker" in job.advice()
        result = JobsMonitor(folder).poll()
        assert result.states == {0: "held"} and result.finished
        assert result.messages[0].startswith(f"job_0 (HTCondor job {cluster}.0) is held: memory usage ")
        assert "(code 3 JobPolicy, subcode 34). What to do: the job needs more memory than its request_memory" \
            in result.messages[0]
    finally:
        _remove(cluster)
