"""A jagged object collection (``events.Muon``, a selection of it) as flat numpy columns.

Object selections are mostly comparisons on one value per object. Written with awkward,
each ``collection.pt > 20`` re-derives where the chunk's (skimmed, selected) objects sit in
the file's buffers, then builds a jagged result: a few milliseconds per operation, per
chunk, whatever the number of objects. ``FlatObjects`` works out once per collection which
stored objects it holds, so every field is then one numpy gather, and ``select`` builds
the selected collection directly from those positions::

    muons = FlatObjects(events.Muon)
    good = (muons["pt"] > 20) & (np.abs(muons["eta"]) < 2.4) & muons["tightId"]
    events["MuonGood"] = muons.select(good)   # a jagged Muon collection, as Muon[mask] gives

Layouts it does not recognise (option types, records built some other way) go through
awkward itself, with the same results.
"""
from __future__ import annotations

from functools import cached_property

import awkward as ak
import numpy as np
from awkward.contents import IndexedArray, ListArray, ListOffsetArray, RecordArray
from awkward.index import Index64


def _list_bounds(layout) -> tuple[np.ndarray, np.ndarray] | None:
    if isinstance(layout, ListOffsetArray):
        offsets = np.asarray(layout.offsets.data)
        return offsets[:-1], offsets[1:]
    if isinstance(layout, ListArray):
        return np.asarray(layout.starts.data), np.asarray(layout.stops.data)
    return None


def _stored_positions(layout) -> tuple[np.ndarray, np.ndarray, RecordArray] | None:
    """Objects per event, and the position of each object in the record array that stores
    them, for [IndexedArray...] > list > [IndexedArray...] > RecordArray (skims, selections)."""
    events = None
    while isinstance(layout, IndexedArray):  # event selections (skim, preselection)
        index = np.asarray(layout.index.data)
        events = index if events is None else index[events]
        layout = layout.content
    bounds = _list_bounds(layout)
    if bounds is None:
        return None
    starts, stops = bounds
    if events is not None:
        starts, stops = starts[events], stops[events]
    counts = (stops - starts).astype(np.int64)
    total = int(counts.sum())
    first = np.cumsum(counts) - counts  # each event's first object in the flat order
    positions = np.repeat(starts - first, counts) + np.arange(total, dtype=np.int64)
    content = layout.content
    while isinstance(content, IndexedArray):  # object selections
        positions = np.asarray(content.index.data)[positions]
        content = content.content
    if not isinstance(content, RecordArray) or content.is_tuple:
        return None
    return counts, positions, content


class FlatObjects:
    """The objects of a jagged record collection as flat numpy values (module docstring)."""

    def __init__(self, collection: ak.Array):
        self.collection = collection
        stored = _stored_positions(collection.layout)
        if stored is None:
            self.counts = np.asarray(ak.to_numpy(ak.num(collection, axis=1)), dtype=np.int64)
            self._positions = self._records = None
        else:
            self.counts, self._positions, self._records = stored
        self._fields: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        """The number of objects (all events)."""
        return int(self.counts.sum())

    def __getitem__(self, field: str) -> np.ndarray:
        """One value of ``field`` per object, in event order."""
        if field not in self._fields:
            if self._records is None:
                # a None (optional object or value) raises ValueError: no masked arrays here
                values = ak.to_numpy(ak.flatten(self.collection[field], axis=1), allow_missing=False)
            else:
                if field not in self._records.fields:
                    raise KeyError(f"the collection has no field {field!r} (it has {sorted(self._records.fields)})")
                content = self._records.content(field)
                if content.is_list or content.is_option or content.is_record:
                    raise TypeError(f"field {field!r} is not one number per object")
                values = np.asarray(content.data)[self._positions]
            self._fields[field] = values
        return self._fields[field]

    @cached_property
    def event_index(self) -> np.ndarray:
        """The event (row in the collection) of each object."""
        return np.repeat(np.arange(len(self.counts)), self.counts)

    def unflatten(self, values: np.ndarray) -> ak.Array:
        """Per-object ``values`` (e.g. a mask) as a jagged array shaped like the collection."""
        return ak.unflatten(values, self.counts)

    def select(self, mask: np.ndarray) -> ak.Array:
        """The objects where the flat ``mask`` is True, as a jagged collection like ``collection[jagged_mask]``."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise ValueError(f"the mask has shape {mask.shape}; expected one boolean per object ({len(self)})")
        if self._records is None:
            return self.collection[self.unflatten(mask)]
        kept = np.zeros(len(mask) + 1, dtype=np.int64)
        np.cumsum(mask, out=kept[1:])
        offsets = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=offsets[1:])
        layout = ListOffsetArray(Index64(kept[offsets]), IndexedArray(Index64(self._positions[mask]), self._records))
        return ak.Array(layout, behavior=self.collection.behavior, attrs=self.collection.attrs)
