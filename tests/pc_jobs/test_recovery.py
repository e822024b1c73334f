"""recovery.py: the jobs folder's lock and history, the schedd's copies, memory bumps, file modes.

The schedd is a fake here (its answers are what htcondor2's ``Schedd.query`` returns for
the projection); the real pool: tests/integration/test_condor_recovery.py.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import cloudpickle
import pytest

from pc_jobs.jobs_dir import JobsDir
from pc_jobs.recovery import (
    HISTORY_NAME,
    LOCK_NAME,
    RecoveryLockError,
    RecoveryPass,
    append_history,
    bumped_memory,
    copies_constraint,
    is_memory_hold,
    memory_removal_in_log,
    read_history,
    recovery_lock,
    request_memory_of,
    tag_job,
    write_world_readable,
)
from pc_jobs.recreate import RecreateRequest, recreate_jobs
from pc_jobs.submit_file import SubmitSpec, get_command, read_commands, render_all, render_job

FILES = {0: "/data/a.root", 1: "/data/b.root", 2: "/data/c.root"}


class FakeAd(dict):
    def eval(self, key):
        return self[key]


class FakeSchedd:
    """Answers ``query`` with its ads; ``act(Remove, ids)`` drops them; records both."""

    def __init__(self, ads=()):
        self.ads = [FakeAd(ad) for ad in ads]
        self.queries: list[str] = []
        self.removed: list[list[str]] = []

    def query(self, constraint, projection):
        self.queries.append(constraint)
        return list(self.ads)

    def act(self, action, ids, reason=None):
        self.removed.append(list(ids))
        self.ads = [ad for ad in self.ads if f"{ad['ClusterId']}.{ad['ProcId']}" not in ids]
        return FakeAd(TotalError=0, TotalSuccess=len(ids))


class QueueingSubmitter:
    """Submits into the fake schedd: the new copy is idle there, tagged like a real one."""

    def __init__(self, schedd: FakeSchedd, folder: Path, first_cluster: int = 100):
        self.schedd, self.folder, self.next = schedd, folder, first_cluster
        self.submitted: list[tuple[Path, int]] = []

    def __call__(self, path: Path) -> int:
        commands = read_commands(path.read_text())
        cluster, self.next = self.next, self.next + 1
        self.submitted.append((path, int(commands["request_memory"])))
        self.schedd.ads.append(FakeAd(ClusterId=cluster, ProcId=0, JobStatus=1,
                                      PocketCoffeaJobsDir=json.loads(commands["+PocketCoffeaJobsDir"]),
                                      PocketCoffeaJob=int(commands["+PocketCoffeaJob"]),
                                      RequestMemory=int(commands["request_memory"])))
        return cluster


def ad(job: int, cluster: int, status: int, folder: Path, **extra) -> dict:
    return {"ClusterId": cluster, "ProcId": 0, "JobStatus": status, "PocketCoffeaJobsDir": str(folder),
            "PocketCoffeaJob": job, **extra}


def memory_hold(job: int, cluster: int, folder: Path, request: int = 2000) -> dict:
    return ad(job, cluster, 5, folder, HoldReasonCode=3, HoldReasonSubCode=34, RequestMemory=request,
              HoldReason="memory usage exceeded request_memory", MemoryUsage=request + 500)


def make_folder(tmp_path: Path, flags: dict[int, str]) -> JobsDir:
    """A jobs folder of 3 jobs as the condor executor writes it (request_memory 2000), with the given flags."""
    jobs = JobsDir(tmp_path / "out" / "job")
    jobs.logs.mkdir(parents=True)
    spec = SubmitSpec(jobs.path, str(tmp_path / "out"), {"request_cpus": "1", "request_memory": "2000",
                                                           "+JobFlavour": '"microcentury"'})
    records = {}
    for i, path in FILES.items():
        fileset = {"DY": {"files": [path], "metadata": {"sample": "DY"}}}
        jobs.config(i).write_bytes(cloudpickle.dumps(SimpleNamespace(fileset=fileset)))
        jobs.sub(i).write_text(render_job(spec, i, 100))
        records[i] = {"fileset": fileset, "config": jobs.config(i).name, "output": f"output_job_{i}.coffea"}
    jobs.all_sub.write_text(render_all(spec, [100] * 3))
    jobs.script.write_text("#!/bin/bash\npocket-coffea run --custom-run-options inner_run_options.yaml\n")
    jobs.write_jobs_config(records, {"executor": "condor"})
    for i, state in flags.items():
        jobs.set_flag(i, state)
    return jobs


def flags(jobs: JobsDir) -> dict[int, str | None]:
    return {i: jobs.state(i) for i in FILES}


# --------------------------------------------------------------------------- lock


def test_lock_contention_names_the_holder(tmp_path):
    with recovery_lock(tmp_path, "check-jobs --resubmit"):
        with pytest.raises(RecoveryLockError) as error:
            with recovery_lock(tmp_path, "pocket-coffea run --recreate-jobs"):
                pass
    message = str(error.value)
    assert f"the jobs folder {tmp_path} is being recovered by pid {os.getpid()} on {socket.gethostname()} " \
           "(check-jobs --resubmit, since " in message
    assert "pocket-coffea run --recreate-jobs resubmits nothing while it runs" in message
    with recovery_lock(tmp_path, "again"):  # released: free again
        assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == "again"


def test_lock_held_by_another_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pc_jobs.recovery import recovery_lock
            with recovery_lock({str(tmp_path)!r}, "check-jobs -j job --resubmit"):
                print("locked", flush=True)
                sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        jobs = make_folder(tmp_path / "f", {0: "failed", 1: "done", 2: "done"})
        with recovery_lock(jobs.path, "x"):
            pass
        with pytest.raises(RecoveryLockError, match=rf"by pid {holder.pid} on {socket.gethostname()} "
                                                    r"\(check-jobs -j job --resubmit, since "):
            with recovery_lock(tmp_path, "pocket-coffea run --recreate-jobs"):
                pass
    finally:
        holder.communicate("\n", timeout=10)
    with recovery_lock(tmp_path, "after"):
        pass


def test_recreate_refused_while_check_jobs_recovers(tmp_path):
    jobs = make_folder(tmp_path, {0: "failed", 1: "done", 2: "done"})
    submitter = QueueingSubmitter(FakeSchedd(), jobs.path)
    before = jobs.sub(0).read_text()
    with recovery_lock(jobs.path, "check-jobs --resubmit"):
        with pytest.raises(RecoveryLockError, match="check-jobs --resubmit"):
            recreate_jobs(jobs, RecreateRequest("auto"), {}, submitter=submitter, schedd=submitter.schedd)
    assert submitter.submitted == [] and flags(jobs)[0] == "failed" and jobs.sub(0).read_text() == before


# --------------------------------------------------------------------------- history


def test_history_is_json_lines_appended(tmp_path):
    append_history(tmp_path, job=3, action="remove", cluster=41, reason="held for memory", request_memory=2000,
                   command="check-jobs --resubmit", clock=lambda: 0.0)
    append_history(tmp_path, job=3, action="resubmit", cluster=42, reason="failed", request_memory=3000,
                   queue="longlunch", command="check-jobs --resubmit", clock=lambda: 0.0)
    lines = (tmp_path / HISTORY_NAME).read_text().splitlines()
    assert len(lines) == 2
    common = {"job": 3, "command": "check-jobs --resubmit", "host": socket.gethostname(), "pid": os.getpid()}
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "job", "action", "cluster", "reason", "request_memory", "queue", "command",
                          "host", "pid"}
    assert first == {**common, "time": first["time"], "action": "remove", "cluster": 41, "reason": "held for memory",
                     "request_memory": 2000, "queue": None}
    assert second == {**common, "time": first["time"], "action": "resubmit", "cluster": 42, "reason": "failed",
                      "request_memory": 3000, "queue": "longlunch"}
    assert first["time"].startswith("1970-01-01T") or first["time"].startswith("1969-12-31T")
    assert [r["cluster"] for r in read_history(tmp_path, 3)] == [41, 42] and read_history(tmp_path, 4) == []


# --------------------------------------------------------------------------- memory


@pytest.mark.parametrize(("current", "factor", "ceiling", "expected"), [
    (2000, 1.5, 8000, 3000),
    (3000, 1.5, 8000, 4500),
    (1001, 1.5, 8000, 1502),  # rounded up
    (6000, 1.5, 8000, 8000),  # capped at the ceiling
    (8000, 1.5, 8000, None),  # already there: no bump
    (9000, 2.0, 8000, None),
    (100, 2.0, 150, 150),
])
def test_memory_bump_math_and_ceiling(current, factor, ceiling, expected):
    assert bumped_memory(current, factor, ceiling) == expected


def test_memory_bump_rejects_factor_not_above_one(tmp_path):
    with pytest.raises(ValueError):
        bumped_memory(2000, 1.0, 8000)


@pytest.mark.parametrize(("code", "subcode", "reason", "expected"), [
    (34, 0, "Job has gone over cgroup memory limit", True),
    (26, 0, "memory usage exceeded request_memory", True),
    (26, 34, "SYSTEM_PERIODIC_HOLD", True),
    (3, 34, "The job attribute PeriodicHold expression evaluated to TRUE", True),
    (1, 0, "via condor_hold (by user cmsuser)", False),
    (13, 2, "Transfer input files failure", False),
    (26, 0, "job ran too long", False),
])
def test_memory_holds_recognised(code, subcode, reason, expected):
    assert is_memory_hold(code, subcode, reason) is expected


def test_request_memory_of_submit_text():
    assert request_memory_of("request_memory = 2000\nqueue\n") == 2000
    assert request_memory_of("request_memory = 2GB\nqueue\n") == 2000
    assert request_memory_of("request_memory = ifThenElse(MemoryUsage > 10, 20, 10)\nqueue\n") is None
    assert request_memory_of("queue\n") is None


def test_memory_hold_or_removal_read_from_the_user_log(tmp_path):
    log = tmp_path / "job_2.log"
    log.write_text(textwrap.dedent("""\
        000 (012.000.000) 2026-11-29 21:49:15 Job submitted from host: <127.0.0.1:9618>
        ...
        001 (012.000.000) 2026-11-29 21:49:20 Job executing on host: <127.0.0.1:9618>
        ...
        012 (012.000.000) 2026-11-29 21:49:28 Job was held.
        \tmemory usage exceeded request_memory
        \tCode 3 Subcode 34
        ...
        009 (012.000.000) 2026-11-29 21:49:41 Job was aborted.
        \tvia condor_rm (by user cmsuser)
        ...
        """))
    assert memory_removal_in_log(log) == "memory usage exceeded request_memory Code 3 Subcode 34"
    # a new submission after it: the memory problem belongs to an older attempt
    log.write_text(log.read_text() + "000 (013.000.000) 2026-11-29 21:50:00 Job submitted from host: <x>\n...\n")
    assert memory_removal_in_log(log) is None
    assert memory_removal_in_log(tmp_path / "missing.log") is None


# --------------------------------------------------------------------------- identity in the schedd


def test_jobs_tagged_with_folder_and_index(tmp_path):
    jobs = make_folder(tmp_path, {})
    assert read_commands(jobs.sub(1).read_text())["+PocketCoffeaJobsDir"] == json.dumps(str(jobs.path))
    assert read_commands(jobs.sub(1).read_text())["+PocketCoffeaJob"] == "1"
    assert read_commands(jobs.all_sub.read_text())["+PocketCoffeaJob"] == "$(Process)"
    old = "universe = vanilla\nqueue\n"
    assert tag_job(tag_job(old, jobs.path, 4), jobs.path, 4) == tag_job(old, jobs.path, 4)
    assert get_command(tag_job(old, jobs.path, 4), "+PocketCoffeaJob") == "4"
    assert copies_constraint(jobs.path) == (
        f'(PocketCoffeaJobsDir =?= "{jobs.path}") || '
        f'(substr(UserLog, 0, {len(str(jobs.path)) + 6}) =?= "{jobs.path}/logs/")')


def test_untagged_copies_found_by_their_log(tmp_path):
    jobs = make_folder(tmp_path, {})
    schedd = FakeSchedd([{"ClusterId": 5, "ProcId": 2, "JobStatus": 2, "UserLog": f"{jobs.path}/logs/job_2.log"},
                         {"ClusterId": 6, "ProcId": 0, "JobStatus": 2, "UserLog": "/elsewhere/logs/job_2.log"}])
    with RecoveryPass(jobs.path, "test", schedd=schedd) as rpass:
        assert rpass.still_queued_message(2) == ("job_2 is still queued/running/held in HTCondor (5.2, running): "
                                                 "not resubmitted (condor_rm it first to replace it)")
        assert rpass.still_queued_message(1) is None


# --------------------------------------------------------------------------- recreate


def test_dry_run_changes_no_flag_and_takes_current_run_options(tmp_path):
    jobs = make_folder(tmp_path, {0: "done", 1: "failed", 2: "running"})
    schedd = FakeSchedd()
    submitter = QueueingSubmitter(schedd, jobs.path)
    result = recreate_jobs(jobs, RecreateRequest("auto"), {"dry-run": True, "mem-per-worker": "3GB"},
                           submitter=submitter, schedd=schedd)
    assert flags(jobs) == {0: "done", 1: "failed", 2: "running"}
    assert [c.index for c in result.changes] == [1, 2] and result.submitted == [] and submitter.submitted == []
    assert [read_commands(jobs.sub(i).read_text())["request_memory"] for i in FILES] == ["2000", "3000", "3000"]
    assert not (jobs.path / HISTORY_NAME).exists() and schedd.removed == [] and len(schedd.queries) == 1


def test_recreate_skips_queued_copies_bumps_memory_held_and_twice_is_a_no_op(tmp_path):
    jobs = make_folder(tmp_path, {0: "idle", 1: "failed", 2: "running"})
    schedd = FakeSchedd([ad(0, 7, 1, jobs.path), memory_hold(2, 8, jobs.path)])
    submitter = QueueingSubmitter(schedd, jobs.path)
    result = recreate_jobs(jobs, RecreateRequest("auto"), {"mem-per-worker": "2GB"}, submitter=submitter,
                           schedd=schedd)
    assert result.skipped == {0: "job_0 is still queued/running/held in HTCondor (7.0, idle): not resubmitted "
                                 "(condor_rm it first to replace it)"}
    assert [(p.name, memory) for p, memory in submitter.submitted] == [("job_1.sub", 2000), ("job_2.sub", 3000)]
    assert schedd.removed == [["8.0"]] and len(schedd.queries) == 1
    assert flags(jobs) == {0: "idle", 1: "idle", 2: "idle"}
    history = [(r["job"], r["action"], r["cluster"], r["request_memory"]) for r in read_history(jobs.path)]
    assert history == [(1, "resubmit", 100, 2000), (2, "remove", 8, 2000), (2, "resubmit", 101, 3000)]
    assert "held for memory (8.0: memory usage exceeded request_memory, MemoryUsage 2500 MB)" in \
        read_history(jobs.path, 2)[-1]["reason"]
    # the same command again: every job has exactly one copy queued, nothing is submitted
    again = recreate_jobs(jobs, RecreateRequest("auto"), {"mem-per-worker": "2GB"}, submitter=submitter,
                          schedd=schedd)
    assert sorted(again.skipped) == [0, 1, 2] and again.submitted == [] and len(submitter.submitted) == 2
    assert sorted((a["PocketCoffeaJob"], a["ClusterId"]) for a in schedd.ads) == [(0, 7), (1, 100), (2, 101)]
    # a later recreate keeps the raised memory even if the run options ask for less
    schedd.ads = []
    recreate_jobs(jobs, RecreateRequest("2"), {"mem-per-worker": "2GB"}, submitter=submitter, schedd=schedd)
    assert submitter.submitted[-1] == (jobs.sub(2), 3000)


def test_memory_held_at_the_ceiling_is_left_held(tmp_path):
    jobs = make_folder(tmp_path, {0: "running", 1: "done", 2: "done"})
    schedd = FakeSchedd([memory_hold(0, 9, jobs.path, request=8000)])
    submitter = QueueingSubmitter(schedd, jobs.path)
    result = recreate_jobs(jobs, RecreateRequest("auto"), {"mem-per-worker": "8GB"}, submitter=submitter,
                           schedd=schedd)
    assert result.skipped[0].startswith("job_0 needs more memory but request_memory 8000 MB is already at the "
                                        "ceiling (8000 MB): left as it is; raise --memory-ceiling")
    assert submitter.submitted == [] and schedd.removed == [] and flags(jobs)[0] == "running"


# --------------------------------------------------------------------------- check-jobs


def test_check_jobs_never_duplicates_a_retried_job_and_bumps_a_memory_hold(tmp_path):
    from pc_jobs.check_jobs import JobsMonitor

    jobs = make_folder(tmp_path, {0: "failed", 1: "running", 2: "done"})
    schedd = FakeSchedd([ad(0, 11, 1, jobs.path, NumJobCompletions=1, JobMaxRetries=3, ExitCode=1),
                         memory_hold(1, 12, jobs.path)])
    submitter = QueueingSubmitter(schedd, jobs.path)
    monitor = JobsMonitor(jobs.path, resubmit=True, submitter=submitter, schedd=schedd, log_grace=0,
                          memory_factor=2.0, memory_ceiling=3500)
    result = monitor.poll()
    assert ("job_0 is still queued/running/held in HTCondor (11.0, idle, retried by HTCondor after exit code 1 "
            "(1 of max_retries 3)): not resubmitted (condor_rm it first to replace it)") in result.messages
    assert [(p.name, memory) for p, memory in submitter.submitted] == [("job_1.sub", 3500)]
    assert schedd.removed == [["12.0"]] and len(schedd.queries) == 1
    assert "job_1: held copy 12.0 removed; request_memory now 3500 MB" in result.messages
    assert result.states == {0: "failed", 1: "idle", 2: "done"} and not result.finished
    assert [(r["job"], r["action"]) for r in read_history(jobs.path)] == [(1, "remove"), (1, "resubmit")]
    # the next poll: both jobs queued once, nothing more submitted
    monitor.poll()
    assert len(submitter.submitted) == 1 and len(schedd.queries) == 2


# --------------------------------------------------------------------------- file modes


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_jobs_read_are_0644_under_umask_077(tmp_path):
    from pc_jobs.job_config import save_job_config
    from pc_jobs.recovery import move_job_inputs

    with umask(0o077):
        pickle = tmp_path / "config_job_0.pkl"
        save_job_config({"fileset": {"DY": {"files": ["root://a//store/x.root"]}}}, pickle)
        assert mode(pickle) == 0o644
        pickle.chmod(0o600)
        moves = move_job_inputs(pickle, lambda u: u.startswith("root://a/"),
                                lambda urls: {u: u.replace("root://a/", "root://b/") for u in urls})
        assert moves.changes == {"root://a//store/x.root": "root://b//store/x.root"}
        assert mode(pickle) == 0o600  # nothing written before save
        moves.save(pickle)
        assert mode(pickle) == 0o644  # check-jobs' replica rewrite
        write_world_readable(tmp_path / "job_0.sub", "queue\n")
        assert mode(tmp_path / "job_0.sub") == 0o644
        append_history(tmp_path, job=0, action="resubmit")
        with recovery_lock(tmp_path, "test"):
            pass
        assert mode(tmp_path / HISTORY_NAME) == 0o644 and mode(tmp_path / LOCK_NAME) == 0o644
        jobs = make_folder(tmp_path / "r", {0: "failed", 1: "done", 2: "done"})
        recreate_jobs(jobs, RecreateRequest("0"), {"dry-run": True, "skip-bad-files": True},
                      schedd=FakeSchedd())
        assert mode(jobs.sub(0)) == 0o644 and mode(jobs.inner_options) == 0o644


def test_demo_data_files_are_0644_under_umask_077(tmp_path):
    np = pytest.importorskip("numpy")
    writer = pytest.importorskip("pc_demo.writer")
    with umask(0o077):
        writer.write_json(tmp_path / "fileset.json", {"a": 1})
        events = {"run": np.ones(3, np.uint32), "luminosityBlock": np.ones(3, np.uint32),
                  "event": np.arange(3, dtype=np.uint64)}
        writer.write_nanoaod(tmp_path / "nano.root", events, {"run": np.ones(1, np.uint32)}, None)
    assert mode(tmp_path / "fileset.json") == 0o644 and mode(tmp_path / "nano.root") == 0o644
