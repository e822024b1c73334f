"""``--recreate-jobs`` on a prepared (dry-run) jobs folder: selection, queues, replicas, inner options."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pc_jobs.job_config import read_job_data
from condor_testlib import (
    fileset_for,
    invoke_run,
    make_analysis,
    sub_commands,
    write_options,
)

SITE = "root://127.0.0.1:1094/"
REDIRECTOR = "root://xrootd-cms.infn.it/"


def _store_fileset(nanoaod_dir: Path) -> dict:
    """The test fileset with XRootD /store/ URLs (never opened: everything here is dry-run)."""
    fileset = fileset_for(nanoaod_dir)
    for entry in fileset.values():
        entry["files"] = [f"{SITE}/store/mc/Run3/{Path(f).name}" for f in entry["files"]]
    return fileset


@pytest.fixture()
def prepared(tmp_path, nanoaod_dir, monkeypatch):
    """A dry-run condor@lxplus jobs folder of 3 jobs, with job 0 done, 1 failed (XRootD error), 2 running."""
    monkeypatch.setenv("RUCIO_CONFIG", str(tmp_path / "no-rucio.cfg"))  # Rucio unreachable: redirector fallback
    analysis = make_analysis(tmp_path / "analysis", _store_fileset(nanoaod_dir))
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\n")
    outdir = tmp_path / "out"
    base = ["--cfg", analysis, "-o", outdir, "-e", "condor@lxplus", "-ro", options, "-ll", "WARNING"]
    result = invoke_run([*base, "-s", "3"])
    assert result.exit_code == 0, (result.output, result.exception)
    jobs_dir = outdir / "job"
    for index, state in ((0, "done"), (1, "failed"), (2, "running")):
        (jobs_dir / f"job_{index}.idle").unlink()
        (jobs_dir / f"job_{index}.{state}").touch()
    failing = _pickled_files(jobs_dir, 1)[0]
    (jobs_dir / "logs" / "job_1.err").write_text(
        f"OSError: XRootD error: [ERROR] Server responded with an error: [3011] no such file {failing}\n")
    return jobs_dir, base


def _pickled_files(jobs_dir: Path, index: int) -> list[str]:
    data = read_job_data(jobs_dir / f"config_job_{index}.pkl")  # plain data: never the Configurator
    assert data is not None and data["format"] == "pocket-coffea-job/1"
    return [f for entry in data["fileset"].values() for f in entry["files"]]


def _flags(jobs_dir: Path) -> dict[int, list[str]]:
    return {i: sorted(p.suffix[1:] for p in jobs_dir.glob(f"job_{i}.*") if p.suffix[1:] in
                      ("idle", "running", "done", "failed")) for i in range(3)}


def _flavour(jobs_dir: Path, index: int) -> str:
    return sub_commands(jobs_dir / f"job_{index}.sub")["+JobFlavour"]


def test_auto_recreates_failed_and_running_jobs(prepared):
    jobs_dir, base = prepared
    files_before = {i: _pickled_files(jobs_dir, i) for i in range(3)}
    jobs_config = (jobs_dir / "jobs_config.yaml").read_bytes()
    result = invoke_run([*base, "--recreate-jobs", "auto"])
    assert result.exit_code == 0, (result.output, result.exception)
    # a dry-run prepares the files but changes no flag and moves no log
    assert _flags(jobs_dir) == {0: ["done"], 1: ["failed"], 2: ["running"]}
    # the failed job read through XRootD with an error: other replica; Rucio unreachable -> redirector
    assert _pickled_files(jobs_dir, 1) == [f.replace(SITE, REDIRECTOR) for f in files_before[1]]
    assert all(f.startswith(REDIRECTOR + "/store/") for f in _pickled_files(jobs_dir, 1))
    assert _pickled_files(jobs_dir, 2) == files_before[2] and _pickled_files(jobs_dir, 0) == files_before[0]
    # dry-run: the log that triggered the rewrite stays; the running job moves one flavour up
    assert (jobs_dir / "logs" / "job_1.err").exists()
    assert not (jobs_dir / "logs" / "processedlogs").exists()
    assert [_flavour(jobs_dir, i) for i in range(3)] == ['"microcentury"', '"microcentury"', '"longlunch"']
    assert (jobs_dir / "jobs_config.yaml").read_bytes() == jobs_config
    # a second dry-run bumps from the flavour the job was submitted with: still one flavour up, no new rewrite
    result = invoke_run([*base, "--recreate-jobs", "auto"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert [_flavour(jobs_dir, i) for i in range(3)] == ['"microcentury"', '"microcentury"', '"longlunch"']
    assert _pickled_files(jobs_dir, 2) == files_before[2]


def test_explicit_jobs_queue_and_redirector(prepared):
    jobs_dir, base = prepared
    files_before = {i: _pickled_files(jobs_dir, i) for i in range(3)}
    result = invoke_run([*base, "--recreate-jobs", "0,2", "--recreate-queue", "superlong", "--use-redirector",
                         "--blocklist-sites", "T1_DE_KIT"])
    assert result.exit_code == 0, (result.output, result.exception)
    run_log = (jobs_dir.parent / "run.log").read_text()  # the run's log file keeps every warning
    assert "--blocklist-sites T1_DE_KIT is ignored" in run_log
    assert "'superlong' is not a known HTCondor JobFlavour" in run_log
    assert _flags(jobs_dir) == {0: ["done"], 1: ["failed"], 2: ["running"]}  # dry-run: no flag changes
    for i in (0, 2):
        assert _pickled_files(jobs_dir, i) == [f.replace(SITE, REDIRECTOR) for f in files_before[i]]
        assert _flavour(jobs_dir, i) == '"superlong"'
    assert _pickled_files(jobs_dir, 1) == files_before[1] and _flavour(jobs_dir, 1) == '"microcentury"'
    # an explicit known queue wins over the auto bump of the running job
    result = invoke_run([*base, "--recreate-jobs", "2", "--recreate-queue", "espresso"])
    assert result.exit_code == 0 and _flavour(jobs_dir, 2) == '"espresso"'


def test_skip_bad_files_patches_an_old_jobs_folder_once(prepared):
    jobs_dir, base = prepared
    # a jobs folder from before inner_run_options.yaml existed
    script = jobs_dir / "job.sh"
    script.write_text(script.read_text().replace(" --custom-run-options inner_run_options.yaml", ""))
    sub = jobs_dir / "job_1.sub"
    commands = sub_commands(sub)
    old_inputs = commands["transfer_input_files"].split(", ")[0]
    sub.write_text(sub.read_text().replace(commands["transfer_input_files"], old_inputs))
    (jobs_dir / "inner_run_options.yaml").unlink()
    for _ in range(2):
        result = invoke_run([*base, "--recreate-jobs", "1", "--skip-bad-files"])
        assert result.exit_code == 0, (result.output, result.exception)
        assert yaml.safe_load((jobs_dir / "inner_run_options.yaml").read_text()) == {
            "skip-bad-files": True, "tree-reduction": 20, "retries": 20, "retry-delay": 1}
        assert script.read_text().count("--custom-run-options inner_run_options.yaml") == 1
        assert sub_commands(sub)["transfer_input_files"] == f"{old_inputs}, {jobs_dir}/inner_run_options.yaml"
    assert "\"$PC_BIN\" run --custom-run-options inner_run_options.yaml --cfg" in script.read_text()


@pytest.mark.parametrize(("selection", "message"), [
    ("1,x", "expected 'auto' or a comma separated list"),
    ("1,7", "no job 7 in the jobs folder"),
])
def test_bad_selection_changes_nothing(prepared, selection, message):
    jobs_dir, base = prepared
    before = {p.name: p.read_bytes() for p in jobs_dir.iterdir() if p.is_file()}
    result = invoke_run([*base, "--recreate-jobs", selection])
    assert result.exit_code == 1 and message in str(result.exception)
    assert {p.name: p.read_bytes() for p in jobs_dir.iterdir() if p.is_file()} == before


def test_recreate_without_jobs_folder(tmp_path, nanoaod_dir):
    analysis = make_analysis(tmp_path / "analysis", fileset_for(nanoaod_dir))
    result = invoke_run(["--cfg", analysis, "-o", tmp_path / "empty", "-e", "condor", "--recreate-jobs", "auto"])
    assert result.exit_code == 1 and "jobs_config.yaml does not exist" in str(result.exception)


def test_read_failures_named_in_either_log_format(tmp_path):
    """--recreate-jobs reads a job's logs like check-jobs: uproot's messages and pc-run's own."""
    from pc_jobs.jobs_dir import JobsDir
    from pc_jobs.recreate import xrootd_failures

    jobs = JobsDir(tmp_path)
    jobs.logs.mkdir(parents=True)
    dead = "root://127.0.0.1:1096//store/mc/a.root"
    missing = "root://127.0.0.1:1094//store/mc/b.root"
    jobs.log(0, "err").write_text(
        f"pc_core.errors.PocketCoffeaError: input file {dead} of dataset 'DY_2018' cannot be read (dead-server): "
        "Operation expired\n"
    )
    jobs.log(0, "out").write_text(f"OSError: XRootD error: [ERROR] Server responded with an error: [3011] no such file\nin file {missing}\n")
    jobs.log(1, "out").write_text("Traceback ...\nValueError: a bug in the analysis\n")
    assert xrootd_failures(jobs, 0) == (True, sorted([dead, missing]))
    assert xrootd_failures(jobs, 1) == (False, [])
