"""An independent computation, with uproot + numpy only, of what configs/config_pcrun.py produces.

No coffea, no awkward, no pc_run code: branches are read as flat numpy arrays with their
counts, selections are numpy masks, histograms are numpy.histogram(2d) with the flow bins
made explicit (edges extended by -inf/+inf).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import uproot

LUMI = {"2018": 59830.0, "2022_postEE": 26671.7}
SF_MU = {"nominal": 0.98, "up": 0.99, "down": 0.96}
SF_DIMU = {"nominal": 1.1, "up": 1.2, "down": 1.0}
CATEGORIES = ("inclusive", "one_mu", "two_mu")


@dataclass
class Collection:
    counts: np.ndarray
    fields: dict[str, np.ndarray]

    @property
    def event_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.counts)), self.counts)


def _read(files: list[str], is_mc: bool) -> dict:
    parts = []
    for path in files:
        with uproot.open(path) as f:
            tree = f["Events"]
            branches = ["nMuon", "Muon_pt", "Muon_eta", "nJet", "Jet_pt", "Jet_eta", "MET_pt"]
            if is_mc:
                branches.append("genWeight")
            parts.append(tree.arrays(branches, library="np"))
    data = {}
    for name in parts[0]:
        arrays = [p[name] for p in parts]
        if arrays[0].dtype == object:
            flat = [np.concatenate(list(a)) if len(a) else np.zeros(0) for a in arrays]
            data[name] = np.concatenate(flat).astype(np.float64)
        else:
            data[name] = np.concatenate(arrays)
    return data


def _per_event_sum(flat_values: np.ndarray, event_index: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(event_index, weights=flat_values.astype(np.float64), minlength=n)


def flow_edges(edges) -> np.ndarray:
    return np.concatenate([[-np.inf], np.asarray(edges, dtype=float), [np.inf]])


@dataclass
class DatasetReference:
    n_initial: int
    n_skim: int
    n_presel: int
    sum_genweights: float | None
    sum_sign: float | None
    masks: dict[str, np.ndarray]  # category masks on the preselected events
    samples: dict[str, np.ndarray]  # output sample -> mask on preselected events
    weights: dict[str, dict[str, np.ndarray]]  # category -> variation -> per-event weight
    n_good: np.ndarray
    muon: Collection  # good muons of preselected events
    met: np.ndarray
    ht: np.ndarray


def compute(files: list[str], is_mc: bool, year: str, xsec: float | None, subsamples: bool) -> DatasetReference:
    d = _read(files, is_mc)
    n = len(d["nMuon"])
    counts_mu = d["nMuon"].astype(np.int64)
    mu_idx = np.repeat(np.arange(n), counts_mu)
    # skim: at least one muon with pt > 5
    skim = _per_event_sum(d["Muon_pt"] > 5.0, mu_idx, n) >= 1
    good_mu = (d["Muon_pt"] > 10.0) & (np.abs(d["Muon_eta"]) < 2.4)
    n_good = _per_event_sum(good_mu, mu_idx, n).astype(np.int64)
    counts_jet = d["nJet"].astype(np.int64)
    jet_idx = np.repeat(np.arange(n), counts_jet)
    good_jet = (d["Jet_pt"] > 25.0) & (np.abs(d["Jet_eta"]) < 2.5)
    ht = _per_event_sum(np.where(good_jet, d["Jet_pt"], 0.0), jet_idx, n)
    presel = skim & (n_good >= 1)

    sel = np.flatnonzero(presel)
    remap = -np.ones(n, dtype=np.int64)
    remap[sel] = np.arange(len(sel))
    keep_mu = good_mu & presel[mu_idx]
    muon = Collection(
        counts=n_good[sel],
        fields={"pt": d["Muon_pt"][keep_mu], "eta": d["Muon_eta"][keep_mu]},
    )
    ng = n_good[sel]
    met = d["MET_pt"][sel]
    masks = {"inclusive": np.ones(len(sel), dtype=bool), "one_mu": ng == 1, "two_mu": ng >= 2}
    if subsamples:
        samples = {"DYJetsToLL__highMET": met > 30.0, "DYJetsToLL__lowMET": ~(met > 30.0)}
    else:
        samples = None

    weights: dict[str, dict[str, np.ndarray]] = {}
    if is_mc:
        base = d["genWeight"][sel].astype(np.float64) * LUMI[year] * xsec
        for cat in CATEGORIES:
            sf_mu = {k: v ** ng.astype(np.float64) for k, v in SF_MU.items()}
            dimu = SF_DIMU if cat == "two_mu" else {"nominal": 1.0, "up": 1.0, "down": 1.0}
            w = {
                "nominal": base * sf_mu["nominal"] * dimu["nominal"],
                "sf_muUp": base * sf_mu["up"] * dimu["nominal"],
                "sf_muDown": base * sf_mu["down"] * dimu["nominal"],
            }
            if cat == "two_mu":
                w["sf_dimuUp"] = base * sf_mu["nominal"] * dimu["up"]
                w["sf_dimuDown"] = base * sf_mu["nominal"] * dimu["down"]
            else:  # variation not configured in this category: nominal on that bin
                w["sf_dimuUp"] = w["nominal"]
                w["sf_dimuDown"] = w["nominal"]
            weights[cat] = w
    else:
        for cat in CATEGORIES:
            weights[cat] = {"nominal": np.ones(len(sel))}

    return DatasetReference(
        n_initial=n,
        n_skim=int(skim.sum()),
        n_presel=int(presel.sum()),
        sum_genweights=float(d["genWeight"].astype(np.float64).sum()) if is_mc else None,
        sum_sign=float(np.sign(d["genWeight"].astype(np.float64)).sum()) if is_mc else None,
        masks=masks,
        samples=samples,
        weights=weights,
        n_good=ng,
        muon=muon,
        met=met,
        ht=ht[sel],
    )
