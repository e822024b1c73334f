"""Load a configuration: a ``.py`` file exposing ``cfg`` (executed by path) or a pickled Configurator.

A config is executed as a fresh module with its own folder temporarily first on ``sys.path``,
so that it can ``import`` sibling modules (cuts, workflow). Afterwards ``sys.path`` is
restored, the current directory was never changed, and the config module and the sibling
modules it imported are taken out of ``sys.modules`` again (any module they shadowed is put
back). Two configs from different folders can therefore both have a ``cuts.py``.

Those modules are registered with ``cloudpickle.register_pickle_by_value`` while they are
imported; as they are then no longer importable by name, cloudpickle also pickles their
functions and classes (cuts, weights, the workflow) by value, which is what lets the
configurator be unpickled in a fresh process, on a worker or in a condor job, where the config
folder is not on ``sys.path``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import cloudpickle

from .configurator import CONFIG_DIR, Configurator
from .errors import ConfigError, PocketCoffeaError

PICKLE_SUFFIXES = (".pkl", ".pickle")
PYTHON_SUFFIXES = (".py",)

def _module_name_for(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"_pocket_coffea_config_{stem}_{digest}"


def _is_under(module: ModuleType, folder: Path) -> bool:
    filename = getattr(module, "__file__", None)
    if not filename:  # namespace packages have no __file__, only __path__
        filename = next(iter(getattr(module, "__path__", []) or []), None)
    if not filename:
        return False
    try:
        return Path(filename).resolve().is_relative_to(folder)
    except (OSError, ValueError, TypeError):
        return False


def _local_module_names(folder: Path) -> set[str]:
    """Top-level module names a config in ``folder`` could import from its folder."""
    names: set[str] = set()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return names
    for entry in entries:
        if entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
        elif entry.name.isidentifier() and entry.is_dir():
            names.add(entry.name)
    return names


@contextmanager
def _config_import_scope(folder: Path, config_module_name: str) -> Iterator[list[ModuleType]]:
    """Make ``folder`` importable while the block runs; collect the modules imported from it.

    Only modules whose top-level name is a file or package directly in ``folder`` count as
    the config's own (a virtualenv inside the folder must not make every library "local").
    On exit ``sys.path`` is restored, the collected modules are registered for pickling by
    value and removed from ``sys.modules``, and modules they shadowed are restored.
    """
    local_names = _local_module_names(folder) | {config_module_name}
    shadowed: dict[str, ModuleType] = {}
    for name in list(sys.modules):
        if name.split(".")[0] in local_names and not _is_under(sys.modules[name], folder):
            shadowed[name] = sys.modules.pop(name)
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    imported: list[ModuleType] = []
    try:
        yield imported
    finally:
        try:
            sys.path.remove(str(folder))
        except ValueError:
            pass
        for name in [name for name in sys.modules if name not in before]:
            module = sys.modules[name]
            if name.split(".")[0] in local_names and isinstance(module, ModuleType) and _is_under(module, folder):
                imported.append(module)
        for module in imported:
            if module.__name__.split(".")[0] == module.__name__:
                try:
                    cloudpickle.register_pickle_by_value(module)
                except ValueError:
                    pass
        for module in imported:
            sys.modules.pop(module.__name__, None)
        sys.modules.update(shadowed)


def _execute_config_module(path: Path) -> ModuleType:
    """Execute the config file as a new module and return it (see the module docstring)."""
    name = _module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    token = CONFIG_DIR.set(path.parent)
    try:
        with _config_import_scope(path.parent, name):
            # registered so that dataclasses and relative lookups work while it executes
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except PocketCoffeaError:
                raise
            except SystemExit as exc:
                raise ConfigError(f"{path}: the config called sys.exit({exc.code!r}) while being loaded") from exc
            except Exception as exc:
                raise ConfigError(f"{path}: executing the config failed: {type(exc).__name__}: {exc}") from exc
    finally:
        CONFIG_DIR.reset(token)
    return module


def _load_pickle(path: Path) -> object:
    try:
        with open(path, "rb") as stream:
            return cloudpickle.load(stream)
    except PocketCoffeaError:
        raise
    except Exception as exc:
        raise ConfigError(f"{path}: cannot unpickle the configurator: {type(exc).__name__}: {exc}") from exc


JOB_FORMAT = "pocket-coffea-job/1"
"""A manual job's input file ``config_job_{i}.pkl``: a pickled plain dict ``{"format": JOB_FORMAT,
"configurator": "configurator.pkl", "job": i, "fileset": {...}}`` (written by pc_jobs)."""


def _load_job(path: Path, data: dict) -> Configurator:
    """The shared configurator named by the job data (relative to the job file) restricted to its fileset."""
    name = data.get("configurator")
    fileset = data.get("fileset")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: job data without a 'configurator' file name")
    if not isinstance(fileset, dict) or not fileset:
        raise ConfigError(f"{path}: job data without a non-empty 'fileset'")
    shared_path = Path(name) if Path(name).is_absolute() else path.parent / name
    if not shared_path.is_file():
        raise ConfigError(
            f"{path}: the shared configurator {shared_path} it refers to does not exist (a job needs both "
            f"{path.name} and {name}; check transfer_input_files of its submit file)"
        )
    shared = _load_pickle(shared_path)
    if not isinstance(shared, Configurator):
        raise ConfigError(f"{shared_path}: the pickle holds a {type(shared).__name__}, not a Configurator")
    if not shared.loaded:
        shared.load()
    return shared.with_fileset(fileset)


def load_configurator(path: str | os.PathLike, load: bool = True) -> Configurator:
    """The Configurator of a config file, loaded (validated, fileset read).

    ``path`` is a ``.py`` exposing ``cfg``, a pickled Configurator (``configurator.pkl``
    written by ``save_config``) or a manual job's data file ``config_job_{i}.pkl`` (``JOB_FORMAT``:
    the shared configurator next to it, restricted to the job's fileset). Dataset JSON paths written relative in a ``.py`` config
    resolve relative to the config file's folder, unless the config passed ``base_dir``.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"Config file {path} is not a file")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        cfg = _load_pickle(path)
        if isinstance(cfg, dict) and cfg.get("format") == JOB_FORMAT:
            cfg = _load_job(path, cfg)
        elif isinstance(cfg, dict) and str(cfg.get("format", "")).startswith("pocket-coffea-job/"):
            raise ConfigError(f"{path}: job data format {cfg['format']!r} is not supported (this pocket-coffea "
                              f"reads {JOB_FORMAT!r}); run the jobs with the pocket-coffea that prepared them")
        if not isinstance(cfg, Configurator):
            raise ConfigError(f"{path}: the pickle holds a {type(cfg).__name__}, not a Configurator")
        if cfg.loaded:
            # a pickle written by an older version skipped these input checks: repeat them
            from .fileset import check_unique_files
            from .selections import check_category_names

            check_category_names(cfg.categories, f"{path}: categories")
            check_unique_files(cfg.fileset)
    elif suffix in PYTHON_SUFFIXES:
        module = _execute_config_module(path)
        if not hasattr(module, "cfg"):
            raise ConfigError(f"{path}: the config defines no variable 'cfg'; it must set cfg = Configurator(...)")
        cfg = module.cfg
        if not isinstance(cfg, Configurator):
            raise ConfigError(f"{path}: 'cfg' is a {type(cfg).__name__}, expected a pc_core Configurator")
    else:
        accepted = ", ".join(PYTHON_SUFFIXES + PICKLE_SUFFIXES)
        raise ConfigError(f"Config file {path}: unknown type {suffix or '(no suffix)'!r}; accepted: {accepted}")
    if load and not cfg.loaded:
        cfg.load()
    return cfg
