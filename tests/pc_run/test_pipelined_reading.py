"""Pipelined reading: the next chunk's branches are read by a background thread while the
analysis runs, and the outputs are bit-identical with and without it."""
from __future__ import annotations

import threading

import awkward as ak
import numpy as np
import pytest
from coffea import processor as coffea_processor

import pc_run.chunk_work as chunk_work
from analysis_testlib import invoke_run, make_analysis, standard_fileset
from outputs_compare import assert_outputs_equal
from pc_core.output import load_output
from pc_run.chunk_work import INPUT_FILE, process_chunk
from pc_run.runner import NanoAODSchemaQuiet


class JetSums(coffea_processor.ProcessorABC):
    def process(self, events):
        jets = events.Jet[events.Jet.pt > 20]
        return {
            "events": len(events),
            "jet_pt": ak.to_numpy(ak.sum(ak.values_astype(jets.pt, np.float64), axis=1)).tolist(),
            "muon_eta": ak.to_list(events.Muon.eta),
        }

    def postprocess(self, accumulator):
        return accumulator


def _chunks(path, size):
    runner = coffea_processor.Runner(executor=coffea_processor.IterativeExecutor(), chunksize=size,
                                     schema=NanoAODSchemaQuiet, metadata_cache={})
    fileset = {"TT": {"files": [str(path)], "treename": "Events", "metadata": {}}}
    return list(runner.preprocess(fileset, treename="Events"))


@pytest.fixture
def reads(monkeypatch):
    """The thread that read the preloaded branches of each range."""
    seen = []
    real_read = chunk_work.TreeLayout.read

    def recording_read(self, preload, start, stop):
        seen.append((start, stop, threading.current_thread().name))
        return real_read(self, preload, start, stop)

    monkeypatch.setattr(chunk_work.TreeLayout, "read", recording_read)
    INPUT_FILE.forget()
    yield seen
    INPUT_FILE.forget()


def _process_all(chunks, pipeline):
    INPUT_FILE.forget()
    outputs = [process_chunk(c, JetSums(), NanoAODSchemaQuiet, pipeline=pipeline) for c in chunks]
    INPUT_FILE.forget()
    return outputs


def test_next_chunk_is_read_in_the_background_with_identical_outputs(nanoaod_dir, reads):
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    assert len(chunks) == 4
    plain = _process_all(chunks, pipeline=False)
    assert all(not name.startswith("pocket-coffea-prefetch") for _, _, name in reads)
    reads.clear()
    pipelined = _process_all(chunks, pipeline=True)
    assert pipelined == plain
    # the first chunk learns the branches (read lazily); each next one was read by the prefetch thread
    background = [(start, stop) for start, stop, name in reads if name.startswith("pocket-coffea-prefetch")]
    assert background == [(c.entrystart, c.entrystop) for c in chunks[1:]]


def test_a_chunk_that_is_not_the_prefetched_one_reads_its_own(nanoaod_dir, reads):
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    order = [chunks[0], chunks[2], chunks[1], chunks[3]]  # the prefetch of 50-100 is not taken by 100-150
    assert _process_all(order, pipeline=True) == _process_all(order, pipeline=False)


def test_off_unless_the_run_option_asks_for_it(tmp_path):
    from pc_core.errors import RunOptionsError
    from pc_core.run_options import load_run_options

    assert load_run_options("iterative")["pipelined-reading"] is False
    assert load_run_options("futures", {"pipelined-reading": True})["pipelined-reading"] is True
    with pytest.raises(RunOptionsError, match="'pipelined-reading' has invalid value 'yes'"):
        load_run_options("iterative", {"pipelined-reading": "yes"})


@pytest.fixture(scope="module")
def config(tmp_path_factory, nanoaod_dir):
    return make_analysis(tmp_path_factory.mktemp("analysis-pipeline"), standard_fileset(nanoaod_dir))


@pytest.mark.parametrize("executor", [["-e", "iterative"], ["-e", "futures", "-s", "2"]], ids=["iterative", "futures"])
def test_histograms_identical_with_and_without_pipelining(config, tmp_path, executor):
    outputs = {}
    for pipeline in ("1", "0"):
        options = tmp_path / f"pipeline-{pipeline}.yaml"
        options.write_text(f"pipelined-reading: {'true' if pipeline == '1' else 'false'}\n")
        outdir = tmp_path / f"pipeline-{pipeline}"
        result = invoke_run(["--cfg", config, "-o", outdir, *executor, "-c", "15", "-ro", options, "-ll", "WARNING"])
        assert result.exit_code == 0, (result.output, result.exception)
        outputs[pipeline] = load_output(outdir / "output_all.coffea")
    # futures adds chunk outputs in the order they finish (last-bit differences of sums); iterative: exact
    rtol = 0.0 if executor[1] == "iterative" else 1e-12
    assert_outputs_equal(outputs["1"], outputs["0"], rtol=rtol, skip=("run_options",))
    assert outputs["1"]["variables"], "no histograms compared"
