"""Object definitions of the demo dilepton analysis (Z -> mumu, ee and ttbar -> 2l2nu)."""
import awkward as ak
from coffea.nanoevents.methods import candidate

from pc_run.processor import BaseProcessorABC


def _as_leptons(collection):
    """A common lepton record (muons and electrons have different fields)."""
    return ak.zip(
        {
            "pt": collection.pt,
            "eta": collection.eta,
            "phi": collection.phi,
            "mass": collection.mass,
            "charge": collection.charge,
            "pdgId": collection.pdgId,
        },
        with_name="PtEtaPhiMCandidate",
        behavior=candidate.behavior,
    )


class DileptonProcessor(BaseProcessorABC):
    """Selects good muons, electrons and jets, builds the dilepton system and event variables."""

    def apply_object_preselection(self, variation):
        cuts = self.params["object_preselection"]
        events = self.events
        muons = events.Muon
        mu = cuts["Muon"]
        events["MuonGood"] = muons[
            (muons.pt > mu["pt"]) & (abs(muons.eta) < mu["eta"]) & muons.tightId & (muons.pfRelIso04_all < mu["iso"])
        ]
        electrons = events.Electron
        el = cuts["Electron"]
        events["ElectronGood"] = electrons[
            (electrons.pt > el["pt"]) & (abs(electrons.eta) < el["eta"]) & (electrons.cutBased >= el["id"])
        ]
        leptons = ak.concatenate([_as_leptons(events.MuonGood), _as_leptons(events.ElectronGood)], axis=1)
        events["LeptonGood"] = leptons[ak.argsort(leptons.pt, ascending=False)]

        jets = events.Jet
        jt = cuts["Jet"]
        good = (jets.pt > jt["pt"]) & (abs(jets.eta) < jt["eta"]) & (jets.jetId >= jt["jetId"])
        # jets overlapping a selected lepton are the lepton itself
        nearest = jets.nearest(events.LeptonGood, threshold=jt["dr_lepton"])
        events["JetGood"] = jets[good & ak.is_none(nearest, axis=1)]
        events["BJetGood"] = events.JetGood[events.JetGood.btagDeepFlavB > cuts["btag_wp"]]

    def count_objects(self, variation):
        events = self.events
        for name in ("MuonGood", "ElectronGood", "LeptonGood", "JetGood", "BJetGood"):
            events[f"n{name}"] = ak.num(events[name])

    def define_common_variables_before_presel(self, variation):
        events = self.events
        leading = ak.pad_none(events.LeptonGood, 2)
        events["ll"] = leading[:, 0] + leading[:, 1]
        events["LeptonGood_pt_leading"] = leading[:, 0].pt

    def define_common_variables_after_presel(self, variation):
        events = self.events
        events["mll"] = events.ll.mass
        events["ptll"] = events.ll.pt
        events["met"] = events.MET.pt
        events["JetGood_Ht"] = ak.sum(events.JetGood.pt, axis=1)
