"""Histogram booking and filling: ``HistConf`` specs become ``hist.Hist`` objects with a
category and a variation axis, filled from numpy arrays once per category and variation.

The per-histogram values are extracted once per chunk (``HistValues``); each category then
only applies its boolean mask to plain numpy arrays, so no awkward slicing happens in the
category/variation loops.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import awkward as ak
import hist
import numpy as np

from pc_core.errors import ConfigError
from pc_core.histograms import Axis, HistConf

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


def _field(events, axis: Axis, hist_name: str):
    try:
        if axis.coll == "events":
            array = events[axis.field]
        else:
            array = events[axis.coll][axis.field]
    except (KeyError, AttributeError, ValueError) as exc:
        where = axis.field if axis.coll == "events" else f"{axis.coll}.{axis.field}"
        raise ConfigError(
            f"histogram {hist_name!r}: axis {axis.name!r} needs the field {where!r}, which the events do not have "
            f"({type(exc).__name__}: {exc}); define it in the workflow (e.g. in define_common_variables_after_presel)"
        ) from None
    if axis.pos is not None:
        if array.ndim < 2:
            raise ConfigError(
                f"histogram {hist_name!r}: axis {axis.name!r} sets pos={axis.pos} but {axis.coll}.{axis.field} "
                "is one value per event, not a collection"
            )
        array = ak.pad_none(array, axis.pos + 1, axis=1)[:, axis.pos]
    return array


def _to_numpy(array) -> tuple[np.ndarray, np.ndarray]:
    """Values (None replaced by 0) and the mask of the entries that are not None."""
    if isinstance(array, np.ndarray):
        return array, np.ones(len(array), dtype=bool)
    valid = ~ak.to_numpy(ak.is_none(array, axis=0)) if array.ndim == 1 else None
    values = ak.to_numpy(ak.fill_none(array, 0))
    if valid is None:
        valid = np.ones(len(values), dtype=bool)
    return np.asarray(values), np.asarray(valid, dtype=bool)


@dataclass(frozen=True)
class HistValues:
    """The entries of one histogram for a chunk, as numpy arrays.

    ``values[i]`` is the value of axis ``i`` for each entry; ``event_index`` maps each entry
    to its event (entries of a collection axis are objects, several per event).
    """

    values: tuple[np.ndarray, ...]
    event_index: np.ndarray

    @classmethod
    def extract(cls, events, conf: HistConf, hist_name: str) -> HistValues:
        arrays = [_field(events, axis, hist_name) for axis in conf.axes]
        n_events = len(events)
        jagged = [a.ndim > 1 for a in arrays]
        if any(jagged):
            try:
                arrays = ak.broadcast_arrays(*arrays)
            except ValueError as exc:
                raise ConfigError(
                    f"histogram {hist_name!r}: its axes are collections of different lengths and cannot be filled "
                    f"together ({exc}); use pos= or fields of one collection"
                ) from None
            counts = ak.to_numpy(ak.num(arrays[0], axis=1))
            event_index = np.repeat(np.arange(n_events), counts)
            arrays = [ak.flatten(a, axis=1) for a in arrays]
        else:
            event_index = np.arange(n_events)
        converted = [_to_numpy(a) for a in arrays]
        valid = np.logical_and.reduce([v for _, v in converted])
        values = tuple(np.asarray(v)[valid] for v, _ in converted)
        return cls(values=values, event_index=event_index[valid])


def fill_histogram(
    histogram: hist.Hist,
    values: HistValues,
    category: str,
    event_mask: np.ndarray,
    weights_by_variation: Mapping[str, np.ndarray | None],
) -> None:
    """Fill one category: ``event_mask`` selects events, weights are per event (None = unit)."""
    selected = event_mask[values.event_index]
    if not selected.any():
        return
    index = values.event_index[selected]
    axis_values = [v[selected] for v in values.values]
    for variation, weight in weights_by_variation.items():
        entry_weight = np.ones(len(index)) if weight is None else weight[index]
        histogram.fill(category, variation, *axis_values, weight=entry_weight)
