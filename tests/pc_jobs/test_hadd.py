"""hadd-skimmed-files on real skimmed files cut from ../shared/data/nanoaod/nano_dy.root."""
from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from pc_core.output import save_output
from pc_jobs.hadd import HaddError, SkimFile, hadd_skimmed_files, hadd_skimmed_files_command, plan_groups

DATASET = "DY_2018"
SLICES = [(0, 10), (10, 25), (25, 25), (25, 40)]  # the third file is an empty skim
FLAT = ["run", "luminosityBlock", "event", "genWeight", "PV_npvs"]
COLLECTIONS = {"Muon": ["pt", "eta", "phi", "charge"], "Jet": ["pt", "eta", "jetId"]}


@pytest.fixture(scope="module")
def source(nanoaod_dir):
    """The original events, read once: the independent reference for every check."""
    with uproot.open(nanoaod_dir / "nano_dy.root") as handle:
        branches = FLAT + ["LHEPdfWeight"] + [f"{c}_{f}" for c, fs in COLLECTIONS.items() for f in fs]
        return handle["Events"].arrays(branches)


@pytest.fixture
def skim_files(tmp_path, source) -> list[str]:
    """Four NanoAOD-like skimmed files (nX counters, X_field branches, a Runs tree), written with
    uproot's own naming defaults (not with the code under test)."""
    folder = tmp_path / "skim" / DATASET
    folder.mkdir(parents=True)
    paths = []
    for start, stop in SLICES:
        events = source[start:stop]
        data = {name: ak.to_numpy(events[name]) for name in FLAT}
        data["LHEPdfWeight"] = events["LHEPdfWeight"]
        for collection, fields in COLLECTIONS.items():
            data[collection] = ak.zip({f: events[f"{collection}_{f}"] for f in fields})
        path = folder / f"nano_dy_{start}-{stop}.root"
        with uproot.recreate(path) as out:
            out.mktree("Events", {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in data.items()})
            if stop > start:
                out["Events"].extend(data)
            weights = ak.to_numpy(events["genWeight"]).astype(np.float64)
            runs = {"genEventCount": np.array([stop - start], dtype=np.int64),
                    "genEventSumw": np.array([weights.sum()]),
                    "genEventSumw2": np.array([(weights**2).sum()])}
            if stop == 40:  # the last one as pc-run's skim writes it today (uproot makes it an RNTuple)
                out["Runs"] = runs
            else:  # NanoAOD's Runs TTree
                out.mktree("Runs", {k: v.dtype for k, v in runs.items()})
                out["Runs"].extend(runs)
        paths.append(str(path))
    return paths


def definition_json(tmp_path: Path, files: list[str]) -> Path:
    path = tmp_path / "skimmed_dataset_definition.json"
    path.write_text(json.dumps({DATASET: {"files": files, "metadata": {
        "sample": "DYJetsToLL", "year": "2018", "isMC": True, "xsec": 6077.22,
        "nevents": sum(b - a for a, b in SLICES[: len(files)]),
        "file_nevents": [b - a for a, b in SLICES][: len(files)], "skim_efficiency": 0.25, "isSkim": True,
        "sum_genweights": 1234.5, "size": 999}}}))
    return path


def read_events(path: str) -> ak.Array:
    with uproot.open(path) as handle:
        return handle["Events"].arrays()


def test_regroup_by_events_keeps_every_event_and_sums_runs(tmp_path, skim_files, source):
    result = hadd_skimmed_files(definition_json(tmp_path, skim_files), tmp_path / "hadd", max_events=20)

    outputs = [str(tmp_path / "hadd" / DATASET / f"{DATASET}_{n}.root") for n in (1, 2, 3)]
    assert [[Path(f.path).name for f in g.inputs] for g in result.groups] == [
        ["nano_dy_0-10.root"], ["nano_dy_10-25.root", "nano_dy_25-25.root"], ["nano_dy_25-40.root"]]
    definition = json.loads((tmp_path / "hadd" / "skimmed_dataset_definition.json").read_text())
    meta = definition[DATASET]["metadata"]
    assert definition[DATASET]["files"] == outputs
    assert meta["file_nevents"] == [10, 15, 15] and meta["nevents"] == 40
    assert meta["sum_genweights"] == 1234.5 and meta["skim_efficiency"] == 0.25 and "size" not in meta

    with uproot.open(skim_files[0]) as handle:
        input_branches = set(handle["Events"].keys())
    merged = ak.concatenate([read_events(p) for p in outputs])
    for path in outputs:
        with uproot.open(path) as handle:
            assert set(handle["Events"].keys()) == input_branches  # nMuon, Muon_pt, ..., nLHEPdfWeight
    assert len(merged) == 40
    for name in ["event", "genWeight", "LHEPdfWeight", "Muon_pt", "Muon_charge", "Jet_jetId", "nMuon", "nJet"]:
        reference = source[name] if not name.startswith("n") else ak.num(source[name[1:] + "_pt"])
        assert ak.to_list(merged[name]) == ak.to_list(reference), name

    weights = ak.to_numpy(source["genWeight"]).astype(np.float64)
    for path, (start, stop) in zip(outputs, [(0, 10), (10, 25), (25, 40)]):
        with uproot.open(path) as handle:
            assert handle.classname_of("Runs") == "TTree"
            runs = handle["Runs"].arrays(library="np")
        assert runs["genEventCount"].tolist() == [stop - start]
        assert runs["genEventSumw"][0] == pytest.approx(weights[start:stop].sum(), rel=1e-12)
        assert runs["genEventSumw2"][0] == pytest.approx((weights[start:stop] ** 2).sum(), rel=1e-12)


def test_from_merged_coffea_output_with_file_limit(tmp_path, skim_files, source):
    output = {
        "sum_genweights": {DATASET: 5000.0},
        "cutflow": {"initial": {DATASET: 160}, "skim": {DATASET: 40}},
        "datasets_metadata": {"by_dataset": {DATASET: {
            "sample": "DYJetsToLL", "year": "2018", "isMC": True, "xsec": 6077.22, "nevents": 160}}},
        "skimmed_files": {DATASET: skim_files},
        "nskimmed_events": {DATASET: [b - a for a, b in SLICES]},
    }
    coffea = tmp_path / "output_merged.coffea"
    save_output(output, coffea)
    definition_out = tmp_path / "regrouped.json"
    result = hadd_skimmed_files(coffea, tmp_path / "hadd", max_files=2, definition_path=definition_out)
    assert [len(g.inputs) for g in result.groups] == [2, 2]
    definition = json.loads(definition_out.read_text())[DATASET]
    assert definition["metadata"]["file_nevents"] == [25, 15]
    assert definition["metadata"]["skim_efficiency"] == 0.25 and definition["metadata"]["isSkim"] is True
    assert definition["metadata"]["sum_genweights"] == 5000.0
    assert [len(read_events(f)) for f in definition["files"]] == [25, 15]
    weights = ak.to_numpy(source["genWeight"]).astype(np.float64)
    for path, (start, stop) in zip(definition["files"], [(0, 25), (25, 40)]):  # Runs of two inputs each
        with uproot.open(path) as handle:
            runs = handle["Runs"].arrays(library="np")
        assert runs["genEventCount"].tolist() == [stop - start]
        assert runs["genEventSumw"][0] == pytest.approx(weights[start:stop].sum(), rel=1e-12)


def test_existing_outputs_are_refused_and_dry_writes_nothing(tmp_path, skim_files):
    source_json = definition_json(tmp_path, skim_files)
    runner = CliRunner()
    dry = runner.invoke(hadd_skimmed_files_command,
                        ["-fl", str(source_json), "-o", str(tmp_path / "hadd"), "-e", "20", "--dry"])
    assert dry.exit_code == 0, dry.output
    assert not (tmp_path / "hadd").exists()
    first = runner.invoke(hadd_skimmed_files_command, ["-fl", str(source_json), "-o", str(tmp_path / "hadd")])
    assert first.exit_code == 0, first.output
    only = tmp_path / "hadd" / DATASET / f"{DATASET}_1.root"
    assert len(read_events(str(only))) == 40
    stamp = only.stat().st_mtime_ns
    again = runner.invoke(hadd_skimmed_files_command, ["-fl", str(source_json), "-o", str(tmp_path / "hadd")])
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)
    assert only.stat().st_mtime_ns == stamp
    forced = runner.invoke(hadd_skimmed_files_command,
                           ["-fl", str(source_json), "-o", str(tmp_path / "hadd"), "--overwrite", "-f", "3"])
    assert forced.exit_code == 0, forced.output
    assert [len(read_events(str(tmp_path / "hadd" / DATASET / f"{DATASET}_{n}.root"))) for n in (1, 2)] == [25, 15]


def test_unreadable_input_is_named(tmp_path, skim_files):
    broken = tmp_path / "broken.root"
    broken.write_bytes(b"not a root file at all")
    with pytest.raises(HaddError, match="broken.root"):
        hadd_skimmed_files(definition_json(tmp_path, skim_files[:1] + [str(broken)]), tmp_path / "hadd")
    assert not (tmp_path / "hadd").exists()


def test_plan_groups_limits():
    files = [SkimFile(f"f{i}", n, size) for i, (n, size) in enumerate([(5, 1_000_000), (50, 3_000_000),
                                                                       (5, 1_000_000), (5, 1_000_000)])]
    by_size = plan_groups("D", files, "/out", max_size_mb=2.5)
    assert [[f.path for f in g.inputs] for g in by_size] == [["f0"], ["f1"], ["f2", "f3"]]
    by_events = plan_groups("D", files, "/out", max_events=10)
    assert [[f.path for f in g.inputs] for g in by_events] == [["f0"], ["f1"], ["f2", "f3"]]
    assert [g.output.name for g in by_events] == ["D_1.root", "D_2.root", "D_3.root"]
    assert len(plan_groups("D", files, "/out")) == 1
