"""Cuts and categories (dict, StandardSelection, CartesianSelection) on real NanoAOD events."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import uproot

from pc_core import CartesianSelection, Cut, MultiCut, StandardSelection, passthrough
from pc_core.selections import expand_categories


@pytest.fixture(scope="module")
def tt(nanoaod_dir):
    return uproot.open(nanoaod_dir / "nano_tt_v12.root")["Events"].arrays(["nMuon", "nElectron", "nJet", "MET_pt"])


def _count(events, params, **context):
    n = np.asarray(events[params["branch"]])
    return (n >= params["min"]) & (n <= params.get("max", np.inf))


def _met(events, params, **context):
    # the context reaches the function: a year-dependent threshold
    return np.asarray(events["MET_pt"]) > params["threshold"][context["year"]]


def count(name, branch, lo, hi=None):
    params = {"branch": branch, "min": lo}
    if hi is not None:
        params["max"] = hi
    return Cut(name, _count, params)


def test_cut_mask_and_context(tt):
    met = Cut("met", _met, {"threshold": {"2018": 40.0, "2022_postEE": 80.0}})
    met_np = np.asarray(tt["MET_pt"])
    low = met.get_mask(tt, year="2018", sample="TT", dataset="TT_2022", isMC=True, metadata={})
    high = met.get_mask(tt, year="2022_postEE", sample="TT", dataset="TT_2022", isMC=True, metadata={})
    assert low.sum() == np.sum(met_np > 40.0) and high.sum() == np.sum(met_np > 80.0)
    assert low.sum() > high.sum() > 0


def test_passthrough_keeps_every_event(tt):
    assert passthrough.get_mask(tt).tolist() == [True] * 200


def test_cut_is_immutable_and_copies_to_itself():
    params = {"branch": "nJet", "min": 2}
    cut = Cut("jets", _count, params)
    params["min"] = 5  # the user's dict changes; the cut does not
    assert cut.params["min"] == 2
    with pytest.raises(TypeError):
        cut.params["min"] = 3
    assert copy.deepcopy(cut) is cut and copy.copy(cut) is cut
    restored = pickle.loads(pickle.dumps(cut))
    assert restored.name == "jets" and dict(restored.params) == {"branch": "nJet", "min": 2}
    with pytest.raises(TypeError, match="Cut name must be a non-empty string"):
        Cut("", _count)
    with pytest.raises(TypeError, match="Cut 'x': function must be callable"):
        Cut("x", "nJet > 2")


def test_standard_selection_and_dict(tt):
    sel = StandardSelection({"2j": [count("2j", "nJet", 2, 2)], "3j_1mu": [count("3j", "nJet", 3), count("1mu", "nMuon", 1)]})
    cats = expand_categories(sel)
    assert list(cats) == ["2j", "3j_1mu"]
    assert expand_categories({"a": [passthrough]}) == {"a": (passthrough,)}
    n_jet, n_mu = np.asarray(tt["nJet"]), np.asarray(tt["nMuon"])
    mask = np.logical_and.reduce([c.get_mask(tt) for c in cats["3j_1mu"]])
    assert mask.sum() == np.sum((n_jet >= 3) & (n_mu >= 1)) > 0
    with pytest.raises(TypeError, match="categories must be a dict"):
        expand_categories([passthrough])


def test_cartesian_selection_products(tt):
    leptons = MultiCut("lep", [count("mu", "nMuon", 1), count("ele", "nElectron", 1)], ["1mu", "1e"])
    jets = MultiCut("jets", [count("j2", "nJet", 2, 2), count("j3", "nJet", 3, 3), count("j4", "nJet", 4)])
    sel = CartesianSelection([leptons, jets], common_cats={"inclusive": [passthrough]})
    cats = sel.expand()
    assert list(cats) == ["inclusive", "1mu_j2", "1mu_j3", "1mu_j4", "1e_j2", "1e_j3", "1e_j4"]
    n_jet, n_mu, n_ele = (np.asarray(tt[b]) for b in ("nJet", "nMuon", "nElectron"))
    for lep_name, lep in (("1mu", n_mu >= 1), ("1e", n_ele >= 1)):
        counts = []
        for jet_name, jet in (("j2", n_jet == 2), ("j3", n_jet == 3), ("j4", n_jet >= 4)):
            mask = np.logical_and.reduce([c.get_mask(tt) for c in cats[f"{lep_name}_{jet_name}"]])
            assert mask.sum() == np.sum(lep & jet)
            counts.append(int(mask.sum()))
        # the jet bins are exclusive: together they are the >= 2 jet events of this lepton bin
        assert sum(counts) == np.sum(lep & (n_jet >= 2)) > 0


def test_multicut_names():
    mc = MultiCut("m", [count("a", "nJet", 1), count("b", "nJet", 2)])
    assert mc.cuts_names == ("a", "b")
    with pytest.raises(ValueError, match="MultiCut 'm': 2 cuts but 1 cuts_names"):
        MultiCut("m", [count("a", "nJet", 1), count("b", "nJet", 2)], ["x"])
