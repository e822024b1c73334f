"""Analysis parameters: packaged defaults merged with the user's, and the lookups weights need."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import yaml

from .errors import ConfigError


def default_parameters() -> dict[str, Any]:
    """The packaged defaults (luminosity per year), a fresh copy each call."""
    text = files("pc_core").joinpath("data/parameters_defaults.yaml").read_text()
    return yaml.safe_load(text)


def merge_parameters(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge, ``override`` wins; neither input is modified."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_parameters(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def lumi_pb(parameters: Mapping[str, Any], year: str) -> float:
    """Integrated luminosity of ``year`` in pb^-1 from ``parameters["lumi"]["picobarn"][year]["tot"]``."""
    try:
        table = parameters["lumi"]["picobarn"]
    except (KeyError, TypeError):
        raise ConfigError('parameters have no "lumi": {"picobarn": {year: {"tot": ...}}} table') from None
    entry = table.get(str(year))
    if entry is None:
        raise ConfigError(
            f"no luminosity for year {year!r} in parameters lumi.picobarn; known years: {', '.join(map(str, table))}"
        )
    return float(entry["tot"] if isinstance(entry, Mapping) else entry)
