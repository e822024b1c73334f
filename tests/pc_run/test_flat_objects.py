"""``FlatObjects`` equals awkward itself on real NanoEvents collections, in every layout a
processor produces (plain, skimmed, selected, selected then preselected), and falls back
to awkward for layouts it does not know."""
import awkward as ak
import numpy as np
import pytest
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from pc_run.flat_objects import FlatObjects
from pc_run.object_cleaning import near_any, not_near

FIELDS = ("pt", "eta", "phi", "charge", "tightId")


def _open(path, accessed=None):
    return NanoEventsFactory.from_root(
        {str(path): "Events"}, mode="virtual", schemaclass=NanoAODSchema, access_log=accessed
    ).events()


@pytest.fixture
def events(nanoaod_dir):
    return _open(nanoaod_dir / "nano_dimuon.root")


def _layouts(events):
    """The muon collection as the processor's steps leave it."""
    skimmed = events[ak.num(events.Muon) >= 1]
    selected = skimmed.Muon[skimmed.Muon.pt > 15]
    skimmed["MuonGood"] = selected
    preselected = skimmed[ak.num(skimmed.MuonGood) >= 1]
    return {
        "plain": events.Muon,
        "skimmed": skimmed.Muon,
        "selected": selected,
        "selected then preselected": preselected.MuonGood,
    }


def _assert_same_collection(ours, reference):
    assert ak.to_list(ak.num(ours)) == ak.to_list(ak.num(reference))
    for field in FIELDS:
        assert ak.to_list(ours[field]) == ak.to_list(reference[field])
    assert type(ours).__name__ == type(reference).__name__ == "MuonArray"  # coffea's behaviour is kept
    assert str(ours.type) == str(reference.type)  # fields, dtypes and parameters
    assert ak.to_list(ours.matched_jet.pt) == ak.to_list(reference.matched_jet.pt)  # cross-references work
    assert ak.to_list(ours.pt) == ak.to_list(reference.pt)  # vector methods work
    assert np.allclose(ak.to_numpy(ak.flatten(ours.px)), ak.to_numpy(ak.flatten(reference.px)))


def test_values_and_counts_equal_awkward_in_every_layout(events):
    for name, muons in _layouts(events).items():
        flat = FlatObjects(muons)
        assert flat._records is not None, f"{name}: layout not recognised, fell back to awkward"
        counts = ak.to_numpy(ak.num(muons))
        assert flat.counts.tolist() == counts.tolist(), name
        assert len(flat) == counts.sum() > 0
        assert flat.event_index.tolist() == np.repeat(np.arange(len(counts)), counts).tolist()
        for field in FIELDS:
            reference = ak.to_numpy(ak.flatten(muons[field]))
            assert flat[field].dtype == reference.dtype
            assert flat[field].tolist() == reference.tolist(), (name, field)


def test_select_equals_a_jagged_mask_in_every_layout(events):
    for name, muons in _layouts(events).items():
        flat = FlatObjects(muons)
        mask = (flat["pt"] > 25) & (np.abs(flat["eta"]) < 2.1)
        assert 0 < mask.sum() < len(mask), name
        ours = flat.select(mask)
        _assert_same_collection(ours, muons[flat.unflatten(mask)])
        # selecting from a selection (the layout select builds) works the same way
        again = FlatObjects(ours)
        assert again._records is not None
        tighter = again["pt"] > 40
        _assert_same_collection(again.select(tighter), ours[again.unflatten(tighter)])


def test_reading_through_flat_objects_is_logged_for_the_preload(nanoaod_dir):
    accessed: list = []
    events = _open(nanoaod_dir / "nano_dimuon.root", accessed)
    FlatObjects(events[ak.num(events.Muon) >= 2].Muon)["pfRelIso04_all"]
    branches = {access.branch for access in accessed}
    assert {"nMuon", "Muon_pfRelIso04_all"} <= branches and "Muon_pt" not in branches


def test_unknown_layouts_go_through_awkward():
    values = ak.Array([[{"pt": 1.0}, None], [], [{"pt": 3.0}]])  # optional objects
    flat = FlatObjects(values)
    assert flat._records is None
    assert flat.counts.tolist() == [2, 0, 1]
    kept = flat.select(np.array([True, False, True]))
    assert ak.to_list(kept) == [[{"pt": 1.0}], [], [{"pt": 3.0}]]
    with pytest.raises(ValueError):  # a None is refused, never a masked array
        flat["pt"]


def test_bad_fields_and_masks_are_refused(events):
    flat = FlatObjects(events.Muon)
    with pytest.raises(KeyError, match="no field 'ptt'"):
        flat["ptt"]
    with pytest.raises(ValueError, match="one boolean per object"):
        flat.select(np.ones(3, dtype=bool))
    jets = FlatObjects(events.Jet)
    with pytest.raises(TypeError, match="not one number per object"):
        jets["muonIdxG"]  # a list of muon indices per jet


def test_near_any_is_the_flat_not_near(events):
    jets, muons = events.Jet, events.Muon
    flat = near_any(FlatObjects(jets), FlatObjects(muons), 0.4)
    assert flat.tolist() == ak.to_list(ak.flatten(~not_near(jets, muons, 0.4)))
    coffea = ~ak.is_none(jets.nearest(muons, threshold=0.4), axis=1)
    assert flat.tolist() == ak.to_list(ak.flatten(coffea))
    assert 0 < flat.sum() < len(flat)
