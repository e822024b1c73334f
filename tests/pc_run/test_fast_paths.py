"""The fast paths (``pc_run.fast_paths``) give exactly what awkward, coffea and vector give.

Every expression runs twice on the same real NanoAOD file: on NanoEvents built with coffea's
own NanoAOD schema (the reference: awkward's slicing and broadcasting, vector's properties)
and on NanoEvents built with ``with_fast_paths`` of it, as pocket-coffea builds every chunk.
The results must be identical: type (dtypes, option types, parameters), every value, the
array class. Each expression that should take a fast path is also checked to have taken
it, so that a silent fallback cannot make these tests pass trivially.
"""
import warnings

import awkward as ak
import numpy as np
import pytest
from coffea.nanoevents import BaseSchema, NanoAODSchema, NanoEventsFactory
from coffea.nanoevents.methods import candidate

from pc_run import fast_paths
from pc_run.fast_paths import FastArray, elementwise, select_by_jagged, with_fast_paths


def _events(path, schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # missing cross-references of reduced files
        return NanoEventsFactory.from_root({str(path): "Events"}, mode="virtual", schemaclass=schema).events()


@pytest.fixture(scope="module", params=["nano_tt_v12.root", "nano_dy.root"])
def both(request, nanoaod_dir):
    """(reference events, fast-path events) of one file."""
    path = nanoaod_dir / request.param
    return _events(path, NanoAODSchema), _events(path, with_fast_paths(NanoAODSchema))


def assert_identical(ours, reference):
    assert str(ours.type) == str(reference.type)
    # without behaviours: array_equal also compares the classes behaviours give (compared below);
    # the kinds of layout nodes may differ (an IndexedOptionArray where awkward makes an UnmaskedArray)
    assert ak.array_equal(ak.Array(ours.layout), ak.Array(reference.layout), check_parameters=True, equal_nan=True,
                          dtype_exact=True, same_content_types=False)
    assert ak.to_list(ak.is_none(ours, axis=-1)) == ak.to_list(ak.is_none(reference, axis=-1))
    ours_class, reference_class = type(ours), type(reference)
    if ours_class is FastArray:
        assert reference_class is ak.Array
    else:
        assert ours_class.__name__ == reference_class.__name__ and issubclass(ours_class, reference_class)


def _skimmed(events):
    return events[ak.to_numpy(ak.num(events.Jet) >= 2)]


def _selected_twice(events):
    jets = events.Jet[events.Jet.pt > 25]
    return jets, jets.btagDeepFlavB > 0.3


SELECTIONS = {  # name: events -> (collection, mask)
    "jets": lambda ev: (ev.Jet, (ev.Jet.pt > 30) & (abs(ev.Jet.eta) < 2.4) & (ev.Jet.jetId >= 2)),
    "muons": lambda ev: (ev.Muon, (ev.Muon.pt > 5) & ev.Muon.looseId),
    "electrons": lambda ev: (ev.Electron, ev.Electron.cutBased >= 1),
    "nothing kept": lambda ev: (ev.Jet, ev.Jet.pt < 0),
    "everything kept": lambda ev: (ev.Jet, ev.Jet.pt >= 0),
    "jets of skimmed events": lambda ev: (_skimmed(ev).Jet, _skimmed(ev).Jet.pt > 40),
    "selected twice": _selected_twice,
}


@pytest.mark.parametrize("name", SELECTIONS)
def test_selections_equal_awkward(both, name):
    reference, fast = both
    collection, mask = SELECTIONS[name](reference)
    expected = collection[mask]
    collection, mask = SELECTIONS[name](fast)
    selected = collection[mask]
    assert select_by_jagged(collection, mask) is not None, "the fast path was not taken"
    assert_identical(selected, expected)
    assert_identical(selected.pt, expected.pt)
    if name == "jets":  # cross-references of the selected objects still resolve
        assert_identical(selected.matched_muons.pt, expected.matched_muons.pt)


def test_a_skimmed_collection_is_located_once_for_all_its_fields(both, monkeypatch):
    """The positions of a collection of skimmed events are worked out once (kept on the skim's
    index) and serve every field; another collection, or another skim, works out its own."""
    reference, fast = both
    projections = []
    project = ak.contents.IndexedArray.project
    monkeypatch.setattr(ak.contents.IndexedArray, "project",
                        lambda self, *args: projections.append(1) or project(self, *args))
    skimmed = _skimmed(fast)
    results = [skimmed.Jet.pt > 40, abs(skimmed.Jet.eta) < 2, skimmed.Jet[skimmed.Jet.jetId >= 2]]
    assert len(projections) == 1
    results.append(skimmed.Muon.pt > 5)
    assert len(projections) == 2
    monkeypatch.undo()
    skimmed = _skimmed(reference)
    expected = [skimmed.Jet.pt > 40, abs(skimmed.Jet.eta) < 2, skimmed.Jet[skimmed.Jet.jetId >= 2], skimmed.Muon.pt > 5]
    for result, wanted in zip(results, expected):
        assert_identical(result, wanted)


def test_selection_of_a_stored_collection_after_preselection(both):
    results = []
    for events in both:
        events = events[ak.to_numpy(ak.num(events.Jet) >= 1)]
        events["JetGood"] = events.Jet[events.Jet.pt > 25]
        events = events[ak.to_numpy(ak.num(events.JetGood) >= 1)]
        results.append(events.JetGood[events.JetGood.eta > 0])
    assert_identical(results[1], results[0])
    assert len(results[0]) > 0


EXPRESSIONS = {
    "compare with int": lambda ev: ev.Jet.pt > 30,
    "compare with float": lambda ev: ev.Muon.pfRelIso04_all < 0.15,
    "abs": lambda ev: abs(ev.Jet.eta),
    "and of masks": lambda ev: (ev.Jet.pt > 30) & (abs(ev.Jet.eta) < 2.4) & (ev.Jet.jetId >= 2),
    "bool field and": lambda ev: ev.Muon.tightId & (ev.Muon.pt > 3),
    "invert": lambda ev: ~(ev.Jet.pt > 30),
    "two fields, different parameters": lambda ev: ev.Jet.pt * np.cosh(ev.Jet.eta),
    "two fields, arctan2": lambda ev: np.arctan2(ev.Jet.eta, ev.Jet.phi),
    "uint8 field": lambda ev: ev.Muon.genPartFlav + 1,
    "int field with a big int": lambda ev: ev.Jet.jetId * 1_000_000_000_000,
    "event-level": lambda ev: ev.genWeight * 2.5 / 7,
    "division by zero": lambda ev: ev.Jet.pt / 0.0,
    "field of skimmed events": lambda ev: _skimmed(ev).Jet.pt > 50,
    "field of selected objects": lambda ev: ev.Jet[ev.Jet.pt > 20].eta * 2,
    "leading muon (option)": lambda ev: ak.pad_none(ev.Muon, 2)[:, 0].pt * 2,
    "two options": lambda ev: ak.pad_none(ev.Muon, 2)[:, 0].pt + ak.pad_none(ev.Muon, 2)[:, 1].pt,
    "option and event-level": lambda ev: ak.pad_none(ev.Muon, 1)[:, 0].pt - ev.MET.pt,
    "all missing": lambda ev: ak.pad_none(ev.Muon[ev.Muon.pt < 0], 1)[:, 0].pt > 1,
    "jagged option": lambda ev: ak.pad_none(ev.Jet, 12, axis=1).pt > 20,
    "result of an awkward function": lambda ev: ak.pad_none(ev.Jet.pt, 3, axis=1) > 20,
    "stored record": lambda ev: _with_dimuon(ev).ll.mass > 60,
    "numbers selected by a mask": lambda ev: ev.Jet.pt[ev.Jet.pt > 30] * 2,
    "vector property": lambda ev: ev.Jet.px * ev.Jet.energy,
    "vector method": lambda ev: ev.Jet.delta_r(ev.Jet) + 1,
    "sum of candidates": lambda ev: (ak.pad_none(ev.Muon, 2)[:, 0] + ak.pad_none(ev.Muon, 2)[:, 1]).mass > 60,
    "lists of lists": lambda ev: ak.unzip(ak.cartesian([ev.Jet, ev.Muon], nested=True))[0].pt * 2,
    "metric table": lambda ev: ev.Jet.metric_table(ev.Muon) > 0.4,
    "metric table against another behaviour": lambda ev: ev.Jet.metric_table(
        ak.zip({f: ev.Muon[f] for f in ("pt", "eta", "phi", "mass")}, with_name="PtEtaPhiMCandidate",
               behavior=candidate.behavior)) > 0.4,
}
NOT_FAST = {
    "int field with a big int",  # numpy refuses (NEP 50 overflow): awkward decides
}


def _with_dimuon(events):
    muons = ak.pad_none(events.Muon, 2)
    ll = ak.zip({"mass": (muons[:, 0] + muons[:, 1]).mass, "charge": muons[:, 0].charge + muons[:, 1].charge})
    return ak.with_field(events, ll, "ll")  # not events["ll"] = ...: the events are shared by the tests


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_operators_and_ufuncs_equal_awkward(both, name):
    reference, fast = both
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            expected = EXPRESSIONS[name](reference)
        except Exception as error:  # awkward refuses: so must the fast path
            with pytest.raises(type(error)):
                EXPRESSIONS[name](fast)
            return
        result = EXPRESSIONS[name](fast)
    assert_identical(result, expected)
    assert (type(result) is FastArray) == (name not in NOT_FAST), "the fast path was not taken" if name not in NOT_FAST else ""


COLLECTIONS = ["Muon", "Electron", "Jet", "Photon", "Tau", "FatJet", "GenPart", "GenJet", "MET", "SubJet", "TrigObj"]


def test_coordinates_equal_vector(both):
    """Every collection of the file (nano_dy.root has all of COLLECTIONS), plain and selected."""
    reference, fast = both
    present = [name for name in COLLECTIONS if name in reference.fields]
    assert {"Muon", "Jet", "MET"} <= set(present)
    for collection in present:
        for ref, ours in ((reference[collection], fast[collection]),
                          (_skimmed(reference)[collection], _skimmed(fast)[collection])):
            compared = 0
            for name in ("pt", "eta", "phi", "mass", "energy", "px", "rho"):
                try:
                    expected = getattr(ref, name)
                except Exception as error:
                    with pytest.raises(type(error)):
                        getattr(ours, name)
                    continue
                assert_identical(getattr(ours, name), expected)
                compared += 1
            assert compared, collection


def test_vector_formulas_take_the_flat_numbers(both, monkeypatch):
    """vector computes each formula in one ak.transform over the layouts; on the fast paths'
    arrays the same formula runs once on the flat numbers (the values are compared above)."""
    reference, fast = both
    transforms = []
    transform = ak.transform
    monkeypatch.setattr(ak, "transform", lambda *args, **kwargs: transforms.append(1) or transform(*args, **kwargs))
    expressions = [lambda ev: ev.Jet.px * ev.Jet.energy, lambda ev: ev.Jet.delta_r(ev.Jet),
                   lambda ev: (_leading(ev.Muon) + _leading(ev.Muon, 2)).mass, lambda ev: ev.Jet.metric_table(ev.Muon)]
    for expression in expressions:
        expression(fast)
    assert transforms == []
    for expression in expressions:
        expression(reference)
    assert transforms, "vector no longer uses ak.transform: this test no longer tests anything"


def test_mask_of_other_lengths_is_left_to_awkward(both):
    """awkward takes a jagged mask as the indices of its True values: a mask of another
    collection's lengths selects (or fails) by those; the fast path leaves it to awkward."""
    reference, fast = both
    assert select_by_jagged(fast.Jet, fast.Muon.pt > 0) is None
    assert_identical(fast.Jet[fast.Muon.pt > 0], reference.Jet[reference.Muon.pt > 0])
    with pytest.raises(Exception) as expected:
        reference.Muon[reference.Jet.pt > 0]
    with pytest.raises(type(expected.value)):
        fast.Muon[fast.Jet.pt > 0]


def test_mask_with_missing_values_is_left_to_awkward(both):
    reference, fast = both
    results = []
    for events in (reference, fast):
        mask = ak.mask(events.Jet.pt > 30, events.Jet.eta > -1)
        results.append(events.Jet[mask])
    assert select_by_jagged(fast.Jet, ak.mask(fast.Jet.pt > 30, fast.Jet.eta > -1)) is None
    assert_identical(results[1], results[0])


# ---------------------------------------------------------------- awkward's functions


@pytest.fixture
def taken(monkeypatch):
    """The names of the fast functions that gave a result (not None: the fast path was taken)."""
    names = []

    def recording(function):
        def record(*args, **kwargs):
            result = function(*args, **kwargs)
            if result is not None:
                names.append(function.__name__)
            return result
        return record

    monkeypatch.setattr(fast_paths, "_FAST_FUNCTIONS",
                        {key: recording(function) for key, function in fast_paths._FAST_FUNCTIONS.items()})
    return names


def _leading(objects, n=1):
    return ak.pad_none(objects, n)[:, n - 1]


def _leptons(ev):
    """The leptons of the plain-awkward benchmark: fields concatenated, zipped, sorted by pt."""
    muons, electrons = ev.Muon[ev.Muon.pt > 5], ev.Electron[ev.Electron.pt > 5]
    leptons = ak.zip({f: ak.concatenate([muons[f], electrons[f]], axis=1) for f in ("pt", "eta", "phi", "mass", "charge")},
                     with_name="PtEtaPhiMCandidate", behavior=candidate.behavior)
    return leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]


FUNCTIONS = {  # name: (events -> result, the fast function that must have been taken)
    "fill_none of an option, int": (lambda ev: ak.fill_none(_leading(ev.Muon).pt, 0), "fill_none"),
    "fill_none of an option, float": (lambda ev: ak.fill_none(_leading(ev.Muon).pt, 0.1), "fill_none"),
    "fill_none of an option, bool": (lambda ev: ak.fill_none(_leading(ev.Jet).pt, True), "fill_none"),
    "fill_none of a cut mask": (lambda ev: ak.fill_none((ak.num(ev.Muon) >= 2) & (_leading(ev.Muon, 2).charge == 0),
                                                        False), "fill_none"),
    "fill_none of an int option, bool": (lambda ev: ak.fill_none(_leading(ev.Jet, 2).jetId, False), "fill_none"),
    "fill_none in lists": (lambda ev: ak.fill_none(ak.pad_none(ev.Jet, 12, axis=1).pt, -1.0, axis=None), "fill_none"),
    "concatenate fields": (lambda ev: ak.concatenate([ev.Muon.pt, ev.Electron.pt], axis=1), "concatenate"),
    "concatenate int fields": (lambda ev: ak.concatenate([ev.Muon.charge, ev.Electron.charge, ev.Muon.charge], axis=-1),
                               "concatenate"),
    "concatenate mixed types": (lambda ev: ak.concatenate([ev.Muon.pt, ev.Electron.charge], axis=1), "concatenate"),
    "concatenate selected": (lambda ev: ak.concatenate([ev.Muon[ev.Muon.pt > 10].eta, ev.Jet[ev.Jet.pt > 30].eta],
                                                       axis=1), "concatenate"),
    "argsort descending": (lambda ev: ak.argsort(ev.Jet.pt, axis=1, ascending=False), "argsort"),
    "argsort ascending, ints": (lambda ev: ak.argsort(ev.Jet.jetId), "argsort"),
    "argsort of selected": (lambda ev: ak.argsort(_skimmed(ev).Jet[_skimmed(ev).Jet.pt > 20].eta), "argsort"),
    "sorted by argsort": (lambda ev: ev.Jet[ak.argsort(ev.Jet.eta, ascending=False)], "argsort"),
    "leptons sorted by pt": (_leptons, "argsort"),
    "leptons' fields": (lambda ev: _leptons(ev).charge * 1, "concatenate"),
    "pairs": (lambda ev: ak.cartesian([ev.Jet, ev.Muon], axis=1, nested=True), "cartesian"),
    "pairs of numbers, selected": (lambda ev: ak.cartesian([ev.Jet.pt[ev.Jet.pt > 30], ev.Electron.eta], axis=1,
                                                           nested=True), "cartesian"),
    "metric table": (lambda ev: ev.Jet.metric_table(ev.Muon), "cartesian"),
    "jets cleaned against leptons": (lambda ev: ev.Jet[ak.all(ev.Jet.metric_table(_leptons(ev)) > 0.4, axis=2)],
                                     "all_true"),
    "any near": (lambda ev: ak.any(ev.Jet.metric_table(ev.Muon) < 0.4, axis=-1), "any_true"),
    "all of numbers": (lambda ev: ak.all(ev.Jet.pt, axis=1), "all_true"),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_awkward_functions_equal_awkward(both, taken, name):
    reference, fast = both
    expression, fast_function = FUNCTIONS[name]
    expected = expression(reference)
    taken.clear()
    result = expression(fast)
    assert fast_function in taken, "the fast path was not taken"
    assert_identical(result, expected)


def test_awkward_functions_without_a_fast_path_are_awkwards(both, taken):
    reference, fast = both
    for expression in (lambda ev: ak.num(ev.Jet), lambda ev: ak.sum(ev.Jet.pt, axis=1),
                       lambda ev: ak.fill_none(ev.Jet.pt, 0),  # nothing can be missing
                       lambda ev: ak.concatenate([ev.Muon, ev.Muon], axis=1),  # records
                       lambda ev: ak.argsort(ev.Jet.pt, axis=0),
                       lambda ev: ak.argsort(ev.Jet.pt, stable=False)):
        result = expression(fast)
        assert taken == []
        expected = expression(reference)
        if isinstance(expected, ak.Array):
            assert_identical(result, expected)
        else:
            assert result == expected
    unmasked = _layouts()["unmasked"]  # nothing is missing: awkward drops the option, keeping the type
    assert_identical(ak.fill_none(_fast(unmasked), 0), ak.fill_none(ak.Array(unmasked), 0))
    assert taken == []


@pytest.mark.parametrize("skimmed", [False, True])
def test_stored_fields_equal_awkward(both, taken, skimmed):
    """``events[name] = ...`` (``ak.with_field``): new fields, a replaced one, a nested name."""
    def store(events):
        events = _skimmed(events) if skimmed else events[:]  # a new array: the fixture's events stay as they are
        events["JetGood"] = events.Jet[events.Jet.pt > 30]
        events["nJetGood"] = ak.num(events.JetGood)
        events["ll"] = ak.zip({"mass": _leading(events.Muon).mass, "charge": _leading(events.Muon).charge})
        events["JetGood"] = events.JetGood[events.JetGood.eta > 0]  # replaced, in its place
        events["JetGood", "twice_pt"] = events.JetGood.pt * 2  # a path: awkward's own way
        return events

    reference = store(both[0])
    taken.clear()
    fast = store(both[1])
    assert taken.count("with_field") == 4, "the fast path was not taken"
    assert fast.fields == reference.fields
    for name in ("JetGood", "nJetGood", "ll", "MET", "Muon"):
        assert_identical(fast[name], reference[name])
    assert_identical(fast.JetGood.matched_muons.pt, reference.JetGood.matched_muons.pt)


def test_indices_awkward_takes_its_own_way(both):
    """Negative and out-of-range positions: awkward's rules, and its error."""
    reference, fast = both
    assert select_by_jagged(fast.Jet, ak.local_index(fast.Jet.pt) - 1) is None
    for expression in (lambda ev: ev.Jet[ak.local_index(ev.Jet.pt) - 1], lambda ev: ev.Jet.pt[ak.local_index(ev.Jet.pt) * -1]):
        assert_identical(expression(fast), expression(reference))
    with pytest.raises(Exception) as expected:
        reference.Jet[ak.local_index(reference.Jet.pt) + 1]
    with pytest.raises(type(expected.value)):
        fast.Jet[ak.local_index(fast.Jet.pt) + 1]


# ---------------------------------------------------------------- layouts NanoEvents rarely make

def _fast(layout):
    array = ak.Array(layout)
    array.__class__ = FastArray
    return array


def _layouts():
    numbers = ak.contents.NumpyArray(np.array([1.5, -2.0, 3.25, 0.0, 7.0, -1.0, 4.0, 2.5], dtype=np.float32))
    offsets = ak.index.Index64(np.array([1, 3, 3, 6, 8]))  # not from 0
    starts, stops = ak.index.Index64(np.array([5, 0, 2, 2])), ak.index.Index64(np.array([8, 2, 2, 5]))
    return {
        "offsets not from 0": ak.contents.ListOffsetArray(offsets, numbers),
        "lists out of order": ak.contents.ListArray(starts, stops, numbers),
        "carried lists": ak.contents.IndexedArray(ak.index.Index64(np.array([3, 0, 0, 2])),
                                                  ak.contents.ListArray(starts, stops, numbers)),
        "byte-masked": ak.contents.ByteMaskedArray(ak.index.Index8(np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=np.int8)),
                                                   numbers, valid_when=True),
        "unmasked": ak.contents.UnmaskedArray(numbers),
        "unmasked in lists out of order": ak.contents.ListArray(starts, stops, ak.contents.UnmaskedArray(numbers)),
        "byte-masked in carried lists": ak.contents.IndexedArray(
            ak.index.Index64(np.array([3, 0, 2])),
            ak.contents.ListArray(starts, stops, ak.contents.ByteMaskedArray(
                ak.index.Index8(np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=np.int8)), numbers, valid_when=True))),
        "indexed option in lists": ak.contents.ListOffsetArray(
            ak.index.Index64(np.array([0, 2, 2, 5])),
            ak.contents.IndexedOptionArray(ak.index.Index64(np.array([4, -1, 0, 7, -1])), numbers)),
        "empty": ak.contents.ListOffsetArray(ak.index.Index64(np.array([0])), numbers),
        "lists with parameters": ak.contents.ListOffsetArray(ak.index.Index64(np.array([0, 3, 3, 8])), numbers,
                                                             parameters={"__doc__": "lists"}),
    }


OPTION_LAYOUTS = ["byte-masked", "byte-masked in carried lists", "indexed option in lists"]  # missing some
LIST_LAYOUTS = ["offsets not from 0", "lists out of order", "carried lists", "empty", "lists with parameters"]


@pytest.mark.parametrize("name", list(_layouts()))
def test_ufuncs_on_unusual_layouts_equal_awkward(name):
    layout = _layouts()[name]
    for ufunc, args in ((np.greater, (1.0,)), (np.absolute, ()), (np.multiply, (2,)), (np.add, ("self",))):
        plain = ak.Array(layout)
        expected = ufunc(plain, *[plain if a == "self" else a for a in args])
        fast = _fast(layout)
        computed = elementwise(ufunc, (fast, *[fast if a == "self" else a for a in args]))
        assert computed is not None, f"{name}: {ufunc.__name__} fell back"
        assert_identical(computed, expected)


@pytest.mark.parametrize("name", LIST_LAYOUTS)
def test_selection_on_unusual_layouts_equals_awkward(name):
    plain = ak.Array(_layouts()[name])
    for where in (plain > 1.0, ak.argsort(plain, ascending=False), ak.argsort(plain)[:, :1]):
        selected = select_by_jagged(plain, where)
        assert selected is not None
        assert_identical(selected, plain[where])


@pytest.mark.parametrize("name", LIST_LAYOUTS + OPTION_LAYOUTS)
def test_awkward_functions_on_unusual_layouts_equal_awkward(name, taken):
    layout = _layouts()[name]
    if name in LIST_LAYOUTS:
        other = ak.values_astype(ak.Array(layout), np.int32)
        calls = {"concatenate": lambda a: ak.concatenate([a, other, a], axis=1),
                 "argsort": lambda a: ak.argsort(a), "argsort descending": lambda a: ak.argsort(a, ascending=False),
                 "cartesian": lambda a: ak.cartesian([a, other], axis=1, nested=True),
                 "cartesian of itself": lambda a: ak.cartesian([a, a], axis=1, nested=True),
                 "all_true": lambda a: ak.all(a, axis=1), "any_true": lambda a: ak.any(a, axis=-1)}
    else:
        calls = {f"fill_none {value!r}": (lambda a, value=value: ak.fill_none(a, value)) for value in (0, 0.1, False)}
    for label, call in calls.items():
        expected = call(ak.Array(layout))
        taken.clear()
        result = call(_fast(layout))
        assert taken == [label.split()[0]], f"{label}: the fast path was not taken"
        assert_identical(result, expected)


def test_sorting_extreme_integers_is_left_to_awkward(taken):
    """Descending order negates the values: the int64 minimum and uint64 go to awkward."""
    for values in (np.array([3, np.iinfo(np.int64).min, 5, 7]), np.array([3, 2**64 - 1, 5, 1], dtype=np.uint64)):
        array = ak.unflatten(values, [3, 0, 1])
        for ascending in (True, False):
            taken.clear()
            result = ak.argsort(_fast(array.layout), ascending=ascending)
            assert_identical(result, ak.argsort(array, ascending=ascending))
            assert taken == (["argsort"] if ascending else [])


def test_base_schema_gives_the_same_results(nanoaod_dir):
    """Every schema gets the fast paths (here coffea's BaseSchema: branches as flat fields)."""
    path = nanoaod_dir / "nano_tt_v12.root"
    reference, fast = _events(path, BaseSchema), _events(path, with_fast_paths(BaseSchema))
    for expression in (lambda ev: (ev.Jet_pt > 30) & (abs(ev.Jet_eta) < 2.4), lambda ev: ev.genWeight * 2):
        result = expression(fast)
        assert type(result) is FastArray
        assert_identical(result, expression(reference))
    mask = (fast.Jet_pt > 30)
    assert_identical(fast.Jet_eta[mask], reference.Jet_eta[reference.Jet_pt > 30])
