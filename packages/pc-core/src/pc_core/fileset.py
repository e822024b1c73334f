"""Filesets: the dataset JSONs that say which files to process and what they are.

A fileset is ``{dataset: {"files": [url, ...], "metadata": {...}}}``. The metadata must hold
``sample``, ``year`` and ``isMC``; MC datasets also need ``xsec``. PocketCoffea JSONs write
every metadata value as a string (``"isMC": "True"``, ``"nevents": "195510810"``), so loading
normalises the values the tools compute with: ``isMC`` to ``bool``, ``year`` to ``str``
(a string, or an integer read as its decimal string), ``xsec`` to a positive ``float``,
``nevents`` to ``int`` and ``file_nevents`` to a list of ``int`` (one per file, summing to
``nevents`` when both are given). Every other metadata key is kept untouched.

``check_unique_files`` refuses a fileset that lists one input file twice (under any
spelling, in one dataset or in two): that file would be processed, and counted, twice.

Every function returns a new fileset and never mutates its input.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from .atomic import atomic_write_text
from .errors import DatasetError
from .urls import normalise_url

log = logging.getLogger(__name__)

Fileset = dict[str, dict[str, Any]]

REQUIRED_METADATA = ("sample", "year", "isMC")
REQUIRED_MC_METADATA = ("xsec",)
TRUE_STRINGS = ("true",)
FALSE_STRINGS = ("false",)


# --------------------------------------------------------------------------- loading


def _reject_duplicate_keys(path: str):
    """object_pairs_hook that refuses a dataset key written twice in one JSON object."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise DatasetError(f"{path}: key {key!r} appears twice in the same JSON object")
            result[key] = value
        return result

    return hook


def _to_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_STRINGS + FALSE_STRINGS:
        return value.strip().lower() in TRUE_STRINGS
    raise DatasetError(f"{where}: isMC = {value!r} is not a boolean; accepted: true/false or the strings \"True\"/\"False\"")


def _to_float(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool):
        raise DatasetError(f"{where}: {key} = {value!r} is not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {key} = {value!r} is not a number") from None
    if not math.isfinite(result):
        raise DatasetError(f"{where}: {key} = {value!r} is not a finite number")
    return result


def _to_count(value: Any, key: str, where: str) -> int:
    number = _to_float(value, key, where)
    if number < 0 or number != int(number):
        raise DatasetError(f"{where}: {key} = {value!r} is not a non-negative integer")
    return int(number)


YEAR_ACCEPTED = 'a non-empty string such as "2018" or "2022_postEE" (an integer such as 2018 is read as "2018")'


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _to_year(value: Any, where: str) -> str:
    """``year`` as the string every tool compares with: a non-empty string, or an integer."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):
        shown = repr(value)
    kind = "" if value is None else f" ({_json_type(value)})"
    raise DatasetError(f"{where}: year = {shown}{kind} is not accepted; year must be {YEAR_ACCEPTED}")


def normalise_dataset(dataset: str, entry: Any, source: str = "<fileset>") -> dict[str, Any]:
    """Validate one fileset entry and return a normalised copy (see the module docstring)."""
    where = f"{source}: dataset {dataset!r}"
    if not isinstance(entry, Mapping):
        raise DatasetError(f"{where}: expected an object with 'files' and 'metadata', got {type(entry).__name__}")
    files = entry.get("files")
    if not isinstance(files, list):
        found = "missing" if "files" not in entry else f"a {type(files).__name__}"
        raise DatasetError(f"{where}: 'files' must be a list of file URLs/paths, but it is {found}")
    for i, url in enumerate(files):
        if not isinstance(url, str) or not url:
            raise DatasetError(f"{where}: files[{i}] = {url!r} is not a file URL/path string")
    metadata = entry.get("metadata")
    if not isinstance(metadata, Mapping):
        found = "missing" if "metadata" not in entry else f"a {type(metadata).__name__}"
        raise DatasetError(
            f"{where}: 'metadata' must be an object with keys {list(REQUIRED_METADATA)}, but it is {found}"
        )
    for key in REQUIRED_METADATA:
        if key not in metadata:
            raise DatasetError(f"{where}: metadata lacks the required key {key!r} (required: {list(REQUIRED_METADATA)})")
    meta = copy.deepcopy(dict(metadata))
    meta["isMC"] = _to_bool(meta["isMC"], where)
    meta["year"] = _to_year(meta["year"], where)
    if not isinstance(meta["sample"], str) or not meta["sample"]:
        raise DatasetError(f"{where}: sample = {meta['sample']!r} is not a non-empty string")
    if meta["isMC"]:
        for key in REQUIRED_MC_METADATA:
            if key not in meta:
                raise DatasetError(
                    f"{where}: metadata lacks the key {key!r}, required for MC datasets (isMC true); "
                    "give the cross-section in pb"
                )
    if "xsec" in meta:
        meta["xsec"] = _to_float(meta["xsec"], "xsec", where)
        if meta["xsec"] <= 0:
            raise DatasetError(
                f"{where}: xsec = {metadata['xsec']!r} is not a positive number; give the cross-section in pb (> 0)"
            )
    if meta.get("nevents") is not None:
        meta["nevents"] = _to_count(meta["nevents"], "nevents", where)
    if meta.get("file_nevents") is not None:
        per_file = meta["file_nevents"]
        if not isinstance(per_file, list) or len(per_file) != len(files):
            raise DatasetError(
                f"{where}: file_nevents must be a list with one count per file ({len(files)} files), got {per_file!r}"
            )
        meta["file_nevents"] = [_to_count(n, f"file_nevents[{i}]", where) for i, n in enumerate(per_file)]
        if meta.get("nevents") is not None and meta["nevents"] != sum(meta["file_nevents"]):
            raise DatasetError(
                f"{where}: nevents = {meta['nevents']} but the file_nevents sum to {sum(meta['file_nevents'])}; "
                "nevents must equal the sum of the per-file counts (or leave one of them out)"
            )
    result = {key: copy.deepcopy(value) for key, value in entry.items() if key not in ("files", "metadata")}
    result["files"] = list(files)
    result["metadata"] = meta
    return result


def load_fileset_json(path: str | os.PathLike) -> Fileset:
    """Read, validate and normalise one fileset JSON."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise DatasetError(f"Fileset JSON {path} does not exist") from None
    except IsADirectoryError:
        raise DatasetError(f"Fileset JSON {path} is a directory, not a JSON file") from None
    except OSError as exc:
        raise DatasetError(f"Fileset JSON {path} cannot be read: {exc.strerror or exc}") from None
    try:
        raw = json.loads(text, object_pairs_hook=_reject_duplicate_keys(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"Fileset JSON {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(raw, dict):
        raise DatasetError(
            f"Fileset JSON {path}: the top level must be an object {{dataset: {{files, metadata}}}}, "
            f"got {type(raw).__name__}"
        )
    return {dataset: normalise_dataset(dataset, entry, path) for dataset, entry in raw.items()}


def load_fileset_jsons(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> Fileset:
    """Read several fileset JSONs into one fileset; a dataset defined in two files is an error."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise DatasetError("No fileset JSON given: pass at least one dataset JSON file")
    merged: Fileset = {}
    origin: dict[str, str] = {}
    for path in paths:
        for dataset, entry in load_fileset_json(path).items():
            if dataset in merged:
                raise DatasetError(
                    f"Dataset {dataset!r} is defined in both {origin[dataset]} and {path}; "
                    "dataset names must be unique across the fileset JSONs"
                )
            merged[dataset] = entry
            origin[dataset] = path
    return merged


def check_unique_files(fileset: Mapping[str, Any]) -> None:
    """Raise DatasetError when one input file appears twice in ``fileset``.

    Files are compared by ``pc_core.urls.normalise_url``: ``./a.root``, ``a.root``, its
    absolute path and a symlink to it are one file, and so are ``root://h:1094//store/x``
    and ``root://h//store/x``; the two places may be in one dataset or in two.
    """
    seen: dict[str, tuple[str, int, str]] = {}
    duplicates: list[tuple[str, tuple[str, int, str], tuple[str, int, str]]] = []
    for dataset, entry in fileset.items():
        for position, url in enumerate(entry.get("files") or ()):
            key = normalise_url(url)
            place = (dataset, position, str(url))
            if key in seen:
                duplicates.append((key, seen[key], place))
            else:
                seen[key] = place
    if not duplicates:
        return
    key, first, second = duplicates[0]
    message = (
        f"file {key} is listed twice: dataset {first[0]!r} file {first[1]} ({first[2]}) and "
        f"dataset {second[0]!r} file {second[1]} ({second[2]}); each input file may appear once in a fileset"
    )
    others = len({d[0] for d in duplicates[1:]} - {key})
    if others:
        message += f" ({others} more file{'s are' if others > 1 else ' is'} listed more than once)"
    raise DatasetError(message)


def save_fileset_json(fileset: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Write a fileset JSON atomically (temporary file in the same folder, then rename)."""
    atomic_write_text(path, json.dumps(fileset, indent=4, sort_keys=False) + "\n")


# --------------------------------------------------------------------------- filtering


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    values = [str(v).strip() for v in value]
    values = [v for v in values if v]
    return values


# the Configurator spells the year filter "year" (PocketCoffea); both spellings are accepted
FILTER_CONFIG_KEYS: Mapping[str, str] = MappingProxyType(
    {"samples": "samples", "samples_exclude": "samples_exclude", "year": "years", "years": "years", "datasets": "datasets"}
)


@dataclass(frozen=True)
class FilesetFilter:
    """Which datasets to keep. ``None`` means "do not filter on this"; lists keep any match.

    Used both by the Configurator (``datasets["filter"]``) and by ``run``'s
    ``--filter-years/--filter-samples/--filter-datasets``.
    """

    samples: tuple[str, ...] | None = None
    samples_exclude: tuple[str, ...] | None = None
    years: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            values = _as_list(getattr(self, field.name))
            object.__setattr__(self, field.name, None if values is None else tuple(values))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None, source: str = "datasets['filter']") -> FilesetFilter:
        """Build a filter from a config dict such as ``{"samples": [...], "year": ["2018"]}``."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise DatasetError(f"{source} must be a dict with keys {sorted(FILTER_CONFIG_KEYS)}, got {type(mapping).__name__}")
        kwargs: dict[str, Any] = {}
        for key, value in mapping.items():
            if key not in FILTER_CONFIG_KEYS:
                raise DatasetError(f"{source}: unknown filter key {key!r}; accepted: {sorted(FILTER_CONFIG_KEYS)}")
            if value is not None and not isinstance(value, (str, list, tuple, set)):
                raise DatasetError(f"{source}[{key!r}] must be a list of names, got {value!r}")
            kwargs[FILTER_CONFIG_KEYS[key]] = value
        return cls(**kwargs)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def apply(self, fileset: Mapping[str, Any], source: str = "the fileset") -> Fileset:
        """Return the filtered copy; raise DatasetError naming the filter that emptied it."""
        current = {name: entry for name, entry in fileset.items()}
        steps = (
            ("datasets", self.datasets, lambda name, meta: name, "datasets", True),
            ("samples", self.samples, lambda name, meta: meta["sample"], "samples", True),
            ("samples_exclude", self.samples_exclude, lambda name, meta: meta["sample"], "samples", False),
            ("years", self.years, lambda name, meta: str(meta["year"]), "years", True),
        )
        for filter_name, values, attribute, what, keep_matches in steps:
            if values is None:
                continue
            present = sorted({attribute(name, entry["metadata"]) for name, entry in current.items()})
            wanted = set(values)
            if keep_matches:
                unmatched = [v for v in values if v not in present]
                if unmatched and len(unmatched) < len(values):
                    log.warning("Filter %s: %s matched nothing in %s (present: %s)", filter_name, unmatched, source, present)
            current = {
                name: entry
                for name, entry in current.items()
                if (attribute(name, entry["metadata"]) in wanted) == keep_matches
            }
            if not current:
                if keep_matches:
                    detail = f"matched none of the {what} present {present}"
                else:
                    detail = f"excluded all of the {what} present {present}"
                raise DatasetError(
                    f"{source} is empty after filtering: filter {filter_name}={list(values)} {detail}"
                )
        return copy.deepcopy(current)


def filter_fileset(
    fileset: Mapping[str, Any],
    *,
    samples: str | Iterable[str] | None = None,
    samples_exclude: str | Iterable[str] | None = None,
    years: str | Iterable[str] | None = None,
    datasets: str | Iterable[str] | None = None,
    source: str = "The fileset",
) -> Fileset:
    """Keep the datasets matching every given filter (comma-separated strings accepted)."""
    return FilesetFilter(samples=samples, samples_exclude=samples_exclude, years=years, datasets=datasets).apply(
        fileset, source=source
    )


# --------------------------------------------------------------------------- limiting


def limit_files(fileset: Mapping[str, Any], n: int | None) -> Fileset:
    """Keep the first ``n`` files of every dataset, keeping ``nevents`` consistent.

    With ``file_nevents`` the new ``nevents`` is exact (sum over the kept files). Without it,
    ``nevents`` is scaled by the fraction of files kept and ``nevents_estimated: True`` is set,
    so completeness checks know the count is not exact.
    """
    if n is None:
        return copy.deepcopy(dict(fileset))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DatasetError(f"limit-files must be a positive integer, got {n!r}")
    result: Fileset = {}
    for dataset, entry in fileset.items():
        new_entry = copy.deepcopy(entry)
        files = list(entry["files"])
        if len(files) > n:
            meta = new_entry["metadata"]
            new_entry["files"] = files[:n]
            per_file = meta.get("file_nevents")
            if per_file is not None:
                meta["file_nevents"] = list(per_file[:n])
                meta["nevents"] = int(sum(meta["file_nevents"]))
            elif meta.get("nevents") is not None:
                meta["nevents"] = int(round(int(meta["nevents"]) * n / len(files)))
                meta["nevents_estimated"] = True
        result[dataset] = new_entry
    return result


# --------------------------------------------------------------------------- summaries


def datasets_by_year_and_sample(fileset: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``datasets_metadata`` block of the output format (see docs/output-format.md)."""
    by_period: dict[str, dict[str, list[str]]] = {}
    by_dataset: dict[str, Any] = {}
    for dataset, entry in fileset.items():
        meta = entry["metadata"]
        samples = by_period.setdefault(str(meta["year"]), {})
        names = samples.setdefault(meta["sample"], [])
        if dataset not in names:
            names.append(dataset)
        by_dataset[dataset] = copy.deepcopy(dict(meta))
    return {"by_datataking_period": by_period, "by_dataset": by_dataset}


def fileset_summary(fileset: Mapping[str, Any]) -> list[tuple[str, str, str, bool, int, int | None]]:
    """Rows (dataset, sample, year, isMC, nfiles, nevents) for tables and logs."""
    return [
        (
            dataset,
            entry["metadata"]["sample"],
            str(entry["metadata"]["year"]),
            bool(entry["metadata"]["isMC"]),
            len(entry["files"]),
            entry["metadata"].get("nevents"),
        )
        for dataset, entry in fileset.items()
    ]


__all__: Sequence[str] = (
    "Fileset",
    "FilesetFilter",
    "check_unique_files",
    "datasets_by_year_and_sample",
    "fileset_summary",
    "filter_fileset",
    "limit_files",
    "load_fileset_json",
    "load_fileset_jsons",
    "normalise_dataset",
    "save_fileset_json",
)
