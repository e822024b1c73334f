"""process_chunk: one open file per file's chunks, branches learnt then preloaded, same results."""
from types import SimpleNamespace

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea import processor as coffea_processor

import pc_run.chunk_work as chunk_work
from pc_run.chunk_work import INPUT_FILE, ChunkPhaseError, order_for_workers, process_chunk
from pc_run.runner import NanoAODSchemaQuiet


class MuonSum(coffea_processor.ProcessorABC):
    def process(self, events):
        if events.metadata.get("fail"):
            raise RuntimeError("analysis bug")
        return {"events": len(events), "muon_pt": float(ak.sum(ak.values_astype(events.Muon.pt, np.float64))), "chunks": 1}

    def postprocess(self, accumulator):
        return accumulator


@pytest.fixture
def spies(monkeypatch):
    """Count the files opened and the trees parsed, and record the preload of each chunk."""
    seen = {"opened": [], "parsed": [], "preload": []}
    real_open, real_of, real_events = uproot.open, chunk_work.TreeLayout.of, chunk_work.TreeLayout.events

    def counting_open(*args, **kwargs):
        seen["opened"].append(args[0])
        return real_open(*args, **kwargs)

    def counting_of(file, treename, iteritems_options):
        seen["parsed"].append((file.file_path, treename))
        return real_of(file, treename, iteritems_options)

    def recording_events(self, item, schema, metadata, uproot_options, preload, *args):
        seen["preload"].append(preload)
        return real_events(self, item, schema, metadata, uproot_options, preload, *args)

    monkeypatch.setattr(chunk_work, "uproot", SimpleNamespace(open=counting_open))  # chunk_work's opens only
    monkeypatch.setattr(chunk_work.TreeLayout, "of", counting_of)
    monkeypatch.setattr(chunk_work.TreeLayout, "events", recording_events)
    yield seen
    INPUT_FILE.forget()


def _muon_pt_sum(path) -> float:
    per_event = uproot.open(path)["Events"]["Muon_pt"].array(library="np")
    return float(np.concatenate(list(per_event)).astype(np.float64).sum())


def _run(files, chunksize, metadata=None):
    runner = coffea_processor.Runner(
        executor=coffea_processor.IterativeExecutor(retries=0), chunksize=chunksize, schema=NanoAODSchemaQuiet,
        metadata_cache={},  # coffea's shared cache would keep the metadata of an earlier test's fileset
    )
    fileset = {"DY": {"files": [str(f) for f in files], "treename": "Events", "metadata": metadata or {}}}
    chunks = list(runner.preprocess(fileset, treename="Events"))
    processor = MuonSum()
    outputs = [process_chunk(chunk, processor, NanoAODSchemaQuiet) for chunk in chunks]
    return coffea_processor.accumulate(outputs), chunks


def test_chunks_of_a_file_share_one_open_file_and_later_chunks_preload(nanoaod_dir, spies):
    files = [nanoaod_dir / "nano_dy.root", nanoaod_dir / "nano_dimuon.root"]
    output, chunks = _run(files, chunksize=10)
    expected_pt = sum(_muon_pt_sum(f) for f in files)
    assert output["events"] == 80 and output["chunks"] == len(chunks) == 8
    assert output["muon_pt"] == pytest.approx(expected_pt, rel=1e-12)
    assert spies["opened"] == [{str(files[0]): None}, {str(files[1]): None}]  # one open per file, not per chunk
    assert spies["parsed"] == [(str(files[0]), "Events"), (str(files[1]), "Events")]  # one tree layout per file
    assert spies["preload"][0] is None  # the first chunk reads lazily and learns
    assert all(callable(p) for p in spies["preload"][1:])
    learnt = next(iter(INPUT_FILE.branches_read.values()))
    assert {"Muon_pt", "nMuon"} <= learnt and "Jet_pt" not in learnt


def test_a_rewritten_file_is_reopened(tmp_path, nanoaod_dir, spies):
    copy = tmp_path / "dy.root"
    copy.write_bytes((nanoaod_dir / "nano_dy.root").read_bytes())
    _run([copy], chunksize=20)
    assert len(spies["opened"]) == 1
    copy.write_bytes((nanoaod_dir / "nano_dimuon.root").read_bytes())  # same path, other content
    output, _ = _run([copy], chunksize=20)
    assert len(spies["opened"]) == len(spies["parsed"]) == 2  # the new content's tree is parsed anew
    assert output["muon_pt"] == pytest.approx(_muon_pt_sum(copy), rel=1e-12)


def test_a_failing_chunk_drops_the_open_file_and_names_the_phase(nanoaod_dir, spies):
    with pytest.raises(ChunkPhaseError, match="process: RuntimeError: analysis bug") as raised:
        _run([nanoaod_dir / "nano_dy.root"], chunksize=20, metadata={"fail": True})
    assert raised.value.phase == "process" and isinstance(raised.value.original, RuntimeError)
    assert getattr(INPUT_FILE._local, "file", None) is None
    assert INPUT_FILE._local.trees == {}


def test_a_missing_file_fails_in_the_open_phase(tmp_path, spies):
    missing = tmp_path / "missing.root"
    item = coffea_processor.executor.WorkItem("DY", str(missing), "Events", 0, 10, b"", None)
    with pytest.raises(ChunkPhaseError) as raised:
        process_chunk(item, MuonSum(), NanoAODSchemaQuiet)
    assert raised.value.phase == "open" and isinstance(raised.value.original, FileNotFoundError)


def test_chunks_are_dealt_to_worker_lanes_by_file():
    item = coffea_processor.executor.WorkItem
    chunks = [item("D", f, "Events", start, start + 10, b"", None) for f in "ABCDE" for start in (0, 10)]
    name = lambda ordered: [f"{c.filename}{c.entrystart // 10}" for c in ordered]  # noqa: E731
    assert name(order_for_workers(chunks, 1)) == name(chunks)
    # lane 0: A, C, E; lane 1: B, D; a free worker takes the next chunk of "its" file
    assert name(order_for_workers(chunks, 2)) == ["A0", "B0", "A1", "B1", "C0", "D0", "C1", "D1", "E0", "E1"]
    assert sorted(name(order_for_workers(chunks, 3))) == sorted(name(chunks))
