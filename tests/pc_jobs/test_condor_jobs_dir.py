"""The jobs folder the condor executors write (dry-run: prepared, not submitted), through ``pocket-coffea run``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from pc_core.config_loading import load_configurator
from pc_jobs.job_config import read_job_data
from condor_testlib import (
    DATA,
    DY,
    TT,
    fileset_for,
    invoke_run,
    make_analysis,
    queue_items,
    sub_commands,
    write_options,
)


@pytest.fixture()
def analysis(tmp_path, nanoaod_dir) -> Path:
    return make_analysis(tmp_path / "analysis", fileset_for(nanoaod_dir))


def _jobs(outdir: Path) -> dict:
    return yaml.safe_load((outdir / "job" / "jobs_config.yaml").read_text())


def _files(fileset: dict) -> list[tuple[str, str]]:
    return [(dataset, f) for dataset, entry in fileset.items() for f in entry["files"]]


def test_scaleout_dry_run_writes_the_jobs_folder(analysis, tmp_path, nanoaod_dir):
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\nlocal-virtualenv: true\ntree-reduction: 7\nretries: 4\nretry-delay: 2.5\n")
    outdir = tmp_path / "out"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "condor", "-s", "3", "-c", "25", "-ro", options,
                         "--skip-bad-files", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    jobs_dir = outdir / "job"
    config = _jobs(outdir)
    assert config["version"] == 1 and sorted(config["jobs"]) == [0, 1, 2]

    # every input file in exactly one job, in order; per-dataset nevents of the slices add up
    source = fileset_for(nanoaod_dir)
    slices = [config["jobs"][i]["fileset"] for i in range(3)]
    assert [f for s in slices for f in _files(s)] == _files(source)
    for dataset, entry in source.items():
        assert sum(s[dataset]["metadata"]["nevents"] for s in slices if dataset in s) == entry["metadata"]["nevents"]

    for i in range(3):
        job = config["jobs"][i]
        assert job["output"] == str(outdir.absolute() / f"output_job_{i}.coffea")
        assert job["config"] == f"config_job_{i}.pkl"
        data = read_job_data(jobs_dir / job["config"])  # plain data naming the one shared configurator.pkl
        assert data is not None and data["format"] == "pocket-coffea-job/1"
        assert data["configurator"] == "configurator.pkl" and data["job"] == i
        assert {d: e["files"] for d, e in data["fileset"].items()} == {d: e["files"] for d, e in job["fileset"].items()}
        cfg = load_configurator(jobs_dir / job["config"])  # what the job's inner run loads
        assert {d: e["files"] for d, e in cfg.fileset.items()} == {d: e["files"] for d, e in job["fileset"].items()}
        assert (jobs_dir / f"job_{i}.idle").exists()
        assert not any((jobs_dir / f"job_{i}.{s}").exists() for s in ("running", "done", "failed"))
        sub = sub_commands(jobs_dir / f"job_{i}.sub")
        assert sub["arguments"] == f"\"'{i}' '25' '{jobs_dir.absolute()}' '{outdir.absolute()}'\""
        assert sub["output"].endswith(f"logs/job_{i}.out") and sub["log"].endswith(f"logs/job_{i}.log")
        assert f"config_job_{i}.pkl" in sub["transfer_input_files"]
        assert "inner_run_options.yaml" in sub["transfer_input_files"]
        assert f"{jobs_dir.absolute()}/configurator.pkl" in sub["transfer_input_files"]
        assert sub["request_memory"] == "2000" and sub["request_cpus"] == "1"
        assert "+JobFlavour" not in sub  # plain condor: no queue

    assert queue_items(jobs_dir / "jobs_all.sub") == ["25", "25", "25"]
    all_sub = sub_commands(jobs_dir / "jobs_all.sub")
    assert all_sub["arguments"].startswith('"$(Process) $(chunksize) ')
    assert all_sub["transfer_input_files"].startswith(f"{jobs_dir.absolute()}/config_job_$(Process).pkl")

    # only the keys of the in-job run go to the inner run (how it treats unreadable chunks)
    assert yaml.safe_load((jobs_dir / "inner_run_options.yaml").read_text()) == {
        "skip-bad-files": True, "tree-reduction": 7, "retries": 4, "retry-delay": 2.5}
    script = (jobs_dir / "job.sh").read_text()
    assert (jobs_dir / "job.sh").stat().st_mode & 0o111
    assert f"PC_BIN={Path(sys.prefix) / 'bin' / 'pocket-coffea'}" in script
    assert "--custom-run-options inner_run_options.yaml" in script and "-e iterative" in script
    assert (jobs_dir / "logs").is_dir()


def test_per_sample_budgets_and_chunksizes(tmp_path, nanoaod_dir):
    fileset = fileset_for(nanoaod_dir)
    # DY: three files (40, 0, 40 events) so that its budget of 40 makes two jobs; the third is a
    # copy (the data file itself may not be listed twice in one fileset)
    copy = tmp_path / "nano_dimuon.root"
    copy.write_bytes((nanoaod_dir / "nano_dimuon.root").read_bytes())
    fileset[DY]["files"].append(str(copy))
    fileset[DY]["metadata"].update(nevents=80, file_nevents=[40, 0, 40])
    analysis = make_analysis(tmp_path / "analysis", fileset)
    options = write_options(tmp_path / "ro.yaml", (
        "dry-run: true\n"
        "max-events-per-job: {default: 100, DYJetsToLL: 40, NotASample: 5}\n"
        "chunksize: {default: 1000, DYJetsToLL: 10, TTTo2L2Nu: 50}\n"
    ))
    outdir = tmp_path / "out"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "condor", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    config = _jobs(outdir)
    per_job = [(list(j["fileset"]), [Path(f).name for e in j["fileset"].values() for f in e["files"]])
               for _, j in sorted(config["jobs"].items())]
    assert per_job == [
        ([DY], ["nano_dy.root", "nano_dy_empty.root"]),
        ([DY], ["nano_dimuon.root"]),
        ([DATA], ["nano_dimuon.root"]),
        ([TT], ["nano_tt_v12.root"]),
    ]
    assert [j["fileset"][d]["metadata"]["nevents"] for j, d in zip(
        (config["jobs"][i] for i in range(4)), (DY, DY, DATA, TT))] == [40, 40, 40, 200]
    expected = ["10", "10", "1000", "50"]
    assert queue_items(outdir / "job" / "jobs_all.sub") == expected
    for i, chunksize in enumerate(expected):
        arguments = sub_commands(outdir / "job" / f"job_{i}.sub")["arguments"]
        assert arguments.split()[1] == f"'{chunksize}'"


def test_per_sample_chunksize_with_mixed_jobs_is_refused(analysis, tmp_path):
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\nchunksize: {default: 1000, DYJetsToLL: 10}\n")
    outdir = tmp_path / "out"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "condor", "-s", "1", "-ro", options])
    assert result.exit_code == 1
    assert "multiple samples" in str(result.exception) and "job 0" in str(result.exception)
    assert not (outdir / "job").exists()  # nothing written


def test_sites_are_data(analysis, tmp_path):
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\n")
    lx = tmp_path / "lx"
    result = invoke_run(["--cfg", analysis, "-o", lx, "-e", "condor@lxplus", "-s", "2", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    sub = sub_commands(lx / "job" / "job_1.sub")
    assert sub["+JobFlavour"] == '"microcentury"'
    assert sub["MY.SingularityImage"].startswith('"/cvmfs/unpacked.cern.ch/')
    assert sub["max_retries"] == "3" and sub["MY.SendCredential"] == "true"
    assert "PC_BIN=pocket-coffea" in (lx / "job" / "job.sh").read_text()  # from the image

    rubin = tmp_path / "rubin"
    result = invoke_run(["--cfg", analysis, "-o", rubin, "-e", "condor@rubin", "-s", "2", "-q", "workday",
                         "-ro", options, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    sub = sub_commands(rubin / "job" / "job_0.sub")
    assert sub["request_memory"] == "4000" and sub["+MaxRuntime"] == "21600" and sub["max_retries"] == "1"
    assert sub["+JobFlavour"] == '"workday"'


def test_existing_jobs_folder_is_not_overwritten(analysis, tmp_path):
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\n")
    outdir = tmp_path / "out"
    assert invoke_run(["--cfg", analysis, "-o", outdir, "-e", "condor", "-s", "2", "-ro", options]).exit_code == 0
    before = (outdir / "job" / "jobs_config.yaml").read_bytes()
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "condor", "-s", "3", "-ro", options])
    assert result.exit_code == 1 and "--recreate-jobs" in str(result.exception)
    assert (outdir / "job" / "jobs_config.yaml").read_bytes() == before
    assert not (outdir / "job" / "job_2.sub").exists()


def test_recreate_options_need_a_manual_job_executor(analysis, tmp_path):
    result = invoke_run(["--cfg", analysis, "-o", tmp_path / "o", "-e", "iterative", "--recreate-jobs", "auto"])
    assert result.exit_code == 1 and "manual-job executors" in str(result.exception)
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\n")
    result = invoke_run(["--cfg", analysis, "-o", tmp_path / "o2", "-e", "condor", "-s", "1", "-ro", options,
                         "--use-redirector"])
    assert result.exit_code == 1 and "--use-redirector" in str(result.exception)
