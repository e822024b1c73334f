"""merge-outputs: completeness checks, merged values, files untouched, exit codes."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot
import yaml
from click.testing import CliRunner

from pc_core.errors import OutputError
from pc_core.fileset import load_fileset_json
from pc_core.output import load_output, save_output
from pc_jobs.merge import load_jobs_config, merge_outputs, merge_outputs_command

BINS = np.array([0.0, 10.0, 20.0, 40.0, 80.0, 200.0])
BIN_PY = Path(sys.executable).parent


@pytest.fixture(scope="module")
def events(nanoaod_dir):
    """Per-event (genWeight, sum of muon pt) of the real DY file and sum pt of the data file."""
    dy = uproot.open(nanoaod_dir / "nano_dy.root")["Events"].arrays(["genWeight", "Muon_pt"], library="np")
    data = uproot.open(nanoaod_dir / "nano_dimuon.root")["Events"]["Muon_pt"].array(library="np")
    return {
        "DY_2018": (dy["genWeight"].astype(float), np.array([float(np.sum(p)) for p in dy["Muon_pt"]])),
        "DATA_2018": (np.ones(len(data)), np.array([float(np.sum(p)) for p in data])),
    }


META = {
    "DY_2018": {"sample": "DY", "year": "2018", "isMC": True, "xsec": 6077.22},
    "DATA_2018": {"sample": "DATA", "year": "2018", "isMC": False},
}


def job_output(events, dataset: str, sl: slice, *, processed: slice | None = None, skim_file: str | None = None):
    """The output of a job over ``sl`` of ``dataset``; ``processed`` < ``sl`` simulates lost events."""
    processed = processed or sl
    weights, pt = events[dataset][0][processed], events[dataset][1][processed]
    sample = META[dataset]["sample"]
    h = hist.Hist.new.StrCat(["baseline"], name="cat").StrCat(["nominal"], name="variation").Var(BINS, name="pt").Weight()
    h.fill(cat="baseline", variation="nominal", pt=pt, weight=weights)
    nslice = len(range(*sl.indices(40)))
    output = {
        "sum_genweights": {dataset: float(weights.sum())} if META[dataset]["isMC"] else {},
        "sum_signOf_genweights": {},
        "cutflow": {"initial": {dataset: len(pt)}, "skim": {dataset: int((pt > 0).sum())},
                    "baseline": {dataset: {sample: len(pt)}}},
        "sumw": {"baseline": {dataset: {sample: float(weights.sum())}}},
        "sumw2": {"baseline": {dataset: {sample: float((weights**2).sum())}}},
        "variables": {"pt": {sample: {dataset: h}}},
        "columns": {},
        "datasets_metadata": {
            "by_datataking_period": {"2018": {sample: [dataset]}},
            "by_dataset": {dataset: {**META[dataset], "nevents": nslice}},
        },
        "processing_metadata": {"events": {dataset: len(pt)}, "lumi_pb": {"2018": 59740.0},
                                "weights_applied": {dataset: ["genWeight"] if META[dataset]["isMC"] else []},
                                "normalised": False, "skipped_files": []},
    }
    if skim_file:
        output["skimmed_files"] = {dataset: [skim_file]}
        output["nskimmed_events"] = {dataset: [int((pt > 0).sum())]}
    return output


SLICES = {"0": ("DY_2018", slice(0, 20)), "1": ("DY_2018", slice(20, 40)), "2": ("DATA_2018", slice(0, 40))}


def make_jobs_dir(tmp_path, events, nanoaod_dir, *, lost: dict | None = None, skip_outputs=(), skim=False) -> Path:
    """A jobs folder as the condor executor writes it, with the outputs of the finished jobs."""
    output_dir = tmp_path / "output"
    jobs_dir = output_dir / "job"
    jobs_dir.mkdir(parents=True)
    jobs = {}
    files = {"DY_2018": str(nanoaod_dir / "nano_dy.root"), "DATA_2018": str(nanoaod_dir / "nano_dimuon.root")}
    for name, (dataset, sl) in SLICES.items():
        out = output_dir / f"output_job_{name}.coffea"
        nslice = sl.stop - sl.start
        jobs[int(name)] = {
            "fileset": {dataset: {"files": [files[dataset]], "metadata": {**META[dataset], "nevents": nslice}}},
            "config": f"config_job_{name}.pkl",
            "output": str(out),
        }
        if name in skip_outputs:
            continue
        processed = (lost or {}).get(name)
        skim_file = str(output_dir / "skim" / f"{dataset}_{name}.root") if skim else None
        save_output(job_output(events, dataset, sl, processed=processed, skim_file=skim_file), out)
    (jobs_dir / "jobs_config.yaml").write_text(yaml.safe_dump({"version": 1, "jobs": jobs}))
    return jobs_dir


def digest(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def invoke(*args):
    return CliRunner().invoke(merge_outputs_command, list(args))


def test_merge_jobs_dir_values_and_inputs_untouched(tmp_path, events, nanoaod_dir):
    jobs_dir = make_jobs_dir(tmp_path, events, nanoaod_dir)
    inputs = sorted((tmp_path / "output").glob("output_job_*.coffea"))
    before = digest(inputs)
    result = invoke("-jc", str(jobs_dir))
    assert result.exit_code == 0, result.output + repr(result.exception)
    merged_path = tmp_path / "output" / "output_merged.coffea"
    merged = load_output(merged_path)
    genw, pt = events["DY_2018"]
    h = merged["variables"]["pt"]["DY"]["DY_2018"][{"cat": "baseline", "variation": "nominal"}]
    np.testing.assert_allclose(h.values(), np.histogram(pt, bins=BINS, weights=genw)[0], rtol=1e-12)
    np.testing.assert_allclose(h.variances(), np.histogram(pt, bins=BINS, weights=genw**2)[0], rtol=1e-12)
    assert merged["cutflow"]["initial"] == {"DY_2018": 40, "DATA_2018": 40}
    assert merged["sum_genweights"]["DY_2018"] == pytest.approx(genw.sum(), rel=1e-12)
    assert merged["datasets_metadata"]["by_dataset"]["DY_2018"]["nevents"] == 40
    assert merged["processing_metadata"]["lumi_pb"] == {"2018": 59740.0}
    assert digest(inputs) == before
    assert "DY_2018" in result.output and "ok" in result.output
    # refuses to overwrite without --overwrite, then does with it
    again = invoke("-jc", str(jobs_dir))
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    assert invoke("-jc", str(jobs_dir), "--overwrite").exit_code == 0
    # the yaml itself and the parent output folder are accepted too
    assert load_jobs_config(jobs_dir / "jobs_config.yaml").jobs_dir == jobs_dir
    assert len(load_jobs_config(tmp_path / "output").jobs) == 3


def test_missing_job_outputs(tmp_path, events, nanoaod_dir):
    jobs_dir = make_jobs_dir(tmp_path, events, nanoaod_dir, skip_outputs=("1",))
    result = invoke("-jc", str(jobs_dir))
    assert result.exit_code != 0
    message = str(result.exception)
    assert "1 of 3 job outputs" in message and "job 1:" in message and "output_job_1.coffea" in message
    assert not (tmp_path / "output" / "output_merged.coffea").exists()
    # --allow-missing merges the rest; the affected dataset's event loss only warns
    result = invoke("-jc", str(jobs_dir), "--allow-missing")
    assert result.exit_code == 0, result.output + repr(result.exception)
    merged = load_output(tmp_path / "output" / "output_merged.coffea")
    assert merged["cutflow"]["initial"] == {"DY_2018": 20, "DATA_2018": 40}


def test_initial_events_mismatch_and_skip(tmp_path, events, nanoaod_dir):
    # job 1 should have read events 20..40 but a chunk of 5 events was lost
    jobs_dir = make_jobs_dir(tmp_path, events, nanoaod_dir, lost={"1": slice(20, 35)})
    merged_path = tmp_path / "output" / "output_merged.coffea"
    result = invoke("-jc", str(jobs_dir))
    assert result.exit_code != 0
    message = str(result.exception)
    assert "Inconsistent number of initial events for dataset 'DY_2018'" in message
    assert "nevents = 40" in message and "= 35" in message and "DATA_2018" not in message
    assert not merged_path.exists()
    result = invoke("-jc", str(jobs_dir), "--skip-initial-events-check", "DATA_2018")
    assert result.exit_code != 0 and "'DY_2018'" in str(result.exception)
    result = invoke("-jc", str(jobs_dir), "--skip-initial-events-check", "DY_2018")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert load_output(merged_path)["cutflow"]["initial"]["DY_2018"] == 35


def test_files_and_globs(tmp_path, events, nanoaod_dir):
    make_jobs_dir(tmp_path, events, nanoaod_dir)
    out_dir = tmp_path / "output"
    pattern = str(out_dir / "output_job_*.coffea")
    result = invoke(pattern)  # the spec's own tip: the merged file goes beside the inputs
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert load_output(out_dir / "output_merged.coffea")["cutflow"]["initial"] == {"DY_2018": 40, "DATA_2018": 40}
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "output_job_0.coffea"
    moved.write_bytes((out_dir / "output_job_0.coffea").read_bytes())
    result = invoke(str(moved), str(out_dir / "output_job_1.coffea"))
    assert result.exit_code != 0 and "-o/--outputfile" in str(result.exception)
    merged_path = tmp_path / "merged.coffea"
    result = invoke(pattern, "-o", str(merged_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert load_output(merged_path)["cutflow"]["initial"] == {"DY_2018": 40, "DATA_2018": 40}
    # a file given twice is merged once
    single = out_dir / "output_job_0.coffea"
    result = invoke(str(single), str(single), "-o", str(tmp_path / "one.coffea"))
    assert result.exit_code == 0
    assert load_output(tmp_path / "one.coffea")["cutflow"]["initial"] == {"DY_2018": 20}
    # output among the inputs is refused even with --overwrite
    result = invoke(pattern, "-o", str(single), "--overwrite")
    assert result.exit_code != 0 and "also one of the inputs" in str(result.exception)
    result = invoke(str(out_dir / "nothing_*.coffea"), "-o", str(tmp_path / "x.coffea"))
    assert result.exit_code != 0 and "No file matches" in str(result.exception)


def test_corrupt_input_named(tmp_path, events, nanoaod_dir):
    jobs_dir = make_jobs_dir(tmp_path, events, nanoaod_dir)
    broken = tmp_path / "output" / "output_job_2.coffea"
    broken.write_bytes(broken.read_bytes()[:50])
    with pytest.raises(OutputError, match="output_job_2.coffea is corrupt"):
        merge_outputs(jobs_config=jobs_dir)
    assert not (tmp_path / "output" / "output_merged.coffea").exists()


def test_jobs_config_errors(tmp_path):
    jobs_dir = tmp_path / "job"
    jobs_dir.mkdir()
    config = jobs_dir / "jobs_config.yaml"
    config.write_text("jobs:\n  0:\n    config: config_job_0.pkl\n")
    with pytest.raises(OutputError, match=r"job 0 lacks the key 'output'"):
        load_jobs_config(jobs_dir)
    config.write_text("jobs:\n  0: {output: [unclosed\n")
    with pytest.raises(OutputError, match=r"jobs_config.yaml is not valid YAML at line \d+, column \d+"):
        load_jobs_config(jobs_dir)
    with pytest.raises(OutputError, match="No jobs_config.yaml found"):
        load_jobs_config(tmp_path / "elsewhere")


def test_skimmed_dataset_definition(tmp_path, events, nanoaod_dir):
    jobs_dir = make_jobs_dir(tmp_path, events, nanoaod_dir, skim=True)
    result = merge_outputs(jobs_config=jobs_dir)
    assert result.skimmed_definition == tmp_path / "output" / "skimmed_dataset_definition.json"
    skimmed = load_fileset_json(result.skimmed_definition)
    genw, pt = events["DY_2018"]
    n_skim = int((pt > 0).sum())
    dy = skimmed["DY_2018"]
    assert dy["files"] == [str(tmp_path / "output" / "skim" / f"DY_2018_{i}.root") for i in (0, 1)]
    assert dy["metadata"]["nevents"] == n_skim
    assert dy["metadata"]["file_nevents"] == [int((pt[:20] > 0).sum()), int((pt[20:] > 0).sum())]
    assert dy["metadata"]["skim_efficiency"] == pytest.approx(n_skim / 40)
    assert dy["metadata"]["sum_genweights"] == pytest.approx(genw.sum(), rel=1e-12)
    assert dy["metadata"]["isMC"] is True and dy["metadata"]["isSkim"] is True
    assert json.loads(result.skimmed_definition.read_text())["DATA_2018"]["metadata"]["isMC"] is False


def test_exit_codes_through_console_scripts(tmp_path, events, nanoaod_dir):
    jobs_dir = make_jobs_dir(tmp_path, events, nanoaod_dir, skip_outputs=("2",))
    fail = subprocess.run([str(BIN_PY / "merge-outputs"), "-jc", str(jobs_dir)], capture_output=True, text=True)
    assert fail.returncode == 1
    assert "output_job_2.coffea" in fail.stderr and "Traceback" not in fail.stderr
    umbrella = subprocess.run([str(BIN_PY / "pocket-coffea"), "merge-outputs", "-jc", str(jobs_dir), "--allow-missing"],
                              capture_output=True, text=True)
    assert umbrella.returncode == 0, umbrella.stdout + umbrella.stderr
    assert load_output(tmp_path / "output" / "output_merged.coffea")["cutflow"]["initial"] == {"DY_2018": 40}
    nothing = subprocess.run([str(BIN_PY / "merge-outputs")], capture_output=True, text=True)
    assert nothing.returncode == 1 and "Nothing to merge" in nothing.stderr


def _assert_same_output(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for key in a:
            _assert_same_output(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, hist.Hist):
        np.testing.assert_allclose(a.values(), b.values(), rtol=1e-12, err_msg=path)
        np.testing.assert_allclose(a.variances(), b.variances(), rtol=1e-12, err_msg=path)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12), path
    else:
        assert a == b, path


@pytest.mark.slow
def test_real_processor_jobs_merge_to_the_full_run(tmp_path, repo_root, nanoaod_dir):
    """pc-run's processor over the real files: condor-like jobs merged == one full run."""
    import shutil

    from coffea import processor

    from pc_core.config_loading import load_configurator
    from pc_core.output import normalise
    from pc_core.splitting import split_fileset
    from pc_run.runner import run_fileset

    analysis = tmp_path / "analysis"
    shutil.copytree(repo_root / "tests" / "pc_run" / "configs", analysis)
    (analysis / "fileset.json").write_text(json.dumps({
        "DYJetsToLL_2018": {"files": [str(nanoaod_dir / "nano_dy.root")],
                            "metadata": {"sample": "DYJetsToLL", "year": "2018", "isMC": "True",
                                         "xsec": "6077.22", "nevents": "40"}},
        "DATA_DoubleMuon_2018": {"files": [str(nanoaod_dir / "nano_dimuon.root")],
                                 "metadata": {"sample": "DATA_DoubleMuon", "year": "2018", "isMC": "False",
                                              "nevents": "40"}},
    }))
    cfg = load_configurator(analysis / "config_pcrun.py")
    options = {"chunksize": 40, "skip-bad-files": False}
    full = run_fileset(cfg, cfg.fileset, processor.IterativeExecutor(), options).output

    jobs_dir = tmp_path / "output" / "job"
    jobs_dir.mkdir(parents=True)
    jobs = {}
    for i, job in enumerate(split_fileset(cfg.fileset, scaleout=2)):
        out = tmp_path / "output" / f"output_job_{i}.coffea"
        result = run_fileset(cfg.with_fileset(job.fileset), job.fileset, processor.IterativeExecutor(), options)
        save_output(result.output, out)
        jobs[i] = {"fileset": job.fileset, "config": f"config_job_{i}.pkl", "output": str(out)}
    assert len(jobs) == 2
    (jobs_dir / "jobs_config.yaml").write_text(yaml.safe_dump({"version": 1, "jobs": jobs}))

    result = invoke("-jc", str(jobs_dir))
    assert result.exit_code == 0, result.output + repr(result.exception)
    merged = load_output(tmp_path / "output" / "output_merged.coffea")
    _assert_same_output(merged, full)
    assert merged["cutflow"]["initial"] == {"DYJetsToLL_2018": 40, "DATA_DoubleMuon_2018": 40}
    _assert_same_output(normalise(merged), normalise(full))
