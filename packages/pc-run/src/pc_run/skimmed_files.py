"""Export of skimmed events: one NanoAOD-like ROOT file per chunk, written with uproot.

Each file holds an ``Events`` tree with every branch of the input for the events passing the
skim (collections written back as ``nX`` + ``X_field``), and a ``Runs`` tree with one entry
carrying ``genEventCount`` (events of the chunk before the skim) and ``genEventSumw`` (their
sum of ``genWeight``, 0 for data), so the skimmed files can be normalised later exactly like
the original ones. The output records the files in ``skimmed_files`` and their event counts
in ``nskimmed_events`` (``{dataset: [...]}``).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from pc_core.atomic import atomic_path
from pc_core.errors import ConfigError

log = logging.getLogger(__name__)


def _group_branches(arrays: ak.Array) -> dict[str, Any]:
    """NanoAOD branches regrouped so uproot writes ``nX`` counters and ``X_field`` branches."""
    jagged: dict[str, dict[str, ak.Array]] = defaultdict(dict)
    flat: dict[str, Any] = {}
    for name in arrays.fields:
        array = arrays[name]
        if array.ndim > 1 and "_" in name:
            prefix, field = name.split("_", 1)
            jagged[prefix][field] = array
        else:
            flat[name] = array
    branches: dict[str, Any] = {}
    for prefix, fields in jagged.items():
        try:
            branches[prefix] = ak.zip(fields)
        except ValueError:
            # fields of different lengths: write them one by one (uproot adds a counter each)
            for field, array in fields.items():
                branches[f"{prefix}_{field}"] = array
            continue
        flat.pop(f"n{prefix}", None)
    for name, array in flat.items():
        branches[name] = ak.to_numpy(array) if array.ndim == 1 else array
    return branches


def export_skimmed_chunk(proc, skim_mask: np.ndarray, output: dict[str, Any]) -> str | None:
    """Write the skimmed events of ``proc``'s current chunk; returns the file path."""
    folder = str(proc.save_skimmed_files)
    if "://" in folder and not folder.startswith("file://"):
        raise ConfigError(
            f"save_skimmed_files = {folder!r}: only local folders are supported for the skimmed-file export"
        )
    folder = folder.removeprefix("file://")
    meta = proc.events_metadata
    dataset = proc._dataset
    filename, treename = meta["filename"], meta.get("treename", "Events")
    start, stop = proc._entrystart, proc._entrystop
    n_initial = int(len(skim_mask))
    if n_initial == 0:
        return None
    with uproot.open({filename: None}) as source:
        arrays = source[treename].arrays(entry_start=start, entry_stop=stop)
        runs_present = "Runs" in source
    arrays = arrays[skim_mask]
    genweight_sum = float(output["sum_genweights"].get(dataset, 0.0))
    stem = Path(filename.split("?")[0]).stem
    target = Path(folder) / dataset / f"{stem}_{start}-{stop}.root"
    with atomic_path(target) as tmp:
        with uproot.recreate(tmp) as out:
            branches = _group_branches(arrays)
            out.mktree(
                "Events",
                {name: (value.dtype if isinstance(value, np.ndarray) else value.type) for name, value in branches.items()},
                counter_name=lambda counted: f"n{counted}",
                field_name=lambda outer, inner: inner if outer == "" else f"{outer}_{inner}",
            )
            if len(arrays):
                out["Events"].extend(branches)
            runs = {
                "genEventCount": np.array([n_initial], dtype=np.int64),
                "genEventSumw": np.array([genweight_sum], dtype=np.float64),
            }
            # mktree + extend: a TTree like NanoAOD's Runs (assigning a dict would write an RNTuple)
            out.mktree("Runs", {name: values.dtype for name, values in runs.items()}).extend(runs)
    log.debug("skimmed %d/%d events of %s into %s (input Runs tree: %s)", len(arrays), n_initial, filename, target, runs_present)
    output.setdefault("skimmed_files", {})[dataset] = [str(target)]
    output.setdefault("nskimmed_events", {})[dataset] = [int(len(arrays))]
    return str(target)
