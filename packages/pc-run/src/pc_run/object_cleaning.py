"""Overlap removal between object collections (jets against leptons, ...), in ΔR.

``coffea``'s ``objects.nearest(others, threshold=...)`` builds every (object, other) pair
as awkward records and takes an argmin to answer a yes/no question; ``not_near`` answers it
with flat numpy arrays built from the collections' offsets, which matters because it runs
on every jet of every event.
"""
from __future__ import annotations

import awkward as ak
import numpy as np


def delta_phi(phi1, phi2):
    """phi1 - phi2 wrapped into [-pi, pi)."""
    return (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi


def not_near(objects, others, max_dr: float) -> ak.Array:
    """Per object of ``objects``: True when no object of ``others`` in the same event lies within
    ``max_dr`` (ΔR = sqrt(Δη² + Δφ²) <= max_dr counts as near), as ``nearest(..., threshold=max_dr)``
    returning None does. Both collections need ``eta`` and ``phi``; events without ``others``
    keep all their objects.

        jets = events.Jet[good_jets]
        events["JetGood"] = jets[not_near(jets, events.LeptonGood, 0.4)]
    """
    counts = ak.to_numpy(ak.num(objects, axis=1))
    other_counts = ak.to_numpy(ak.num(others, axis=1))
    # one row per (object, other object of the same event), built from offsets with numpy
    pairs_per_object = np.repeat(other_counts, counts)
    n_pairs = int(pairs_per_object.sum())
    if n_pairs == 0:
        return ak.unflatten(np.ones(int(counts.sum()), dtype=bool), counts)
    object_of_pair = np.repeat(np.arange(len(pairs_per_object)), pairs_per_object)
    first_other = np.repeat(np.cumsum(other_counts) - other_counts, counts)  # each object's event's first other
    pair_start = np.cumsum(pairs_per_object) - pairs_per_object
    other_of_pair = np.repeat(first_other - pair_start, pairs_per_object) + np.arange(n_pairs)

    def flat(collection, field):
        return ak.to_numpy(ak.flatten(collection[field], axis=1)).astype(np.float64)

    deta = flat(objects, "eta")[object_of_pair] - flat(others, "eta")[other_of_pair]
    dphi = delta_phi(flat(objects, "phi")[object_of_pair], flat(others, "phi")[other_of_pair])
    near_pairs = deta**2 + dphi**2 <= max_dr * max_dr
    near = np.bincount(object_of_pair[near_pairs], minlength=len(pairs_per_object)) > 0
    return ak.unflatten(~near, counts)
