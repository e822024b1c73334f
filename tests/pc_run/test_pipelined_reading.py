"""Pipelined reading: the next chunk's branches are read by a helper process (``read_ahead``)
while the analysis runs, and the outputs are bit-identical with and without it; a helper
that dies costs nothing but its read-ahead."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea import processor as coffea_processor

import pc_run.chunk_work as chunk_work
from analysis_testlib import invoke_run, make_analysis, standard_fileset
from outputs_compare import assert_outputs_equal
from pc_core.output import load_output
from pc_run.chunk_work import INPUT_FILE, process_chunk
from pc_run.read_ahead import ReadAheadProcess, ReadShare, _read_message
from pc_run.runner import NanoAODSchemaQuiet
from reliability.faults import FileServer


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
    """Where each chunk's preloaded branches came from: ("here", range) read by this process,
    ("ahead", range) taken from the read-ahead helper."""
    seen = []
    real_read = chunk_work.TreeLayout.read
    real_take = chunk_work.OpenInputFile.take_prefetched

    def recording_read(self, preload, start, stop):
        seen.append(("here", start, stop))
        return real_read(self, preload, start, stop)

    def recording_take(self, layout, treename, start, stop, branches):
        arrays = real_take(self, layout, treename, start, stop, branches)
        if arrays is not None:
            seen.append(("ahead", start, stop))
        return arrays

    monkeypatch.setattr(chunk_work.TreeLayout, "read", recording_read)
    monkeypatch.setattr(chunk_work.OpenInputFile, "take_prefetched", recording_take)
    # the helper reads every branch ahead (the share is tested on its own below)
    monkeypatch.setattr(ReadShare, "__init__", lambda self: setattr(self, "fraction", 1.0))
    monkeypatch.setattr(ReadShare, "update", lambda self, *timing: None)
    INPUT_FILE.forget()
    yield seen
    INPUT_FILE.forget()


def _process_all(chunks, pipeline, between=None):
    INPUT_FILE.forget()
    outputs = []
    for chunk in chunks:
        outputs.append(process_chunk(chunk, JetSums(), NanoAODSchemaQuiet, read_ahead_from=0 if pipeline else None))
        if between is not None:
            between()
    INPUT_FILE.forget()
    return outputs


def _ranges(chunks):
    return [(c.entrystart, c.entrystop) for c in chunks]


def test_next_chunk_is_read_ahead_by_the_helper_with_identical_outputs(nanoaod_dir, reads, tmp_path):
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    assert len(chunks) == 4
    plain = _process_all(chunks, pipeline=False)
    # the first chunk learns the branches (read lazily), the next ones preload them
    assert reads == [("here", *r) for r in _ranges(chunks[1:])]
    reads.clear()
    pipelined = _process_all(chunks, pipeline=True)
    assert pipelined == plain
    assert reads == [("ahead", *r) for r in _ranges(chunks[1:])]


def test_iterative_reads_the_next_file_ahead(nanoaod_dir, reads, tmp_path):
    """With the chunk that runs next known (iterative's queue), the read-ahead crosses files."""
    first, second = tmp_path / "a.root", tmp_path / "b.root"
    for copy in (first, second):
        copy.write_bytes((nanoaod_dir / "nano_tt_v12.root").read_bytes())
    chunks = _chunks(first, 100) + _chunks(second, 100)
    assert [c.filename for c in chunks] == [str(first)] * 2 + [str(second)] * 2
    plain = _process_all(chunks, pipeline=False)
    reads.clear()
    INPUT_FILE.forget()
    pipelined = [process_chunk(chunk, JetSums(), NanoAODSchemaQuiet, read_ahead_from=0, following=following)
                 for chunk, following in zip(chunks, [*chunks[1:], None])]
    INPUT_FILE.forget()
    assert pipelined == plain
    assert reads == [("ahead", *r) for r in _ranges(chunks[1:])]


def test_read_share_balances_the_helper_and_this_process():
    share = ReadShare()
    weights = {"Jet_pt": 40, "Jet_eta": 40, "Muon_pt": 10, "nJet": 6, "nMuon": 4}
    # until measured, the helper takes the heaviest branches (ties by name) while they fit in 75%
    assert share.split(weights) == ({"Jet_eta", "Muon_pt", "nJet", "nMuon"}, {"Jet_pt"}, 0.6)
    # reading everything takes 0.4 s, the rest of the chunk 0.1 s: the helper should take 1/2 + 0.1/0.8
    share.update(helper_seconds=0.24, helper_share=0.6, other_work_seconds=0.1)
    assert share.fraction == pytest.approx((0.75 + 0.625) / 2)
    for _ in range(20):
        share.update(helper_seconds=0.4 * share.fraction, helper_share=share.fraction, other_work_seconds=0.1)
    assert share.fraction == pytest.approx(0.625, abs=1e-3)
    assert share.split(weights) == ({"Jet_eta", "Muon_pt", "nJet", "nMuon"}, {"Jet_pt"}, 0.6)
    share.fraction = 1.0
    assert share.split(weights) == (set(weights), set(), 1.0)
    share.update(helper_seconds=0.2, helper_share=0.5, other_work_seconds=1.0)  # analysis-bound: all ahead
    share.update(helper_seconds=0.2, helper_share=1.0, other_work_seconds=1.0)
    assert share.fraction > 0.9


def test_the_helper_reads_what_the_first_chunk_touches_before_it_is_asked(nanoaod_dir):
    """``prepare`` opens the next file and parses its tree at once; ``learn`` reads a branch for
    the prepared range at once: the request for that range is then answered with the server
    gone. The file is served over HTTP here, so that the helper's reads can be seen."""
    path = nanoaod_dir / "nano_tt_v12.root"
    reader = ReadAheadProcess()

    def settled(server, before=0, quiet=1.5):
        """The number of reads once more than ``before`` were made and none for ``quiet`` s."""
        deadline, seen, since = time.monotonic() + 60, -1, time.monotonic()
        while time.monotonic() < deadline:
            if len(server.served) != seen:
                seen, since = len(server.served), time.monotonic()
            elif seen > before and time.monotonic() - since >= quiet:
                break
            time.sleep(0.05)
        return len(server.served)

    with FileServer(path) as server:
        try:
            reader.start()
            reader.prepare(server.url, 60, {}, "Events", 20, 180)
            opened = settled(server)
            assert opened, "the helper did not open the file it was asked to prepare"
            reader.learn(["Jet_pt", "nJet"])
            assert settled(server, opened) > opened, "the helper did not read the branches it learnt"
            server.stop()  # from now on, a read of the file fails
            assert reader.submit(server.url, 60, {}, "Events", frozenset({"Jet_pt", "nJet"}), 20, 180)
            ahead = reader.take()
        finally:
            reader.close()
    assert ahead is not None, "the helper read the branches again instead of handing over what it learnt"
    here = uproot.open(path)["Events"].arrays(["Jet_pt", "nJet"], entry_start=20, entry_stop=180, ak_add_doc=True,
                                              how=dict)
    for name, array in here.items():
        assert ak.array_equal(ahead[name], array) and str(ahead[name].type) == str(array.type), name


def test_a_chunk_split_between_the_helper_and_this_process_is_identical(nanoaod_dir, reads, monkeypatch):
    monkeypatch.setattr(ReadShare, "__init__", lambda self: setattr(self, "fraction", 0.5))
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    plain = _process_all(chunks, pipeline=False)
    reads.clear()
    assert _process_all(chunks, pipeline=True) == plain
    # the second chunk: the helper read all while the first chunk learnt the branches; each later
    # chunk: this process read its share ("here"), the helper the rest ("ahead")
    assert reads == [("ahead", *_ranges(chunks[1:2])[0])] + [
        kind for r in _ranges(chunks[2:]) for kind in (("here", *r), ("ahead", *r))]


def test_the_helper_returns_what_uproot_reads_here(nanoaod_dir, tmp_path):
    """Same values, types, parameters (the branch docs) and writability as a read in this process."""
    path = str(nanoaod_dir / "nano_tt_v12.root")
    branches = frozenset({"Jet_pt", "nJet", "Muon_eta", "Muon_charge", "event", "HLT_PFHT1050", "genWeight"})
    reader = ReadAheadProcess()
    try:
        assert reader.submit(path, 60, {}, "Events", branches, 10, 150)
        ahead = reader.take()
    finally:
        reader.close()
    here = uproot.open(path)["Events"].arrays(filter_branch=lambda b: b.name in branches, entry_start=10,
                                              entry_stop=150, ak_add_doc=True, how=dict)
    assert set(ahead) == set(here) == branches
    for name in branches:
        assert ak.array_equal(ahead[name], here[name]), name
        assert str(ahead[name].type) == str(here[name].type), name
        assert ahead[name].layout.form == here[name].layout.form, name
    jet_pt = ak.flatten(ahead["Jet_pt"])
    assert ak.to_numpy(jet_pt).flags.writeable
    # the hand-over file is gone as soon as it is mapped
    assert not [p for p in os.listdir("/dev/shm") if p.startswith("pocket-coffea-read-ahead-")]


def test_a_killed_helper_costs_only_its_read_ahead(nanoaod_dir, reads):
    """kill -9 of the helper while it reads: the next chunk reads its own branches, the outputs
    stay identical, and the following chunks are read ahead by a new helper."""
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    plain = _process_all(chunks, pipeline=False)
    reads.clear()
    killed = []

    def kill_helper_once():
        process = INPUT_FILE._local.reader._process
        if not killed and process is not None and len(reads) == 0:  # after the first chunk
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            killed.append(process.pid)

    assert _process_all(chunks, pipeline=True, between=kill_helper_once) == plain
    assert killed
    assert reads[0] == ("here", *_ranges(chunks)[1])  # its read-ahead was lost
    assert reads[1:] == [("ahead", *r) for r in _ranges(chunks[2:])]


def test_a_parent_killed_with_an_answer_pending_leaves_no_file(nanoaod_dir, tmp_path):
    """kill -9 of the process that asked (a worker killed by the OOM killer): the helper ends and
    removes the hand-over file it wrote and nobody took."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "from pc_run.read_ahead import ReadAheadProcess\n"
        "reader = ReadAheadProcess()\n"
        f"reader.submit({str(nanoaod_dir / 'nano_tt_v12.root')!r}, 60, {{}}, 'Events', frozenset({{'Jet_pt'}}), 0, 100)\n"
        "print(reader._process.pid, flush=True)\n"
        "time.sleep(3)\n"  # the answer is written meanwhile
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    helper = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{helper}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{helper}"), "the helper outlived its parent"
    assert not [p for p in os.listdir("/dev/shm") if p.startswith(f"pocket-coffea-read-ahead-{helper}-")]


def test_a_closed_helper_removes_the_answer_nobody_took(nanoaod_dir):
    """The helper ends at once when its parent closes the pipe (it skips the interpreter's teardown),
    removing first the hand-over file of an answer that was never taken."""
    reader = ReadAheadProcess()
    assert reader.submit(str(nanoaod_dir / "nano_tt_v12.root"), 60, {}, "Events", frozenset({"Jet_pt"}), 0, 100)
    helper = reader._process
    answer = _read_message(helper.stdout)  # written, not taken
    reader._waiting = False
    assert answer[0] == "ok" and os.path.exists(answer[1])
    reader.close()
    assert helper.returncode == 0
    assert not os.path.exists(answer[1])


def test_forget_ends_the_helper(nanoaod_dir):
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    INPUT_FILE.forget()
    process_chunk(chunks[0], JetSums(), NanoAODSchemaQuiet, read_ahead_from=0)
    helper = INPUT_FILE._local.reader._process
    assert helper.poll() is None
    INPUT_FILE.forget()
    assert helper.wait(timeout=10) == 0


def test_auto_reads_ahead_only_where_a_core_is_free_for_each_helper(monkeypatch):
    from pc_core.errors import RunOptionsError
    from pc_core.run_options import load_run_options
    from pc_run.read_ahead import AUTO_READ_AHEAD_ENTRIES, read_ahead_from

    assert load_run_options("iterative")["pipelined-reading"] == "auto"
    assert load_run_options("futures", {"pipelined-reading": True})["pipelined-reading"] is True
    with pytest.raises(RunOptionsError, match="'pipelined-reading' has invalid value 'yes'"):
        load_run_options("iterative", {"pipelined-reading": "yes"})

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # a 2-core machine
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert read_ahead_from("auto", 1) == AUTO_READ_AHEAD_ENTRIES  # iterative: the helper takes core 2
    assert read_ahead_from("auto", 2) is None  # futures -s 2: the workers have both
    assert read_ahead_from("auto", None) is None  # dask, parsl: workers elsewhere
    assert read_ahead_from(True, 2) == 0 and read_ahead_from(False, 1) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert read_ahead_from("auto", 4) == AUTO_READ_AHEAD_ENTRIES
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a 1-core HTCondor slot on an 8-core node
    assert read_ahead_from("auto", 1) is None


def test_auto_does_not_start_a_helper_for_small_chunks(nanoaod_dir, reads):
    chunks = _chunks(nanoaod_dir / "nano_tt_v12.root", 50)
    INPUT_FILE.forget()
    for chunk in chunks:
        process_chunk(chunk, JetSums(), NanoAODSchemaQuiet, read_ahead_from=51)
    assert getattr(INPUT_FILE._local, "reader", None) is None
    assert reads == [("here", *r) for r in _ranges(chunks[1:])]
    INPUT_FILE.forget()


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


def test_the_run_command_starts_the_helper_before_the_analysis_and_ends_it(config, tmp_path, monkeypatch):
    """``iterative`` with read-ahead: ``run_command`` starts the helper before it imports the
    analysis' modules (its own imports take ~0.5 s), the run's chunks use that one, and it ends
    with the run."""
    from pc_run import read_ahead

    spawned, adopted = [], []
    popen, adopt = read_ahead.subprocess.Popen, chunk_work.OpenInputFile.adopt_read_ahead

    def counting(command, *args, **kwargs):
        process = popen(command, *args, **kwargs)
        if any(str(part).endswith("read_ahead.py") for part in command):  # the helper (the run may start others)
            spawned.append(process)
        return process

    monkeypatch.setattr(read_ahead.subprocess, "Popen", counting)
    monkeypatch.setattr(chunk_work.OpenInputFile, "adopt_read_ahead",
                        lambda self, reader: adopted.append(reader._process) or adopt(self, reader))
    options = tmp_path / "pipeline.yaml"
    options.write_text("pipelined-reading: true\n")
    result = invoke_run(["--cfg", config, "-o", tmp_path / "out", "-e", "iterative", "-c", "15", "-ro", options,
                         "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(spawned) == 1 and adopted == spawned  # one helper for the whole run: the early one
    assert spawned[0].wait(timeout=10) == 0  # ended with the run
