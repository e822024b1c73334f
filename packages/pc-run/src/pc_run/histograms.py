"""Histogram booking and filling: ``HistConf`` specs become ``hist.Hist`` objects with a
category and a variation axis.

Each histogram's entries are extracted and binned once per chunk (``HistEntries``, with the
axes' own ``index``), each category's events and weights are selected once per chunk for
all histograms (``Selection``), and each (category, variation) is one ``np.bincount``, so
no awkward slicing and no ``fill`` call happens in the loops.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import awkward as ak
import hist
import numpy as np

from pc_core.errors import ConfigError
from pc_core.histograms import Axis, HistConf

from .flat_objects import FlatObjects

CATEGORY_AXIS = "cat"
VARIATION_AXIS = "variation"
NOMINAL = "nominal"


def make_axis(axis: Axis) -> hist.axis.AxesMixin:
    """The ``hist`` axis of one ``Axis`` spec."""
    options = dict(name=axis.name, label=axis.label, underflow=axis.underflow, overflow=axis.overflow)
    if axis.type == "regular":
        return hist.axis.Regular(axis.bins, axis.start, axis.stop, **options)
    if axis.type == "variable":
        return hist.axis.Variable(list(axis.bins), **options)
    return hist.axis.Integer(int(axis.start), int(axis.stop), **options)


def book_histogram(conf: HistConf, categories: Sequence[str], variations: Sequence[str]) -> hist.Hist:
    """An empty histogram: ``cat`` x ``variation`` x the spec's own axes, ``Weight()`` storage.

    The category and variation axes have fixed bins (no growth) so that histograms of
    different chunks, executors and jobs always add bin by bin.
    """
    return hist.Hist(
        hist.axis.StrCategory(list(categories), name=CATEGORY_AXIS, label="Category"),
        hist.axis.StrCategory(list(variations), name=VARIATION_AXIS, label="Variation"),
        *(make_axis(a) for a in conf.axes),
        storage=hist.storage.Weight(),
    )


@dataclass(frozen=True)
class AxisValues:
    """One axis' values for a chunk as numpy: one per event, or one per object (``counts``
    objects per event) for a collection field without ``pos``; ``valid`` is False for None."""

    values: np.ndarray
    valid: np.ndarray
    counts: np.ndarray | None = None

    @classmethod
    def read(cls, events, axis: Axis, hist_name: str, collections: dict | None = None) -> AxisValues:
        """``collections`` caches each collection's ``FlatObjects`` across the axes of a chunk."""
        where = axis.field if axis.coll == "events" else f"{axis.coll}.{axis.field}"
        try:
            flat = None if axis.coll == "events" else _flat_field(events, axis.coll, axis.field, {} if collections is None else collections)
            if flat is None:
                array = events[axis.field] if axis.coll == "events" else events[axis.coll][axis.field]
        except (LookupError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"histogram {hist_name!r}: axis {axis.name!r} needs the field {where!r}, which the events do not have "
                f"({type(exc).__name__}: {exc}); define it in the workflow (e.g. in define_common_variables_after_presel)"
            ) from None
        if flat is not None:
            values, counts = flat
            valid = np.ones(len(values), dtype=bool)
        elif isinstance(array, np.ndarray) or array.ndim == 1:
            if axis.pos is not None:
                raise ConfigError(
                    f"histogram {hist_name!r}: axis {axis.name!r} sets pos={axis.pos} but {where} "
                    "is one value per event, not a collection"
                )
            return cls(*_to_numpy(array))
        else:
            counts = ak.to_numpy(ak.num(array, axis=1))
            values, valid = _to_numpy(ak.flatten(array, axis=1))
        if axis.pos is None:
            return cls(values, valid, counts)
        # the pos-th object of each event, read from the flat values through the offsets
        has_object = counts > axis.pos
        index = np.where(has_object, np.cumsum(counts) - counts + axis.pos, 0)
        if len(values) == 0:
            return cls(np.zeros(len(counts), dtype=values.dtype), np.zeros(len(counts), dtype=bool))
        return cls(values[index], has_object & valid[index])


def _flat_field(events, coll: str, name: str, collections: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Values and per-event counts of ``coll.name`` through the collection's ``FlatObjects``;
    None when the collection is not jagged or the field is not one number per object."""
    if coll not in collections:
        collection = events[coll]
        collections[coll] = FlatObjects(collection) if collection.ndim == 2 and collection.fields else None
    objects = collections[coll]
    if objects is None:
        return None
    try:
        return objects[name], objects.counts
    except (TypeError, ValueError):  # nested or optional values: awkward's own path handles them
        return None


def _to_numpy(array) -> tuple[np.ndarray, np.ndarray]:
    """Values (None replaced by 0) and the mask of the entries that are not None."""
    if isinstance(array, np.ndarray):
        return array, np.ones(len(array), dtype=bool)
    if not array.layout.is_option:
        values = np.asarray(ak.to_numpy(array))
        return values, np.ones(len(values), dtype=bool)
    valid = ~ak.to_numpy(ak.is_none(array, axis=0))
    return np.asarray(ak.to_numpy(ak.fill_none(array, 0))), np.asarray(valid, dtype=bool)


@dataclass
class FieldCache:
    """What a chunk's histograms read from its events, read once for all of them: each axis'
    values and each collection's ``FlatObjects``."""

    values: dict[tuple[str, str, int | None], AxisValues] = field(default_factory=dict)
    collections: dict[str, FlatObjects | None] = field(default_factory=dict)


@dataclass(frozen=True)
class HistEntries:
    """The entries of one histogram for a chunk, already binned on the spec's own axes.

    ``bins[i]`` is the flat bin (flow bins included, as in ``view(flow=True)``) of entry
    ``i``; entries with a None value or outside an axis without flow bins go to the extra
    bin ``size`` (dropped when filling), so per-event entries stay aligned with the events.
    ``event_index[i]`` is the event of entry ``i`` when a collection axis gives several
    entries per event, None when entry ``i`` is event ``i``. Binning once per chunk lets
    every category, sample and variation reuse it.
    """

    bins: np.ndarray
    size: int
    event_index: np.ndarray | None = None

    @classmethod
    def extract(
        cls,
        events,
        conf: HistConf,
        hist_name: str,
        axes: Sequence[hist.axis.AxesMixin],
        fields: FieldCache | None = None,
    ) -> HistEntries:
        """``fields`` keeps what is read from ``events`` for the other histograms of the chunk."""
        fields = FieldCache() if fields is None else fields
        columns: list[AxisValues] = []
        for axis in conf.axes:
            key = (axis.coll, axis.field, axis.pos)
            if key not in fields.values:
                fields.values[key] = AxisValues.read(events, axis, hist_name, fields.collections)
            columns.append(fields.values[key])
        per_object = [c.counts for c in columns if c.counts is not None]
        event_index = None
        if per_object:
            counts = per_object[0]
            if any(not np.array_equal(c, counts) for c in per_object[1:]):
                raise ConfigError(
                    f"histogram {hist_name!r}: its axes are collections of different lengths and cannot be filled "
                    "together; use pos= or fields of one collection"
                )
            event_index = np.repeat(np.arange(len(events)), counts)
            # one value per event is repeated for each object of the event
            columns = [c if c.counts is not None else AxisValues(c.values[event_index], c.valid[event_index]) for c in columns]
        bins = np.zeros(len(columns[0].values), dtype=np.int64)
        valid = np.ones(len(bins), dtype=bool)
        size = 1
        for column, axis in zip(columns, axes):
            index, inside = _flow_index(axis, column.values)
            extent = axis.size + int(axis.traits.underflow) + int(axis.traits.overflow)
            bins = bins * extent + index
            size *= extent
            valid &= column.valid & inside
        bins[~valid] = size
        return cls(bins=bins, size=size, event_index=event_index)


def _flow_index(axis: hist.axis.AxesMixin, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's bin in the flow-inclusive layout, and whether the axis keeps it (as ``fill`` does)."""
    if isinstance(axis, hist.axis.Integer) and not np.issubdtype(values.dtype, np.integer):
        values = np.floor(values)
    index = np.asarray(axis.index(values), dtype=np.int64) + int(axis.traits.underflow)
    extent = axis.size + int(axis.traits.underflow) + int(axis.traits.overflow)
    inside = (index >= 0) & (index < extent)
    return np.where(inside, index, 0), inside


class Selection:
    """The events of one category (and sample) of a chunk and their weight per variation.

    Built once per chunk and shared by every histogram: the selected events' indices and
    their weights (and squared weights) per variation are computed once, not per histogram.
    ``weights`` maps a variation to one weight per event of the chunk.
    """

    def __init__(self, mask: np.ndarray, weights: Mapping[str, np.ndarray]):
        self.mask = mask
        self.events = np.flatnonzero(mask)
        self._weights = weights
        self._at_events: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def weights_at(self, variation: str, events: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weights and squared weights of ``variation`` at ``events`` (default: the selected events)."""
        if events is not None:
            weight = self._weights[variation][events]
            return weight, weight * weight
        if variation not in self._at_events:
            weight = self._weights[variation][self.events]
            self._at_events[variation] = (weight, weight * weight)
        return self._at_events[variation]


def fill_histogram(
    histogram: hist.Hist,
    entries: HistEntries,
    selections: Iterable[tuple[str, Selection]],
    weighted: bool = True,
) -> None:
    """Fill every (category, variation) of ``histogram`` from the binned ``entries``.

    Each (category, variation) is one ``np.bincount`` of the category's entries into the
    histogram's bins, for the sums of weights and of squared weights (unweighted: entry
    counts for both), added to the storage at the end: no ``fill`` call and no awkward
    slicing per category and variation, which dominated the filling time.
    """
    view = histogram.view(flow=True)
    categories, variations = histogram.axes[CATEGORY_AXIS], list(histogram.axes[VARIATION_AXIS])
    sums = np.zeros((view.shape[0], view.shape[1], entries.size))
    sums_squared = np.zeros_like(sums)
    length = entries.size + 1  # the last bin takes the entries dropped (None, outside an axis without flow)
    for category, selection in selections:
        row = categories.index(category)
        if entries.event_index is None:
            bins, events = entries.bins[selection.events], None
        else:
            selected = np.flatnonzero(selection.mask[entries.event_index])
            bins, events = entries.bins[selected], entries.event_index[selected]
        if not weighted:
            counts = np.bincount(bins, minlength=length)[:-1]
            sums[row, :] += counts
            sums_squared[row, :] += counts
            continue
        for column, variation in enumerate(variations):
            weight, weight_squared = selection.weights_at(variation, events)
            sums[row, column] += np.bincount(bins, weights=weight, minlength=length)[:-1]
            sums_squared[row, column] += np.bincount(bins, weights=weight_squared, minlength=length)[:-1]
    view["value"] += sums.reshape(view.shape)
    view["variance"] += sums_squared.reshape(view.shape)
