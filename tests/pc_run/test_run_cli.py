"""Every option of `pocket-coffea run`, through the command line."""
from __future__ import annotations

import gc
import json
import subprocess
import sys

import yaml

from analysis_testlib import DATA, DY, invoke_run, make_analysis, standard_fileset
from pc_core.output import load_output


def _two_datasets(nanoaod_dir, fail_dy: bool = False) -> dict:
    """Data and DY (without its empty file); DY can be made to fail in the workflow."""
    full = standard_fileset(nanoaod_dir)
    fileset = {DATA: full[DATA], DY: full[DY]}
    fileset[DY]["files"] = fileset[DY]["files"][:1]
    if fail_dy:
        fileset[DY]["metadata"]["fail_on_purpose"] = True
    return fileset


def test_help_lists_every_option():
    result = subprocess.run([sys.executable, "-m", "pocket_coffea.cli", "run", "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for flag in ("--cfg", "-ro, --custom-run-options", "-o, --outputdir", "-t, --test", "-lf, --limit-files",
                 "-lc, --limit-chunks", "-e, --executor", "-s, --scaleout", "-c, --chunksize", "-q, --queue",
                 "-ll, --loglevel", "-ps, --process-separately", "--filter-years", "--filter-samples",
                 "--filter-datasets", "--resubmit-failed", "--executor-custom-setup", "--skip-bad-files"):
        assert flag in result.stdout, flag


def test_test_mode_filters_limits_and_run_files(analysis_config, tmp_path):
    result = invoke_run(["--cfg", analysis_config, "-o", tmp_path, "--test", "-c", "10", "--filter-years", "2018",
                         "--filter-samples", "DYJetsToLL,DATA_DoubleMuon", "-ll", "INFO"])
    assert result.exit_code == 0, (result.output, result.exception)
    for name in ("output_all.coffea", "config.json", "configurator.pkl", "parameters_dump.yaml", "run.log",
                 "processing_report.json", "run_options.yaml"):
        assert (tmp_path / name).is_file(), name
    options = yaml.safe_load((tmp_path / "run_options.yaml").read_text())
    assert options["executor"] == "iterative" and options["limit-files"] == 1 and options["limit-chunks"] == 2
    report = json.loads((tmp_path / "processing_report.json").read_text())
    # one file per dataset, 2 chunks of 10 events each (the DY empty file is beyond the file limit)
    assert {d: (r["files"], r["chunks"], r["events"]) for d, r in report["datasets"].items()} == {
        DY: (1, 2, 20), DATA: (1, 2, 20)
    }
    assert report["totals"]["events"] == 40 and report["totals"]["events_per_second"] > 0
    output = load_output(tmp_path / "output_all.coffea")
    assert set(output["cutflow"]["initial"]) == {DY, DATA}
    assert "Processing summary" in result.output
    assert gc.get_freeze_count() == 0  # the run froze its start-up objects and let them go again


def test_filter_datasets_limit_chunks_and_options_file(analysis_config, tmp_path):
    options = tmp_path / "my_run_options.yaml"
    options.write_text("chunksize: 10\nretries: 0\n")
    out = tmp_path / "out"
    result = invoke_run(["--cfg", analysis_config, "-o", out, "-ro", options, "-lc", "1", "-lf", "1",
                         "--filter-datasets", DATA, "-s", "1", "-q", "short", "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    saved = yaml.safe_load((out / "run_options.yaml").read_text())
    assert saved["chunksize"] == 10 and saved["retries"] == 0 and saved["queue"] == "short" and saved["limit-chunks"] == 1
    output = load_output(out / "output_all.coffea")
    assert output["cutflow"]["initial"] == {DATA: 10}


def test_unknown_filter_and_bad_option_fail_clearly(analysis_config, tmp_path):
    result = invoke_run(["--cfg", analysis_config, "-o", tmp_path, "--filter-samples", "NoSuchSample"])
    assert result.exit_code != 0
    assert "NoSuchSample" in str(result.exception)
    result = invoke_run(["--cfg", analysis_config, "-o", tmp_path, "-e", "no-such-executor"])
    assert result.exit_code != 0 and "no-such-executor" in str(result.exception)
    assert not (tmp_path / "output_all.coffea").exists()


def test_missing_and_corrupt_files_skipped_and_reported(nanoaod_dir, tmp_path):
    fileset = {DY: standard_fileset(nanoaod_dir)[DY]}
    missing = str(tmp_path / "does_not_exist.root")
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(b"this is not a ROOT file" * 100)
    fileset[DY]["files"] += [missing, str(corrupt)]
    config = make_analysis(tmp_path / "analysis", fileset)

    # without skip-bad-files: a clear failure naming the file, nothing written
    failed = subprocess.run(
        [sys.executable, "-m", "pocket_coffea.cli", "run", "--cfg", str(config), "-o", str(tmp_path / "fail")],
        capture_output=True, text=True,
    )
    assert failed.returncode != 0
    assert "does_not_exist.root" in failed.stderr or "corrupt.root" in failed.stderr
    assert "skip-bad-files" in failed.stderr
    assert not (tmp_path / "fail" / "output_all.coffea").exists()

    out = tmp_path / "skip"
    result = invoke_run(["--cfg", config, "-o", out, "--skip-bad-files", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    output = load_output(out / "output_all.coffea")
    skipped = {s["file"]: s["reason"] for s in output["processing_metadata"]["skipped_files"]}
    assert set(skipped) == {missing, str(corrupt)}
    assert "not found" in skipped[missing].lower()
    report = json.loads((out / "processing_report.json").read_text())
    assert report["datasets"][DY]["files_skipped"] == 2 and report["totals"]["skipped_files"] == 2
    log = (out / "run.log").read_text()
    assert missing in log and str(corrupt) in log
    # the readable files are fully processed
    assert output["cutflow"]["initial"] == {DY: 40}


def test_process_separately_groups_failure_and_resubmission(nanoaod_dir, tmp_path):
    config = make_analysis(tmp_path / "analysis", _two_datasets(nanoaod_dir, fail_dy=True))
    options = tmp_path / "ro.yaml"
    options.write_text(yaml.safe_dump({"retries": 0, "group-samples": {"dimuon": ["DATA_DoubleMuon"], "dy": ["DYJetsToLL"]}}))
    out = tmp_path / "out"
    base = ["--cfg", config, "-o", out, "-ro", options, "-ll", "WARNING"]

    result = invoke_run([*base, "-ps"])
    assert result.exit_code != 0
    assert "1 job(s) failed" in str(result.exception)
    assert json.loads((out / "failed_jobs.json").read_text()) == ["dy"]
    assert (out / "output_dimuon.coffea").is_file() and not (out / "output_dy.coffea").exists()
    report = json.loads((out / "processing_report.json").read_text())
    assert report["groups"]["dy"]["status"] == "failed" and "fails on purpose" in report["groups"]["dy"]["error"]
    assert "fails on purpose" in (out / "run.log").read_text()
    assert gc.get_freeze_count() == 0  # a failing group unfreezes too

    # the failed jobs of a -ps run are resubmitted with -ps (a run without -ps has the one job "all")
    result = invoke_run([*base, "--resubmit-failed"])
    assert result.exit_code != 0 and "--process-separately" in str(result.exception)

    # a rerun that fails again overwrites nothing and keeps failed_jobs.json
    (out / "output_dy.coffea").write_bytes(b"previous output")
    done_mtime = (out / "output_dimuon.coffea").stat().st_mtime_ns
    result = invoke_run([*base, "-ps", "--resubmit-failed"])
    assert result.exit_code != 0
    assert (out / "output_dy.coffea").read_bytes() == b"previous output"
    assert (out / "output_dimuon.coffea").stat().st_mtime_ns == done_mtime
    assert json.loads((out / "failed_jobs.json").read_text()) == ["dy"]

    # fixed input: only the failed group reruns, failed_jobs.json disappears
    make_analysis(tmp_path / "analysis", _two_datasets(nanoaod_dir))
    result = invoke_run([*base, "-ps", "--resubmit-failed"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert not (out / "failed_jobs.json").exists()
    assert (out / "output_dimuon.coffea").stat().st_mtime_ns == done_mtime
    dy = load_output(out / "output_dy.coffea")
    dimuon = load_output(out / "output_dimuon.coffea")
    assert dy["cutflow"]["initial"] == {DY: 40} and dimuon["cutflow"]["initial"] == {DATA: 40}
    assert set(dy["variables"]["met"]) == {"DYJetsToLL__highMET", "DYJetsToLL__lowMET"}
    report = json.loads((out / "processing_report.json").read_text())
    assert {g: v["status"] for g, v in report["groups"].items()} == {"dimuon": "done", "dy": "done"}
    assert set(report["datasets"]) == {DATA, DY}


def test_process_separately_per_dataset_and_custom_executor_setup(nanoaod_dir, tmp_path):
    config = make_analysis(tmp_path / "analysis", _two_datasets(nanoaod_dir))
    setup = tmp_path / "my_executor.py"
    setup.write_text(
        "from pc_run.executors import IterativeExecutorFactory\n"
        "class Marked(IterativeExecutorFactory):\n"
        "    def setup(self):\n"
        "        (self.outputdir / 'custom_setup_used.txt').write_text('yes')\n"
        "def get_executor_factory(executor_name, **kwargs):\n"
        "    return Marked(**kwargs)\n"
    )
    out = tmp_path / "out"
    result = invoke_run(["--cfg", config, "-o", out, "-ps", "--executor-custom-setup", setup, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert (out / "custom_setup_used.txt").read_text() == "yes"
    assert (out / f"output_{DATA}.coffea").is_file() and (out / f"output_{DY}.coffea").is_file()
    assert not (out / "failed_jobs.json").exists()
