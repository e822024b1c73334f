"""Where the fileset JSONs go and how they are written.

For a request with ``json_output = "datasets/TT.json"`` the outputs are, relative to the
output folder (``--outputdir``, default: the folder of the definition file; an absolute
``json_output`` is used as is)::

    datasets/TT.json             replicas chosen by the site options
    datasets/TT_redirector.json  same files through the global redirector
    datasets/TT_local.json       same files under --local-prefix (only with that option)

``--split-by-year`` inserts the year: ``TT_2018.json``, ``TT_2018_redirector.json``, ...
Without ``--overwrite`` an existing output is extended and a dataset already in it is an
error; with it the file is replaced. Everything is checked before the first file is
written, and each file is written atomically.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pc_core.fileset import load_fileset_json, save_fileset_json

from .build import BuiltDataset
from .errors import DefinitionError
from .urls import GLOBAL_REDIRECTOR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputOptions:
    outputdir: Path
    overwrite: bool = False
    split_by_year: bool = False
    local_prefix: str | None = None
    redirector: str = GLOBAL_REDIRECTOR


def output_base(json_output: str, year: str, options: OutputOptions) -> Path:
    path = Path(os.path.expanduser(json_output))
    if not path.is_absolute():
        path = options.outputdir / path
    stem = path.name[: -len(".json")]
    if options.split_by_year:
        stem = f"{stem}_{year}"
    return path.with_name(stem)


def plan_outputs(built: Sequence[BuiltDataset], options: OutputOptions) -> dict[Path, dict[str, Any]]:
    """``{path: fileset}`` for every JSON to write (existing contents merged in unless overwrite)."""
    plans: dict[Path, dict[str, Any]] = {}
    for dataset in built:
        base = output_base(dataset.request.json_output, dataset.request.year, options)
        variants = {
            base.with_name(base.name + ".json"): dataset.entry(),
            base.with_name(base.name + "_redirector.json"): dataset.redirector_entry(options.redirector),
        }
        if options.local_prefix:
            variants[base.with_name(base.name + "_local.json")] = dataset.local_entry(options.local_prefix)
        for path, entry in variants.items():
            plans.setdefault(path, {})[dataset.name] = entry
    if not options.overwrite:
        for path, fileset in plans.items():
            if path.exists():
                existing = load_fileset_json(path)
                clash = sorted(set(existing) & set(fileset))
                if clash:
                    raise DefinitionError(
                        f"{path} already has dataset(s) {', '.join(clash)}; pass --overwrite to replace the file, "
                        "or --keys to build only new keys"
                    )
                plans[path] = {**existing, **fileset}
    return plans


def write_outputs(plans: dict[Path, dict[str, Any]]) -> list[Path]:
    for path, fileset in plans.items():
        save_fileset_json(fileset, path)
        log.info("wrote %s (%d datasets)", path, len(fileset))
    return list(plans)
