"""What ``Configurator.save_config`` writes: a readable ``config.json`` summary, the pickle and
the parameters dump, each written atomically (temporary file in the same folder, then rename).
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import yaml

from .atomic import atomic_write_bytes
from .cuts import Cut

if TYPE_CHECKING:
    from .configurator import Configurator


def plain(value: Any) -> Any:
    """A JSON/YAML-safe copy: mappings, sequences and scalars kept, anything else as its repr."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            result = item()
            if isinstance(result, (bool, int, float, str)):
                return result
        except (TypeError, ValueError):
            pass
    return repr(value)


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def cut_summary(cut: Cut) -> dict[str, Any]:
    return {"name": cut.name, "params": plain(dict(cut.params)), "function": _qualified(cut.function)}


def configurator_summary(cfg: Configurator) -> dict[str, Any]:
    """The readable description of a loaded configurator, as written to ``config.json``."""
    datasets = {
        name: {"nfiles": len(entry["files"]), "metadata": plain(entry["metadata"])}
        for name, entry in cfg.fileset.items()
    }
    return {
        "workflow": _qualified(cfg.workflow),
        "workflow_options": plain(cfg.workflow_options),
        "parameters": {
            "keys": sorted(map(str, cfg.parameters)),
            "lumi_pb": cfg.lumi_pb_by_year(),
        },
        "datasets": {
            "jsons": [str(p) for p in cfg.datasets_jsons],
            "filter": plain(cfg.datasets_filter),
            "samples": list(cfg.samples),
            "years": list(cfg.years),
            "fileset": datasets,
        },
        "subsamples": {
            sample: {sub: [cut_summary(c) for c in cuts] for sub, cuts in subs.items()}
            for sample, subs in cfg.subsamples.items()
        },
        "skim": [cut_summary(c) for c in cfg.skim],
        "preselections": [cut_summary(c) for c in cfg.preselections],
        "categories": {name: [cut_summary(c) for c in cuts] for name, cuts in cfg.categories.items()},
        "weights_classes": {
            name: {"class": _qualified(cls), "has_variations": cls.has_variations, "isMC_only": cls.isMC_only}
            for name, cls in cfg.weights_classes.items()
        },
        "weights": plain(cfg.weights_config),
        "variations": plain(cfg.variations_config),
        "variables": {
            name: {
                **{k: plain(v) for k, v in dataclasses.asdict(conf).items() if k != "axes"},
                "axes": [plain(dataclasses.asdict(axis)) for axis in conf.axes],
            }
            for name, conf in cfg.variables.items()
        },
        "columns": {
            sample: {cat: [plain(dataclasses.asdict(col)) for col in cols] for cat, cols in per_cat.items() if cols}
            for sample, per_cat in cfg.columns.items()
        },
        "save_skimmed_files": cfg.save_skimmed_files,
    }


def save_configurator(cfg: Configurator, outputdir: str | os.PathLike) -> dict[str, Path]:
    """Write ``config.json``, ``configurator.pkl`` and ``parameters_dump.yaml`` into ``outputdir``."""
    folder = Path(outputdir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "config": folder / "config.json",
        "pickle": folder / "configurator.pkl",
        "parameters": folder / "parameters_dump.yaml",
    }
    summary = json.dumps(configurator_summary(cfg), indent=2) + "\n"
    pickled = cloudpickle.dumps(cfg)
    parameters = yaml.safe_dump(plain(cfg.parameters), sort_keys=False)
    atomic_write_bytes(paths["config"], summary.encode())
    atomic_write_bytes(paths["pickle"], pickled)
    atomic_write_bytes(paths["parameters"], parameters.encode())
    return paths
