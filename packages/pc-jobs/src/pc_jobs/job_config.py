"""The per-job input file ``config_job_{i}.pkl``: plain data, read and rewritten without the Configurator.

Format ``pocket-coffea-job/1`` (docs/condor-jobs.md): a pickle (protocol 4) of a plain dict
holding only builtins (str, int, float, bool, None, list, dict)::

    {"format": "pocket-coffea-job/1",
     "configurator": "configurator.pkl",      # the ONE shared cloudpickle, relative to this file
     "job": 3,
     "fileset": {dataset: {"files": [...], "metadata": {...}}}}

The job's ``pocket-coffea run --cfg config_job_3.pkl`` loads the shared configurator next
to it and restricts it to this fileset (``pc_core.config_loading``). Recovery (another
replica, a redirector) rewrites only this dict, with a restricted unpickler that refuses
every non-builtin class, so it never imports the user's workflow, pc-run or coffea: it runs
on a submit node where only pc-core/pc-jobs are installed.

Jobs folders written before this format hold a whole pickled ``Configurator`` per job
("legacy"); they still run, and are rewritten through ``Configurator.with_fileset`` when
their inputs change (which needs the analysis' environment).
The file is rewritten atomically (a crash leaves the old one) and world-readable (0644).
"""
from __future__ import annotations

import copy
import io
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pc_core.atomic import atomic_write_bytes
from pc_core.errors import PocketCoffeaError

FILE_MODE = 0o644
JOB_FORMAT = "pocket-coffea-job/1"
SHARED_CONFIGURATOR = "configurator.pkl"
PICKLE_PROTOCOL = 4
_BUILTINS = frozenset({"str", "int", "float", "bool", "list", "dict", "tuple", "set", "frozenset", "bytes"})


class JobConfigError(PocketCoffeaError):
    """A ``config_job_{i}.pkl`` is missing, unreadable or holds no fileset."""


class _NotPlainData(pickle.UnpicklingError):
    """The pickle references a class: a legacy (whole Configurator) job pickle."""


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles builtins only: a job data file can never import anything."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _BUILTINS:
            return super().find_class(module, name)
        raise _NotPlainData(f"{module}.{name}")


def job_data(fileset: Mapping[str, Any], index: int, configurator: str = SHARED_CONFIGURATOR) -> dict[str, Any]:
    """The plain dict of format ``pocket-coffea-job/1`` for job ``index``."""
    return {"format": JOB_FORMAT, "configurator": configurator, "job": int(index), "fileset": _plain(fileset)}


def _plain(value: Any) -> Any:
    """``value`` as builtins only (mappings -> dict, sequences -> list), so the restricted reader accepts it."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise JobConfigError(f"job data must be plain (str, int, float, bool, list, dict); got a {type(value).__name__}")


def dump_job_data(data: Mapping[str, Any]) -> bytes:
    return pickle.dumps(dict(data), protocol=PICKLE_PROTOCOL)


def is_job_data(config: Any) -> bool:
    return isinstance(config, Mapping) and config.get("format") == JOB_FORMAT


def read_job_data(path: str | os.PathLike) -> dict[str, Any] | None:
    """The job's plain data; None when the file is a legacy pickle (a whole Configurator).

    Never imports anything: a class reference stops the read.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise JobConfigError(f"job config {path} does not exist; was the jobs folder moved or cleaned?") from None
    except OSError as exc:
        raise JobConfigError(f"cannot read job config {path}: {exc.strerror or exc}") from None
    try:
        data = _PlainUnpickler(io.BytesIO(raw)).load()
    except _NotPlainData:
        return None
    except Exception as exc:  # truncated or not a pickle
        raise JobConfigError(f"cannot read job config {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(data, Mapping) and data.get("format") not in (None, JOB_FORMAT):
        raise JobConfigError(f"{path}: job data format {data.get('format')!r} is not supported "
                             f"(this pocket-coffea reads {JOB_FORMAT!r}); update pocket-coffea")
    return data if isinstance(data, dict) else None


def load_job_config(path: str | os.PathLike, *, legacy: bool = True) -> Any:
    """The job's inputs: the plain dict, or (legacy folders, ``legacy=True``) the unpickled Configurator."""
    path = Path(path)
    data = read_job_data(path)
    if data is not None:
        return data
    if not legacy:
        raise JobConfigError(f"{path} is a legacy job pickle (a whole Configurator), not plain job data")
    import cloudpickle

    try:
        with path.open("rb") as handle:
            return cloudpickle.load(handle)
    except Exception as exc:  # unpickling can raise anything (missing module, truncated file)
        raise JobConfigError(
            f"cannot unpickle the legacy job config {path} (a whole Configurator, written before the "
            f"{JOB_FORMAT} format; it needs the analysis' environment): {type(exc).__name__}: {exc}") from None


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
            f"{path} holds a {type(config).__name__} without a fileset; expected job data "
            f"({JOB_FORMAT}), a loaded Configurator or a mapping with a 'fileset' key"
        )
    return copy.deepcopy(dict(fileset))


def with_fileset(config: Any, fileset: Mapping[str, Any], path: str | os.PathLike = "<config>") -> Any:
    """A copy of the job config using ``fileset`` (the given config is left untouched)."""
    if isinstance(config, Mapping):
        new = dict(config)
        new["fileset"] = _plain(fileset) if is_job_data(config) else copy.deepcopy(dict(fileset))
        return new
    if hasattr(config, "with_fileset"):
        return config.with_fileset(fileset)
    raise JobConfigError(f"{path}: cannot set the fileset of a {type(config).__name__}")


def save_job_config(config: Any, path: str | os.PathLike) -> None:
    """Atomic write, then 0644: the job (HTCondor's file transfer, maybe as another user) reads it
    whatever the umask; mkstemp alone would leave it 0600. Plain dicts are written with ``pickle``."""
    if isinstance(config, Mapping):
        payload = dump_job_data(config)
    else:
        import cloudpickle

        payload = cloudpickle.dumps(config)
    atomic_write_bytes(path, payload)
    os.chmod(path, FILE_MODE)


__all__ = ["FILE_MODE", "JOB_FORMAT", "SHARED_CONFIGURATOR", "JobConfigError", "dump_job_data", "is_job_data",
           "job_data", "job_fileset", "load_job_config", "read_job_data", "save_job_config",
           "with_fileset"]
