"""The histogram fill (bin once, a bincount per category and variation) equals boost-histogram's ``fill``.

The reference fills a freshly booked histogram with ``hist.fill`` once per category and
variation, the straightforward way; both must agree on every bin, flow bins included,
for regular (with and without flow), variable and integer axes, 1D and 2D, collections,
``pos=``, missing values, NaN and infinities.
"""
import awkward as ak
import numpy as np
import pytest

from pc_core.errors import ConfigError
from pc_core.histograms import Axis, HistConf
from pc_run.histograms import NOMINAL, FieldCache, HistEntries, Selection, book_histogram, fill_histogram

CATEGORIES = ["all", "low", "high"]
VARIATIONS = [NOMINAL, "wUp", "wDown"]


def _events(seed: int = 7, n: int = 2000):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, n)
    pt = rng.exponential(40.0, counts.sum())
    pt[::97] = np.nan
    pt[::113] = np.inf
    scalar = rng.normal(50.0, 30.0, n)
    scalar[::89] = -np.inf
    objects = ak.unflatten(ak.zip({"pt": pt, "eta": rng.normal(0, 1.5, counts.sum())}), counts)
    return ak.Array(
        {
            "x": scalar,
            "nobj": counts,
            "obj": objects,
            "optional": ak.mask(objects, objects.eta < 1.0),  # None objects: read through awkward, not FlatObjects
        }
    )


CONFS = {
    "regular": HistConf([Axis(field="x", label="x", bins=20, start=0, stop=100)]),
    "regular_no_flow": HistConf([Axis(field="x", label="x", bins=20, start=0, stop=100, underflow=False, overflow=False)]),
    "variable": HistConf([Axis(coll="obj", field="pt", label="pt", bins=[0, 10, 25, 60, 200])]),
    "integer": HistConf([Axis(field="nobj", label="n", bins=3, start=0, stop=3, type="integer")]),
    "leading": HistConf([Axis(coll="obj", field="pt", pos=0, label="pt0", bins=15, start=0, stop=150)]),
    "optional": HistConf([Axis(coll="optional", field="pt", label="pt", bins=15, start=0, stop=150)]),
    "optional_leading": HistConf([Axis(coll="optional", field="pt", pos=0, label="pt0", bins=15, start=0, stop=150)]),
    "2d": HistConf(
        [
            Axis(coll="obj", field="pt", label="pt", bins=10, start=0, stop=100),
            Axis(coll="obj", field="eta", label="eta", bins=6, start=-2.4, stop=2.4, overflow=False),
        ]
    ),
}


def _reference_fill(histogram, events, conf, masks, weights):
    """One ``hist.fill`` per category and variation, entries built with awkward directly."""
    arrays = []
    for axis in conf.axes:
        array = events[axis.field] if axis.coll == "events" else events[axis.coll][axis.field]
        if axis.pos is not None:
            array = ak.pad_none(array, axis.pos + 1)[:, axis.pos]
        arrays.append(array)
    for category in CATEGORIES:
        selected = [a[masks[category]] for a in arrays]
        event_weights = {v: weights[v][masks[category]] for v in VARIATIONS}
        if selected[0].ndim > 1:
            per_entry = {v: ak.flatten(ak.broadcast_arrays(w, selected[0])[0]) for v, w in event_weights.items()}
            selected = [ak.flatten(a) for a in selected]
        else:
            per_entry = event_weights
        keep = np.logical_and.reduce([~ak.to_numpy(ak.is_none(a)) for a in selected])
        values = [ak.to_numpy(ak.fill_none(a, 0))[keep] for a in selected]
        for variation in VARIATIONS:
            histogram.fill(category, variation, *values, weight=ak.to_numpy(per_entry[variation])[keep])


@pytest.mark.parametrize("name", sorted(CONFS))
def test_one_pass_fill_equals_hist_fill(name):
    conf = CONFS[name]
    events = _events()
    n = len(events)
    rng = np.random.default_rng(3)
    x = ak.to_numpy(events.x)
    masks = {"all": np.ones(n, dtype=bool), "low": x < 40, "high": x > 60}
    nominal = rng.normal(1.0, 0.3, n)
    weights = {NOMINAL: nominal, "wUp": nominal * 1.1, "wDown": nominal * 0.9}

    ours = book_histogram(conf, CATEGORIES, VARIATIONS)
    entries = HistEntries.extract(events, conf, name, list(ours.axes)[2:])
    selections = [(c, Selection(masks[c], weights)) for c in CATEGORIES]
    fill_histogram(ours, entries, selections)
    fill_histogram(ours, entries, selections)  # filling adds, like hist.fill

    reference = book_histogram(conf, CATEGORIES, VARIATIONS)
    _reference_fill(reference, events, conf, masks, weights)
    _reference_fill(reference, events, conf, masks, weights)

    assert ours.sum(flow=True).value > 0
    np.testing.assert_allclose(ours.values(flow=True), reference.values(flow=True), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ours.variances(flow=True), reference.variances(flow=True), rtol=1e-12, atol=1e-9)


def test_unit_weights_and_empty_selection():
    conf = CONFS["integer"]
    events = _events(n=300)
    histogram = book_histogram(conf, CATEGORIES, [NOMINAL])
    entries = HistEntries.extract(events, conf, "integer", list(histogram.axes)[2:])
    none = np.zeros(len(events), dtype=bool)
    unit = {NOMINAL: np.full(len(events), 7.0)}  # ignored: the histogram is unweighted
    selections = [("all", Selection(np.ones(len(events), dtype=bool), unit)), ("low", Selection(none, unit))]
    fill_histogram(histogram, entries, selections, weighted=False)
    counts = np.bincount(np.minimum(ak.to_numpy(events.nobj), 3), minlength=4)  # 3 and 4 go to overflow
    assert histogram[{"cat": "all", "variation": NOMINAL}].values(flow=True).tolist() == [0, *counts[:3], counts[3]]
    assert histogram[{"cat": "all", "variation": NOMINAL}].variances(flow=True).tolist() == [0, *counts[:3], counts[3]]
    assert histogram[{"cat": "low", "variation": NOMINAL}].sum(flow=True).value == 0


def test_axes_on_collections_of_different_lengths_are_refused():
    events = ak.zip({"a": ak.zip({"x": [[1.0, 2.0], [3.0]]}), "b": ak.zip({"x": [[1.0], [2.0, 3.0]]})}, depth_limit=1)
    conf = HistConf(
        [
            Axis(coll="a", field="x", label="a", bins=2, start=0, stop=4),
            Axis(coll="b", field="x", label="b", bins=2, start=0, stop=4),
        ]
    )
    histogram = book_histogram(conf, ["all"], [NOMINAL])
    with pytest.raises(ConfigError, match="collections of different lengths"):
        HistEntries.extract(events, conf, "ab", list(histogram.axes)[2:])


def test_pos_on_a_per_event_field_and_a_missing_field_are_refused():
    events = _events(n=10)
    pos_conf = HistConf([Axis(field="x", pos=0, label="x", bins=2, start=0, stop=4)])
    histogram = book_histogram(pos_conf, ["all"], [NOMINAL])
    with pytest.raises(ConfigError, match="one value per event, not a collection"):
        HistEntries.extract(events, pos_conf, "x0", list(histogram.axes)[2:])
    missing = HistConf([Axis(field="nothere", label="x", bins=2, start=0, stop=4)])
    with pytest.raises(ConfigError, match="needs the field 'nothere'"):
        HistEntries.extract(events, missing, "missing", list(histogram.axes)[2:])
    missing_in_collection = HistConf([Axis(coll="obj", field="ptt", label="x", bins=2, start=0, stop=4)])
    with pytest.raises(ConfigError, match=r"histogram 'ptt': axis 'obj_ptt' needs the field 'obj.ptt'.*has \['eta', 'pt'\]"):
        HistEntries.extract(events, missing_in_collection, "ptt", list(histogram.axes)[2:])


def test_a_chunks_histograms_read_each_field_and_collection_once():
    events = _events(n=200)
    cache = FieldCache()
    shared, alone = [], []
    for name in ("variable", "leading", "2d"):
        axes = list(book_histogram(CONFS[name], CATEGORIES, VARIATIONS).axes)[2:]
        shared.append(HistEntries.extract(events, CONFS[name], name, axes, cache))
        alone.append(HistEntries.extract(events, CONFS[name], name, axes))
    assert list(cache.collections) == ["obj"]  # one FlatObjects for the three histograms
    assert set(cache.values) == {("obj", "eta", None), ("obj", "pt", 0), ("obj", "pt", None)}
    for with_cache, without in zip(shared, alone):
        assert with_cache.bins.tolist() == without.bins.tolist()
        assert (with_cache.event_index is None) == (without.event_index is None)  # pos=0: one entry per event
        if without.event_index is not None:
            assert with_cache.event_index.tolist() == without.event_index.tolist()
