"""pc_jobs.job_state: schedd + event logs + flags -> one state per job, on event logs recorded on the real pool.

The logs in data/condor_event_logs/ were written by HTCondor 23.9 (README there says how);
cutting one after a given event gives the same job while it was running, held or evicted.
The schedd is a fake here (its answers are what the real one returns for those jobs; the
real pool is in tests/integration/test_condor_job_states.py).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pc_jobs.job_state import ACTIVE, JobStateReader, reconcile

LOGS = Path(__file__).parent / "data" / "condor_event_logs"


def events_of(name: str) -> list[str]:
    """The events of a recorded log, each with its closing '...' line."""
    text = (LOGS / name).read_text()
    return [chunk + "...\n" for chunk in text.split("...\n") if chunk.strip()]


def cut(name: str, code: str, occurrence: int = 1) -> str:
    """The recorded log up to (and with) the ``occurrence``-th event of type ``code``."""
    kept, seen = [], 0
    for event in events_of(name):
        kept.append(event)
        if event.startswith(code + " "):
            seen += 1
            if seen == occurrence:
                return "".join(kept)
    raise AssertionError(f"{name} has no {occurrence} event(s) {code}")


class FakeSchedd:
    """``(constraint, projection) -> ads`` that records its calls."""

    def __init__(self, ads=(), error: Exception | None = None) -> None:
        self.ads, self.error, self.calls = list(ads), error, []

    def __call__(self, constraint, projection):
        self.calls.append((constraint, list(projection)))
        if self.error is not None:
            raise self.error
        return self.ads


def make_folder(tmp_path: Path, jobs: dict[int, tuple[str | None, str | None]]) -> Path:
    """Jobs folder: job i has ``logs/job_{i}.log`` (a recorded log name or log text) and flag."""
    folder = tmp_path / "job"
    (folder / "logs").mkdir(parents=True)
    for index, (log, flag) in jobs.items():
        (folder / f"job_{index}.sub").write_text("queue\n")
        if log is not None:
            target = folder / "logs" / f"job_{index}.log"
            if log.endswith(".log") and "\n" not in log:
                shutil.copy(LOGS / log, target)
            else:
                target.write_text(log)
        if flag is not None:
            (folder / f"job_{index}.{flag}").touch()
            stamp = time.time() - 10 * 365 * 86400  # older than the recorded events
            os.utime(folder / f"job_{index}.{flag}", (stamp, stamp))
    return folder


# --------------------------------------------------------------------------- jobs that ended


def test_recorded_endings_need_no_schedd(tmp_path):
    folder = make_folder(tmp_path, {
        0: ("exit_0.log", "done"),
        1: ("exit_3.log", "failed"),
        2: ("kill_9.log", "running"),
        3: ("hold_then_rm.log", "running"),
        4: ("memory_hold_then_rm.log", "running"),
        5: ("hold_release_rm.log", "running"),
        6: ("max_retries_exit_3.log", "failed"),
        7: ("eviction_loop_then_rm.log", "idle"),
        8: ("rm_while_running.log", "running"),
    })
    schedd = FakeSchedd()
    reader = JobStateReader(folder, query=schedd)
    jobs = reader.read()
    assert schedd.calls == [] and reader.queries == 0  # every log has an end: nothing to ask
    summary = {i: (j.state, j.job_id, j.exit_code, j.signal, j.hold_code, j.hold_subcode, j.restarts)
               for i, j in jobs.items()}
    assert summary == {
        0: ("done", "5.0", 0, None, None, None, 0),
        1: ("failed", "6.0", 3, None, None, None, 0),
        2: ("killed", "7.0", None, 9, None, None, 0),
        3: ("removed", "8.0", None, None, 1, 0, 0),
        4: ("removed", "9.0", None, None, 3, 34, 0),
        5: ("removed", "13.0", None, None, None, None, 0),  # released before the removal: no hold left
        6: ("failed", "17.0", 3, None, None, None, 2),  # two max_retries requeues, then the final exit
        7: ("removed", "18.0", None, None, None, None, 3),  # the last eviction was the removal itself
        8: ("removed", "42.0", None, None, None, None, 0),  # condor_rm of a running job: evicted, aborted
    }
    assert jobs[8].remove_reason == "via condor_rm (by user cmsuser)"
    assert jobs[2].last_event.endswith("terminated by signal 9")
    assert jobs[2].outcome == "signal 9" and "kill -9" in jobs[2].advice()
    assert jobs[1].outcome == "exit 3" and jobs[1].detail == "exit code 3"
    assert jobs[4].exceeded_memory and jobs[4].hold_reason == "memory usage 309 MB above request_memory 100 MB"
    assert jobs[4].memory_mb == 309 and "mem-per-worker" in jobs[4].advice()
    assert jobs[5].remove_reason == "via condor_rm (by user cmsuser)"
    assert jobs[5].detail == "removed from the queue: via condor_rm (by user cmsuser)"
    assert jobs[6].restart_reason == "exited with code 3 and was requeued by HTCondor"
    assert jobs[7].restart_reason == "Job not found at execution machine"
    assert all(j.state not in ACTIVE for j in jobs.values())


def test_exit_0_is_done_only_with_the_done_flag(tmp_path):
    folder = make_folder(tmp_path, {0: ("exit_0.log", "running"), 1: ("exit_0.log", "failed"), 2: ("exit_0.log", None)})
    jobs = reconcile(folder, query=FakeSchedd())
    assert [(j.state, j.exit_code) for j in jobs.values()] == [("failed", 0)] * 3
    assert jobs[0].detail == "exit code 0, but the job never flagged itself done (flag: running)"
    assert jobs[1].detail == "exit code 0, but the job flagged itself failed"


def test_transfer_holds_name_the_file_and_the_problem(tmp_path):
    folder = make_folder(tmp_path, {0: ("input_transfer_hold_then_rm.log", "idle"),
                                    1: ("output_transfer_hold_then_rm.log", "running")})
    jobs = reconcile(folder, query=FakeSchedd())
    assert (jobs[0].state, jobs[0].hold_code, jobs[0].hold_kind) == ("removed", 13, "transfer-input")
    assert (jobs[1].state, jobs[1].hold_code, jobs[1].hold_kind) == ("removed", 12, "transfer-output")


# --------------------------------------------------------------------------- live jobs: the schedd decides


def test_held_running_and_evicted_jobs_take_the_schedds_word_with_one_query(tmp_path):
    folder = make_folder(tmp_path, {
        0: (cut("hold_release_rm.log", "012"), "running"),
        1: (cut("exit_0.log", "001"), "running"),
        2: (cut("eviction_loop_then_rm.log", "004", 2), "idle"),
        3: (cut("input_transfer_hold_then_rm.log", "012"), "idle"),
        4: (cut("memory_hold_then_rm.log", "012"), "running"),
        5: ("exit_3.log", "failed"),
    })
    schedd = FakeSchedd([
        {"ClusterId": 13, "ProcId": 0, "JobStatus": 5, "HoldReason": "operator: node drained (by user cmsuser)",
         "HoldReasonCode": 1, "HoldReasonSubCode": 0},
        {"ClusterId": 5, "ProcId": 0, "JobStatus": 2},
        {"ClusterId": 18, "ProcId": 0, "JobStatus": 1},
        {"ClusterId": 11, "ProcId": 0, "JobStatus": 5, "HoldReasonCode": 13, "HoldReasonSubCode": 13,
         "HoldReason": "Transfer input files failure at access point vm while sending files to execution point "
                       "slot1_2@vm. Details: reading from file /tmp/pcjs-gen/rec/secret.txt: (errno 13) "
                       "Permission denied"},
        {"ClusterId": 9, "ProcId": 0, "JobStatus": 5, "HoldReasonCode": 3, "HoldReasonSubCode": 34,
         "HoldReason": "memory usage 309 MB above request_memory 100 MB", "MemoryUsage": 309},
    ])
    reader = JobStateReader(folder, query=schedd)
    jobs = reader.read()
    assert len(schedd.calls) == 1 and reader.queries == 1
    assert schedd.calls[0][0] == "member(ClusterId, {5, 9, 11, 13, 18})"  # job 5 ended: not asked for
    assert {i: j.state for i, j in jobs.items()} == {
        0: "held", 1: "running", 2: "evicted", 3: "held", 4: "held", 5: "failed"}
    held = jobs[0]
    assert (held.hold_reason, held.hold_code, held.hold_kind) == ("operator: node drained (by user cmsuser)", 1, "user")
    assert held.outcome == "held, code 1 UserRequest"
    assert held.advice() == ("held on request (condor_hold): condor_release 13.0 to let it run, "
                             "or condor_rm 13.0")
    assert (jobs[2].restarts, jobs[2].restart_reason) == (2, "Job not found at execution machine")
    assert jobs[2].detail == "restarted by HTCondor 2 time(s), last: Job not found at execution machine"
    assert ("/tmp/pcjs-gen/rec/secret.txt: Permission denied (errno 13)" in jobs[3].advice()
            and "condor_release 11.0" in jobs[3].advice())
    assert jobs[4].hold_kind == "memory" and "request_memory (it used 309 MB)" in jobs[4].advice()


def test_a_job_the_schedd_no_longer_has_is_lost_with_the_logs_last_event(tmp_path):
    folder = make_folder(tmp_path, {0: (cut("exit_0.log", "001"), "running"),
                                    1: (cut("exit_0.log", "000"), None),
                                    2: (cut("exit_0.log", "001"), "done")})
    jobs = reconcile(folder, query=FakeSchedd([]))
    assert [j.state for j in jobs.values()] == ["lost", "lost", "done"]
    assert jobs[0].last_event.endswith("executing on slot1_2@vm")
    assert jobs[0].detail.startswith("HTCondor no longer has job 5.0 and its log records no end; last event: ")
    assert "resubmit" in jobs[0].advice()


def test_unreachable_schedd_falls_back_to_the_event_log(tmp_path):
    folder = make_folder(tmp_path, {0: (cut("exit_0.log", "001"), "running"),
                                    1: (cut("hold_then_rm.log", "012"), "running")})
    reader = JobStateReader(folder, query=FakeSchedd(error=RuntimeError("Unable to locate local daemon")))
    jobs = reader.read()
    assert [j.state for j in jobs.values()] == ["running", "held"]
    assert reader.schedd_error == "RuntimeError: Unable to locate local daemon"
    assert jobs[0].detail == "from the event log (schedd: RuntimeError: Unable to locate local daemon)"
    assert jobs[1].hold_reason == "Reason unspecified" and jobs[1].hold_code == 1


# --------------------------------------------------------------------------- reading and mapping


def test_event_logs_are_read_incrementally(tmp_path):
    folder = make_folder(tmp_path, {0: (cut("kill_9.log", "001"), "running")})
    path = folder / "logs" / "job_0.log"
    schedd = FakeSchedd([{"ClusterId": 7, "ProcId": 0, "JobStatus": 2}])
    reader = JobStateReader(folder, query=schedd)
    assert reader.read()[0].state == "running"
    cursor = reader._cursors[str(path)]
    offset_before = cursor.reader
    assert reader.read()[0].state == "running" and cursor.reader is offset_before  # unchanged log: not opened
    rest = "".join(events_of("kill_9.log")[2:])  # image size, terminated by signal 9
    with path.open("a") as handle:
        handle.write(rest)
    schedd.ads = []
    job = reader.read()[0]
    assert (job.state, job.signal, job.memory_mb) == ("killed", 9, 5)
    assert len(cursor.attempts) == 1 and len(schedd.calls) == 2  # the third read asked nothing: the log ended
    # a log replaced by a shorter one is read again from its start
    path.write_text(cut("exit_3.log", "000"))
    assert reader.read()[0].job_id == "6.0"


def test_the_latest_submission_counts_and_cluster_named_logs_belong_to_their_job(tmp_path):
    # job 0 was submitted twice into the same log (exit 3, then killed); job 1 logs as job_<cluster>.<proc>.log
    folder = make_folder(tmp_path, {0: ((LOGS / "exit_3.log").read_text() + (LOGS / "kill_9.log").read_text(), "failed"),
                                    1: (None, "done")})
    (folder / "logs" / "job_8.0.log").write_text((LOGS / "exit_0.log").read_text())
    jobs = JobStateReader(folder, query=FakeSchedd(), cluster_jobs={8: 1}).read()
    assert (jobs[0].state, jobs[0].job_id, jobs[0].signal, jobs[0].exit_code) == ("killed", "7.0", 9, None)
    assert (jobs[1].state, jobs[1].job_id, jobs[1].exit_code) == ("done", "5.0", 0)


def test_flags_alone_without_any_event_log(tmp_path):
    folder = make_folder(tmp_path, {0: (None, None), 1: (None, "running"), 2: (None, "done"), 3: (None, "failed")})
    schedd = FakeSchedd()
    jobs = reconcile(folder, query=schedd)
    assert [j.state for j in jobs.values()] == ["idle", "running", "done", "failed"]
    assert schedd.calls == [] and jobs[0].detail == "no HTCondor event log: not submitted yet"


def test_a_job_flagged_idle_after_its_end_waits_for_resubmission(tmp_path):
    folder = make_folder(tmp_path, {0: ("kill_9.log", None)})
    (folder / "job_0.idle").touch()  # newer than the recorded events: someone reset it to resubmit
    job = reconcile(folder, query=FakeSchedd())[0]
    assert job.state == "idle" and job.detail.startswith("flagged idle after HTCondor's last event")


@pytest.mark.parametrize("reason, problem", [
    ("Transfer output files failure at access point vm while receiving files from execution point slot1_1@vm. "
     "Details: writing to file /data/out/result.txt: (errno 13) Permission denied",
     "/data/out/result.txt: Permission denied (errno 13)"),
    ("Transfer input files failure ... Details: reading from file /x/config_job_0.pkl: (errno 2) No such file "
     "or directory", "/x/config_job_0.pkl: No such file or directory (errno 2)"),
])
def test_transfer_problem_is_named(reason, problem):
    from pc_jobs.job_state import transfer_problem

    assert transfer_problem(reason) == problem


# --------------------------------------------------------------------------- check-jobs on these states


def _check_jobs_text(folder: Path, schedd: FakeSchedd, **kwargs) -> tuple[str, object]:
    from rich.console import Console

    from pc_jobs.check_jobs import JobsFailedError, check_jobs

    console = Console(record=True, width=200)
    try:
        result = check_jobs(folder, once=True, console=console, schedd_query=schedd, group_by="none", **kwargs)
        error = None
    except JobsFailedError as exc:
        result, error = None, str(exc)
    return console.export_text(), error


def test_check_jobs_shows_held_killed_lost_and_ends(tmp_path):
    from pc_jobs.check_jobs import JobsMonitor

    folder = make_folder(tmp_path, {0: ("exit_0.log", "done"), 1: (cut("hold_release_rm.log", "012"), "running"),
                                    2: ("kill_9.log", "running"), 3: (cut("exit_0.log", "001"), "running")})
    schedd = FakeSchedd([{"ClusterId": 13, "ProcId": 0, "JobStatus": 5, "HoldReasonCode": 1, "HoldReasonSubCode": 0,
                          "HoldReason": "operator: node drained (by user cmsuser)"}])
    result = JobsMonitor(folder, schedd_query=schedd).poll()
    assert result.states == {0: "done", 1: "held", 2: "killed", 3: "lost"} and result.finished
    assert {k: v for k, v in result.counts().items() if v} == {"held": 1, "done": 1, "killed": 1, "lost": 1}
    assert result.messages[0] == (
        "job_1 (HTCondor job 13.0) is held: operator: node drained (by user cmsuser) (code 1 UserRequest). "
        "What to do: held on request (condor_hold): condor_release 13.0 to let it run, or condor_rm 13.0")
    assert result.messages[1].startswith("job_2 (HTCondor job 7.0) was killed by signal 9.")
    assert result.messages[2].startswith("job_3 (HTCondor job 5.0) is lost: HTCondor no longer has it")
    text, error = _check_jobs_text(folder, schedd)
    assert "1 job(s) held in HTCondor wait for you" in text and "All jobs are completed" not in text
    assert "Needs attention" in text and "held (user)" in text
    assert error.startswith("3 of 4 jobs failed: job_1 (held), job_2 (killed, signal 9), job_3 (lost).")
    # the files are untouched without --resubmit
    assert (folder / "job_2.running").exists() and (folder / "job_3.running").exists()


def test_details_show_exit_signal_hold_and_the_error_line_verbatim(tmp_path):
    folder = make_folder(tmp_path, {0: ("exit_3.log", "failed"), 1: ("kill_9.log", "running"),
                                    2: (cut("memory_hold_then_rm.log", "012"), "running")})
    (folder / "logs" / "job_0.err").write_text("[pocket-coffea job 0] pocket-coffea run failed (exit 3)\n")
    (folder / "logs" / "job_1.out").write_text(
        "Error: input file root://eoscms.cern.ch:1094//store/a.root of dataset 'DY' cannot be read (dead-server): "
        "[FATAL] Connection refused [bold]x[/bold]\n")
    schedd = FakeSchedd([{"ClusterId": 9, "ProcId": 0, "JobStatus": 5, "HoldReasonCode": 3, "HoldReasonSubCode": 34,
                          "HoldReason": "memory usage 309 MB above request_memory 100 MB"}])
    text, error = _check_jobs_text(folder, schedd, details=True)
    assert "[wrapper] job_0.err:1: [pocket-coffea job 0] pocket-coffea run failed (exit 3)" in text
    assert "[dead-server] job_1.out:1: Error: input file root://eoscms.cern.ch:1094//store/a.root" in text
    assert "[FATAL] Connection refused [bold]x[/bold]" in text  # log text is never rich markup
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in text.splitlines() if line.startswith("│ job_")}
    assert rows["job_0"] == ["failed", "6.0", "exit 3"]
    assert rows["job_1"] == ["killed", "7.0", "signal 9"]
    assert rows["job_2"] == ["held", "9.0", "held, code 3 JobPolicy"]
    assert "memory usage 309 MB above request_memory 100 MB" in text and "raise mem-per-worker" in text


def test_resubmit_treats_killed_and_lost_jobs_as_failed(tmp_path):
    from pc_jobs.check_jobs import JobsMonitor

    folder = make_folder(tmp_path, {0: ("kill_9.log", "running"), 1: (cut("exit_0.log", "001"), "running"),
                                    2: ("exit_0.log", "done")})
    submitted = []

    def submitter(path):
        submitted.append(path.name)
        return 700 + len(submitted)

    class NoLookup:
        def __call__(self, urls, blocked, failed):
            return {}

    monitor = JobsMonitor(folder, resubmit=True, submitter=submitter, lookup=NoLookup(), schedd_query=FakeSchedd([]))
    result = monitor.poll()
    assert submitted == ["job_0.sub", "job_1.sub"]
    assert result.states == {0: "idle", 1: "idle", 2: "done"} and not result.finished
    assert (folder / "job_0.idle").exists() and not (folder / "job_0.running").exists()
    assert monitor.state.resubmissions == {0: 1, 1: 1}


# --------------------------------------------------------------------------- the text reader of event logs

RECORDED_LOGS = sorted((Path(__file__).parent / "data" / "condor_event_logs").glob("*.log"))


@pytest.mark.parametrize("path", RECORDED_LOGS, ids=lambda p: p.name)
def test_text_reader_and_htcondor_bindings_agree_on_every_recorded_log(path):
    """Undisturbed jobs (submit, execute, image size, terminated) are parsed from the text; any other
    event hands the log to htcondor2.JobEventLog. Either way the attempts are the bindings' ones."""
    from pc_jobs.job_state import _LogCursor

    text_cursor, bindings_cursor = _LogCursor((0, 0)), _LogCursor((0, 0), bindings=True)
    text_cursor.read(path)
    bindings_cursor.read(path)
    assert text_cursor.attempts == bindings_cursor.attempts and text_cursor.attempts
    assert text_cursor.bindings == (path.name not in ("exit_0.log", "exit_3.log", "kill_9.log"))


@pytest.mark.parametrize("name", ["exit_0.log", "hold_release_rm.log"])
def test_text_reader_reads_a_growing_log_incrementally(tmp_path, name):
    from pc_jobs.job_state import _LogCursor

    source = (Path(__file__).parent / "data" / "condor_event_logs" / name).read_text()
    growing = tmp_path / "job_0.log"
    growing.write_text("")
    cursor = _LogCursor((0, 0))
    for n in range(0, len(source), 97):  # also cut inside events: an incomplete event waits for its end
        growing.write_text(source[: n + 97])
        cursor.read(growing)
    full = _LogCursor((0, 0), bindings=True)
    full.read(growing)
    assert cursor.attempts == full.attempts
