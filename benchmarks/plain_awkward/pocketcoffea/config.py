"""``../config.py`` (the plain-awkward benchmark analysis) for PocketCoffea 0.9.13: the same
skim, preselection, categories, weights and histograms, the same cut functions, no
calibrators (the benchmark inputs carry no calibration branches). The fileset is
``$POCKET_COFFEA_BENCH_FILESET``, with PocketCoffea's ``isMC: "True"`` metadata.

    pocket-coffea run --cfg benchmarks/plain_awkward/pocketcoffea/config.py -o OUT -e iterative -c 100000
"""
import os
import sys

import awkward as ak
import cloudpickle
from omegaconf import OmegaConf
from pocket_coffea.lib.cut_definition import Cut
from pocket_coffea.parameters import defaults
from pocket_coffea.parameters.cuts import passthrough
from pocket_coffea.parameters.histograms import Axis, HistConf
from pocket_coffea.utils.configurator import Configurator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workflow  # noqa: E402
from workflow import PlainDimuonProcessor  # noqa: E402

cloudpickle.register_pickle_by_value(workflow)

FILESET = os.environ.get("POCKET_COFFEA_BENCH_FILESET", "fileset.json")

parameters = OmegaConf.merge(defaults.get_default_parameters(), OmegaConf.create({
    "lumi": {"picobarns": {"2018": {"tot": 59832.0}}},  # as ../config.py (PocketCoffea's default: 59832.47534)
    "object_preselection": {
        "Muon": {"pt": 15.0, "eta": 2.4, "iso": 0.15},
        "Electron": {"pt": 15.0, "eta": 2.5, "id": 3},
        "Jet": {"pt": 30.0, "eta": 2.4, "jetId": 2, "dr_lepton": 0.4},
        "btag_wp": 0.2783,
    },
}))


def _two_muons(events, params, **context):
    return ak.sum(events.Muon.pt > params["minpt"], axis=1) >= 2


def _dimuon(events, params, **context):
    ll = events.ll
    return ak.fill_none((events.nMuonGood >= 2) & (ll.charge == 0) & (ll.mass > params["mll_min"]), False)


def _z_window(events, params, **context):
    return ak.fill_none(abs(events.ll.mass - 91.1876) < params["width"], False)


def _n_bjets(events, params, **context):
    return (events.nBJetGood >= params["min"]) & (events.nBJetGood <= params["max"])


skim = Cut(name="two_muons_pt10", function=_two_muons, params={"minpt": 10.0})
dimuon = Cut(name="dimuon", function=_dimuon, params={"mll_min": 20.0})
z_peak = Cut(name="z_peak", function=_z_window, params={"width": 15.0})
two_b = Cut(name="2b", function=_n_bjets, params={"min": 2, "max": 99})
zero_b = Cut(name="0b", function=_n_bjets, params={"min": 0, "max": 0})

cfg = Configurator(
    workflow=PlainDimuonProcessor,
    parameters=parameters,
    calibrators=[],
    datasets={"jsons": [FILESET], "filter": {"samples": ["DYJetsToLL_M-50"], "samples_exclude": [], "year": ["2018"]}},
    skim=[skim],
    preselections=[dimuon],
    categories={"inclusive": [passthrough], "Z": [z_peak], "Z_2b": [z_peak, two_b], "Z_0b": [z_peak, zero_b]},
    weights={"common": {"inclusive": ["genWeight", "lumi", "XS"], "bycategory": {}}, "bysample": {}},
    variations={"weights": {"common": {"inclusive": [], "bycategory": {}}, "bysample": {}}},
    variables={
        "mll": HistConf([Axis(coll="ll", field="mass", label=r"$m_{\mu\mu}$ [GeV]", bins=60, start=20, stop=200)]),
        "ptll": HistConf([Axis(coll="ll", field="pt", label=r"$p_T^{\mu\mu}$ [GeV]", bins=40, start=0, stop=300)]),
        "lepton_pt_0": HistConf([Axis(coll="LeptonGood", field="pt", pos=0, label=r"leading lepton $p_T$", bins=40, start=0, stop=300)]),
        "jet_pt": HistConf([Axis(coll="JetGood", field="pt", label=r"jet $p_T$ [GeV]", bins=40, start=0, stop=400)]),
        "njets": HistConf([Axis(field="nJetGood", label="number of jets", bins=8, start=0, stop=8, type="int")]),
    },
)
