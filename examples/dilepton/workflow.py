"""Object definitions of the demo dilepton analysis (Z -> mumu, ee and ttbar -> 2l2nu).

Written the way a throughput-minded analysis is: object masks are computed with numpy on
the flat per-object values (``_flat``) and turned back into one jagged mask; the lepton
collection is merged and sorted with numpy; the jet-lepton overlap removal uses
``pc_run.object_cleaning.not_near`` (flat numpy instead of a pairwise awkward table); the
dilepton system is computed from the two leading leptons with numpy, one value per event.
Fields are read as ``collection["pt"]``: ``collection.pt`` on a NanoEvents collection goes
through the vector library's dispatch (``.mass`` is even recomputed). Each awkward
operation has a fixed cost of a few milliseconds per chunk, so doing a dozen comparisons
on flat numpy arrays instead is most of the speed.
"""
import awkward as ak
import numpy as np
from coffea.nanoevents.methods import candidate

from pc_run.object_cleaning import not_near
from pc_run.processor import BaseProcessorABC


def _flat(collection, field) -> np.ndarray:
    """One value per object of the chunk, as numpy."""
    return ak.to_numpy(ak.flatten(collection[field], axis=1))


def _select(collection, mask: np.ndarray):
    """The objects of ``collection`` whose flat ``mask`` is True, per event."""
    return collection[ak.unflatten(mask, ak.num(collection, axis=1))]


def _leptons(muons, electrons):
    """Muons and electrons of each event in one collection, leading first.

    Built from the flat values with numpy (a stable sort by event, then by decreasing pt),
    so the result is a plain jagged array whose fields later flatten for free.
    """
    n_muons, n_electrons = ak.to_numpy(ak.num(muons, axis=1)), ak.to_numpy(ak.num(electrons, axis=1))
    events = np.arange(len(n_muons))
    event_of = np.concatenate([np.repeat(events, n_muons), np.repeat(events, n_electrons)])
    values = {f: np.concatenate([_flat(muons, f), _flat(electrons, f)]) for f in ("pt", "eta", "phi", "mass", "charge")}
    order = np.lexsort((-values["pt"], event_of))
    leptons = ak.zip({f: v[order] for f, v in values.items()}, with_name="PtEtaPhiMCandidate", behavior=candidate.behavior)
    return ak.unflatten(leptons, n_muons + n_electrons)


def _leading_pair(leptons) -> dict[str, np.ndarray]:
    """Mass, pt and charge of the system of the two leading leptons, read from the flat lepton
    values through the offsets; NaN (mass, pt) and 0 (charge) in events with fewer than two."""
    counts = ak.to_numpy(ak.num(leptons, axis=1))
    first = np.cumsum(counts) - counts
    has_two = counts >= 2
    pairs = np.stack([np.where(has_two, first, 0), np.where(has_two, first + 1, 0)], axis=1)

    def column(field):
        values = _flat(leptons, field).astype(np.float64)
        return values[pairs] if len(values) else np.zeros(pairs.shape)

    pt, eta, phi, mass = (column(f) for f in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    sum_px, sum_py, sum_pz, sum_e = (a[:, 0] + a[:, 1] for a in (px, py, pz, energy))
    nan = np.full(len(counts), np.nan)
    leading = nan.copy()
    leading[counts >= 1] = _flat(leptons, "pt")[first[counts >= 1]]
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
        muons = events.Muon
        mu = cuts["Muon"]
        events["MuonGood"] = _select(
            muons,
            (_flat(muons, "pt") > mu["pt"])
            & (np.abs(_flat(muons, "eta")) < mu["eta"])
            & _flat(muons, "tightId")
            & (_flat(muons, "pfRelIso04_all") < mu["iso"]),
        )
        electrons = events.Electron
        el = cuts["Electron"]
        events["ElectronGood"] = _select(
            electrons,
            (_flat(electrons, "pt") > el["pt"])
            & (np.abs(_flat(electrons, "eta")) < el["eta"])
            & (_flat(electrons, "cutBased") >= el["id"]),
        )
        events["LeptonGood"] = _leptons(events.MuonGood, events.ElectronGood)

        jets = events.Jet
        jt = cuts["Jet"]
        jets = _select(
            jets,
            (_flat(jets, "pt") > jt["pt"]) & (np.abs(_flat(jets, "eta")) < jt["eta"]) & (_flat(jets, "jetId") >= jt["jetId"]),
        )
        # jets overlapping a selected lepton are the lepton itself
        events["JetGood"] = jets[not_near(jets, events.LeptonGood, jt["dr_lepton"])]
        events["BJetGood"] = _select(events.JetGood, _flat(events.JetGood, "btagDeepFlavB") > cuts["btag_wp"])

    def count_objects(self, variation):
        events = self.events
        for name in ("MuonGood", "ElectronGood", "LeptonGood", "JetGood", "BJetGood"):
            events[f"n{name}"] = ak.num(events[name])

    def define_common_variables_before_presel(self, variation):
        events = self.events
        pair = _leading_pair(events.LeptonGood)
        events["mll"] = pair["mass"]
        events["ptll"] = pair["pt"]
        events["charge_ll"] = pair["charge"]
        events["LeptonGood_pt_leading"] = pair["pt_leading"]

    def define_common_variables_after_presel(self, variation):
        events = self.events
        events["met"] = events.MET["pt"]
        events["JetGood_Ht"] = ak.sum(events.JetGood["pt"], axis=1)
