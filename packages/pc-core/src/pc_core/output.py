"""The ``.coffea`` output: save, load, accumulate and normalise, without coffea.

A ``.coffea`` file is an lz4-frame-compressed cloudpickle of a plain dict, byte-for-byte what
``coffea.util.save`` writes, so ``coffea.util.load`` reads our files and we read theirs. The
keys and their shapes are described in docs/output-format.md.

Everything here is pure: ``accumulate`` and ``normalise`` return new outputs and never
mutate the ones they are given.
"""
from __future__ import annotations

import copy
import logging
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cloudpickle
import lz4.frame
import numpy as np

from .atomic import atomic_path
from .errors import OutputError
from .ledger import LEDGER_KEY, merge_ledgers

log = logging.getLogger(__name__)

Output = dict[str, Any]

REQUIRED_KEYS: tuple[str, ...] = (
    "sum_genweights",
    "sumw",
    "sumw2",
    "cutflow",
    "variables",
    "columns",
    "datasets_metadata",
    "processing_metadata",
)

# processing_metadata entries that describe the run rather than count something: when
# accumulating, the same key in two outputs must carry the same value (they are united).
CONSTANT_METADATA_KEYS: frozenset[str] = frozenset(
    {"lumi_pb", "weights_applied", "normalised", "normalisation_factors"}
)
# datasets_metadata["by_dataset"] keys that describe the slice of a dataset an output
# processed (a condor job's files, a --limit-files run) rather than the whole dataset. When two
# outputs hold the same dataset they processed different slices, so ``nevents`` is summed,
# ``nevents_estimated`` or-ed and ``file_nevents`` (per-file counts of one slice) dropped.
SLICE_METADATA_KEYS: frozenset[str] = frozenset({"nevents", "nevents_estimated", "file_nevents"})


# --------------------------------------------------------------------------- save / load


def save_output(output: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write ``output`` as a ``.coffea`` file atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp, lz4.frame.open(tmp, "wb") as stream:
        cloudpickle.dump(output, stream)


def load_output(path: str | os.PathLike, keys: Iterable[str] | None = None) -> Output:
    """Read a ``.coffea`` file; with ``keys`` keep only those top-level keys (saves memory)."""
    path = str(path)
    if not os.path.exists(path):
        raise OutputError(f"Output file {path} does not exist")
    if os.path.isdir(path):
        raise OutputError(f"Output file {path} is a directory, not a .coffea file")
    try:
        with lz4.frame.open(path, "rb") as stream:
            output = cloudpickle.load(stream)
    except ModuleNotFoundError as exc:
        raise OutputError(
            f"Output file {path} holds objects of module {exc.name!r}, which is not installed here"
        ) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError, AttributeError, TypeError) as exc:
        raise OutputError(
            f"Output file {path} is corrupt or not a .coffea output (lz4-compressed cloudpickle): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(output, dict):
        raise OutputError(f"Output file {path} holds a {type(output).__name__}, expected a dict of outputs")
    if keys is not None:
        keys = list(keys)
        check_output_keys(output, keys, path)
        output = {key: output[key] for key in keys}
    return output


def check_output_keys(output: Mapping[str, Any], required: Iterable[str], source: str) -> None:
    """Raise OutputError naming ``source`` and every required key the output lacks."""
    missing = [key for key in required if key not in output]
    if missing:
        raise OutputError(
            f"Output {source} lacks the keys {missing}; it has {sorted(output)} "
            "(see docs/output-format.md for the expected keys)"
        )


# --------------------------------------------------------------------------- accumulate


def _is_hist(value: Any) -> bool:
    # duck-typed so that boost_histogram and hist objects both qualify without importing
    return hasattr(value, "axes") and hasattr(value, "view") and hasattr(value, "__iadd__")


def _describe(path: tuple[str, ...]) -> str:
    return "".join(f"[{key!r}]" for key in path) or "<top level>"


def _merge_constant(mine: Any, other: Any, path: tuple[str, ...]) -> Any:
    """Union of two dicts whose shared keys must agree (run descriptions, not counts)."""
    if isinstance(mine, Mapping) and isinstance(other, Mapping):
        result = dict(mine)
        for key, value in other.items():
            if key in result:
                result[key] = _merge_constant(result[key], value, (*path, key))
            else:
                result[key] = copy.deepcopy(value)
        return result
    if _equal(mine, other):
        return mine
    raise OutputError(f"Cannot accumulate outputs: {_describe(path)} differs between outputs ({mine!r} vs {other!r})")


def _equal(a: Any, b: Any) -> bool:
    try:
        result = a == b
        if isinstance(result, np.ndarray):
            return bool(result.all()) and np.shape(a) == np.shape(b)
        return bool(result)
    except Exception:  # noqa: BLE001 - incomparable objects are simply different
        return False


def _merge_by_dataset(mine: dict, other: Mapping, path: tuple[str, ...]) -> dict:
    """datasets_metadata["by_dataset"]: the same dataset must carry the same metadata,
    except for the SLICE_METADATA_KEYS (see there)."""
    for dataset, meta in other.items():
        if dataset not in mine:
            mine[dataset] = copy.deepcopy(meta)
            continue
        current = mine[dataset]
        merged = {}
        for key in list(current) + [k for k in meta if k not in current]:
            if key in SLICE_METADATA_KEYS:
                continue
            if key in current and key in meta and _equal(current[key], meta[key]):
                merged[key] = current[key]
            else:
                raise OutputError(
                    f"Cannot accumulate outputs: metadata of dataset {dataset!r} differs in key {key!r} "
                    f"({current.get(key, '<missing>')!r} vs {meta.get(key, '<missing>')!r})"
                )
        if current.get("nevents") is not None and meta.get("nevents") is not None:
            merged["nevents"] = int(float(current["nevents"])) + int(float(meta["nevents"]))
        if current.get("nevents_estimated") or meta.get("nevents_estimated"):
            merged["nevents_estimated"] = True
        mine[dataset] = merged
    return mine


def _merge_by_period(mine: dict, other: Mapping) -> dict:
    """datasets_metadata["by_datataking_period"]: union of the dataset lists."""
    for year, samples in other.items():
        mine_samples = mine.setdefault(year, {})
        for sample, datasets in samples.items():
            names = list(mine_samples.get(sample, []))
            names += [d for d in datasets if d not in names]
            mine_samples[sample] = names
    return mine


def _add_into(mine: Any, other: Any, path: tuple[str, ...]) -> Any:
    """Combine ``other`` into ``mine`` (which we own); returns the combined value.

    ``other`` is never modified and nothing of it is aliased into the result.
    """
    top = path[0] if path else None
    if isinstance(mine, Mapping) and isinstance(other, Mapping):
        if path == ("datasets_metadata", "by_dataset"):
            return _merge_by_dataset(mine, other, path)
        if path == ("datasets_metadata", "by_datataking_period"):
            return _merge_by_period(mine, other)
        for key, value in other.items():
            if key not in mine:
                mine[key] = copy.deepcopy(value)
            elif top == "processing_metadata" and len(path) == 1 and key == LEDGER_KEY:
                continue  # united once at the end, by accumulate(), with the overlap check
            elif top == "processing_metadata" and len(path) == 1 and key in CONSTANT_METADATA_KEYS:
                mine[key] = _merge_constant(mine[key], value, (*path, key))
            else:
                mine[key] = _add_into(mine[key], value, (*path, key))
        return mine
    if isinstance(mine, bool) or isinstance(other, bool) or isinstance(mine, str) or isinstance(other, str):
        if _equal(mine, other) and type(mine) is type(other):
            return mine
        raise OutputError(
            f"Cannot accumulate outputs: {_describe(path)} differs between outputs ({mine!r} vs {other!r})"
        )
    if mine is None and other is None:
        return None
    if isinstance(mine, np.ndarray) or isinstance(other, np.ndarray):
        if not (isinstance(mine, np.ndarray) and isinstance(other, np.ndarray)):
            raise OutputError(
                f"Cannot accumulate outputs: {_describe(path)} is an array in one output and "
                f"a {type(other if isinstance(mine, np.ndarray) else mine).__name__} in another"
            )
        if top == "columns":
            return np.concatenate([mine, other])
        if mine.shape != other.shape:
            raise OutputError(
                f"Cannot accumulate outputs: arrays at {_describe(path)} have shapes {mine.shape} and {other.shape}"
            )
        return mine + other
    if isinstance(mine, (int, float, np.number)) and isinstance(other, (int, float, np.number)):
        return mine + other
    if isinstance(mine, list) and isinstance(other, list):
        mine.extend(copy.deepcopy(other))
        return mine
    if isinstance(mine, tuple) and isinstance(other, tuple):
        return mine + copy.deepcopy(other)
    if isinstance(mine, set) and isinstance(other, set):
        mine |= other
        return mine
    if _is_hist(mine) and _is_hist(other):
        try:
            mine += other
        except (ValueError, TypeError) as exc:
            raise OutputError(f"Cannot accumulate the histograms at {_describe(path)}: {exc}") from None
        return mine
    if type(mine) is type(other) and hasattr(mine, "__add__"):
        try:
            return mine + other
        except Exception as exc:  # noqa: BLE001 - report which entry failed
            raise OutputError(f"Cannot accumulate {_describe(path)}: {exc}") from None
    raise OutputError(
        f"Cannot accumulate outputs: {_describe(path)} is a {type(mine).__name__} in one output "
        f"and a {type(other).__name__} in another"
    )


def is_normalised(output: Mapping[str, Any]) -> bool:
    return bool(output.get("processing_metadata", {}).get("normalised", False))


def accumulate(outputs: Iterable[Mapping[str, Any]], names: Sequence[str] | None = None) -> Output:
    """Sum outputs into a new one (inputs untouched); consumes ``outputs`` one at a time.

    The processing ledgers (``processing_metadata["ledger"]``) are united, and two outputs
    holding the same entries of the same file are refused (``pc_core.ledger.LedgerOverlapError``
    naming them: ``names[i]``, else "output i"). If any output has no ledger (written before
    ledgers existed), the sum has none either: it could not say which inputs made it.

    Numbers and histograms add, ``columns`` arrays concatenate, dicts recurse, lists
    concatenate, sets unite. ``datasets_metadata`` is united (a dataset's metadata must agree);
    in ``processing_metadata`` counts add and lists concatenate, while the run descriptions
    in CONSTANT_METADATA_KEYS must agree. Normalised and unnormalised outputs never mix.
    """
    result: Output | None = None
    normalised: bool | None = None
    ledgers: list[tuple[str, Any]] = []
    for index, output in enumerate(outputs):
        name = names[index] if names is not None and index < len(names) else f"output {index}"
        ledgers.append((name, (output.get("processing_metadata") or {}).get(LEDGER_KEY)
                        if isinstance(output, Mapping) else None))
        if not isinstance(output, Mapping):
            raise OutputError(f"Cannot accumulate outputs: item {index} is a {type(output).__name__}, not a dict")
        this_normalised = is_normalised(output)
        if normalised is not None and this_normalised != normalised:
            raise OutputError(
                "Cannot accumulate normalised with unnormalised outputs (item "
                f"{index} has processing_metadata['normalised'] = {this_normalised}); accumulate first, then normalise"
            )
        normalised = this_normalised
        if result is None:
            result = copy.deepcopy(dict(output))
        else:
            result = _add_into(result, output, ())
    if result is None:
        raise OutputError("Cannot accumulate: no outputs given")
    if len(ledgers) > 1:
        processing = result.setdefault("processing_metadata", {})
        if all(ledger is not None for _, ledger in ledgers):
            processing[LEDGER_KEY] = merge_ledgers(ledgers)
        else:
            processing.pop(LEDGER_KEY, None)
    return result


# --------------------------------------------------------------------------- normalise


def normalisation_factors(output: Mapping[str, Any], lumi_pb: Mapping[str, float] | None = None) -> dict[str, float]:
    """``{dataset: factor}`` for every MC dataset: ``xsec * lumi / sum_genweights``.

    A factor the configuration already applied per event (weight ``XS`` and/or ``lumi`` in
    ``processing_metadata["weights_applied"][dataset]``) is left out.
    """
    check_output_keys(output, ("datasets_metadata", "processing_metadata"), "to normalise")
    processing = output["processing_metadata"]
    if lumi_pb is None:
        lumi_pb = processing.get("lumi_pb")
    by_dataset = output["datasets_metadata"].get("by_dataset", {})
    weights_applied = processing.get("weights_applied", {}) or {}
    sum_genweights = output.get("sum_genweights", {}) or {}
    factors: dict[str, float] = {}
    for dataset, meta in by_dataset.items():
        if not _metadata_is_mc(meta):
            continue
        applied = set(weights_applied.get(dataset, []) or [])
        factor = 1.0
        if "XS" not in applied:
            if meta.get("xsec") is None:
                raise OutputError(f"Cannot normalise MC dataset {dataset!r}: its metadata has no 'xsec'")
            factor *= float(meta["xsec"])
        if "lumi" not in applied:
            year = str(meta.get("year"))
            if not lumi_pb or year not in {str(y) for y in lumi_pb}:
                raise OutputError(
                    f"Cannot normalise MC dataset {dataset!r}: no luminosity for year {year!r} "
                    f"(processing_metadata['lumi_pb'] has {sorted(map(str, lumi_pb or {}))})"
                )
            factor *= float({str(y): v for y, v in lumi_pb.items()}[year])
        if dataset not in sum_genweights:
            raise OutputError(
                f"Cannot normalise MC dataset {dataset!r}: sum_genweights has no entry for it "
                f"(it has {sorted(sum_genweights)})"
            )
        sumgenw = float(sum_genweights[dataset])
        if sumgenw == 0:
            raise OutputError(f"Cannot normalise MC dataset {dataset!r}: sum_genweights is 0")
        factors[dataset] = factor / sumgenw
    return factors


def _metadata_is_mc(meta: Mapping[str, Any]) -> bool:
    value = meta.get("isMC", False)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def normalise(output: Mapping[str, Any], lumi_pb: Mapping[str, float] | None = None) -> Output:
    """A new output with every MC histogram and ``sumw`` scaled to ``xsec * lumi``.

    Histograms ``variables[h][sample][dataset]`` and ``sumw[cat][dataset][sample]`` are
    multiplied by ``xsec * lumi[year] / sum_genweights[dataset]``, ``sumw2`` by its square;
    data and the unweighted ``cutflow`` are untouched. ``lumi_pb`` overrides
    ``processing_metadata["lumi_pb"]``.
    """
    if is_normalised(output):
        raise OutputError("The output is already normalised (processing_metadata['normalised'] is True)")
    factors = normalisation_factors(output, lumi_pb)
    by_dataset = output["datasets_metadata"].get("by_dataset", {})
    result = copy.deepcopy(dict(output))

    for hist_name, by_sample in result.get("variables", {}).items():
        for sample, by_ds in by_sample.items():
            for dataset in list(by_ds):
                if dataset not in by_dataset:
                    raise OutputError(
                        f"Cannot normalise variables[{hist_name!r}][{sample!r}][{dataset!r}]: "
                        f"dataset {dataset!r} is not in datasets_metadata['by_dataset']"
                    )
                if dataset in factors:
                    by_ds[dataset] = by_ds[dataset] * factors[dataset]
    for key, power in (("sumw", 1), ("sumw2", 2)):
        for category, by_ds in result.get(key, {}).items():
            for dataset, by_sample in by_ds.items():
                if dataset not in by_dataset:
                    raise OutputError(
                        f"Cannot normalise {key}[{category!r}][{dataset!r}]: dataset {dataset!r} "
                        "is not in datasets_metadata['by_dataset']"
                    )
                if dataset in factors:
                    for sample in by_sample:
                        by_sample[sample] = by_sample[sample] * factors[dataset] ** power
    processing = dict(result.get("processing_metadata", {}))
    processing["normalised"] = True
    processing["normalisation_factors"] = dict(factors)
    if lumi_pb is not None:
        processing["lumi_pb"] = dict(lumi_pb)
    result["processing_metadata"] = processing
    return result


__all__: Sequence[str] = (
    "CONSTANT_METADATA_KEYS",
    "REQUIRED_KEYS",
    "SLICE_METADATA_KEYS",
    "accumulate",
    "check_output_keys",
    "is_normalised",
    "load_output",
    "normalisation_factors",
    "normalise",
    "save_output",
)
