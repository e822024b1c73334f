"""condor manual jobs on the real one-node HTCondor pool (services/start_condor.sh).

One submission of three jobs of the test analysis over the real NanoAOD files, one of
which reads a file that is not there yet: two jobs end ``.done``, one ``.failed``. After
the file is put in place, ``--recreate-jobs auto`` resubmits only that job; then
``merge-outputs -jc`` must equal a local iterative run of the same analysis.

Jobs run inside the pool's chroot as uid 2001 with /tmp, the checkout and the Python
prefix visible, so everything they touch lives in a world-writable folder under /tmp.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from condor_testlib import (
    DATA,
    DY,
    TT,
    assert_outputs_equal,
    copy_for_jobs,
    fileset_for,
    invoke_run,
    make_analysis,
    write_options,
)

pytestmark = pytest.mark.integration

WAIT_SECONDS = 180


@pytest.fixture()
def shared_dir():
    """A folder the job user (uid 2001) can read and write; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pc-condor-test-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _open_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # not sticky: jobs replace the flag files the submitter created
    return path


def _wait_for_flags(jobs_dir: Path, indices: list[int], timeout: float = WAIT_SECONDS) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        states = {i: next((s for s in ("done", "failed") if (jobs_dir / f"job_{i}.{s}").exists()), "pending")
                  for i in indices}
        if all(s != "pending" for s in states.values()):
            return states
        time.sleep(1)
    logs = {p.name: p.read_text()[-1500:] for p in sorted((jobs_dir / "logs").glob("job_*")) if p.is_file()}
    pytest.fail(f"condor jobs not finished after {timeout}s: {states}; logs: {logs}")


def test_condor_jobs_failure_recreate_and_merge(condor_pool, shared_dir, nanoaod_dir):
    from click.testing import CliRunner
    from pc_core.output import load_output
    from pc_jobs.merge import merge_outputs_command

    data_dir = copy_for_jobs(nanoaod_dir, shared_dir / "data")
    fileset = fileset_for(data_dir)
    # the ttbar file is announced at a path that does not exist yet: its job must fail
    late_dir = _open_dir(shared_dir / "late")
    fileset[TT]["files"] = [str(late_dir / "nano_tt_v12.root")]
    analysis = make_analysis(shared_dir / "analysis", fileset)
    for path in (shared_dir / "analysis").iterdir():
        path.chmod(0o644)
    options = write_options(shared_dir / "ro.yaml", "local-virtualenv: true\n")
    outdir = _open_dir(shared_dir / "out")
    jobs_dir = _open_dir(outdir / "job")
    _open_dir(jobs_dir / "logs")

    base = ["--cfg", analysis, "-o", outdir, "-e", "condor", "-ro", options, "-ll", "WARNING"]
    result = invoke_run([*base, "-s", "3"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Submitted 3 jobs" in result.output
    states = _wait_for_flags(jobs_dir, [0, 1, 2])
    assert states == {0: "done", 1: "done", 2: "failed"}, states
    assert not (outdir / "output_job_2.coffea").exists()
    assert str(late_dir / "nano_tt_v12.root") in (jobs_dir / "logs" / "job_2.err").read_text() + \
        (jobs_dir / "logs" / "job_2.out").read_text()
    done_outputs = {i: (outdir / f"output_job_{i}.coffea").stat().st_mtime_ns for i in (0, 1)}

    # fix the cause, then resubmit only what failed
    shutil.copy(data_dir / "nano_tt_v12.root", late_dir / "nano_tt_v12.root")
    (late_dir / "nano_tt_v12.root").chmod(0o644)
    result = invoke_run([*base, "--recreate-jobs", "auto"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Resubmitted 1 job(s)" in result.output
    assert _wait_for_flags(jobs_dir, [2]) == {2: "done"}
    assert {i: (outdir / f"output_job_{i}.coffea").stat().st_mtime_ns for i in (0, 1)} == done_outputs

    merge = CliRunner().invoke(merge_outputs_command, ["-jc", str(jobs_dir), "-ll", "WARNING"])
    assert merge.exit_code == 0, (merge.output, merge.exception)
    merged = load_output(outdir / "output_merged.coffea")
    assert merged["cutflow"]["initial"] == {DY: 40, DATA: 40, TT: 200}

    reference_dir = shared_dir / "reference"
    result = invoke_run(["--cfg", analysis, "-o", reference_dir, "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    reference = load_output(reference_dir / "output_all.coffea")
    # per-job bookkeeping (chunks, timing, which job read what) legitimately differs
    assert_outputs_equal(reference, merged, skip=("processing_metadata",))
