"""The dataset-definition JSON that ``build-datasets`` reads.

Format::

    {"<key>": {"sample": "<sample>", "json_output": "datasets/<file>.json",
               "files": [{"das_names": ["/A/B/NANOAODSIM", ...],
                          "metadata": {"year": "2018", "isMC": true, "xsec": 88.3,
                                       "part": "...", "era": "A" (data), ...}}]}}

Each ``files`` entry becomes one dataset named ``{key}_{part}_{year}`` (``{key}_{year}``
without ``part``); data (``isMC`` false) appends ``_Era{era}``. The names are stable:
they depend only on the definition.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DefinitionError


@dataclass(frozen=True)
class DatasetRequest:
    """One dataset to build: its name, DAS names, metadata and output JSON."""

    name: str
    key: str
    sample: str
    das_names: tuple[str, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    json_output: str = ""

    @property
    def year(self) -> str:
        return str(self.metadata["year"])


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise DefinitionError(f"{where}: isMC = {value!r}; accepted: true/false (or \"True\"/\"False\")")


def dataset_name(key: str, metadata: Mapping[str, Any], is_mc: bool) -> str:
    """``{key}_{part}_{year}`` (no part: ``{key}_{year}``), data: + ``_Era{era}``."""
    parts = [key]
    if metadata.get("part") not in (None, ""):
        parts.append(str(metadata["part"]))
    parts.append(str(metadata["year"]))
    if not is_mc:
        parts.append(f"Era{metadata['era']}")
    return "_".join(parts)


def parse_definition(data: Any, source: str) -> list[DatasetRequest]:
    """Validate a decoded definition and return one request per ``files`` entry."""
    if not isinstance(data, Mapping) or not data:
        raise DefinitionError(f"{source}: the top level must be a non-empty object {{key: {{sample, json_output, files}}}}")
    requests: list[DatasetRequest] = []
    seen: dict[str, str] = {}
    for key, entry in data.items():
        where = f"{source}: key {key!r}"
        if not isinstance(entry, Mapping):
            raise DefinitionError(f"{where}: expected an object with 'sample', 'json_output' and 'files'")
        for required in ("sample", "json_output", "files"):
            if required not in entry:
                raise DefinitionError(f"{where}: missing {required!r} (required: sample, json_output, files)")
        if not isinstance(entry["sample"], str) or not entry["sample"]:
            raise DefinitionError(f"{where}: sample = {entry['sample']!r} must be a non-empty string")
        if not isinstance(entry["json_output"], str) or not entry["json_output"].endswith(".json"):
            raise DefinitionError(f"{where}: json_output = {entry['json_output']!r} must be a path ending in .json")
        files = entry["files"]
        if not isinstance(files, list) or not files:
            raise DefinitionError(f"{where}: 'files' must be a non-empty list of {{das_names, metadata}}")
        for i, item in enumerate(files):
            at = f"{where}, files[{i}]"
            if not isinstance(item, Mapping):
                raise DefinitionError(f"{at}: expected an object with 'das_names' and 'metadata'")
            das = item.get("das_names")
            if not isinstance(das, list) or not das or not all(isinstance(d, str) and d.strip() for d in das):
                raise DefinitionError(f"{at}: 'das_names' must be a non-empty list of DAS names like /A/B/NANOAODSIM")
            meta = item.get("metadata")
            if not isinstance(meta, Mapping):
                raise DefinitionError(f"{at}: 'metadata' must be an object with at least year and isMC")
            for required in ("year", "isMC"):
                if required not in meta:
                    raise DefinitionError(f"{at}: metadata lacks {required!r} (required: year, isMC; xsec for MC; era for data)")
            is_mc = _bool(meta["isMC"], at)
            if is_mc and "xsec" not in meta:
                raise DefinitionError(f"{at}: MC metadata needs 'xsec' (cross-section in pb)")
            if not is_mc and meta.get("era") in (None, ""):
                raise DefinitionError(f"{at}: data metadata (isMC false) needs 'era'")
            name = dataset_name(str(key), meta, is_mc)
            if name in seen:
                raise DefinitionError(f"{at}: dataset name {name!r} is produced twice (also by {seen[name]}); make 'part' differ")
            seen[name] = at
            metadata = copy.deepcopy(dict(meta))
            metadata["isMC"] = is_mc
            metadata["year"] = str(meta["year"])
            metadata["sample"] = entry["sample"]
            requests.append(
                DatasetRequest(
                    name=name,
                    key=str(key),
                    sample=entry["sample"],
                    das_names=tuple(d.strip() for d in das),
                    metadata=metadata,
                    json_output=entry["json_output"],
                )
            )
    return requests


def load_definition(path: str | Path) -> list[DatasetRequest]:
    """Read and validate a dataset-definition JSON file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(f"dataset definition {path} does not exist") from None
    except OSError as exc:
        raise DefinitionError(f"dataset definition {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            f"dataset definition {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    return parse_definition(data, str(path))


def select_keys(requests: list[DatasetRequest], keys: tuple[str, ...], source: str) -> list[DatasetRequest]:
    """Keep only the requests of the named keys; an unknown key is an error."""
    if not keys:
        return requests
    available = list(dict.fromkeys(r.key for r in requests))
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise DefinitionError(f"--keys {', '.join(unknown)}: not in {source}; available keys: {', '.join(available)}")
    return [r for r in requests if r.key in keys]
