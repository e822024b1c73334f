"""Object definitions of the pc-run test analysis."""
import awkward as ak

from pc_run.processor import BaseProcessorABC


class MuonJetProcessor(BaseProcessorABC):
    def apply_object_preselection(self, variation):
        cuts = self.params["object_preselection"]
        muons = self.events.Muon
        self.events["MuonGood"] = muons[(muons.pt > cuts["muon_pt"]) & (abs(muons.eta) < cuts["muon_eta"])]
        jets = self.events.Jet
        self.events["JetGood"] = jets[(jets.pt > cuts["jet_pt"]) & (abs(jets.eta) < cuts["jet_eta"])]

    def count_objects(self, variation):
        self.events["nMuonGood"] = ak.num(self.events.MuonGood)
        self.events["nJetGood"] = ak.num(self.events.JetGood)

    def define_common_variables_after_presel(self, variation):
        self.events["JetGood_Ht"] = ak.sum(self.events.JetGood.pt, axis=1)

    def process_extra_after_skim(self):
        # lets the tests make one dataset fail (fileset metadata "fail_on_purpose": true)
        if self.metadata.get("fail_on_purpose"):
            raise RuntimeError(f"dataset {self._dataset} fails on purpose (test fileset flag)")
