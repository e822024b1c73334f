"""Chunks planned from the fileset's event counts: no file opened before processing, the same
chunks and outputs as with preprocessing, the file identified by the UUID it is read with
(merging two outputs of the same file still refuses the overlap), a wrong count an error."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import uproot
from coffea import processor as coffea_processor

import pc_run.runner as runner
from analysis_testlib import invoke_run, make_analysis, standard_fileset
from outputs_compare import assert_outputs_equal
from pc_core.ledger import LedgerOverlapError
from pc_core.output import accumulate, load_output


def _entries(path: str) -> int:
    return uproot.open(path)["Events"].num_entries


def _with_counts(fileset: dict) -> dict:
    counted = json.loads(json.dumps(fileset))
    for entry in counted.values():
        entry["metadata"]["file_nevents"] = [_entries(f) for f in entry["files"]]
    return counted


def test_declared_counts():
    assert runner.declared_counts({"files": ["a", "b"], "metadata": {"file_nevents": [3, 4]}}) == [3, 4]
    assert runner.declared_counts({"files": ["a"], "metadata": {"nevents": 7}}) == [7]
    assert runner.declared_counts({"files": ["a", "b"], "metadata": {"nevents": 7}}) is None  # which file has what?
    assert runner.declared_counts({"files": ["a"], "metadata": {"nevents": 7, "nevents_estimated": True}}) is None
    assert runner.declared_counts({"files": ["a"], "metadata": {}}) is None


def test_counts_plan_the_same_chunks_without_opening_a_file(nanoaod_dir, monkeypatch):
    fileset = standard_fileset(nanoaod_dir)
    options = {"chunksize": 15}
    executor = coffea_processor.IterativeExecutor()
    opened = runner.prepare_chunks(fileset, options, executor)

    def no_metadata_fetch(*args, **kwargs):
        raise AssertionError("a file was opened to plan chunks the fileset's counts give")

    monkeypatch.setattr(coffea_processor.Runner, "metadata_fetcher_root", staticmethod(no_metadata_fetch))
    planned = runner.prepare_chunks(_with_counts(fileset), options, executor)
    assert [(c.dataset, c.filename, c.entrystart, c.entrystop) for c in planned] == \
        [(c.dataset, c.filename, c.entrystart, c.entrystop) for c in opened]
    assert all(not c.fileuuid for c in planned) and all(c.fileuuid for c in opened)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, nanoaod_dir) -> dict[str, Path]:
    """The test analysis run with preprocessing and with the counts, iterative and futures."""
    fileset = standard_fileset(nanoaod_dir)
    outputs = {}
    for label, files, executor in (("opened", fileset, ["-e", "iterative"]),
                                   ("counts", _with_counts(fileset), ["-e", "iterative"]),
                                   ("counts-futures", _with_counts(fileset), ["-e", "futures", "-s", "2"])):
        config = make_analysis(tmp_path_factory.mktemp(f"analysis-{label}"), files)
        outdir = tmp_path_factory.mktemp(f"run-{label}")
        result = invoke_run(["--cfg", config, "-o", outdir, *executor, "-c", "15", "-ll", "WARNING"])
        assert result.exit_code == 0, (result.output, result.exception)
        outputs[label] = outdir / "output_all.coffea"
    return outputs


def test_counts_give_the_same_output_and_identities(runs):
    opened = load_output(runs["opened"])
    # futures adds the chunks' outputs in the order they finish: sums may differ in the last bit
    for label, rtol in (("counts", 0.0), ("counts-futures", 1e-12)):
        counted = load_output(runs[label])
        # the same histograms, sums and ledger (files identified by their ROOT UUID, read when processed)
        assert_outputs_equal(counted, opened, rtol=rtol, path=label, skip=("datasets_metadata", "run_options", "executor"))
        assert all(identity.startswith("uuid:") for identity in counted["processing_metadata"]["ledger"]["files"])


def test_merging_outputs_of_the_same_files_is_refused_either_way(runs):
    with pytest.raises(LedgerOverlapError):
        accumulate([load_output(runs["opened"]), load_output(runs["counts"])], names=["opened", "counts"])


@pytest.mark.parametrize("wrong", [+5, -5])
def test_a_wrong_count_stops_the_run_naming_the_file(tmp_path, nanoaod_dir, wrong):
    fileset = _with_counts(standard_fileset(nanoaod_dir))
    dy = next(iter(fileset))
    fileset[dy]["metadata"]["file_nevents"][0] += wrong
    config = make_analysis(tmp_path / "analysis", fileset)
    result = invoke_run(["--cfg", config, "-o", tmp_path / "out", "-e", "iterative", "--skip-bad-files", "-ll", "WARNING"])
    assert result.exit_code != 0
    assert "nano_dy.root" in result.output and "fileset declares" in result.output, result.output


def test_a_file_keeps_one_identity_when_a_chunk_was_skipped_before_one_was_read():
    from coffea.processor.executor import WorkItem

    from pc_core.ledger import new_ledger

    ledger = new_ledger()
    identities = runner._FileIdentities(ledger)
    path, uuid = "/data/f.root", bytes(range(1, 17))
    first = WorkItem("DY", path, "Events", 0, 10, b"")  # planned from counts: no UUID yet
    second = WorkItem("DY", path, "Events", 10, 20, uuid)  # as the scheduler reports a chunk that read the file
    identities.record(first, 20, runner.SKIPPED, kind="corrupt-file", reason="bad basket")
    identities.record(second, 20, runner.PROCESSED)
    third = WorkItem("DY", path, "Events", 0, 10, b"")  # skipped again later, e.g. after a resume
    identities.record(third, 20, runner.SKIPPED, kind="corrupt-file", reason="bad basket")
    files = ledger["files"]
    assert list(files) == [f"uuid:{uuid.hex()}"]
    assert files[f"uuid:{uuid.hex()}"]["processed"] == [[10, 20]]
    resumed = runner._FileIdentities(ledger)  # a resumed run indexes the checkpoint's ledger
    assert runner._already_processed(ledger, resumed, WorkItem("DY", path, "Events", 10, 20, b""))
    assert not runner._already_processed(ledger, resumed, WorkItem("DY", path, "Events", 0, 10, b""))


def test_a_missing_file_is_tried_for_one_chunk_and_its_other_chunks_are_skipped(tmp_path, nanoaod_dir):
    """Counts declared, so nothing is opened before processing: the first chunk of a missing
    file uses up its retries, its 9 other chunks are skipped without reading it again."""
    fileset = _with_counts(standard_fileset(nanoaod_dir))
    dy = next(iter(fileset))
    missing = str(tmp_path / "gone" / "nano_missing.root")
    fileset[dy]["files"].append(missing)
    fileset[dy]["metadata"]["file_nevents"].append(100)
    config = make_analysis(tmp_path / "analysis", fileset)
    outdir = tmp_path / "out"
    result = invoke_run(["--cfg", config, "-o", outdir, "-c", "10", "--skip-bad-files", "-ll", "INFO"])
    assert result.exit_code == 0, (result.output, result.exception)
    ledger = load_output(outdir / "output_all.coffea")["processing_metadata"]["ledger"]
    (entry,) = [e for e in ledger["files"].values() if e["url"] == missing]
    assert sorted((r["start"], r["stop"]) for r in entry["skipped"]) == [(start, start + 10) for start in range(0, 100, 10)]
    assert entry["processed"] == [] and {r["kind"] for r in entry["skipped"]} == {"missing-file"}
    log_text = (outdir / "run.log").read_text()
    attempts = [line for line in log_text.splitlines() if f"Reading {missing}" in line and "attempt" in line]
    assert len(attempts) == 1 and "(entries 0-10) failed (missing-file), attempt 1 of 2" in attempts[0], attempts
    assert log_text.count("as its other chunk") == 9
