"""The synthetic NanoAOD of the demo: real NanoAOD layout, plausible physics, reproducible, bookkept."""
from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from pc_demo import (
    DATA,
    DY,
    FILESET_NAME,
    MANIFEST_NAME,
    TTBAR,
    DemoDataError,
    generate_demo_data,
)
from pc_demo.cli import generate_demo_data_command
from pc_demo.samples import ERA_A_RUNS

SMALL = dict(seed=7, events_per_file=3000, files_per_sample=2, data_files=1)
TINY = dict(seed=11, events_per_file=400, files_per_sample=1, data_files=1, compression="zstd")

# the branches the demo analysis and the brief rely on, with their type in NanoAOD (as in nano_dy.root)
REQUIRED_COMMON = [
    "run", "luminosityBlock", "event",
    "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Muon_pdgId",
    "Muon_tightId", "Muon_mediumId", "Muon_looseId", "Muon_pfRelIso04_all", "Muon_dxy", "Muon_dz",
    "nElectron", "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge",
    "Electron_pdgId", "Electron_cutBased", "Electron_pfRelIso03_all", "Electron_deltaEtaSC",
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagDeepFlavB", "Jet_jetId", "Jet_puId",
    "MET_pt", "MET_phi", "PuppiMET_pt", "PuppiMET_phi",
    "HLT_IsoMu24", "HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8", "HLT_Ele32_WPTight_Gsf",
    "PV_npvs", "PV_npvsGood", "Flag_goodVertices", "Flag_METFilters", "fixedGridRhoFastjetAll",
]
REQUIRED_MC_ONLY = ["genWeight", "Pileup_nTrueInt", "Jet_hadronFlavour"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    """One small LZMA-compressed demo generation shared by the read-only tests."""
    outdir = tmp_path_factory.mktemp("demo")
    path = generate_demo_data(outdir, workers=1, progress=False, **SMALL)
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def real_types(nanoaod_dir) -> dict[str, str]:
    return uproot.open(nanoaod_dir / "nano_dy.root")["Events"].typenames()


def _files(demo: dict, spec) -> list[str]:
    return demo[spec.dataset]["files"]


def _arrays(path: str, branches: list[str]) -> ak.Array:
    return uproot.open(path)["Events"].arrays(branches)


def test_fileset_lists_the_three_datasets_with_their_metadata(demo):
    assert set(demo) == {"DYJetsToLL_M-50_2018", "TTTo2L2Nu_2018", "DATA_DoubleMuon_2018_EraA"}
    dy, tt, data = (demo[s.dataset]["metadata"] for s in (DY, TTBAR, DATA))
    assert (dy["sample"], dy["year"], dy["isMC"], dy["xsec"]) == ("DYJetsToLL_M-50", "2018", True, 6077.22)
    assert (tt["sample"], tt["isMC"], tt["xsec"]) == ("TTTo2L2Nu", True, 88.29)
    assert (data["sample"], data["isMC"], data["primaryDataset"], data["era"]) == ("DATA_DoubleMuon", False, "DoubleMuon", "A")
    assert "xsec" not in data
    assert data["lumi_pb"] == pytest.approx(3000 / (6077.22 + 88.29), rel=1e-6)
    assert len(_files(demo, DY)) == 2 and len(_files(demo, DATA)) == 1


def test_fileset_nevents_equal_the_entries_of_the_files(demo):
    for entry in demo.values():
        counts = [uproot.open(f)["Events"].num_entries for f in entry["files"]]
        assert all(Path(f).is_absolute() for f in entry["files"])
        assert entry["metadata"]["file_nevents"] == counts
        assert entry["metadata"]["nevents"] == sum(counts)
    assert demo[DY.dataset]["metadata"]["nevents"] == 6000
    assert 0 < demo[DATA.dataset]["metadata"]["nevents"] < 3000  # only double-muon-triggered collisions


def test_branch_names_and_types_equal_real_nanoaod(demo, real_types):
    for spec in (DY, TTBAR, DATA):
        for path in _files(demo, spec):
            ours = uproot.open(path)["Events"].typenames()
            required = REQUIRED_COMMON + (REQUIRED_MC_ONLY if spec.is_mc else [])
            assert not [b for b in required if b not in ours], path
            assert set(ours) <= set(real_types), f"branches unknown to NanoAOD: {set(ours) - set(real_types)}"
            assert {b: ours[b] for b in ours} == {b: real_types[b] for b in ours}
    assert real_types["nMuon"] == "uint32_t" and real_types["Jet_jetId"] == "int32_t[]"


def test_data_has_no_generator_information(demo):
    for path in _files(demo, DATA):
        branches = set(uproot.open(path)["Events"].keys())
        assert not branches & set(REQUIRED_MC_ONLY)
        assert not any(b.startswith(("Gen", "LHE", "Pileup_")) for b in branches)


def test_files_are_lzma_level_9_like_production_nanoaod(demo):
    for entry in demo.values():
        for path in entry["files"]:
            file = uproot.open(path)
            assert file.file.compression == uproot.LZMA(9)
            assert file.file.fCompress == 209
    # and the baskets really are xz streams: ROOT's 9-byte header starts with "XZ"
    branch = uproot.open(_files(demo, TTBAR)[0])["Events"]["Jet_pt"]
    seek = int(branch.member("fBasketSeek")[0])
    with open(_files(demo, TTBAR)[0], "rb") as stream:
        stream.seek(seek)
        head = stream.read(256)
    key_length = struct.unpack(">h", head[14:16])[0]  # TKey: fNbytes, fVersion, fObjlen, fDatime, fKeylen
    assert head[key_length:key_length + 2] == b"XZ"
    assert branch.compressed_bytes < branch.uncompressed_bytes


def test_nanoaod_schema_reads_the_files_and_the_dimuon_mass_matches_numpy(demo):
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path = _files(demo, DY)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coffea names cross-references absent from the file
        for mode in ("eager", "virtual"):
            events = NanoEventsFactory.from_root({path: "Events"}, schemaclass=NanoAODSchema, mode=mode).events()
            two = events[ak.num(events.Muon) >= 2]
            mass = ak.to_numpy((two.Muon[:, 0] + two.Muon[:, 1]).mass)

            raw = _arrays(path, ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass"])
            raw = raw[ak.num(raw.Muon_pt) >= 2]
            pt, eta, phi, m = (ak.to_numpy(raw[f"Muon_{v}"][:, :2]).astype(np.float64) for v in ("pt", "eta", "phi", "mass"))
            px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
            energy = np.sqrt(px**2 + py**2 + pz**2 + m**2)
            expected = np.sqrt(energy.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2)
            assert len(mass) == len(expected) > 100
            np.testing.assert_allclose(mass, expected, rtol=1e-3, atol=1e-3)  # coffea sums in float32
            assert len(events) == 3000 and ak.all(events.Muon.pt >= 3)


def test_drell_yan_has_a_z_peak(demo):
    masses = []
    for path in _files(demo, DY):
        mu = _arrays(path, ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge"])
        mu = mu[(ak.num(mu.Muon_pt) >= 2)]
        mu = mu[mu.Muon_charge[:, 0] != mu.Muon_charge[:, 1]]
        pt, eta, phi = (ak.to_numpy(mu[f"Muon_{v}"][:, :2]).astype(np.float64) for v in ("pt", "eta", "phi"))
        masses.append(np.sqrt(2 * pt[:, 0] * pt[:, 1] * (np.cosh(eta[:, 0] - eta[:, 1]) - np.cos(phi[:, 0] - phi[:, 1]))))
    masses = np.concatenate(masses)
    assert len(masses) > 1000
    assert abs(np.median(masses) - 91.19) < 2.0
    assert 0.6 < np.mean(np.abs(masses - 91.19) < 10) < 0.98  # a peak with resolution and a gamma* tail


def test_ttbar_has_two_b_tagged_jets_and_missing_energy_unlike_drell_yan(demo):
    def fractions(spec):
        arrays = [_arrays(f, ["Jet_btagDeepFlavB", "MET_pt"]) for f in _files(demo, spec)]
        tagged = np.concatenate([ak.to_numpy(ak.sum(a.Jet_btagDeepFlavB > 0.7, axis=1)) for a in arrays])
        met = np.concatenate([ak.to_numpy(a.MET_pt) for a in arrays])
        return np.mean(tagged >= 2), np.median(met)

    tt_2b, tt_met = fractions(TTBAR)
    dy_2b, dy_met = fractions(DY)
    assert tt_2b > 0.5
    assert dy_2b < 0.02
    assert tt_met > 40 > dy_met


def test_generator_weights_have_a_few_percent_negative_and_runs_tree_sums_them(demo):
    for spec in (DY, TTBAR):
        for path in _files(demo, spec):
            file = uproot.open(path)
            weights = file["Events"]["genWeight"].array(library="np")
            assert weights.dtype == np.float32
            assert 0.01 < np.mean(weights < 0) < 0.20
            runs = file["Runs"].arrays(library="np")
            assert runs["genEventCount"][0] == len(weights)
            assert runs["genEventSumw"][0] == pytest.approx(weights.astype(np.float64).sum(), rel=1e-9)
            assert runs["genEventSumw2"][0] == pytest.approx((weights.astype(np.float64) ** 2).sum(), rel=1e-9)
            assert file["Runs"].typenames() == {
                "run": "uint32_t", "genEventCount": "int64_t", "genEventSumw": "double", "genEventSumw2": "double"
            }


def test_data_event_ids_are_realistic_and_the_primary_dataset_is_double_muon(demo):
    for path in _files(demo, DATA):
        file = uproot.open(path)
        ids = file["Events"].arrays(["run", "luminosityBlock", "event", "HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8"], library="np")
        assert ids["HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8"].all()
        assert ((ids["run"] >= ERA_A_RUNS[0]) & (ids["run"] <= ERA_A_RUNS[1])).all()
        triples = set(zip(ids["run"].tolist(), ids["luminosityBlock"].tolist(), ids["event"].tolist()))
        assert len(triples) == len(ids["run"])  # no duplicated event
        assert np.all(np.diff(ids["event"].astype(np.int64)) > 0)
        assert sorted(file["Runs"]["run"].array(library="np").tolist()) == sorted(set(ids["run"].tolist()))
        lumis = file["LuminosityBlocks"].arrays(library="np")
        assert set(zip(lumis["run"].tolist(), lumis["luminosityBlock"].tolist())) == {(r, l) for r, l, _ in triples}


def test_mc_event_numbers_are_unique_across_the_files_of_a_sample(demo):
    events = np.concatenate([uproot.open(f)["Events"]["event"].array(library="np") for f in _files(demo, DY)])
    assert len(np.unique(events)) == len(events) == 6000


def test_same_seed_gives_identical_arrays_whatever_the_number_of_workers(tmp_path):
    first = generate_demo_data(tmp_path / "a", workers=1, progress=False, **TINY)
    second = generate_demo_data(tmp_path / "b", workers=2, progress=False, **TINY)
    other = generate_demo_data(tmp_path / "c", workers=1, progress=False, **{**TINY, "seed": 12})
    a, b, c = (json.loads(p.read_text()) for p in (first, second, other))
    for dataset in a:
        for fa, fb, fc in zip(a[dataset]["files"], b[dataset]["files"], c[dataset]["files"]):
            ta, tb, tc = (uproot.open(f)["Events"] for f in (fa, fb, fc))
            assert ta.keys() == tb.keys()
            for branch in ta.keys():
                assert ak.array_equal(ta[branch].array(), tb[branch].array()), branch
            assert not ak.array_equal(ta["Muon_pt"].array(), tc["Muon_pt"].array())
        assert a[dataset]["metadata"] == b[dataset]["metadata"]


def test_existing_data_with_the_same_parameters_is_not_regenerated(tmp_path):
    path = generate_demo_data(tmp_path, workers=1, progress=False, **TINY)
    files = json.loads(path.read_text())[DY.dataset]["files"]
    stamp = Path(files[0]).stat().st_mtime_ns
    assert generate_demo_data(tmp_path, workers=1, progress=False, **TINY) == path
    assert Path(files[0]).stat().st_mtime_ns == stamp
    # a missing file makes the folder out of date: it is regenerated
    Path(files[0]).unlink()
    generate_demo_data(tmp_path, workers=1, progress=False, **TINY)
    assert Path(files[0]).is_file()
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_other_parameters_need_overwrite_and_overwrite_replaces_everything(tmp_path):
    path = generate_demo_data(tmp_path, workers=1, progress=False, **{**TINY, "files_per_sample": 2})
    before = path.read_text()
    with pytest.raises(DemoDataError, match="--overwrite"):
        generate_demo_data(tmp_path, workers=1, progress=False, **TINY)
    assert path.read_text() == before  # nothing lost
    generate_demo_data(tmp_path, workers=1, progress=False, overwrite=True, **TINY)
    fileset = json.loads(path.read_text())
    assert fileset[DY.dataset]["metadata"]["file_nevents"] == [400]
    assert not (tmp_path / DY.dataset / "nanoaod_1.root").exists()  # the stale second file is gone
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["parameters"]["files_per_sample"] == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"events_per_file": 0}, "events_per_file = 0"),
        ({"compression": "brotli"}, "compression = 'brotli'.*lzma, zstd"),
        ({"workers": 0}, "workers = 0"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(tmp_path, bad, message):
    with pytest.raises(DemoDataError, match=message):
        generate_demo_data(tmp_path, progress=False, **{**TINY, **bad})


def test_outdir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me")
    with pytest.raises(DemoDataError, match="not a directory"):
        generate_demo_data(target, progress=False, **TINY)
    assert target.read_text() == "keep me"


def test_command_writes_only_into_the_named_folder(tmp_path, monkeypatch):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    outdir = tmp_path / "out"
    result = CliRunner().invoke(
        generate_demo_data_command,
        ["-o", str(outdir), "-n", "300", "-f", "1", "--data-files", "1", "--compression", "zstd", "-j", "1"],
    )
    assert result.exit_code == 0, result.output
    assert str(outdir / FILESET_NAME) in result.output.replace("\n", "")
    assert list(workdir.iterdir()) == []
    fileset = json.loads((outdir / FILESET_NAME).read_text())
    assert uproot.open(fileset[TTBAR.dataset]["files"][0]).file.compression == uproot.ZSTD(5)


def test_command_requires_an_output_folder_and_is_reachable_from_the_umbrella(tmp_path):
    from pocket_coffea.cli import cli

    result = CliRunner().invoke(cli, ["generate-demo-data"])
    assert result.exit_code != 0
    assert "--outdir" in result.output
    result = CliRunner().invoke(cli, ["generate-demo-data", "-o", str(tmp_path), "--compression", "brotli"])
    assert result.exit_code != 0 and "brotli" in result.output
    assert list(tmp_path.iterdir()) == []


def test_fileset_is_accepted_by_the_pc_core_loader(demo, tmp_path):
    from pc_core.fileset import load_fileset_json

    path = tmp_path / FILESET_NAME
    path.write_text(json.dumps(demo))
    loaded = load_fileset_json(path)
    assert loaded[DY.dataset]["metadata"]["xsec"] == 6077.22
    assert loaded[DATA.dataset]["metadata"]["isMC"] is False
    assert loaded[TTBAR.dataset]["metadata"]["nevents"] == 6000
