"""Selections of the demo analysis.

Every cut function has the signature ``f(events, params, **context)`` and returns one
boolean per event; ``context`` holds ``year``, ``sample``, ``dataset``, ``isMC`` and
``metadata``. The objects (``MuonGood``, ``ElectronGood``, ``JetGood``, ``BJetGood``) and
the dilepton variables (``mll``, ``ptll``, ``charge_ll``, NaN without two leptons) are
defined by the workflow before preselection.
"""
import awkward as ak
import numpy as np

from pc_core import Cut
from pc_run import FlatObjects


def _n_above(collection, minpt: float) -> np.ndarray:
    """Per event, the number of objects with pt above ``minpt``."""
    objects = FlatObjects(collection)
    return np.bincount(objects.event_index[objects["pt"] > minpt], minlength=len(objects.counts))


def _min_objects(events, params, **context):
    return _n_above(events[params["coll"]], params["minpt"]) >= params["n"]


def _trigger(events, params, **context):
    """OR of the trigger paths of the year; paths missing from the file count as not fired."""
    fired = np.zeros(len(events), dtype=bool)
    for path in params["paths"][context["year"]]:
        if path in events.HLT.fields:
            fired = fired | ak.to_numpy(events.HLT[path])
    return fired


def _dilepton(events, params, **context):
    # NaN (fewer than two leptons) fails every comparison
    return (
        (ak.to_numpy(events.nLeptonGood) == 2)
        & (ak.to_numpy(events.charge_ll) == 0)
        & (ak.to_numpy(events.mll) > params["mll_min"])
        & (ak.to_numpy(events.LeptonGood_pt_leading) > params["pt_leading"])
    )


def _same_flavour(events, params, **context):
    counts = events.nMuonGood if params["flavour"] == "mumu" else events.nElectronGood
    return ak.to_numpy(counts) == 2


def _opposite_flavour(events, params, **context):
    return (ak.to_numpy(events.nMuonGood) == 1) & (ak.to_numpy(events.nElectronGood) == 1)


def _z_window(events, params, **context):
    inside = abs(ak.to_numpy(events.mll) - 91.1876) < params["width"]
    return inside if params["inside"] else ~inside


def _n_bjets(events, params, **context):
    n = ak.to_numpy(events.nBJetGood)
    return n >= params["min"] if params.get("max") is None else (n >= params["min"]) & (n <= params["max"])


def _met(events, params, **context):
    return ak.to_numpy(events.MET["pt"]) > params["min"]


def _min_leptons(events, params, **context):
    return (_n_above(events.Muon, params["minpt"]) + _n_above(events.Electron, params["minpt"])) >= params["n"]


def nObj_min(n: int, minpt: float, coll: str) -> Cut:
    return Cut(name=f"n{coll}_min{n}_pt{minpt:g}", function=_min_objects, params={"n": n, "minpt": minpt, "coll": coll})


two_leptons_skim = Cut(name="two_leptons_pt10", function=_min_leptons, params={"n": 2, "minpt": 10.0})


trigger = Cut(
    name="dilepton_triggers",
    function=_trigger,
    params={
        "paths": {
            "2018": ["IsoMu24", "Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8", "Ele32_WPTight_Gsf"],
        }
    },
)
dilepton = Cut(name="dilepton", function=_dilepton, params={"mll_min": 20.0, "pt_leading": 25.0})
mumu = Cut(name="mumu", function=_same_flavour, params={"flavour": "mumu"})
ee = Cut(name="ee", function=_same_flavour, params={"flavour": "ee"})
emu = Cut(name="emu", function=_opposite_flavour)
z_peak = Cut(name="z_peak", function=_z_window, params={"width": 15.0, "inside": True})
off_z = Cut(name="off_z", function=_z_window, params={"width": 15.0, "inside": False})
two_bjets = Cut(name="2b", function=_n_bjets, params={"min": 2})
zero_bjets = Cut(name="0b", function=_n_bjets, params={"min": 0, "max": 0})
met40 = Cut(name="met40", function=_met, params={"min": 40.0})
