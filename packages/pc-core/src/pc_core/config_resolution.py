"""Resolve the ``common``/``bysample`` x ``inclusive``/``bycategory`` specs of weights, variations
and columns into one plain configuration per sample, validating every entry on the way.

The user writes, e.g. for weights::

    {"common": {"inclusive": [...], "bycategory": {cat: [...]}},
     "bysample": {sample: {"inclusive": [...], "bycategory": {cat: [...]}}}}

Each entry is parsed into a ``SpecEntry`` that remembers where it was written, so every
error names the exact place (``weights["bysample"]["DY"]["bycategory"]["ee"][1]``).
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .columns import ColOut
from .cuts import Cut
from .errors import ConfigError
from .weights import WeightWrapper

SPEC_KEYS = ("common", "bysample")
SCOPE_KEYS = ("inclusive", "bycategory")


@dataclass(frozen=True)
class SpecEntry:
    """One item of a spec list, with the place it was written."""

    value: Any
    where: str
    sample: str | None  # None: common to every sample
    category: str | None  # None: inclusive (every category)


def _suggest(key: str, accepted: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), list(accepted), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(mapping: Mapping, accepted: Sequence[str], where: str) -> None:
    for key in mapping:
        if key not in accepted:
            raise ConfigError(
                f"{where}: unknown key {key!r}{_suggest(key, accepted)}; accepted keys: {', '.join(accepted)}"
            )


def _as_mapping(value: Any, where: str, shape: str) -> Mapping:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a dict {shape}, got {type(value).__name__} {value!r}")
    return value


def _as_list(value: Any, where: str, what: str) -> Sequence:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be a list of {what}, got {type(value).__name__} {value!r}")
    return value


def parse_spec(
    spec: Any,
    label: str,
    what: str,
    categories: Sequence[str],
    known_samples: Sequence[str],
) -> list[SpecEntry]:
    """Flatten a common/bysample spec into entries; check keys, samples and categories."""
    shape = '{"common": {"inclusive": [...], "bycategory": {category: [...]}}, "bysample": {sample: {...}}}'
    spec = _as_mapping(spec, label, shape)
    check_keys(spec, SPEC_KEYS, label)
    entries: list[SpecEntry] = []

    def scope(block: Any, where: str, sample: str | None) -> None:
        block = _as_mapping(block, where, '{"inclusive": [...], "bycategory": {category: [...]}}')
        check_keys(block, SCOPE_KEYS, where)
        inclusive_where = f'{where}["inclusive"]'
        for i, item in enumerate(_as_list(block.get("inclusive"), inclusive_where, what)):
            entries.append(SpecEntry(item, f"{inclusive_where}[{i}]", sample, None))
        bycat_where = f'{where}["bycategory"]'
        for category, items in _as_mapping(block.get("bycategory"), bycat_where, "{category: [...]}").items():
            cat_where = f"{bycat_where}[{category!r}]"
            if category not in categories:
                raise ConfigError(
                    f"{bycat_where}: category {category!r} does not exist{_suggest(category, categories)}; "
                    f"defined categories: {', '.join(categories)}"
                )
            for i, item in enumerate(_as_list(items, cat_where, what)):
                entries.append(SpecEntry(item, f"{cat_where}[{i}]", sample, category))

    scope(spec.get("common"), f'{label}["common"]', None)
    bysample_where = f'{label}["bysample"]'
    for sample, block in _as_mapping(spec.get("bysample"), bysample_where, "{sample: {...}}").items():
        if sample not in known_samples:
            raise ConfigError(
                f"{bysample_where}: sample {sample!r} does not exist in the fileset{_suggest(sample, known_samples)}; "
                f"samples in the dataset JSONs: {', '.join(sorted(known_samples))}"
            )
        scope(block, f"{bysample_where}[{sample!r}]", sample)
    return entries


def _scope_text(entry: SpecEntry) -> str:
    sample = "every sample" if entry.sample is None else f"sample {entry.sample!r}"
    category = "every category (inclusive)" if entry.category is None else f"category {entry.category!r}"
    return f"{sample}, {category}"


def register_weight_classes(
    classes: Any, builtin: Mapping[str, type[WeightWrapper]]
) -> dict[str, type[WeightWrapper]]:
    """Built-in weights plus the user's ``weights_classes`` (which may replace a built-in)."""
    registry = dict(builtin)
    custom: dict[str, type[WeightWrapper]] = {}
    for i, cls in enumerate(_as_list(classes, "weights_classes", "WeightWrapper subclasses")):
        add_weight_class(registry, custom, cls, f"weights_classes[{i}]")
    return registry


def add_weight_class(
    registry: dict[str, type[WeightWrapper]],
    custom: dict[str, type[WeightWrapper]] | None,
    cls: Any,
    where: str,
) -> str:
    if not (isinstance(cls, type) and issubclass(cls, WeightWrapper)):
        raise ConfigError(
            f"{where} is {cls!r}, not a weight class; pass a WeightWrapper subclass or one made "
            "with WeightLambda.wrap_func(name, function)"
        )
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: weight class {cls.__qualname__} has no 'name'; set name = \"...\" on the class")
    if custom is not None:
        previous = custom.get(name)
        if previous is not None and previous is not cls:
            raise ConfigError(
                f"{where}: two different weight classes are named {name!r} "
                f"({previous.__qualname__} and {cls.__qualname__}); weight names must be unique"
            )
        custom[name] = cls
    elif name in registry and registry[name] is not cls:
        raise ConfigError(
            f"{where}: weight class {cls.__qualname__} is named {name!r}, like the already known "
            f"{registry[name].__qualname__}; give it another name or list it in weights_classes"
        )
    registry[name] = cls
    return name


def weight_names(
    entries: list[SpecEntry], registry: dict[str, type[WeightWrapper]], label: str
) -> list[SpecEntry]:
    """Turn class entries into names (registering the class); reject unknown names."""
    resolved = []
    for entry in entries:
        value = entry.value
        if isinstance(value, type):
            name = add_weight_class(registry, None, value, entry.where)
        elif isinstance(value, str):
            name = value
        else:
            raise ConfigError(
                f"{entry.where} is {type(value).__name__} {value!r}; {label} lists hold weight names (str) "
                "or WeightWrapper classes"
            )
        resolved.append(SpecEntry(name, entry.where, entry.sample, entry.category))
    for entry in resolved:
        if entry.value not in registry:
            raise ConfigError(
                f"Unknown weight {entry.value!r} in {entry.where} ({_scope_text(entry)}){_suggest(entry.value, list(registry))}; "
                f"known weights: {', '.join(sorted(registry))}. Custom weights are declared with "
                "Configurator(weights_classes=[...])"
            )
    return resolved


def _applies_to(entry: SpecEntry, sample: str) -> bool:
    return entry.sample is None or entry.sample == sample


def _append_unique(target: list[str], name: str) -> None:
    if name not in target:
        target.append(name)


def resolve_weights(
    entries: list[SpecEntry],
    samples: Mapping[str, bool],
    categories: Sequence[str],
    registry: Mapping[str, type[WeightWrapper]],
) -> dict[str, dict[str, Any]]:
    """``{sample: {"inclusive": [...], "bycategory": {cat: [...]}, "is_split_bycat": bool}}``.

    ``samples`` maps each sample to its isMC flag; data samples keep only the weights whose
    class has ``isMC_only = False``.
    """
    config: dict[str, dict[str, Any]] = {}
    for sample, is_mc in samples.items():
        inclusive: dict[str, SpecEntry] = {}
        bycategory: dict[str, dict[str, SpecEntry]] = {cat: {} for cat in categories}
        for entry in entries:
            if not _applies_to(entry, sample):
                continue
            if entry.category is None:
                inclusive.setdefault(entry.value, entry)
            else:
                bycategory[entry.category].setdefault(entry.value, entry)
        for category, names in bycategory.items():
            for name, entry in names.items():
                if name in inclusive:
                    raise ConfigError(
                        f"Weight {name!r} for sample {sample!r} is applied both inclusively "
                        f"({inclusive[name].where}) and in category {category!r} ({entry.where}); "
                        "a weight is either inclusive or by category"
                    )

        def keep(name: str) -> bool:
            return is_mc or not registry[name].isMC_only

        config[sample] = {
            "inclusive": [name for name in inclusive if keep(name)],
            "bycategory": {cat: [name for name in names if keep(name)] for cat, names in bycategory.items()},
        }
        config[sample]["is_split_bycat"] = any(config[sample]["bycategory"].values())
    return config


def resolve_variations(
    entries: list[SpecEntry],
    samples: Mapping[str, bool],
    categories: Sequence[str],
    registry: Mapping[str, type[WeightWrapper]],
    weights_config: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, list[str]]]]:
    """``{sample: {"weights": {cat: [weight names with Up/Down]}}}``; data samples get none.

    An inclusive variation applies to every category in which the weight is applied; a
    variation of a weight that is not applied (for that sample, in that category) is an error.
    """
    for entry in entries:
        if not registry[entry.value].has_variations:
            raise ConfigError(
                f"{entry.where}: weight {entry.value!r} has no Up/Down variations "
                f"({registry[entry.value].__qualname__}.has_variations is False)"
            )
    config: dict[str, dict[str, dict[str, list[str]]]] = {}
    for sample, is_mc in samples.items():
        per_category: dict[str, list[str]] = {cat: [] for cat in categories}
        config[sample] = {"weights": per_category}
        if not is_mc:
            continue
        applied = weights_config[sample]
        inclusive = applied["inclusive"]

        def applied_in(name: str, category: str) -> bool:
            return name in inclusive or name in applied["bycategory"][category]

        for entry in entries:
            if not _applies_to(entry, sample):
                continue
            name = entry.value
            if entry.category is None:
                targets = [cat for cat in categories if applied_in(name, cat)]
                if not targets:
                    raise ConfigError(
                        f"Variation of weight {name!r} requested in {entry.where}, but weight {name!r} is not "
                        f"applied to sample {sample!r} in any category; weights applied to {sample!r}: "
                        f"inclusive {inclusive}, by category "
                        f"{ {c: n for c, n in applied['bycategory'].items() if n} }"
                    )
            else:
                if not applied_in(name, entry.category):
                    raise ConfigError(
                        f"Variation of weight {name!r} requested in {entry.where}, but weight {name!r} is not "
                        f"applied to sample {sample!r} in category {entry.category!r}; weights applied there: "
                        f"{inclusive + applied['bycategory'][entry.category]}"
                    )
                targets = [entry.category]
            for category in targets:
                _append_unique(per_category[category], name)
    return config


def check_columns(entries: list[SpecEntry]) -> None:
    for entry in entries:
        if not isinstance(entry.value, ColOut):
            raise ConfigError(
                f"{entry.where} is {type(entry.value).__name__} {entry.value!r}, not a ColOut; "
                'write ColOut("Collection", ["field", ...])'
            )


def resolve_columns(
    entries: list[SpecEntry], samples: Sequence[str], categories: Sequence[str]
) -> dict[str, dict[str, list[ColOut]]]:
    """``{sample: {category: [ColOut, ...]}}`` for every sample and category."""
    config: dict[str, dict[str, list[ColOut]]] = {}
    for sample in samples:
        per_category: dict[str, list[ColOut]] = {cat: [] for cat in categories}
        for entry in entries:
            if not _applies_to(entry, sample):
                continue
            targets = categories if entry.category is None else [entry.category]
            for category in targets:
                if entry.value not in per_category[category]:
                    per_category[category].append(entry.value)
        config[sample] = per_category
    return config


def check_cut_list(value: Any, where: str) -> tuple[Cut, ...]:
    """A tuple of Cut objects, or a ConfigError naming the list and the position of a non-Cut."""
    items = _as_list(value, where, "Cut objects")
    for i, item in enumerate(items):
        if not isinstance(item, Cut):
            raise ConfigError(
                f"{where}[{i}] is {type(item).__name__} {item!r}, not a Cut; "
                "write Cut(name=..., function=..., params={...})"
            )
    return tuple(items)
