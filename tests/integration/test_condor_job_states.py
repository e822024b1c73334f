"""check-jobs asks HTCondor, on the real one-node pool (services/start_condor.sh): held, killed, removed, lost.

Each test submits real jobs of the test analysis (``pocket-coffea run -e condor``) whose
custom setup command writes the wrapper's pid and waits for the file ``go`` before the
analysis starts; it does to a job what a user or the pool would (``condor_hold``, ``kill -9``
of the job's process tree, ``condor_rm``, a memory hold via ``periodic_hold``) and checks
what ``pc_jobs.job_state.reconcile`` and ``check-jobs`` say. The flag stays ``.running`` in
every case: the state comes from HTCondor. Each test then lets the jobs go, recovers them
(``check-jobs --resubmit``) and ends with ``merge-outputs -jc`` equal to a local run of the
same config (one per module: the ``reference_output`` fixture).
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from condor_testlib import SERVICES_DIR, assert_merged_equals, logs_tail
from rich.console import Console
from test_condor_jobs import _wait_for_flags, shared_dir  # noqa: F401 (fixtures)
from test_condor_recovery import _prepare, _remove_all

pytestmark = pytest.mark.integration

WAIT = 120

GATE = 'echo $$ > "$jobs_dir/job_$index.pid"; while [ ! -e {go} ]; do sleep 1; done'
"""The jobs' setup command: the wrapper's pid for the test, then wait until the test lets the analysis run."""


def _real_jobs(shared_dir: Path, fileset: dict, n: int, setup: str | None = None, memory: str = "1000MB",
               extra: str = "") -> tuple[Path, int]:
    """``n`` submitted jobs of the test analysis, held back by ``setup`` (default ``GATE``); (jobs folder, cluster)."""
    commands = [setup or GATE.format(go=shared_dir / "go")]
    options = (f"local-virtualenv: true\nmem-per-worker: {memory}\ncustom-setup-commands:\n"
               + "".join(f"  - {json.dumps(c)}\n" for c in commands) + extra)
    jobs_dir, _ = _prepare(shared_dir, fileset, options, n)
    from pc_jobs.job_state import reconcile

    def submitted() -> dict | None:
        jobs = reconcile(jobs_dir)
        return jobs if jobs and all(j.cluster is not None for j in jobs.values()) else None

    clusters = {job.cluster for job in _wait(submitted, "the submit events").values()}
    assert len(clusters) == 1, clusters
    return jobs_dir, clusters.pop()


def _status(cluster: int, proc: int = 0) -> int | None:
    import htcondor2

    ads = htcondor2.Schedd().query(constraint=f"ClusterId == {cluster} && ProcId == {proc}",
                                   projection=["JobStatus"])
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
    """Wait until the job runs and its wrapper has written its pid; returns the pid."""
    pid_file = folder / f"job_{index}.pid"
    _wait(lambda: _status(cluster, index) == 2 and pid_file.is_file() and pid_file.read_text().strip(),
          f"job {cluster}.{index} running")
    return int(pid_file.read_text())


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        tree.append(current)
        todo += children.get(current, [])
    return tree


def _recover_and_merge(folder: Path, jobs: list[int], reference_output, **options) -> str:
    """Let the jobs go, ``check-jobs --resubmit`` once, wait for them and merge: equal to the local run."""
    from pc_jobs.check_jobs import check_jobs
    from pc_jobs.recovery import read_history

    (folder.parent.parent / "go").touch()
    output = io.StringIO()
    check_jobs(folder, resubmit=True, once=True, group_by="none", console=Console(file=output, width=400), **options)
    assert [(r["job"], r["action"]) for r in read_history(folder) if r["action"] == "resubmit"] == [
        (i, "resubmit") for i in jobs], output.getvalue()[-3000:]
    assert _wait_for_flags(folder, jobs) == {i: "done" for i in jobs}, logs_tail(folder)
    assert_merged_equals(folder, *reference_output)
    return output.getvalue()


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


def test_condor_hold_is_shown_held_with_its_reason_and_ends_the_live_view(condor_pool, shared_dir,
                                                                          reference_output):
    from pc_jobs.check_jobs import JobsFailedError, check_jobs
    from pc_jobs.job_state import reconcile

    folder, cluster = _real_jobs(shared_dir, reference_output[1], 1)
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
        _recover_and_merge(folder, [0], reference_output)
    finally:
        _remove_all(folder)


def test_kill_9_of_the_jobs_process_is_killed_not_running(condor_pool, shared_dir, reference_output):
    from pc_jobs.check_jobs import JobsFailedError, JobsMonitor, check_jobs
    from pc_jobs.job_state import reconcile

    folder, cluster = _real_jobs(shared_dir, reference_output[1], 1)
    try:
        pid = _running(folder, 0, cluster)
        assert reconcile(folder)[0].state == "running"
        for process in _process_tree(pid):  # kill -9 of the job's process tree (the wrapper, its sleep)
            try:
                os.kill(process, 9)
            except ProcessLookupError:
                pass
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
        _recover_and_merge(folder, [0], reference_output)
    finally:
        _remove_all(folder)


def test_condor_rm_is_removed_and_a_vanished_job_is_lost(condor_pool, shared_dir, reference_output):
    from pc_jobs.check_jobs import JobsMonitor
    from pc_jobs.job_state import reconcile

    folder, cluster = _real_jobs(shared_dir, reference_output[1], 2)
    ids = [f"{cluster}.0", f"{cluster}.1"]
    try:
        for index in (0, 1):
            _running(folder, index, cluster)
        for job_id in ids:
            _condor_tool("condor_rm", job_id)
        _wait(lambda: all(_status(cluster, i) is None for i in (0, 1)), "both jobs leaving the queue")
        _wait(lambda: all(j.state == "removed" for j in reconcile(folder).values()), "the abort events", 20)
        # job 1's log loses its last event (as when the submit node's disk filled up): the schedd no
        # longer has the job, its log records no end and its flag says running: lost
        log = folder / "logs" / "job_1.log"
        text = log.read_text()
        log.write_text(text[: text.rindex("009 (")])
        jobs = reconcile(folder)
        assert (jobs[0].state, jobs[0].remove_reason, jobs[0].job_id) == (
            "removed", "via condor_rm (by user cmsuser)", ids[0])
        assert (jobs[1].state, jobs[1].job_id, jobs[1].flag) == ("lost", ids[1], "running")
        assert jobs[1].last_event.endswith(" evicted")  # condor_rm of a running job: evicted, then aborted
        result = JobsMonitor(folder).poll()
        assert result.states == {0: "removed", 1: "lost"} and result.finished
        assert result.messages[0] == (f"job_0 (HTCondor job {ids[0]}) was removed by HTCondor (via condor_rm "
                                      "(by user cmsuser)); use --resubmit to resubmit it")
        assert result.messages[1].startswith(f"job_1 (HTCondor job {ids[1]}) is lost: HTCondor no longer "
                                             "has it and its log records no end (flag: running; last event: ")
        _recover_and_merge(folder, [0, 1], reference_output)
    finally:
        _remove_all(folder)


def test_memory_hold_is_held_memory_with_what_to_do(condor_pool, shared_dir, reference_output):
    import sys

    from pc_jobs.check_jobs import JobsMonitor
    from pc_jobs.job_state import reconcile

    # the job's setup holds 300 MB until ``go`` exists, against request_memory 100
    go = shared_dir / "go"
    hog = (f"{sys.executable} -c 'import os, time; block = \"x\" * (300 << 20); "
           f"[time.sleep(1) for _ in range(300) if not os.path.exists(\"{go}\")]'")
    extra = ("job-extra-directives:\n"
             "  periodic_hold: MemoryUsage > RequestMemory\n"
             "  periodic_hold_reason: 'strcat(\"memory usage \", MemoryUsage, \" MB above request_memory \", "
             "RequestMemory, \" MB\")'\n"
             "  periodic_hold_subcode: 34\n")
    folder, cluster = _real_jobs(shared_dir, reference_output[1], 1, setup=hog, memory="100MB", extra=extra)
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
        # check-jobs --resubmit removes the held copy and resubmits with request_memory 100 * 10
        output = _recover_and_merge(folder, [0], reference_output, memory_factor=10.0, memory_ceiling=4000)
        assert f"job_0: held copy {cluster}.0 removed; request_memory now 1000 MB" in output.replace("\n", " ")
    finally:
        _remove_all(folder)
