"""Overlap removal between object collections (jets against leptons, ...), in ΔR.

``coffea``'s ``objects.nearest(others, threshold=...)`` builds every (object, other) pair
as awkward records and takes an argmin to answer a yes/no question; ``near_any`` and
``not_near`` answer it with flat numpy arrays built from the collections' offsets, which
matters because it runs on every jet of every event.
"""
from __future__ import annotations

import awkward as ak
import numpy as np

from .flat_objects import FlatObjects


def delta_phi(phi1, phi2):
    """phi1 - phi2 wrapped into [-pi, pi)."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def near_any(objects: FlatObjects | ak.Array, others: FlatObjects | ak.Array, max_dr: float) -> np.ndarray:
    """Per object of ``objects``, flat: True when an object of ``others`` in the same event lies
    within ``max_dr`` (ΔR = sqrt(Δη² + Δφ²) <= max_dr), as ``nearest(..., threshold=max_dr)``
    not returning None. Both need ``eta`` and ``phi``; collections or their ``FlatObjects``.

        jets = FlatObjects(events.Jet)
        events["JetGood"] = jets.select(good_jets & ~near_any(jets, FlatObjects(events.LeptonGood), 0.4))
    """
    objects = objects if isinstance(objects, FlatObjects) else FlatObjects(objects)
    others = others if isinstance(others, FlatObjects) else FlatObjects(others)
    counts, other_counts = objects.counts, others.counts
    # one row per (object, other object of the same event), built from offsets with numpy
    pairs_per_object = np.repeat(other_counts, counts)
    n_pairs = int(pairs_per_object.sum())
    if n_pairs == 0:
        return np.zeros(int(counts.sum()), dtype=bool)
    object_of_pair = np.repeat(np.arange(len(pairs_per_object)), pairs_per_object)
    first_other = np.repeat(np.cumsum(other_counts) - other_counts, counts)  # each object's event's first other
    pair_start = np.cumsum(pairs_per_object) - pairs_per_object
    other_of_pair = np.repeat(first_other - pair_start, pairs_per_object) + np.arange(n_pairs)

    def values(collection, field):
        return collection[field].astype(np.float64)

    deta = values(objects, "eta")[object_of_pair] - values(others, "eta")[other_of_pair]
    dphi = delta_phi(values(objects, "phi")[object_of_pair], values(others, "phi")[other_of_pair])
    near_pairs = deta**2 + dphi**2 <= max_dr * max_dr
    return np.bincount(object_of_pair[near_pairs], minlength=len(pairs_per_object)) > 0


def not_near(objects, others, max_dr: float) -> ak.Array:
    """The jagged mask of the objects with no object of ``others`` within ``max_dr`` (``near_any``)::

        jets = events.Jet[good_jets]
        events["JetGood"] = jets[not_near(jets, events.LeptonGood, 0.4)]
    """
    flat = FlatObjects(objects)
    return flat.unflatten(~near_any(flat, others, max_dr))
