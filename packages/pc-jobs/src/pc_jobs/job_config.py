"""The per-job pickle ``config_job_{i}.pkl``: read its fileset, write it back with files replaced.

The manual-job executors pickle (cloudpickle) one loaded ``Configurator`` per job, whose
``fileset`` is that job's slice. A replaced file goes through ``Configurator.with_fileset``
(a new configurator, the loaded one is not mutated). A plain mapping with a ``"fileset"``
key is accepted too, so tools that pickle only the job's inputs work the same way.
The pickle is rewritten atomically (a crash leaves the old one) and world-readable (0644).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cloudpickle
from pc_core.atomic import atomic_write_bytes
from pc_core.errors import PocketCoffeaError


FILE_MODE = 0o644


class JobConfigError(PocketCoffeaError):
    """A ``config_job_{i}.pkl`` is missing, unreadable or holds no fileset."""


def load_job_config(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return cloudpickle.load(handle)
    except FileNotFoundError:
        raise JobConfigError(f"job config {path} does not exist; was the jobs folder moved or cleaned?") from None
    except Exception as exc:  # unpickling can raise anything (missing module, truncated file)
        raise JobConfigError(f"cannot unpickle job config {path}: {type(exc).__name__}: {exc}") from None


def job_fileset(config: Any, path: str | os.PathLike = "<config>") -> dict[str, Any]:
    """A deep copy of the job's fileset ``{dataset: {"files": [...], "metadata": {...}}}``."""
    if isinstance(config, Mapping):
        fileset = config.get("fileset")
    else:
        try:
            fileset = config.fileset
        except AttributeError:
            fileset = None
    if not isinstance(fileset, Mapping):
        raise JobConfigError(
            f"{path} holds a {type(config).__name__} without a fileset; expected a loaded Configurator "
            "or a mapping with a 'fileset' key"
        )
    return copy.deepcopy(dict(fileset))


def with_fileset(config: Any, fileset: Mapping[str, Any], path: str | os.PathLike = "<config>") -> Any:
    """A copy of the job config using ``fileset`` (the given config is left untouched)."""
    if isinstance(config, Mapping):
        new = dict(config)
        new["fileset"] = copy.deepcopy(dict(fileset))
        return new
    if hasattr(config, "with_fileset"):
        return config.with_fileset(fileset)
    raise JobConfigError(f"{path}: cannot set the fileset of a {type(config).__name__}")


def save_job_config(config: Any, path: str | os.PathLike) -> None:
    """Atomic write, then 0644: the job (HTCondor's file transfer, maybe as another user) reads it
    whatever the umask; mkstemp alone would leave it 0600."""
    atomic_write_bytes(path, cloudpickle.dumps(config))
    os.chmod(path, FILE_MODE)


def rewrite_job_files(path: str | os.PathLike, new_url: Callable[[str], str]) -> dict[str, str]:
    """Replace every file URL ``u`` of the job's fileset by ``new_url(u)``; returns the changes.

    The pickle is only rewritten when something changed; file order and metadata are kept.
    """
    config = load_job_config(path)
    fileset = job_fileset(config, path)
    changes: dict[str, str] = {}
    for entry in fileset.values():
        files = list(entry.get("files", []))
        for i, url in enumerate(files):
            replacement = new_url(url)
            if replacement != url:
                files[i] = replacement
                changes[url] = replacement
        entry["files"] = files
    if changes:
        save_job_config(with_fileset(config, fileset, path), path)
    return changes


__all__ = ["JobConfigError", "job_fileset", "load_job_config", "rewrite_job_files", "save_job_config", "with_fileset"]
