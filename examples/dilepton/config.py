"""The demo analysis: Z -> mumu/ee and ttbar dilepton on synthetic NanoAOD.

Run it with ``pocket-coffea run --cfg examples/dilepton/config.py -o output`` after
``pocket-coffea generate-demo-data -o demo-data`` (``python3 dev.py demo`` does both).
The fileset is taken from $POCKET_COFFEA_DEMO_FILESET, else ../../demo-data/fileset_demo.json
relative to this file.
"""
import os

import numpy as np

from pc_core import ColOut, Configurator, HistConf, Axis, WeightLambda, passthrough

import cuts
from workflow import DileptonProcessor

FILESET = os.environ.get("POCKET_COFFEA_DEMO_FILESET", "../../demo-data/fileset_demo.json")

parameters = {
    # The synthetic data of generate-demo-data (default settings) amounts to 6.4877 pb^-1;
    # it is written to the data metadata as lumi_pb (docs/demo-data.md).
    "lumi": {"picobarn": {"2018": {"tot": 6.487703}}},
    "object_preselection": {
        "Muon": {"pt": 15.0, "eta": 2.4, "iso": 0.15},
        "Electron": {"pt": 15.0, "eta": 2.5, "id": 3},
        "Jet": {"pt": 30.0, "eta": 2.4, "jetId": 2, "dr_lepton": 0.4},
        "btag_wp": 0.2783,
    },
    "muon_id_sf": {"value": 0.985, "uncertainty": 0.01},
}


def _muon_id_sf(params, metadata, events, size, shape_variation):
    """A per-muon scale factor: the product over the good muons of each event, with Up/Down."""
    sf = params["muon_id_sf"]
    n_muons = np.asarray(events.nMuonGood, dtype=np.float64)
    nominal = sf["value"] ** n_muons
    up = (sf["value"] + sf["uncertainty"]) ** n_muons
    down = (sf["value"] - sf["uncertainty"]) ** n_muons
    return nominal, up, down


muon_id_sf = WeightLambda.wrap_func(name="sf_muon_id", function=_muon_id_sf, has_variations=True)

categories = {
    "inclusive": [passthrough],
    "mumu_Z": [cuts.mumu, cuts.z_peak],
    "ee_Z": [cuts.ee, cuts.z_peak],
    "mumu_offZ_2b": [cuts.mumu, cuts.off_z, cuts.two_bjets, cuts.met40],
    "emu_2b": [cuts.emu, cuts.two_bjets],
    "emu_0b": [cuts.emu, cuts.zero_bjets],
}

variables = {
    "mll": HistConf([Axis(field="mll", label=r"$m_{\ell\ell}$ [GeV]", bins=60, start=20, stop=200)]),
    "mll_zoom": HistConf(
        [Axis(field="mll", name="mll_zoom", label=r"$m_{\ell\ell}$ [GeV]", bins=40, start=71, stop=111)],
        only_categories=["mumu_Z", "ee_Z"],
    ),
    "ptll": HistConf([Axis(field="ptll", label=r"$p_T^{\ell\ell}$ [GeV]", bins=40, start=0, stop=300)]),
    "met": HistConf([Axis(field="met", label=r"$p_T^{miss}$ [GeV]", bins=40, start=0, stop=300)]),
    "ht": HistConf([Axis(field="JetGood_Ht", label=r"$H_T$ [GeV]", bins=40, start=0, stop=800)]),
    "lepton_pt_all": HistConf([Axis(coll="LeptonGood", field="pt", label=r"lepton $p_T$ [GeV]", bins=40, start=0, stop=300)]),
    "lepton_pt_0": HistConf([Axis(coll="LeptonGood", field="pt", pos=0, label=r"leading lepton $p_T$ [GeV]", bins=40, start=0, stop=300)]),
    "lepton_eta_0": HistConf([Axis(coll="LeptonGood", field="eta", pos=0, label=r"leading lepton $\eta$", bins=30, start=-3, stop=3)]),
    "muon_pt_variable": HistConf(
        [Axis(coll="MuonGood", field="pt", label=r"muon $p_T$ [GeV]", bins=[15, 20, 25, 30, 40, 50, 70, 100, 150, 300])]
    ),
    "jet_pt_0": HistConf([Axis(coll="JetGood", field="pt", pos=0, label=r"leading jet $p_T$ [GeV]", bins=40, start=0, stop=400)]),
    "jet_btag": HistConf([Axis(coll="JetGood", field="btagDeepFlavB", label="DeepJet b-tag score", bins=25, start=0, stop=1)]),
    "njets": HistConf([Axis(field="nJetGood", label="number of jets", bins=8, start=0, stop=8, type="integer")]),
    "nbjets": HistConf([Axis(field="nBJetGood", label="number of b jets", bins=5, start=0, stop=5, type="integer")]),
    "mll_vs_met": HistConf(
        [
            Axis(field="mll", label=r"$m_{\ell\ell}$ [GeV]", bins=20, start=20, stop=200),
            Axis(field="met", label=r"$p_T^{miss}$ [GeV]", bins=20, start=0, stop=300),
        ]
    ),
}

cfg = Configurator(
    workflow=DileptonProcessor,
    parameters=parameters,
    datasets={
        "jsons": [FILESET],
        "filter": {"samples": ["DYJetsToLL_M-50", "TTTo2L2Nu", "DATA_DoubleMuon"], "samples_exclude": [], "year": ["2018"]},
    },
    skim=[cuts.trigger, cuts.two_leptons_skim],
    preselections=[cuts.dilepton],
    categories=categories,
    weights={
        "common": {"inclusive": ["genWeight", "lumi", "XS", "sf_muon_id"], "bycategory": {}},
        "bysample": {},
    },
    weights_classes=[muon_id_sf],
    variations={"weights": {"common": {"inclusive": ["sf_muon_id"], "bycategory": {}}, "bysample": {}}},
    variables=variables,
    columns={
        "common": {"bycategory": {"mumu_Z": [ColOut("LeptonGood", ["pt", "eta", "phi"])]}},
        "bysample": {},
    },
)
