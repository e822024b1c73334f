"""No duplicates and memory recovery on the real one-node HTCondor pool (services/start_condor.sh).

- Jobs that stay idle in the schedd (a requirement no machine matches) are never
  resubmitted by ``--recreate-jobs auto``, however often it runs and whatever their flag
  says; a job whose copy was ``condor_rm``-ed is resubmitted exactly once.
- A job held for memory (``periodic_hold`` on ``MemoryUsage`` with a tiny
  ``request_memory``: the real ``pocket-coffea run`` inside the job needs more) is removed
  and resubmitted with ``request_memory`` raised, by ``--recreate-jobs auto`` and then by
  ``check-jobs --resubmit``; the schedd holds exactly one copy afterwards.

Every assertion reads the schedd (``Schedd.query``) or the jobs folder's history. Each test
ends with its jobs run to the end and ``merge-outputs -jc`` equal to a local run of the same
config (one per module: the ``reference_output`` fixture).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from condor_testlib import TT, assert_merged_equals, logs_tail, invoke_run, make_analysis, sub_commands, write_options
from test_condor_jobs import _open_dir, _wait_for_flags, shared_dir  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration

HOLD_WAIT = 90


def _copies(jobs_dir: Path) -> list[tuple[int, int, int, int]]:
    """(job, cluster, JobStatus, RequestMemory) of every copy of the folder's jobs in the schedd."""
    import htcondor2

    ads = htcondor2.Schedd().query(constraint=f'PocketCoffeaJobsDir == "{jobs_dir}" && JobStatus != 3',
                                   projection=["PocketCoffeaJob", "ClusterId", "JobStatus", "RequestMemory"])
    return sorted((int(a["PocketCoffeaJob"]), int(a["ClusterId"]), int(a["JobStatus"]), int(a.eval("RequestMemory")))
                  for a in ads)


def _remove_all(jobs_dir: Path) -> None:
    import htcondor2

    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f'PocketCoffeaJobsDir == "{jobs_dir}"')


def _history(jobs_dir: Path) -> list[tuple[int, str, int | None]]:
    from pc_jobs.recovery import read_history

    return [(r["job"], r["action"], r["request_memory"]) for r in read_history(jobs_dir)]


def _wait_until(predicate, what: str, timeout: float = HOLD_WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"{what} not seen after {timeout}s")


def _prepare(shared_dir: Path, fileset: dict, options: str, scaleout: int) -> tuple[Path, list]:
    """Submit ``scaleout`` jobs of the test analysis over ``fileset`` (files the pool's jobs can read)."""
    analysis = make_analysis(shared_dir / "analysis", fileset)
    for path in (shared_dir / "analysis").iterdir():
        path.chmod(0o644)
    ro = write_options(shared_dir / "ro.yaml", options)
    outdir = _open_dir(shared_dir / "out")
    jobs_dir = _open_dir(outdir / "job")
    _open_dir(jobs_dir / "logs")
    base = ["--cfg", analysis, "-o", outdir, "-e", "condor", "-ro", ro, "-ll", "WARNING"]
    result = invoke_run([*base, "-s", scaleout])
    assert result.exit_code == 0, (result.output, result.exception)
    return jobs_dir, base


def test_recreate_twice_never_duplicates_queued_jobs(condor_pool, shared_dir, reference_output):
    # no machine matches: both jobs stay idle in the schedd
    jobs_dir, base = _prepare(shared_dir, reference_output[1], "local-virtualenv: true\nmem-per-worker: 1000MB\n"
                              "job-extra-directives:\n  requirements: 'TARGET.Arch == \"NO-SUCH-ARCH\"'\n", 2)
    try:
        first = _copies(jobs_dir)
        assert [(job, status) for job, _, status, _ in first] == [(0, 1), (1, 1)]
        (jobs_dir / "job_1.idle").rename(jobs_dir / "job_1.failed")  # a flag that lies does not matter
        for _ in range(2):
            result = invoke_run([*base, "--recreate-jobs", "auto"])
            assert result.exit_code == 0, (result.output, result.exception)
            assert "Resubmitted 0 job(s)" in result.output and "2 skipped" in result.output
            assert f"job_0 is still queued/running/held in HTCondor ({first[0][1]}.0, idle)" in result.output
            assert f"job_1 is still queued/running/held in HTCondor ({first[1][1]}.1, idle)" in result.output
            assert _copies(jobs_dir) == first  # exactly one copy of each job, the original ones
        assert _history(jobs_dir) == [] and (jobs_dir / "job_1.failed").exists()

        # the copy of job 1 is removed: recreate resubmits it once, then skips it too
        import htcondor2

        htcondor2.Schedd().act(htcondor2.JobAction.Remove, f"{first[1][1]}.1")
        result = invoke_run([*base, "--recreate-jobs", "auto"])
        assert result.exit_code == 0, (result.output, result.exception)
        assert "Resubmitted 1 job(s)" in result.output and "1 skipped" in result.output
        copies = _copies(jobs_dir)
        assert [(job, status) for job, _, status, _ in copies] == [(0, 1), (1, 1)] and copies[0] == first[0]
        assert copies[1][1] != first[1][1] and (jobs_dir / "job_1.idle").exists()
        assert _history(jobs_dir) == [(1, "resubmit", 1000)]
        result = invoke_run([*base, "--recreate-jobs", "auto"])
        assert "Resubmitted 0 job(s)" in result.output and _copies(jobs_dir) == copies

        # the end: both copies removed, recreated with run options any machine matches (recreate takes
        # the current ones), run once each, and merged: equal to the local run
        _remove_all(jobs_dir)
        _wait_until(lambda: not _copies(jobs_dir), "the removed copies leaving the queue")
        write_options(shared_dir / "ro.yaml", "local-virtualenv: true\nmem-per-worker: 1000MB\n"
                      "job-extra-directives:\n  requirements: 'True'\n")
        result = invoke_run([*base, "--recreate-jobs", "auto"])
        assert result.exit_code == 0, (result.output, result.exception)
        assert "Resubmitted 2 job(s)" in result.output
        assert [job for job, _, _, _ in _copies(jobs_dir)] == [0, 1]
        assert _wait_for_flags(jobs_dir, [0, 1]) == {0: "done", 1: "done"}, logs_tail(jobs_dir)
        assert [(job, action) for job, action, _ in _history(jobs_dir)] == [(1, "resubmit"), (0, "resubmit"),
                                                                          (1, "resubmit")]
        assert_merged_equals(jobs_dir, *reference_output)
    finally:
        _remove_all(jobs_dir)


def _held(jobs_dir: Path, memory: int) -> list:
    import htcondor2

    return htcondor2.Schedd().query(
        constraint=f'PocketCoffeaJobsDir == "{jobs_dir}" && JobStatus == 5 && RequestMemory == {memory}',
        projection=["ClusterId", "HoldReasonCode", "HoldReasonSubCode", "HoldReason", "MemoryUsage"])


def test_memory_held_job_is_resubmitted_with_more_memory(condor_pool, shared_dir, reference_output):
    from rich.console import Console

    from pc_jobs.check_jobs import check_jobs

    # the job first allocates 300 MB for a minute (a real analysis would, in the middle of its run), or
    # until the test lets it go on to the analysis (the file ``go``)
    go = shared_dir / "go"
    hog = (f"{sys.executable} -c 'import os, time; block = \"x\" * (300 << 20); "
           f"[time.sleep(1) for _ in range(60) if not os.path.exists(\"{go}\")]'")
    options = ("local-virtualenv: true\nmem-per-worker: 100MB\n"
               f"custom-setup-commands:\n  - {json.dumps(hog)}\n"
               "job-extra-directives:\n"
               "  periodic_hold: MemoryUsage > RequestMemory\n"
               "  periodic_hold_reason: '\"memory usage exceeded request_memory\"'\n"
               "  periodic_hold_subcode: 34\n")
    jobs_dir, base = _prepare(shared_dir, reference_output[1], options, 1)
    try:
        held = _wait_until(lambda: _held(jobs_dir, 100), "a memory hold of job 0")
        assert (int(held[0]["HoldReasonCode"]), int(held[0]["HoldReasonSubCode"])) == (3, 34)
        assert int(held[0].eval("MemoryUsage")) > 100
        first_cluster = int(held[0]["ClusterId"])

        # --recreate-jobs auto (job 0 is flagged running): held copy removed, request_memory 100 -> 150
        result = invoke_run([*base, "--recreate-jobs", "auto"])
        assert result.exit_code == 0, (result.output, result.exception)
        assert f"job_0: removed held copy {first_cluster}.0; resubmitted with request_memory 150 MB" in \
            result.output.replace("\n", " ")
        copies = _copies(jobs_dir)
        assert len(copies) == 1 and copies[0][0] == 0 and copies[0][1] != first_cluster and copies[0][3] == 150
        assert sub_commands(jobs_dir / "job_0.sub")["request_memory"] == "150"
        assert _history(jobs_dir) == [(0, "remove", 100), (0, "resubmit", 150)]

        # still too little: held again; check-jobs --resubmit replaces it with 150 * 2 = 300 MB
        held = _wait_until(lambda: _held(jobs_dir, 150), "a memory hold of the resubmitted job 0")
        second_cluster = int(held[0]["ClusterId"])
        check_jobs(jobs_dir, resubmit=True, once=True, group_by="none", console=Console(width=200),
                   memory_factor=2.0, memory_ceiling=4000)
        copies = _copies(jobs_dir)
        assert len(copies) == 1 and copies[0][1] not in (first_cluster, second_cluster) and copies[0][3] == 300
        assert _history(jobs_dir)[2:] == [(0, "remove", 150), (0, "resubmit", 300)]

        # the end: held once more at 300 MB; with enough memory (300 * 4) the job runs to the end
        held = _wait_until(lambda: _held(jobs_dir, 300), "a memory hold of the job resubmitted with 300 MB")
        go.touch()
        check_jobs(jobs_dir, resubmit=True, once=True, group_by="none", console=Console(width=200),
                   memory_factor=4.0, memory_ceiling=4000)
        assert [(job, memory) for job, _, _, memory in _copies(jobs_dir)] == [(0, 1200)]
        assert _history(jobs_dir)[4:] == [(0, "remove", 300), (0, "resubmit", 1200)]
        assert _wait_for_flags(jobs_dir, [0]) == {0: "done"}, logs_tail(jobs_dir)
        assert_merged_equals(jobs_dir, *reference_output)
    finally:
        _remove_all(jobs_dir)


# A submit node without coffea, pc-run or the analysis' workflow: importing any of them fails
# (a meta-path finder installed by sitecustomize.py, first on PYTHONPATH).
NO_COFFEA = '''
import sys

BLOCKED = {"coffea", "pc_run", "workflow_pcrun", "cuts_pcrun", "config_pcrun"}


class NoCoffea:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a submit node without coffea)", name=name)
        return None


sys.meta_path.insert(0, NoCoffea())
'''

CHECK_JOBS = '''
import sys

for name in ("coffea", "pc_run", "workflow_pcrun"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} is importable: the blocker does not work")
from pc_jobs.check_jobs import main

sys.argv = ["check-jobs", "-j", sys.argv[1], "--resubmit", "--once", "--by", "none"]
try:
    main()
finally:
    print("LOADED", sorted({m.partition(".")[0] for m in sys.modules} & {"coffea", "pc_run", "workflow_pcrun"}))
'''


def test_check_jobs_resubmit_without_coffea_recovers_a_real_failed_job(condor_pool, shared_dir,
                                                                      reference_output):
    import os
    import subprocess

    from pc_jobs.job_config import JOB_FORMAT, read_job_data
    from pc_jobs.job_state import reconcile

    # the job fails for real the first time: a read failure of its ttbar file, exit 7 before the analysis
    go = shared_dir / "go"
    tt_file = next(f for entry in reference_output[1].values() for f in entry["files"] if "tt" in Path(f).name)
    fail_once = (f"[ -e {go} ] || {{ echo 'input file {tt_file} of dataset {TT} cannot be read "
                 "(missing-file)' >&2; exit 7; }")
    options = ("local-virtualenv: true\nmem-per-worker: 1000MB\n"
               f"custom-setup-commands:\n  - {json.dumps(fail_once)}\n")
    jobs_dir, _ = _prepare(shared_dir, reference_output[1], options, 1)
    try:
        _wait_until(lambda: reconcile(jobs_dir)[0].state == "failed", "job 0 failing with exit code 7")
        job = reconcile(jobs_dir)[0]
        assert (job.exit_code, job.flag) == (7, "running")  # the wrapper never flagged it: HTCondor says failed
        job_data = read_job_data(jobs_dir / "config_job_0.pkl")
        assert job_data["format"] == JOB_FORMAT and tt_file in job_data["fileset"][TT]["files"]

        go.touch()
        blocker = _open_dir(shared_dir / "no-coffea")
        (blocker / "sitecustomize.py").write_text(NO_COFFEA)
        env = {**os.environ, "PYTHONPATH": str(blocker), "COLUMNS": "200"}
        done = subprocess.run([sys.executable, "-c", CHECK_JOBS, str(jobs_dir)], env=env, capture_output=True,
                              text=True, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "LOADED []" in output, output[-4000:]
        # the read failure was read from the job's log and its file looked up (no other replica of a
        # local file: the job data is read, restricted to builtins, and left as it was)
        assert (jobs_dir / "xrootdfaillist.txt").read_text().split() == [tt_file], output[-4000:]
        assert read_job_data(jobs_dir / "config_job_0.pkl") == job_data
        assert "job_0 resubmitted as HTCondor cluster" in output, output[-4000:]
        assert [(j, action) for j, action, _ in _history(jobs_dir)] == [(0, "resubmit")]
        assert [job for job, _, _, _ in _copies(jobs_dir)] == [0]

        # the resubmitted job runs for real: its output, merged, equals the local run
        assert _wait_for_flags(jobs_dir, [0]) == {0: "done"}, logs_tail(jobs_dir)
        assert_merged_equals(jobs_dir, *reference_output)
    finally:
        _remove_all(jobs_dir)


def test_a_job_htcondor_retries_is_never_resubmitted_by_a_watching_check_jobs(condor_pool, shared_dir,
                                                                             reference_output):
    import io
    import threading

    from rich.console import Console

    from pc_jobs.check_jobs import check_jobs

    # the first attempt exits 7 before its analysis; HTCondor runs the job again itself (max_retries 2)
    first = shared_dir / "first-attempt"
    fail_first = f"[ -e {first} ] || {{ : > {first}; echo 'first attempt fails on purpose' >&2; exit 7; }}"
    options = ("local-virtualenv: true\nmem-per-worker: 1000MB\nmax-retries: 2\n"
               f"custom-setup-commands:\n  - {json.dumps(fail_first)}\n")
    jobs_dir, _ = _prepare(shared_dir, reference_output[1], options, 1)
    try:
        assert sub_commands(jobs_dir / "job_0.sub")["max_retries"] == "2"
        output = io.StringIO()
        outcome: dict = {}

        def watch() -> None:  # check-jobs --resubmit, live, from submission to the end
            try:
                outcome["result"] = check_jobs(jobs_dir, resubmit=True, interval=1.0, group_by="none",
                                               console=Console(file=output, width=300))
            except Exception as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        watcher.join(timeout=HOLD_WAIT * 4)
        assert not watcher.is_alive(), f"check-jobs still watching: {output.getvalue()[-3000:]}"
        assert "error" not in outcome, (outcome, output.getvalue()[-3000:])
        assert outcome["result"].states == {0: "done"}, output.getvalue()[-3000:]
        assert first.exists()  # the first attempt did fail

        # HTCondor ran the one copy twice (exit 7, then 0); check-jobs resubmitted nothing
        events = (jobs_dir / "logs" / "job_0.log").read_text()
        assert events.count("000 (") == 1 and events.count("001 (") == 2, events[-3000:]
        assert "Normal termination (return value 7)" in events and "Normal termination (return value 0)" in events
        assert _history(jobs_dir) == [] and not (jobs_dir / "check_jobs_state.json").exists()
        assert _copies(jobs_dir) == []
        assert_merged_equals(jobs_dir, *reference_output)
    finally:
        _remove_all(jobs_dir)
