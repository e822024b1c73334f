"""``plain_workflow.PlainDimuonProcessor`` for PocketCoffea 0.9 (coffea 0.7, awkward 1): the
same code line for line, on PocketCoffea's base processor. Used by ``../harness.py --peer``."""
import awkward as ak
from coffea.nanoevents.methods import candidate
from pocket_coffea.workflows.base import BaseProcessorABC

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge")


class PlainDimuonProcessor(BaseProcessorABC):
    def apply_object_preselection(self, variation):
        events = self.events
        cuts = self.params["object_preselection"]
        mu, el, jt = cuts["Muon"], cuts["Electron"], cuts["Jet"]

        muons = events.Muon[
            (events.Muon.pt > mu["pt"])
            & (abs(events.Muon.eta) < mu["eta"])
            & events.Muon.tightId
            & (events.Muon.pfRelIso04_all < mu["iso"])
        ]
        electrons = events.Electron[
            (events.Electron.pt > el["pt"]) & (abs(events.Electron.eta) < el["eta"]) & (events.Electron.cutBased >= el["id"])
        ]
        leptons = ak.zip(
            {f: ak.concatenate([muons[f], electrons[f]], axis=1) for f in LEPTON_FIELDS},
            with_name="PtEtaPhiMCandidate",
            behavior=candidate.behavior,
        )
        leptons = leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]

        jets = events.Jet[(events.Jet.pt > jt["pt"]) & (abs(events.Jet.eta) < jt["eta"]) & (events.Jet.jetId >= jt["jetId"])]
        clean = ak.all(jets.metric_table(leptons) > jt["dr_lepton"], axis=2)
        jets = jets[clean]

        events["MuonGood"] = muons
        events["ElectronGood"] = electrons
        events["LeptonGood"] = leptons
        events["JetGood"] = jets
        events["BJetGood"] = jets[jets.btagDeepFlavB > cuts["btag_wp"]]

    def count_objects(self, variation):
        events = self.events
        events["nMuonGood"] = ak.num(events.MuonGood)
        events["nElectronGood"] = ak.num(events.ElectronGood)
        events["nLeptonGood"] = ak.num(events.LeptonGood)
        events["nJetGood"] = ak.num(events.JetGood)
        events["nBJetGood"] = ak.num(events.BJetGood)

    def define_common_variables_before_presel(self, variation):
        events = self.events
        muons = ak.pad_none(events.MuonGood, 2)
        dimuon = muons[:, 0] + muons[:, 1]
        events["ll"] = ak.zip(
            {
                "pt": dimuon.pt,
                "eta": dimuon.eta,
                "phi": dimuon.phi,
                "mass": dimuon.mass,
                "charge": muons[:, 0].charge + muons[:, 1].charge,
                "deltaR": muons[:, 0].delta_r(muons[:, 1]),
            }
        )

    def define_common_variables_after_presel(self, variation):
        events = self.events
        events["JetGood_Ht"] = ak.sum(events.JetGood.pt, axis=1)
