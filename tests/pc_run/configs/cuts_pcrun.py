"""Cut functions of the pc-run test analysis (siblings of config_pcrun.py)."""
import awkward as ak
import numpy as np

from pc_core import Cut


def _min_muons_pt(events, params, **context):
    return ak.sum(events.Muon.pt > params["pt"], axis=1) >= params["n"]


def _n_good(events, params, **context):
    n = events[params["count"]]
    return (n >= params["min"]) & (n <= params["max"])


def _met_above(events, params, **context):
    return np.asarray(events.MET.pt) > params["met"]


skim_one_muon = Cut("skim_one_muon_pt5", _min_muons_pt, {"pt": 5.0, "n": 1})
presel_good_muon = Cut("presel_good_muon", _n_good, {"count": "nMuonGood", "min": 1, "max": 99})
one_mu = Cut("one_mu", _n_good, {"count": "nMuonGood", "min": 1, "max": 1})
two_mu = Cut("two_mu", _n_good, {"count": "nMuonGood", "min": 2, "max": 99})
met_high = Cut("met_high", _met_above, {"met": 30.0})
met_low = Cut("met_low", lambda events, params, **ctx: ~_met_above(events, params), {"met": 30.0})
