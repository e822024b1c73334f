"""Object definitions of the demo dilepton analysis (Z -> mumu, ee and ttbar -> 2l2nu).

Written the way a throughput-minded analysis is: each collection is read as flat numpy
columns once (``pc_run.flat_objects.FlatObjects``), the object selections are numpy
comparisons on those, and ``select`` turns a flat mask into the selected collection; the
lepton collection is merged and sorted with numpy; the jet-lepton overlap removal uses
``pc_run.object_cleaning.near_any`` (flat numpy instead of a pairwise awkward table); the
dilepton system is computed from the two leading leptons with numpy, one value per event.
Each awkward operation has a fixed cost of a few milliseconds per chunk, so doing the
dozens of comparisons on flat numpy arrays instead is most of the speed.
"""
import awkward as ak
import numpy as np
from coffea.nanoevents.methods import candidate

from pc_run import BaseProcessorABC, FlatObjects, near_any

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge")


def _leptons(muons: FlatObjects, electrons: FlatObjects):
    """Muons and electrons of each event in one collection, leading first.

    Built from the flat values with numpy (a stable sort by event, then by decreasing pt),
    so the result is a plain jagged array whose fields later flatten for free.
    """
    event_of = np.concatenate([muons.event_index, electrons.event_index])
    values = {f: np.concatenate([muons[f], electrons[f]]) for f in LEPTON_FIELDS}
    order = np.lexsort((-values["pt"], event_of))
    leptons = ak.zip({f: v[order] for f, v in values.items()}, with_name="PtEtaPhiMCandidate", behavior=candidate.behavior)
    return ak.unflatten(leptons, muons.counts + electrons.counts)


def _leading_pair(leptons: FlatObjects) -> dict[str, np.ndarray]:
    """Mass, pt and charge of the system of the two leading leptons, read from the flat lepton
    values through the offsets; NaN (mass, pt) and 0 (charge) in events with fewer than two."""
    counts = leptons.counts
    first = np.cumsum(counts) - counts
    has_two = counts >= 2
    pairs = np.stack([np.where(has_two, first, 0), np.where(has_two, first + 1, 0)], axis=1)

    def column(field):
        values = leptons[field].astype(np.float64)
        return values[pairs] if len(values) else np.zeros(pairs.shape)

    pt, eta, phi, mass = (column(f) for f in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    sum_px, sum_py, sum_pz, sum_e = (a[:, 0] + a[:, 1] for a in (px, py, pz, energy))
    nan = np.full(len(counts), np.nan)
    leading = nan.copy()
    leading[counts >= 1] = leptons["pt"][first[counts >= 1]]
    return {
        "mass": np.where(has_two, np.sqrt(np.maximum(sum_e**2 - sum_px**2 - sum_py**2 - sum_pz**2, 0.0)), nan),
        "pt": np.where(has_two, np.hypot(sum_px, sum_py), nan),
        "charge": np.where(has_two, column("charge").sum(axis=1), 0),
        "pt_leading": leading,
    }


class DileptonProcessor(BaseProcessorABC):
    """Selects good muons, electrons and jets, builds the dilepton system and event variables."""

    def apply_object_preselection(self, variation):
        cuts = self.params["object_preselection"]
        events = self.events
        muons, mu = FlatObjects(events.Muon), cuts["Muon"]
        good_muons = muons.select(
            (muons["pt"] > mu["pt"])
            & (np.abs(muons["eta"]) < mu["eta"])
            & muons["tightId"]
            & (muons["pfRelIso04_all"] < mu["iso"])
        )
        electrons, el = FlatObjects(events.Electron), cuts["Electron"]
        good_electrons = electrons.select(
            (electrons["pt"] > el["pt"]) & (np.abs(electrons["eta"]) < el["eta"]) & (electrons["cutBased"] >= el["id"])
        )
        leptons = _leptons(FlatObjects(good_muons), FlatObjects(good_electrons))

        jets, jt = FlatObjects(events.Jet), cuts["Jet"]
        jets = FlatObjects(jets.select((jets["pt"] > jt["pt"]) & (np.abs(jets["eta"]) < jt["eta"]) & (jets["jetId"] >= jt["jetId"])))
        # jets overlapping a selected lepton are the lepton itself
        good_jets = FlatObjects(jets.select(~near_any(jets, FlatObjects(leptons), jt["dr_lepton"])))
        events["MuonGood"] = good_muons
        events["ElectronGood"] = good_electrons
        events["LeptonGood"] = leptons
        events["JetGood"] = good_jets.collection
        events["BJetGood"] = good_jets.select(good_jets["btagDeepFlavB"] > cuts["btag_wp"])

    def count_objects(self, variation):
        events = self.events
        for name in ("MuonGood", "ElectronGood", "LeptonGood", "JetGood", "BJetGood"):
            events[f"n{name}"] = ak.num(events[name])

    def define_common_variables_before_presel(self, variation):
        events = self.events
        pair = _leading_pair(FlatObjects(events.LeptonGood))
        events["mll"] = pair["mass"]
        events["ptll"] = pair["pt"]
        events["charge_ll"] = pair["charge"]
        events["LeptonGood_pt_leading"] = pair["pt_leading"]

    def define_common_variables_after_presel(self, variation):
        events = self.events
        events["met"] = events.MET["pt"]
        events["JetGood_Ht"] = ak.sum(events.JetGood["pt"], axis=1)
