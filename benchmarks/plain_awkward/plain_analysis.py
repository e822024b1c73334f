"""The plain-awkward benchmark analysis, free of any framework: its processing steps (a
mixin for a processor class) and its configuration (built with the framework's own
``Configurator``, ``Cut``, ``HistConf``, ``Axis``). pocket-coffea (``config.py``,
``plain_workflow.py``) and PocketCoffea 0.9 (``pocketcoffea/``) run this same code.

A dimuon + jets selection written as users write it: no numpy rewrites, no ``FlatObjects``;
object selections are awkward masks on the NanoEvents collections, the leptons are
concatenated and sorted with ``ak.concatenate`` and ``ak.argsort``, the dimuon is the sum of
the two leading muons (coffea's vector behaviour) stored as a record with the usual fields,
the jets are cleaned against the leptons with ``metric_table`` (coffea's pairwise ΔR), the b
jets are a mask on the clean jets; the cuts are awkward expressions too. 4 categories, 5
histograms, genWeight/lumi/XS weights. The fileset is ``$POCKET_COFFEA_BENCH_FILESET``.
"""
import os

import awkward as ak
from coffea.nanoevents.methods import candidate

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge")
LUMI_2018 = 59832.0
OBJECT_PRESELECTION = {
    "Muon": {"pt": 15.0, "eta": 2.4, "iso": 0.15},
    "Electron": {"pt": 15.0, "eta": 2.5, "id": 3},
    "Jet": {"pt": 30.0, "eta": 2.4, "jetId": 2, "dr_lepton": 0.4},
    "btag_wp": 0.2783,
}


class PlainDimuonSteps:
    """The processor's steps; mixed in before the framework's base processor."""

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


def _two_muons(events, params, **context):
    return ak.sum(events.Muon.pt > params["minpt"], axis=1) >= 2


def _dimuon(events, params, **context):
    ll = events.ll
    return ak.fill_none((events.nMuonGood >= 2) & (ll.charge == 0) & (ll.mass > params["mll_min"]), False)


def _z_window(events, params, **context):
    return ak.fill_none(abs(events.ll.mass - 91.1876) < params["width"], False)


def _n_bjets(events, params, **context):
    return (events.nBJetGood >= params["min"]) & (events.nBJetGood <= params["max"])


def configurator(*, Configurator, Cut, HistConf, Axis, passthrough, workflow, parameters, integer_axis: str,
                 **framework_options):
    """The analysis' configuration in a framework's classes. ``integer_axis``: that framework's
    name of an integer histogram axis; ``framework_options``: more ``Configurator`` arguments."""
    skim = Cut(name="two_muons_pt10", function=_two_muons, params={"minpt": 10.0})
    dimuon = Cut(name="dimuon", function=_dimuon, params={"mll_min": 20.0})
    z_peak = Cut(name="z_peak", function=_z_window, params={"width": 15.0})
    two_b = Cut(name="2b", function=_n_bjets, params={"min": 2, "max": 99})
    zero_b = Cut(name="0b", function=_n_bjets, params={"min": 0, "max": 0})
    fileset = os.environ.get("POCKET_COFFEA_BENCH_FILESET", "fileset.json")
    return Configurator(
        workflow=workflow,
        parameters=parameters,
        datasets={"jsons": [fileset], "filter": {"samples": ["DYJetsToLL_M-50"], "samples_exclude": [], "year": ["2018"]}},
        skim=[skim],
        preselections=[dimuon],
        categories={"inclusive": [passthrough], "Z": [z_peak], "Z_2b": [z_peak, two_b], "Z_0b": [z_peak, zero_b]},
        weights={"common": {"inclusive": ["genWeight", "lumi", "XS"], "bycategory": {}}, "bysample": {}},
        variations={"weights": {"common": {"inclusive": [], "bycategory": {}}, "bysample": {}}},
        variables={
            "mll": HistConf([Axis(coll="ll", field="mass", label=r"$m_{\mu\mu}$ [GeV]", bins=60, start=20, stop=200)]),
            "ptll": HistConf([Axis(coll="ll", field="pt", label=r"$p_T^{\mu\mu}$ [GeV]", bins=40, start=0, stop=300)]),
            "lepton_pt_0": HistConf([Axis(coll="LeptonGood", field="pt", pos=0, label=r"leading lepton $p_T$", bins=40,
                                          start=0, stop=300)]),
            "jet_pt": HistConf([Axis(coll="JetGood", field="pt", label=r"jet $p_T$ [GeV]", bins=40, start=0, stop=400)]),
            "njets": HistConf([Axis(field="nJetGood", label="number of jets", bins=8, start=0, stop=8,
                                    type=integer_axis)]),
        },
        **framework_options,
    )
