"""--recreate-jobs --blocklist-sites against the real Rucio server and XRootD sites (dry-run: no HTCondor needed)."""
from __future__ import annotations

import pytest
from condor_testlib import invoke_run, make_analysis, write_options
from pc_core.config_loading import load_configurator
from pc_jobs.job_config import read_job_data

pytestmark = pytest.mark.integration


def test_blocklist_moves_files_to_other_replicas(rucio_catalog, rucio_config, tmp_path, monkeypatch):
    from pc_datasets.urls import lfn_of

    monkeypatch.setenv("RUCIO_CONFIG", rucio_config)
    files = rucio_catalog.containers["dy"]  # f0, f1 at both sites; f2 at T2_CH_CERN only
    ports = rucio_catalog.ports
    urls = [files[0].pfn("T1_DE_KIT", ports), files[1].pfn("T1_DE_KIT", ports), files[2].pfn("T2_CH_CERN", ports)]
    fileset = {"DY_2018": {"files": urls, "metadata": {
        "sample": "DYJetsToLL", "year": "2018", "isMC": True, "xsec": 6077.22, "nevents": sum(f.events for f in files)}}}
    analysis = make_analysis(tmp_path / "analysis", fileset)
    options = write_options(tmp_path / "ro.yaml", "dry-run: true\n")
    base = ["--cfg", analysis, "-o", tmp_path / "out", "-e", "condor", "-ro", options, "-ll", "WARNING"]
    assert invoke_run([*base, "-s", "1"]).exit_code == 0

    result = invoke_run([*base, "--recreate-jobs", "0", "--blocklist-sites", "T1_DE_KIT"])
    assert result.exit_code == 0, (result.output, result.exception)
    job_file = tmp_path / "out" / "job" / "config_job_0.pkl"
    moved = read_job_data(job_file)["fileset"]["DY_2018"]["files"]  # plain job data, rewritten in place
    assert load_configurator(job_file).fileset["DY_2018"]["files"] == moved  # what the job runs on
    cern = f"root://127.0.0.1:{ports['T2_CH_CERN']}/"
    assert [lfn_of(u) for u in moved] == [f.lfn for f in files]  # same files, same order
    assert all(u.startswith(cern) for u in moved), moved          # the KIT files now read at CERN
    assert moved[2] == urls[2]                                     # a file at a non-blocklisted site is untouched
    # jobs_config.yaml keeps the fileset as submitted
    assert urls[0] in (tmp_path / "out" / "job" / "jobs_config.yaml").read_text()
