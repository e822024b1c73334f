"""The preprocessing metadata read without parsing the trees: the same entries and UUIDs as
uproot's full read, the same chunks as coffea's preprocessing, unreadable files left to it."""
from __future__ import annotations

import uproot
from coffea import processor as coffea_processor

import pc_run.runner as runner
from analysis_testlib import standard_fileset
from pc_run.file_metadata import file_metadata, tree_entries


def test_entries_and_uuid_as_uproot_reads_them(nanoaod_dir):
    files = sorted(nanoaod_dir.glob("*.root"))
    assert len(files) == 4
    for path in files:
        with uproot.open(path) as file:
            assert tree_entries(file, "Events") == file["Events"].num_entries
    found = file_metadata([(str(p), "Events") for p in files] + [(str(nanoaod_dir / "missing.root"), "Events"),
                                                                 (str(files[0]), "NoSuchTree")])
    assert set(found) == {(str(p), "Events") for p in files}  # what cannot be read is left out
    for (path, _), meta in found.items():
        with uproot.open(path) as file:
            assert meta == {"numentries": file["Events"].num_entries, "uuid": file.file.fUUID}


def test_the_same_chunks_as_coffeas_preprocessing(nanoaod_dir, monkeypatch):
    fileset = standard_fileset(nanoaod_dir)
    dataset = next(iter(fileset))
    fileset[dataset]["files"].append(str(nanoaod_dir / "missing.root"))
    executor = coffea_processor.IterativeExecutor()
    fast = runner.prepare_chunks(fileset, {"chunksize": 15}, executor)
    monkeypatch.setattr(runner, "_plan_from_metadata", lambda fileset, cache: None)
    slow = runner.prepare_chunks(fileset, {"chunksize": 15}, executor)
    assert fast == slow  # WorkItem equality: dataset, file, tree, entry range, UUID
    assert [c.usermeta for c in fast] == [c.usermeta for c in slow]
    assert not any(c.filename.endswith("missing.root") for c in fast)
