"""The plotting style: packaged defaults merged with the user's YAML, validated up front.

Validation happens before any plot is drawn so that a typo in the style YAML costs seconds,
not a half-written plot folder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pc_core.errors import PocketCoffeaError
from pc_core.parameters import merge_parameters as deep_merge
from pc_core.yaml_reader import parse_yaml, read_yaml


class StyleError(PocketCoffeaError):
    """The plotting-style YAML is malformed or names something the output does not have."""


_DEFAULTS_FILE = "style_defaults.yaml"

# key -> expected python type(s) of the merged value
_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "labels": dict,
    "colors": dict,
    "palette": list,
    "groups": dict,
    "order": list,
    "only_samples": list,
    "exclude_samples": list,
    "rescale": dict,
    "signal": dict,
    "blinding": list,
    "data_label": str,
    "lumi_label": dict,
    "com_energy": dict,
    "year_combinations": dict,
    "cms": dict,
    "figure": dict,
    "variables": dict,
}
_FIGURE_KEYS = {
    "width": (int, float), "height": (int, float), "dpi": (int, float), "ratio_fraction": (int, float),
    "ratio_ylim": list, "ratio_label": str, "legend_ncol": int, "legend_fontsize": (int, float),
    "log_y_min": (int, float), "thumbnail_width": int, "colormap": str,
}
_CMS_KEYS = {"text": str, "loc": int}
_VARIABLE_KEYS = {"xlabel": str, "ylabel": str, "log_x": bool, "log_y": bool, "xlim": list}
_BLINDING_KEYS = {"categories", "histograms", "ranges"}


@dataclass(frozen=True)
class BlindingRule:
    """Data hidden in ``ranges`` (all bins when empty) of matching categories/histograms."""

    categories: tuple[str, ...] = ()
    histograms: tuple[str, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()

    def applies(self, category: str, histogram: str) -> bool:
        cat_ok = not self.categories or any(re.fullmatch(p, category) for p in self.categories)
        hist_ok = not self.histograms or any(re.fullmatch(p, histogram) for p in self.histograms)
        return cat_ok and hist_ok


@dataclass(frozen=True)
class PlotStyle:
    """The merged, validated style; plain data so it pickles cheaply to worker processes."""

    labels: dict[str, str] = field(default_factory=dict)
    colors: dict[str, str] = field(default_factory=dict)
    palette: tuple[str, ...] = ()
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    only_samples: tuple[str, ...] = ()
    exclude_samples: tuple[str, ...] = ()
    rescale: dict[str, float] = field(default_factory=dict)
    signal: dict[str, float] = field(default_factory=dict)
    blinding: tuple[BlindingRule, ...] = ()
    data_label: str = "Data"
    lumi_label: dict[str, dict[str, float]] = field(default_factory=dict)
    com_energy: dict[str, float] = field(default_factory=dict)
    year_combinations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cms: dict[str, Any] = field(default_factory=dict)
    figure: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def label(self, name: str) -> str:
        return self.labels.get(name, name)

    def blind_ranges(self, category: str, histogram: str) -> list[tuple[float, float]] | None:
        """The blinded x ranges, ``[]`` for "all bins", ``None`` when nothing is blinded."""
        ranges: list[tuple[float, float]] = []
        matched = False
        for rule in self.blinding:
            if rule.applies(category, histogram):
                if not rule.ranges:
                    return []
                matched = True
                ranges.extend(rule.ranges)
        return ranges if matched else None

    def com(self, year: str) -> float | None:
        for prefix, value in sorted(self.com_energy.items(), key=lambda kv: -len(str(kv[0]))):
            if str(year).startswith(str(prefix)):
                return float(value)
        return None

    def check_samples(self, known: set[str], where: str) -> None:
        """Every sample the style names must exist in the output (or be a group name)."""
        names = set(known) | set(self.groups)
        checks: list[tuple[str, list[str]]] = [
            ("groups", [s for members in self.groups.values() for s in members]),
            ("labels", list(self.labels)), ("colors", list(self.colors)), ("order", list(self.order)),
            ("only_samples", list(self.only_samples)), ("exclude_samples", list(self.exclude_samples)),
            ("rescale", list(self.rescale)), ("signal", list(self.signal)),
        ]
        for key, values in checks:
            pool = set(known) if key == "groups" else names
            unknown = sorted({v for v in values if v not in pool})
            if unknown:
                raise StyleError(
                    f"{where}: {key} names unknown sample(s) {', '.join(map(repr, unknown))}; "
                    f"samples in the output: {', '.join(sorted(known)) or '(none)'}"
                    + (f"; groups: {', '.join(sorted(self.groups))}" if self.groups and key != "groups" else "")
                )
        grouped = [s for members in self.groups.values() for s in members]
        duplicated = sorted({s for s in grouped if grouped.count(s) > 1})
        if duplicated:
            raise StyleError(f"{where}: groups: sample(s) {', '.join(map(repr, duplicated))} in more than one group")


def default_style_dict() -> dict:
    text = resources.files("pc_plots").joinpath("data", _DEFAULTS_FILE).read_text()
    return parse_yaml(text, _DEFAULTS_FILE, StyleError)


def read_style_file(path: str | Path) -> dict:
    """Read a style YAML; a missing/unreadable/malformed file or a non-mapping is a StyleError."""
    data = read_yaml(path, "Plotting style", StyleError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StyleError(f"Plotting style {path}: the top level must be a mapping of style keys, got {type(data).__name__}")
    return data


def _check_keys(mapping: dict, allowed: dict, where: str) -> None:
    for key, value in mapping.items():
        if key not in allowed:
            raise StyleError(f"{where}: unknown key {key!r}; accepted: {', '.join(sorted(allowed))}")
        expected = allowed[key]
        if isinstance(value, bool) and expected in ((int, float), int):
            raise StyleError(f"{where}.{key}: expected a number, got {value!r}")
        if not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise StyleError(f"{where}.{key}: expected {names}, got {type(value).__name__} {value!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StyleError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StyleError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _regexes(value: Any, where: str) -> tuple[str, ...]:
    patterns = _str_list(value, where)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise StyleError(f"{where}: invalid regular expression {pattern!r}: {exc}") from None
    return patterns


def _blinding(rules: list, where: str) -> tuple[BlindingRule, ...]:
    parsed = []
    for i, rule in enumerate(rules):
        here = f"{where}.blinding[{i}]"
        if not isinstance(rule, dict):
            raise StyleError(f"{here}: expected a mapping with keys {', '.join(sorted(_BLINDING_KEYS))}, got {rule!r}")
        unknown = set(rule) - _BLINDING_KEYS
        if unknown:
            raise StyleError(f"{here}: unknown key(s) {', '.join(sorted(unknown))}; accepted: {', '.join(sorted(_BLINDING_KEYS))}")
        ranges = []
        for j, rng in enumerate(rule.get("ranges") or []):
            if not isinstance(rng, list) or len(rng) != 2:
                raise StyleError(f"{here}.ranges[{j}]: expected [low, high], got {rng!r}")
            lo, hi = (_number(v, f"{here}.ranges[{j}]") for v in rng)
            if hi <= lo:
                raise StyleError(f"{here}.ranges[{j}]: low must be < high, got {rng!r}")
            ranges.append((lo, hi))
        parsed.append(BlindingRule(
            categories=_regexes(rule.get("categories", []), f"{here}.categories"),
            histograms=_regexes(rule.get("histograms", []), f"{here}.histograms"),
            ranges=tuple(ranges),
        ))
    return tuple(parsed)


def build_style(merged: dict, sources: tuple[str, ...]) -> PlotStyle:
    """Validate the merged style mapping and turn it into a PlotStyle."""
    where = " + ".join(sources) if sources else "plotting style"
    _check_keys(merged, _SCHEMA, where)
    _check_keys(merged["figure"], _FIGURE_KEYS, f"{where}: figure")
    _check_keys(merged["cms"], _CMS_KEYS, f"{where}: cms")
    variables = {}
    for name, options in merged["variables"].items():
        if not isinstance(options, dict):
            raise StyleError(f"{where}: variables.{name}: expected a mapping, got {options!r}")
        _check_keys(options, _VARIABLE_KEYS, f"{where}: variables.{name}")
        variables[str(name)] = dict(options)
    groups = {str(g): _str_list(members, f"{where}: groups.{g}") for g, members in merged["groups"].items()}
    lumi_label = {}
    for year, entry in merged["lumi_label"].items():
        if not isinstance(entry, dict):
            raise StyleError(f"{where}: lumi_label.{year}: expected {{lumi_fb: number, com: number}}, got {entry!r}")
        _check_keys(entry, {"lumi_fb": (int, float), "com": (int, float)}, f"{where}: lumi_label.{year}")
        lumi_label[str(year)] = {k: float(v) for k, v in entry.items()}
    ylim = merged["figure"].get("ratio_ylim", [0.5, 1.5])
    if len(ylim) != 2:
        raise StyleError(f"{where}: figure.ratio_ylim: expected [low, high], got {ylim!r}")
    return PlotStyle(
        labels={str(k): str(v) for k, v in merged["labels"].items()},
        colors={str(k): str(v) for k, v in merged["colors"].items()},
        palette=_str_list(merged["palette"], f"{where}: palette"),
        groups=groups,
        order=_str_list(merged["order"], f"{where}: order"),
        only_samples=_str_list(merged["only_samples"], f"{where}: only_samples"),
        exclude_samples=_str_list(merged["exclude_samples"], f"{where}: exclude_samples"),
        rescale={str(k): _number(v, f"{where}: rescale.{k}") for k, v in merged["rescale"].items()},
        signal={str(k): _number(v, f"{where}: signal.{k}") for k, v in merged["signal"].items()},
        blinding=_blinding(merged["blinding"], where),
        data_label=merged["data_label"],
        lumi_label=lumi_label,
        com_energy={str(k): _number(v, f"{where}: com_energy.{k}") for k, v in merged["com_energy"].items()},
        year_combinations={
            str(k): _str_list(v, f"{where}: year_combinations.{k}") for k, v in merged["year_combinations"].items()
        },
        cms=dict(merged["cms"]),
        figure=dict(merged["figure"]),
        variables=variables,
        sources=sources,
    )


def load_style(user_files: list[str | Path] = (), extra_layers: list[tuple[str, dict]] = ()) -> PlotStyle:
    """Packaged defaults, then ``extra_layers`` (e.g. a run's saved plotting_style), then user files."""
    merged = default_style_dict()
    sources = ["packaged defaults"]
    for name, layer in extra_layers:
        if not isinstance(layer, dict):
            raise StyleError(f"{name}: the plotting style must be a mapping, got {type(layer).__name__}")
        merged = deep_merge(merged, layer)
        sources.append(name)
    for path in user_files:
        merged = deep_merge(merged, read_style_file(path))
        sources.append(str(path))
    # report the most specific source in messages: the user's files
    return build_style(merged, tuple(s for s in sources if s != "packaged defaults") or ("packaged defaults",))
