"""The pc-run test analysis: muons and jets on the real NanoAOD samples.

The tests copy this folder next to a generated ``fileset.json`` (absolute paths to
../shared/data/nanoaod) and run it; tests/pc_run/reference.py recomputes every number
with uproot + numpy.
"""
import numpy as np

from pc_core import Axis, ColOut, Configurator, HistConf, WeightLambda, passthrough

import cuts_pcrun as cuts
from workflow_pcrun import MuonJetProcessor

parameters = {
    "object_preselection": {"muon_pt": 10.0, "muon_eta": 2.4, "jet_pt": 25.0, "jet_eta": 2.5},
    "sf_mu": {"value": 0.98, "up": 0.99, "down": 0.96},
    "sf_dimu": {"value": 1.1, "up": 1.2, "down": 1.0},
}


def _sf_mu(params, metadata, events, size, shape_variation):
    n = np.asarray(events.nMuonGood, dtype=np.float64)
    sf = params["sf_mu"]
    return sf["value"] ** n, sf["up"] ** n, sf["down"] ** n


def _sf_dimu(params, metadata, events, size, shape_variation):
    sf = params["sf_dimu"]
    return np.full(size, sf["value"]), np.full(size, sf["up"]), np.full(size, sf["down"])


sf_mu = WeightLambda.wrap_func("sf_mu", _sf_mu, has_variations=True)
sf_dimu = WeightLambda.wrap_func("sf_dimu", _sf_dimu, has_variations=True)

variables = {
    "nmuon": HistConf([Axis(field="nMuonGood", label="N good muons", bins=6, start=0, stop=6, type="integer")]),
    "muon_pt": HistConf([Axis(coll="MuonGood", field="pt", label="muon pt", bins=20, start=0, stop=100)]),
    "muon_pt_0": HistConf([Axis(coll="MuonGood", field="pt", pos=0, label="leading muon pt", bins=20, start=0, stop=100)]),
    "muon_eta_pt": HistConf(
        [
            Axis(coll="MuonGood", field="eta", label="muon eta", bins=6, start=-2.4, stop=2.4),
            Axis(coll="MuonGood", field="pt", label="muon pt", bins=[10, 20, 40, 80]),
        ]
    ),
    "met": HistConf([Axis(coll="MET", field="pt", label="MET", bins=10, start=0, stop=200)]),
    "ht": HistConf(
        [Axis(field="JetGood_Ht", label="HT", bins=[0, 50, 100, 200, 400])], only_categories=["inclusive"]
    ),
}

cfg = Configurator(
    workflow=MuonJetProcessor,
    parameters=parameters,
    datasets={
        "jsons": ["fileset.json"],
        "filter": {"samples": ["DYJetsToLL", "DATA_DoubleMuon", "TTTo2L2Nu"]},
        "subsamples": {"DYJetsToLL": {"highMET": [cuts.met_high], "lowMET": [cuts.met_low]}},
    },
    skim=[cuts.skim_one_muon],
    preselections=[cuts.presel_good_muon],
    categories={"inclusive": [passthrough], "one_mu": [cuts.one_mu], "two_mu": [cuts.two_mu]},
    weights={
        "common": {"inclusive": ["genWeight", "lumi", "XS", "sf_mu"], "bycategory": {"two_mu": ["sf_dimu"]}},
        "bysample": {},
    },
    weights_classes=[sf_mu, sf_dimu],
    variations={
        "weights": {"common": {"inclusive": ["sf_mu"], "bycategory": {"two_mu": ["sf_dimu"]}}, "bysample": {}}
    },
    variables=variables,
    columns={"common": {"bycategory": {"two_mu": [ColOut("MuonGood", ["pt", "eta"])]}}, "bysample": {}},
)
