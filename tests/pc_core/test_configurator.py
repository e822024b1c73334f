"""Configurator.load(): contents, per-sample weights/variations/columns, and every validation error."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import uproot

from pc_core import (
    Axis,
    CartesianSelection,
    ColOut,
    Configurator,
    Cut,
    HistConf,
    MultiCut,
    StandardSelection,
    WeightData,
    WeightLambda,
    WeightWrapper,
    passthrough,
)
from pc_core.configurator import NotLoadedError
from pc_core.errors import ConfigError, DatasetError


# ---------------------------------------------------------------- analysis pieces


def _n_at_least(events, params, **context):
    return np.asarray(events[params["branch"]]) >= params["n"]


def _n_exactly(events, params, **context):
    return np.asarray(events[params["branch"]]) == params["n"]


two_muons = Cut("two_muons", _n_at_least, {"branch": "nMuon", "n": 2})
one_muon = Cut("one_muon", _n_exactly, {"branch": "nMuon", "n": 1})
two_electrons = Cut("two_electrons", _n_at_least, {"branch": "nElectron", "n": 2})
jets_2 = Cut("jets_2", _n_exactly, {"branch": "nJet", "n": 2})
jets_3p = Cut("jets_3p", _n_at_least, {"branch": "nJet", "n": 3})


class Workflow:
    """Stands in for a processor class (pc-core only checks that it is a class)."""


def _constant(value):
    return lambda params, metadata, events, size, shape_variation: (
        np.full(size, value),
        np.full(size, value + 0.1),
        np.full(size, value - 0.1),
    )


sf_mu = WeightLambda.wrap_func("sf_mu", _constant(0.9), has_variations=True)
sf_dy = WeightLambda.wrap_func("sf_dy", _constant(1.1), has_variations=True)
sf_ele = WeightLambda.wrap_func("sf_ele", _constant(0.95), has_variations=True)


class TriggerPrescale(WeightWrapper):
    """A weight that also applies to data (isMC_only False)."""

    name = "prescale"
    isMC_only = False

    def compute(self, events, size, shape_variation="nominal"):
        return WeightData(self.name, np.full(size, 2.0))


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def fileset_jsons(tmp_path: Path, nanoaod_dir: Path) -> list[str]:
    """Two dataset JSONs (MC, data), PocketCoffea-style string metadata, real NanoAOD files."""
    mc = {
        "DY_2018": {
            "files": [str(nanoaod_dir / "nano_dy.root"), str(nanoaod_dir / "nano_dy_empty.root")],
            "metadata": {"sample": "DY", "year": "2018", "isMC": "True", "xsec": "6077.22", "nevents": "40"},
        },
        "TT_2022": {
            "files": [str(nanoaod_dir / "nano_tt_v12.root")],
            "metadata": {"sample": "TTbar", "year": "2022_postEE", "isMC": "True", "xsec": "833.9", "nevents": "200"},
        },
    }
    data = {
        "DATA_DoubleMuon_2018": {
            "files": [str(nanoaod_dir / "nano_dimuon.root")],
            "metadata": {"sample": "DATA_DoubleMuon", "year": "2018", "isMC": "False", "nevents": "40"},
        }
    }
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mc.json").write_text(json.dumps(mc))
    (tmp_path / "datasets" / "data.json").write_text(json.dumps(data))
    return ["datasets/mc.json", "datasets/data.json"]


def arguments(jsons: list[str]) -> dict:
    """The keyword arguments of a small, valid configuration."""
    return dict(
        workflow=Workflow,
        parameters={"my_cut": {"pt": 20}},
        datasets={"jsons": list(jsons), "filter": {"samples": ["DY", "TTbar", "DATA_DoubleMuon"]}},
        skim=[two_muons],
        preselections=[one_muon],
        categories={"inclusive": [passthrough], "mumu": [two_muons], "ee": [two_electrons]},
        weights={"common": {"inclusive": ["genWeight", "lumi", "XS"], "bycategory": {}}, "bysample": {}},
        variations={"weights": {"common": {"inclusive": [], "bycategory": {}}, "bysample": {}}},
        variables={"nmuon": HistConf([Axis(field="nMuon", label="N muons", bins=5, start=0, stop=5, type="integer")])},
    )


@pytest.fixture
def make(tmp_path: Path, fileset_jsons: list[str]):
    """``make(**overrides)`` -> a Configurator with base_dir=tmp_path (not loaded)."""

    def build(**overrides) -> Configurator:
        kwargs = arguments(fileset_jsons)
        kwargs.update(overrides)
        return Configurator(**kwargs, base_dir=tmp_path)

    return build


def load_error(cfg: Configurator, error=ConfigError) -> str:
    with pytest.raises(error) as info:
        cfg.load()
    assert cfg.loaded is False
    return str(info.value)


# ---------------------------------------------------------------- contents


def test_load_contents(make, tmp_path, nanoaod_dir):
    cfg = make()
    with pytest.raises(NotLoadedError, match=r"Configurator.fileset is available only after cfg.load\(\)"):
        cfg.fileset
    assert cfg.load() is cfg and cfg.loaded
    assert cfg.workflow is Workflow
    assert cfg.samples == ["DY", "TTbar", "DATA_DoubleMuon"]
    assert cfg.years == ["2018", "2022_postEE"]
    assert cfg.datasets_names == ["DY_2018", "TT_2022", "DATA_DoubleMuon_2018"]
    assert cfg.datasets_jsons == [tmp_path / "datasets/mc.json", tmp_path / "datasets/data.json"]
    dy = cfg.fileset["DY_2018"]
    assert dy["files"] == [str(nanoaod_dir / "nano_dy.root"), str(nanoaod_dir / "nano_dy_empty.root")]
    assert dy["metadata"]["isMC"] is True and dy["metadata"]["xsec"] == 6077.22
    assert cfg.fileset["DATA_DoubleMuon_2018"]["metadata"]["isMC"] is False
    assert cfg.skim == (two_muons,) and cfg.skim[0] is two_muons
    assert cfg.preselections == (one_muon,)
    assert list(cfg.categories) == ["inclusive", "mumu", "ee"]
    assert cfg.categories["mumu"] == (two_muons,)
    # defaults merged under the user's parameters
    assert cfg.parameters["my_cut"] == {"pt": 20}
    assert cfg.parameters["lumi"]["picobarn"]["2018"]["tot"] == 59830.0
    assert cfg.lumi_pb_by_year() == {"2018": 59830.0, "2022_postEE": 26671.7}
    assert set(cfg.weights_classes) == {"genWeight", "signOf_genWeight", "lumi", "XS"}
    assert cfg.workflow_options == {} and cfg.save_skimmed_files is None
    assert cfg.subsamples == {}
    assert cfg.samples_for_output("DY") == ["DY"]
    assert cfg.columns == {s: {c: [] for c in cfg.categories} for s in cfg.samples}
    # a second load is a no-op
    weights = cfg.weights_config
    assert cfg.load() is cfg and cfg.weights_config is weights


def test_cuts_of_the_loaded_config_select_real_events(make, nanoaod_dir):
    cfg = make().load()
    events = uproot.open(nanoaod_dir / "nano_dy.root")["Events"].arrays(["nMuon", "nElectron"])
    context = dict(year="2018", sample="DY", dataset="DY_2018", isMC=True, metadata=cfg.fileset["DY_2018"]["metadata"])
    mask = np.logical_and.reduce([cut.get_mask(events, **context) for cut in cfg.categories["mumu"]])
    assert mask.sum() == np.sum(np.asarray(events["nMuon"]) >= 2) > 0
    assert cfg.categories["inclusive"][0].get_mask(events, **context).sum() == len(events["nMuon"]) == 40


def test_weights_and_variations_per_sample(make):
    weights = {
        "common": {"inclusive": ["genWeight", "lumi", "XS", "prescale"], "bycategory": {"mumu": ["sf_mu"]}},
        "bysample": {
            "DY": {"inclusive": ["sf_dy"], "bycategory": {"ee": ["sf_ele"]}},
            "DATA_DoubleMuon": {"inclusive": ["prescale"]},
        },
    }
    variations = {
        "weights": {
            "common": {"inclusive": ["sf_mu"]},
            "bysample": {"DY": {"inclusive": ["sf_dy"], "bycategory": {"ee": ["sf_ele"]}}},
        }
    }
    cfg = make(
        weights=weights, variations=variations, weights_classes=[sf_mu, sf_dy, sf_ele, TriggerPrescale]
    ).load()
    cats = ["inclusive", "mumu", "ee"]
    assert cfg.weights_config == {
        "DY": {
            "inclusive": ["genWeight", "lumi", "XS", "prescale", "sf_dy"],
            "bycategory": {"inclusive": [], "mumu": ["sf_mu"], "ee": ["sf_ele"]},
            "is_split_bycat": True,
        },
        "TTbar": {
            "inclusive": ["genWeight", "lumi", "XS", "prescale"],
            "bycategory": {"inclusive": [], "mumu": ["sf_mu"], "ee": []},
            "is_split_bycat": True,
        },
        # data keeps only the weights whose class is not MC-only
        "DATA_DoubleMuon": {
            "inclusive": ["prescale"],
            "bycategory": {c: [] for c in cats},
            "is_split_bycat": False,
        },
    }
    assert cfg.variations_config == {
        # an inclusive variation goes to every category where its weight is applied
        "DY": {"weights": {"inclusive": ["sf_dy"], "mumu": ["sf_mu", "sf_dy"], "ee": ["sf_dy", "sf_ele"]}},
        "TTbar": {"weights": {"inclusive": [], "mumu": ["sf_mu"], "ee": []}},
        "DATA_DoubleMuon": {"weights": {c: [] for c in cats}},
    }
    assert cfg.weights_classes["sf_dy"] is sf_dy and cfg.weights_classes["prescale"] is TriggerPrescale


def test_weight_classes_can_be_listed_directly(make):
    cfg = make(
        weights={"common": {"inclusive": ["genWeight", sf_mu]}},
        variations={"weights": {"common": {"inclusive": [sf_mu]}}},
    ).load()
    assert cfg.weights_config["DY"]["inclusive"] == ["genWeight", "sf_mu"]
    assert cfg.variations_config["TTbar"]["weights"]["ee"] == ["sf_mu"]
    assert cfg.weights_classes["sf_mu"] is sf_mu


def test_columns_per_sample_and_category(make):
    leptons = ColOut("Muon", ["pt", "eta"])
    jets = ColOut("Jet", ["pt"], pos_end=2)
    met = ColOut("events", ["MET_pt"], flatten=False)
    cfg = make(
        columns={
            "common": {"inclusive": [met], "bycategory": {"mumu": [leptons]}},
            "bysample": {"TTbar": {"bycategory": {"ee": [jets]}}},
        }
    ).load()
    assert cfg.columns["TTbar"] == {"inclusive": [met], "mumu": [met, leptons], "ee": [met, jets]}
    assert cfg.columns["DY"] == {"inclusive": [met], "mumu": [met, leptons], "ee": [met]}


def test_subsamples_naming_and_masks(make, nanoaod_dir):
    cfg = make(
        datasets={
            "jsons": ["datasets/mc.json", "datasets/data.json"],
            "subsamples": {"DY": {"mm": [two_muons], "ee": [two_electrons]}},
        }
    ).load()
    assert cfg.samples_for_output("DY") == ["DY__mm", "DY__ee"]
    assert cfg.samples_for_output("TTbar") == ["TTbar"]
    assert cfg.subsamples == {"DY": {"mm": (two_muons,), "ee": (two_electrons,)}}
    with pytest.raises(ConfigError, match="sample 'Nope' is not in the fileset; samples: DY, TTbar, DATA_DoubleMuon"):
        cfg.samples_for_output("Nope")
    events = uproot.open(nanoaod_dir / "nano_dy.root")["Events"].arrays(["nMuon", "nElectron"])
    ee = cfg.subsamples["DY"]["ee"][0].get_mask(events)
    assert ee.sum() == np.sum(np.asarray(events["nElectron"]) >= 2) > 0
    # a subsample of a sample removed by the filter is not kept
    only_tt = cfg.filter(samples=["TTbar"])
    assert only_tt.subsamples == {} and only_tt.samples_for_output("TTbar") == ["TTbar"]


def test_cartesian_categories_expansion(make, nanoaod_dir):
    selection = CartesianSelection(
        multicuts=[
            MultiCut("leptons", [two_muons, two_electrons], ["mm", "ee"]),
            MultiCut("jets", [jets_2, jets_3p], ["2j", "3j"]),
        ],
        common_cats={"inclusive": [passthrough]},
    )
    cfg = make(
        categories=selection,
        weights={"common": {"inclusive": ["genWeight"], "bycategory": {"ee_3j": ["lumi"]}}},
    ).load()
    assert list(cfg.categories) == ["inclusive", "mm_2j", "mm_3j", "ee_2j", "ee_3j"]
    assert cfg.categories["ee_3j"] == (two_electrons, jets_3p)
    assert cfg.weights_config["DY"]["bycategory"]["ee_3j"] == ["lumi"]
    events = uproot.open(nanoaod_dir / "nano_tt_v12.root")["Events"].arrays(["nMuon", "nElectron", "nJet"])
    mask = np.logical_and.reduce([c.get_mask(events) for c in cfg.categories["mm_3j"]])
    assert mask.sum() == np.sum((np.asarray(events["nMuon"]) >= 2) & (np.asarray(events["nJet"]) >= 3))  > 0


def test_standard_selection_categories(make):
    cfg = make(categories=StandardSelection({"a": [two_muons], "b": [two_electrons, jets_2]})).load()
    assert cfg.categories == {"a": (two_muons,), "b": (two_electrons, jets_2)}


def test_cartesian_name_collision_is_an_error(make):
    selection = CartesianSelection(
        multicuts=[MultiCut("a", [two_muons], ["x"]), MultiCut("b", [jets_2], ["y"])],
        common_cats={"x_y": [passthrough]},
    )
    message = load_error(make(categories=selection))
    assert "category names collide" in message and "'x_y'" in message


# ---------------------------------------------------------------- filters and derived configurators


def test_filters_and_with_fileset(make):
    cfg = make(datasets={"jsons": ["datasets/mc.json", "datasets/data.json"], "filter": {"year": ["2018"]}}).load()
    assert cfg.datasets_names == ["DY_2018", "DATA_DoubleMuon_2018"]
    assert cfg.datasets_filter == {"years": ["2018"]}
    cfg = make(datasets={"jsons": ["datasets/mc.json", "datasets/data.json"], "filter": {"samples_exclude": ["TTbar"]}}).load()
    assert cfg.samples == ["DY", "DATA_DoubleMuon"]

    full = make().load()
    before = copy.deepcopy(full.fileset)
    only_data = full.filter(samples="DATA_DoubleMuon")
    assert only_data.samples == ["DATA_DoubleMuon"] and only_data.years == ["2018"]
    assert list(only_data.weights_config) == ["DATA_DoubleMuon"]
    assert full.samples == ["DY", "TTbar", "DATA_DoubleMuon"] and full.fileset == before
    run3 = full.filter(years=["2022_postEE"])
    assert run3.datasets_names == ["TT_2022"] and run3.lumi_pb_by_year() == {"2022_postEE": 26671.7}
    assert full.filter(datasets="DY_2018,TT_2022").samples == ["DY", "TTbar"]

    limited = {"DY_2018": {**copy.deepcopy(full.fileset["DY_2018"]), "files": full.fileset["DY_2018"]["files"][:1]}}
    small = full.with_fileset(limited)
    assert small.fileset["DY_2018"]["files"] == full.fileset["DY_2018"]["files"][:1]
    assert len(full.fileset["DY_2018"]["files"]) == 2
    assert small.samples == ["DY"] and small.loaded

    with pytest.raises(DatasetError, match=r"The configured fileset is empty after filtering: filter years=\['2016'\]"):
        full.filter(years="2016")
    with pytest.raises(DatasetError, match="non-empty fileset"):
        full.with_fileset({})


def test_empty_after_config_filter_names_the_filter(make):
    jsons = ["datasets/mc.json", "datasets/data.json"]
    message = load_error(make(datasets={"jsons": jsons, "filter": {"samples": ["Nope"]}}), DatasetError)
    assert "is empty after filtering: filter samples=['Nope'] matched none of the samples present" in message
    assert "['DATA_DoubleMuon', 'DY', 'TTbar']" in message
    message = load_error(make(datasets={"jsons": jsons, "filter": {"year": ["2017"]}}), DatasetError)
    assert "filter years=['2017'] matched none of the years present ['2018', '2022_postEE']" in message
    message = load_error(
        make(datasets={"jsons": jsons, "filter": {"samples_exclude": ["DY", "TTbar", "DATA_DoubleMuon"]}}), DatasetError
    )
    assert "filter samples_exclude=" in message and "excluded all of the samples present" in message
    message = load_error(make(datasets={"jsons": jsons, "filter": {"sample": ["DY"]}}), DatasetError)
    assert message.startswith("datasets[\"filter\"]: unknown filter key 'sample'; accepted:")


# ---------------------------------------------------------------- dataset errors


def test_missing_dataset_json(make, tmp_path):
    message = load_error(make(datasets={"jsons": ["datasets/mc.json", "datasets/nope.json"]}), DatasetError)
    assert message == f"Fileset JSON {tmp_path / 'datasets/nope.json'} does not exist"


def test_malformed_dataset_json(make, tmp_path):
    (tmp_path / "datasets" / "bad.json").write_text('{"DY_2018": {"files": [],\n  "metadata": {"sample" "DY"}}}')
    message = load_error(make(datasets={"jsons": ["datasets/bad.json"]}), DatasetError)
    assert message.startswith(f"Fileset JSON {tmp_path / 'datasets/bad.json'} is not valid JSON")
    assert "line 2, column 25" in message


def test_duplicate_dataset_across_jsons(make, tmp_path):
    copy_path = tmp_path / "datasets" / "mc_copy.json"
    copy_path.write_text((tmp_path / "datasets" / "mc.json").read_text())
    message = load_error(make(datasets={"jsons": ["datasets/mc.json", "datasets/mc_copy.json"]}), DatasetError)
    assert message == (
        f"Dataset 'DY_2018' is defined in both {tmp_path / 'datasets/mc.json'} and {copy_path}; "
        "dataset names must be unique across the fileset JSONs"
    )


def test_dataset_argument_errors(make):
    assert "datasets has no \"jsons\"" in load_error(make(datasets={"filter": {}}))
    message = load_error(make(datasets={"jsons": ["datasets/mc.json"], "subsample": {}}))
    assert "datasets: unknown key 'subsample' (did you mean 'subsamples'?)" in message
    message = load_error(make(datasets={"jsons": []}))
    assert message == 'datasets["jsons"] must be a non-empty list of JSON file paths, got []'


def test_sample_mixing_data_and_mc(make, tmp_path, nanoaod_dir):
    mixed = {
        "DY_data": {"files": [str(nanoaod_dir / "nano_dimuon.root")], "metadata": {"sample": "DY", "year": "2018", "isMC": False}}
    }
    (tmp_path / "datasets" / "mixed.json").write_text(json.dumps(mixed))
    message = load_error(make(datasets={"jsons": ["datasets/mc.json", "datasets/mixed.json"]}), DatasetError)
    assert message.startswith("Sample 'DY' mixes data and MC: dataset 'DY_2018' has isMC=True but 'DY_data' has isMC=False")


# ---------------------------------------------------------------- weight errors


def test_unknown_weight_common(make):
    message = load_error(make(weights={"common": {"inclusive": ["genWeight", "pileup"]}}))
    assert message.startswith(
        "Unknown weight 'pileup' in weights[\"common\"][\"inclusive\"][1] (every sample, every category (inclusive)); "
        "known weights: XS, genWeight, lumi, signOf_genWeight."
    )


def test_unknown_weight_bysample_bycategory(make):
    message = load_error(
        make(
            weights={"common": {"inclusive": ["genWeight"]}, "bysample": {"TTbar": {"bycategory": {"ee": ["sf_mu", "sf_elec"]}}}},
            weights_classes=[sf_mu, sf_ele],
        )
    )
    assert message.startswith(
        "Unknown weight 'sf_elec' in weights[\"bysample\"]['TTbar'][\"bycategory\"]['ee'][1] "
        "(sample 'TTbar', category 'ee') (did you mean 'sf_ele'?); "
        "known weights: XS, genWeight, lumi, sf_ele, sf_mu, signOf_genWeight."
    )


def test_unknown_weight_in_variations(make):
    message = load_error(make(variations={"weights": {"bysample": {"DY": {"inclusive": ["jes"]}}}}))
    assert message.startswith(
        "Unknown weight 'jes' in variations[\"weights\"][\"bysample\"]['DY'][\"inclusive\"][0] "
        "(sample 'DY', every category (inclusive)); known weights: XS, genWeight, lumi, signOf_genWeight."
    )


def test_weight_both_inclusive_and_bycategory(make):
    message = load_error(
        make(weights={"common": {"inclusive": ["genWeight", "lumi"]}, "bysample": {"TTbar": {"bycategory": {"mumu": ["lumi"]}}}})
    )
    assert message == (
        "Weight 'lumi' for sample 'TTbar' is applied both inclusively (weights[\"common\"][\"inclusive\"][1]) and in "
        "category 'mumu' (weights[\"bysample\"]['TTbar'][\"bycategory\"]['mumu'][0]); "
        "a weight is either inclusive or by category"
    )


def test_variation_of_weight_not_applied_in_category(make):
    message = load_error(
        make(
            weights={"common": {"inclusive": ["genWeight"], "bycategory": {"mumu": ["sf_mu"]}}},
            variations={"weights": {"bysample": {"DY": {"bycategory": {"ee": ["sf_mu"]}}}}},
            weights_classes=[sf_mu],
        )
    )
    assert message == (
        "Variation of weight 'sf_mu' requested in variations[\"weights\"][\"bysample\"]['DY'][\"bycategory\"]['ee'][0], "
        "but weight 'sf_mu' is not applied to sample 'DY' in category 'ee'; weights applied there: ['genWeight']"
    )


def test_variation_of_weight_not_applied_anywhere(make):
    message = load_error(
        make(
            weights={"common": {"inclusive": ["genWeight"]}, "bysample": {"DY": {"inclusive": ["sf_dy"]}}},
            variations={"weights": {"common": {"inclusive": ["sf_dy"]}}},
            weights_classes=[sf_dy],
        )
    )
    # applied to DY only, but its variation is requested for every sample: TTbar is named
    assert message.startswith(
        "Variation of weight 'sf_dy' requested in variations[\"weights\"][\"common\"][\"inclusive\"][0], but weight "
        "'sf_dy' is not applied to sample 'TTbar' in any category; weights applied to 'TTbar': inclusive ['genWeight']"
    )


def test_variation_of_weight_without_variations(make):
    message = load_error(make(variations={"weights": {"common": {"inclusive": ["lumi"]}}}))
    assert message == (
        "variations[\"weights\"][\"common\"][\"inclusive\"][0]: weight 'lumi' has no Up/Down variations "
        "(Lumi.has_variations is False)"
    )


def test_weights_spec_shape_errors(make):
    message = load_error(make(weights={"comon": {"inclusive": ["genWeight"]}}))
    assert message == "weights: unknown key 'comon' (did you mean 'common'?); accepted keys: common, bysample"
    message = load_error(make(weights={"common": {"inclusive": "genWeight"}}))
    assert message == 'weights["common"]["inclusive"] must be a list of weight names, got str \'genWeight\''
    message = load_error(make(weights={"common": {"inclusive": [3]}}))
    assert message.startswith('weights["common"]["inclusive"][0] is int 3; weights lists hold weight names (str)')
    message = load_error(make(variations={"shape": {}}))
    assert message == "variations: unknown key 'shape'; accepted keys: weights"


def test_weights_classes_errors(make):
    message = load_error(make(weights_classes=[sf_mu, "sf_dy"]))
    assert message.startswith("weights_classes[1] is 'sf_dy', not a weight class")
    clash = WeightLambda.wrap_func("sf_mu", _constant(2.0))
    message = load_error(make(weights_classes=[sf_mu, clash]))
    assert message.startswith("weights_classes[1]: two different weight classes are named 'sf_mu'")


def test_lumi_weight_needs_the_year_luminosity(make, tmp_path, nanoaod_dir):
    future = {
        "DY_2099": {
            "files": [str(nanoaod_dir / "nano_dy.root")],
            "metadata": {"sample": "DY", "year": "2099", "isMC": True, "xsec": 1.0},
        }
    }
    (tmp_path / "datasets" / "future.json").write_text(json.dumps(future))
    message = load_error(make(datasets={"jsons": ["datasets/future.json"]}))
    assert message.startswith(
        "weight 'lumi' is applied to dataset 'DY_2099': no luminosity for year '2099' in parameters lumi.picobarn"
    )
    # giving the luminosity in the parameters fixes it
    cfg = make(datasets={"jsons": ["datasets/future.json"]}, parameters={"lumi": {"picobarn": {"2099": {"tot": 5.0}}}}).load()
    assert cfg.lumi_pb_by_year() == {"2099": 5.0}


# ---------------------------------------------------------------- bysample / bycategory names


@pytest.mark.parametrize(
    ("argument", "value", "where"),
    [
        ("weights", {"bysample": {"ttbar": {"inclusive": ["genWeight"]}}}, 'weights["bysample"]'),
        ("variations", {"weights": {"bysample": {"ttbar": {}}}}, 'variations["weights"]["bysample"]'),
        ("columns", {"bysample": {"ttbar": {"inclusive": [ColOut("Muon", ["pt"])]}}}, 'columns["bysample"]'),
    ],
)
def test_bysample_unknown_sample(make, argument, value, where):
    message = load_error(make(**{argument: value}))
    assert message == (
        f"{where}: sample 'ttbar' does not exist in the fileset (did you mean 'TTbar'?); "
        "samples in the dataset JSONs: DATA_DoubleMuon, DY, TTbar"
    )


def test_bysample_of_a_filtered_out_sample_is_accepted(make):
    """A typo is an error, but a sample that the config filter removed is not."""
    cfg = make(
        datasets={"jsons": ["datasets/mc.json", "datasets/data.json"], "filter": {"samples": ["DY"]}},
        weights={"common": {"inclusive": ["genWeight"]}, "bysample": {"TTbar": {"inclusive": ["lumi"]}}},
    ).load()
    assert list(cfg.weights_config) == ["DY"]


def test_subsamples_unknown_sample(make):
    message = load_error(
        make(datasets={"jsons": ["datasets/mc.json", "datasets/data.json"], "subsamples": {"DYY": {"a": [two_muons]}}})
    )
    assert message == (
        "datasets[\"subsamples\"]: sample 'DYY' does not exist in the fileset; "
        "samples in the dataset JSONs: DATA_DoubleMuon, DY, TTbar"
    )


@pytest.mark.parametrize(
    ("argument", "value", "where"),
    [
        ("weights", {"common": {"bycategory": {"emu": ["genWeight"]}}}, 'weights["common"]["bycategory"]'),
        (
            "variations",
            {"weights": {"bysample": {"DY": {"bycategory": {"emu": []}}}}},
            'variations["weights"]["bysample"][\'DY\']["bycategory"]',
        ),
        ("columns", {"common": {"bycategory": {"emu": []}}}, 'columns["common"]["bycategory"]'),
    ],
)
def test_bycategory_unknown_category(make, argument, value, where):
    message = load_error(make(**{argument: value}))
    assert message == f"{where}: category 'emu' does not exist; defined categories: inclusive, mumu, ee"


# ---------------------------------------------------------------- non-Cut and type errors


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"skim": [two_muons, "nMuon >= 2"]}, "skim[1] is str 'nMuon >= 2', not a Cut"),
        ({"preselections": [_n_at_least]}, "preselections[0] is function "),
        ({"skim": two_muons}, "skim must be a list of Cut objects, got Cut"),
        ({"categories": {"inclusive": [passthrough], "mumu": [two_muons, None]}}, "categories['mumu'][1] is NoneType None, not a Cut"),
        ({"categories": StandardSelection({"a": [1]})}, "categories (StandardSelection)['a'][0] is int 1, not a Cut"),
        (
            {"categories": CartesianSelection([MultiCut("lep", [two_muons, "ee"], ["mm", "ee"])])},
            "categories (CartesianSelection) MultiCut 'lep' cuts[1] is str 'ee', not a Cut",
        ),
        (
            {"datasets": {"jsons": ["datasets/mc.json"], "subsamples": {"DY": {"mm": [two_muons, {"n": 2}]}}}},
            "datasets[\"subsamples\"]['DY']['mm'][1] is dict {'n': 2}, not a Cut",
        ),
        ({"categories": {}}, "categories is empty; define at least one category"),
        ({"categories": [two_muons]}, "categories must be a dict {name: [Cut, ...]}, a StandardSelection or a CartesianSelection, got list"),
    ],
)
def test_non_cut_entries(make, overrides, expected):
    assert expected in load_error(make(**overrides))


def test_variables_must_be_histconf(make):
    message = load_error(make(variables={"pt": Axis(field="pt", coll="Muon", label="pt", bins=10, start=0, stop=100)}))
    assert message.startswith("variables['pt'] is Axis Axis(field='pt'")
    assert message.endswith("not a HistConf; write HistConf([Axis(field=..., label=..., bins=..., start=..., stop=...)])")
    message = load_error(
        make(variables={"n": HistConf([Axis(field="nMuon", label="n", bins=3, start=0, stop=3)], only_categories=["mumu", "emu"])})
    )
    assert message == "variables['n'].only_categories: categories ['emu'] do not exist; defined categories: inclusive, mumu, ee"


def test_workflow_must_be_a_class(make):
    message = load_error(make(workflow=Workflow()))
    assert message.startswith("workflow must be a processor class (a subclass of pc_run.processor.BaseProcessorABC), got Workflow")


def test_columns_must_be_colout(make):
    message = load_error(make(columns={"common": {"inclusive": [("Muon", ["pt"])]}}))
    assert message.startswith("columns[\"common\"][\"inclusive\"][0] is tuple ('Muon', ['pt']), not a ColOut")


def test_other_argument_types(make):
    assert load_error(make(parameters=[1])) == "parameters must be a dict, got list"
    assert load_error(make(workflow_options="fast")) == "workflow_options must be a dict, got str"
    assert "save_skimmed_files must be a folder path/URL or None" in load_error(make(save_skimmed_files=3))


# ---------------------------------------------------------------- never mutate the user's objects


def test_load_never_mutates_the_user_objects(fileset_jsons, tmp_path):
    kwargs = arguments(fileset_jsons)
    kwargs.update(
        weights={
            "common": {"inclusive": ["genWeight", "lumi"], "bycategory": {"mumu": ["sf_mu"]}},
            "bysample": {"DY": {"inclusive": ["XS"]}},
        },
        variations={"weights": {"common": {"inclusive": ["sf_mu"]}}},
        weights_classes=[sf_mu],
        columns={"common": {"inclusive": [ColOut("Muon", ["pt"])]}},
        workflow_options={"nested": {"list": [1, 2]}},
    )
    kwargs["datasets"]["subsamples"] = {"DY": {"mm": [two_muons]}}
    snapshot = copy.deepcopy(kwargs)
    identities = {name: id(value) for name, value in kwargs.items()}
    inner = {
        "categories.mumu": kwargs["categories"]["mumu"],
        "weights.common.inclusive": kwargs["weights"]["common"]["inclusive"],
        "datasets.jsons": kwargs["datasets"]["jsons"],
        "skim": kwargs["skim"],
    }
    inner_copies = {k: list(v) for k, v in inner.items()}

    cfg = Configurator(**kwargs, base_dir=tmp_path).load()
    assert kwargs == snapshot
    assert {name: id(value) for name, value in kwargs.items()} == identities
    assert {k: list(v) for k, v in inner.items()} == inner_copies
    assert kwargs["parameters"] == {"my_cut": {"pt": 20}}  # defaults merged into a copy, not into the user's dict

    # the loaded configuration holds its own containers ...
    assert cfg.parameters is not kwargs["parameters"]
    assert cfg.workflow_options is not kwargs["workflow_options"]
    assert cfg.workflow_options["nested"] is not kwargs["workflow_options"]["nested"]
    assert cfg.variables is not kwargs["variables"]
    # ... so mutating the user's objects afterwards does not change it
    kwargs["skim"].append(one_muon)
    kwargs["categories"]["mumu"].append(two_electrons)
    kwargs["weights"]["common"]["inclusive"].append("XS")
    kwargs["workflow_options"]["nested"]["list"].append(3)
    assert cfg.skim == (two_muons,)
    assert cfg.categories["mumu"] == (two_muons,)
    assert cfg.weights_config["TTbar"]["inclusive"] == ["genWeight", "lumi"]
    assert cfg.workflow_options == {"nested": {"list": [1, 2]}}
    # ... and Cut objects are shared, not copied
    assert cfg.skim[0] is two_muons and cfg.subsamples["DY"]["mm"][0] is two_muons
    # mutating the loaded configuration does not reach the user's objects either
    cfg.parameters["my_cut"]["pt"] = 99
    assert kwargs["parameters"]["my_cut"]["pt"] == 20


def test_with_fileset_leaves_the_original_untouched(make):
    cfg = make().load()
    weights_before = copy.deepcopy(cfg.weights_config)
    small = cfg.filter(samples=["DY"])
    small.parameters["my_cut"]["pt"] = 1
    small.categories["new"] = (passthrough,)
    assert cfg.parameters["my_cut"]["pt"] == 20 and "new" not in cfg.categories
    assert cfg.weights_config == weights_before and list(small.weights_config) == ["DY"]


def test_summary_content(make):
    cfg = make(
        columns={"common": {"bycategory": {"mumu": [ColOut("Muon", ["pt", "eta"])]}}},
        datasets={"jsons": ["datasets/mc.json", "datasets/data.json"], "subsamples": {"DY": {"mm": [two_muons]}}},
    ).load()
    summary = cfg.summary()
    assert re.fullmatch(r".*\.Workflow", summary["workflow"])
    assert summary["datasets"]["fileset"]["DY_2018"]["nfiles"] == 2
    assert summary["datasets"]["fileset"]["DY_2018"]["metadata"]["xsec"] == 6077.22
    assert summary["skim"] == [{"name": "two_muons", "params": {"branch": "nMuon", "n": 2}, "function": f"{__name__}._n_at_least"}]
    assert [c["name"] for c in summary["categories"]["mumu"]] == ["two_muons"]
    assert summary["subsamples"]["DY"]["mm"][0]["name"] == "two_muons"
    assert summary["weights"]["DATA_DoubleMuon"]["inclusive"] == []
    assert summary["weights"]["DY"]["inclusive"] == ["genWeight", "lumi", "XS"]
    assert summary["variables"]["nmuon"]["axes"][0]["bins"] == 5
    assert summary["variables"]["nmuon"]["axes"][0]["type"] == "integer"
    assert summary["columns"]["TTbar"] == {"mumu": [{"collection": "Muon", "columns": ["pt", "eta"], "flatten": True,
                                                      "store_size": True, "pos_start": None, "pos_end": None}]}
    assert summary["parameters"]["lumi_pb"] == {"2018": 59830.0, "2022_postEE": 26671.7}
    json.dumps(summary)  # JSON-serialisable
