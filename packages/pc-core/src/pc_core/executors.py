"""The executor-factory interface and the registry that finds factories by engine name.

Packages register factory classes under the entry-point group ``pocket_coffea.executors``
(``dask = "pc_run.executors:DaskExecutorFactory"``); ``get_executor_factory("dask@lxplus",
run_options)`` splits the executor string, loads the class of the engine and hands it the
run options, which already carry the site's section.  A user module passed with
``--executor-custom-setup`` replaces the registry for that run.

pc-core knows nothing about coffea: ``get()`` returns whatever the engine's executor is.
"""
from __future__ import annotations

import abc
import hashlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from .errors import ExecutorError
from .run_options import RunOptions, available_executors, parse_executor, unread_keys

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pocket_coffea.executors"
CUSTOM_SETUP_FUNCTION = "get_executor_factory"


class ExecutorFactoryABC(abc.ABC):
    """Builds (and later tears down) the executor coffea's Runner uses.

    The constructor stores the run options and output folder, then calls ``setup()``
    (start a cluster, check a proxy...).  ``get()`` returns the executor instance;
    ``close()`` releases what ``setup()`` acquired.  Usable as a context manager.

    ``run_option_keys`` declares the run-option keys the engine reads (None: not declared,
    then the keys of the engine's template section in the packaged defaults count);
    ``get_executor_factory`` refuses keys the user set that the engine does not read.
    """

    run_option_keys: ClassVar[frozenset[str] | None] = None

    def __init__(self, run_options: Mapping[str, Any], outputdir: str | Path | None = None, **kwargs: Any):
        self.run_options = run_options
        self.outputdir = Path(outputdir) if outputdir is not None else None
        self.kwargs = kwargs
        try:
            self.setup()
        except BaseException:
            self.close()  # a half-done setup (a cluster started, jobs submitted) is released too
            raise

    @abc.abstractmethod
    def get(self) -> Any:
        """The executor instance passed to coffea's Runner."""

    def setup(self) -> None:
        """Acquire resources (called by the constructor); nothing by default."""

    def close(self) -> None:
        """Release what ``setup()`` acquired, also when ``setup()`` failed half-way (the
        constructor calls it then); nothing by default."""

    def customized_args(self) -> dict[str, Any]:
        """Executor arguments common to every engine, derived from the run options."""
        args: dict[str, Any] = {}
        if self.run_options.get("retries") is not None:
            args["retries"] = self.run_options["retries"]
        return args

    def __enter__(self) -> ExecutorFactoryABC:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ManualJobFactory(ExecutorFactoryABC):
    """An executor that processes nothing itself: it writes and submits batch jobs (``condor@site``).

    ``run`` hands the loaded Configurator to ``submit`` instead of starting coffea's Runner;
    the jobs run ``pocket-coffea run`` on their part of the fileset.
    """

    def get(self) -> Any:
        raise ExecutorError(
            f"{type(self).__name__} is a manual-job executor: it submits jobs through submit(cfg) and "
            "provides no executor for coffea's Runner"
        )

    @abc.abstractmethod
    def submit(self, cfg: Any, console: Any = None) -> Any:
        """Prepare and submit the jobs of ``cfg``; returns what was submitted."""


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The installed entry points of the executor group (one place to read them)."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def registered_engines() -> dict[str, importlib.metadata.EntryPoint]:
    """Engine name -> entry point; the first registration of a name wins (with a warning)."""
    engines: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in _entry_points():
        if entry_point.name in engines:
            logger.warning(
                "executor engine %r is registered twice (%s and %s); using the first",
                entry_point.name, engines[entry_point.name].value, entry_point.value,
            )
            continue
        engines[entry_point.name] = entry_point
    return engines


def load_factory_class(engine: str) -> type[ExecutorFactoryABC]:
    """Import the factory class registered for ``engine``."""
    engines = registered_engines()
    if engine not in engines:
        raise ExecutorError(
            f"no executor factory is registered for engine {engine!r}; registered engines: "
            f"{', '.join(sorted(engines)) or 'none'} (entry-point group {ENTRY_POINT_GROUP!r}); "
            f"available executors: {', '.join(available_executors())}. "
            "Is the package providing it installed, or pass --executor-custom-setup?"
        )
    entry_point = engines[engine]
    try:
        factory_class = entry_point.load()
    except Exception as exc:  # an installed plugin that cannot be imported
        raise ExecutorError(
            f"executor engine {engine!r} is registered as {entry_point.value!r} but cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(factory_class, type) and issubclass(factory_class, ExecutorFactoryABC)):
        raise ExecutorError(
            f"executor engine {engine!r} is registered as {entry_point.value!r}, which is not a subclass "
            "of pc_core.executors.ExecutorFactoryABC"
        )
    return factory_class


def load_custom_setup(path: str | Path) -> ModuleType:
    """Import the user's executor module from ``path`` under a unique module name.

    The module is registered in ``sys.modules`` (dataclasses and pickling need that) and
    its folder is on ``sys.path`` only while it executes, so it can import its siblings.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExecutorError(
            f"custom executor setup {str(path)!r} does not exist or is not a file; expected a Python module "
            f"defining {CUSTOM_SETUP_FUNCTION}(executor_name, **kwargs)"
        )
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"pc_custom_executor_{resolved.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ExecutorError(f"custom executor setup {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(resolved.parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ExecutorError(
            f"custom executor setup {str(path)!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return module


def _call_custom_setup(function, executor: str, run_options: Mapping[str, Any], **extra: Any):
    """Call the user's ``get_executor_factory`` with what its signature takes: the spec's
    ``(executor_name, run_options)``, or also ``outputdir=`` and the other keywords when it
    accepts them (``**kwargs`` or by name)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C callable: give it everything
        return function(executor, run_options=run_options, **extra)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return function(executor, run_options=run_options, **extra)
    accepted = {key: value for key, value in extra.items() if key in parameters}
    if "run_options" in parameters:
        return function(executor, run_options=run_options, **accepted)
    return function(executor, run_options, **accepted)


def get_executor_factory(
    executor: str,
    run_options: Mapping[str, Any],
    outputdir: str | Path | None = None,
    custom_setup: str | Path | None = None,
    **kwargs: Any,
) -> ExecutorFactoryABC:
    """The factory for ``executor`` (``engine`` or ``engine@site``), already set up.

    With ``custom_setup`` the user's module decides: its
    ``get_executor_factory(executor, run_options=..., outputdir=..., **kwargs)`` must return
    an ``ExecutorFactoryABC``.  Otherwise the engine's class comes from the
    ``pocket_coffea.executors`` entry points.
    """
    engine, _site = parse_executor(executor)
    executor = executor.strip()
    if isinstance(run_options, RunOptions) and run_options.executor != executor:
        raise ExecutorError(
            f"run options were loaded for executor {run_options.executor!r} but executor {executor!r} was "
            f"requested; load them with load_run_options({executor!r})"
        )
    if custom_setup is not None:
        module = load_custom_setup(custom_setup)
        function = getattr(module, CUSTOM_SETUP_FUNCTION, None)
        if not callable(function):
            raise ExecutorError(
                f"custom executor setup {str(custom_setup)!r} defines no function {CUSTOM_SETUP_FUNCTION}; "
                f"expected {CUSTOM_SETUP_FUNCTION}(executor_name, **kwargs) returning an ExecutorFactoryABC"
            )
        factory = _call_custom_setup(function, executor, run_options, outputdir=outputdir, **kwargs)
        if not isinstance(factory, ExecutorFactoryABC):
            got = "None" if factory is None else f"a {type(factory).__name__}"
            raise ExecutorError(
                f"{CUSTOM_SETUP_FUNCTION} of custom executor setup {str(custom_setup)!r} returned {got} for "
                f"executor {executor!r}; expected an instance of pc_core.executors.ExecutorFactoryABC"
            )
        return factory
    known = available_executors()
    user_site = isinstance(run_options, RunOptions)  # a site section of the user's YAML resolved it
    if executor not in known and not user_site:
        raise ExecutorError(
            f"unknown executor {executor!r}; available executors: {', '.join(known)}. "
            "A site is a section of the packaged run-options defaults (see docs/executors.md); "
            "for a one-off setup pass --executor-custom-setup"
        )
    factory_class = load_factory_class(engine)
    if isinstance(run_options, RunOptions):
        check_keys_read(run_options, factory_class.run_option_keys)
    return factory_class(run_options=run_options, outputdir=outputdir, **kwargs)


def check_keys_read(run_options: RunOptions, reads: frozenset[str] | None = None) -> None:
    """Refuse run options the user set that the executor's engine does not read (see
    ``pc_core.run_options.unread_keys``): an error for a key of one other engine, a warning
    for a key several other engines share."""
    errors, warnings = unread_keys(run_options, reads)
    for message in warnings:
        logger.warning(message)
    if errors:
        raise ExecutorError("; ".join(errors))


def find_grid_proxy(run_options: Mapping[str, Any]) -> Path | None:
    """The grid proxy to hand to workers and jobs: ``voms-proxy``, else ``$X509_USER_PROXY``,
    else ``/tmp/x509up_u<uid>``; None when there is none or ``ignore-grid-certificate``."""
    if run_options.get("ignore-grid-certificate"):
        return None
    configured = run_options.get("voms-proxy")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ExecutorError(f"run option voms-proxy = {configured!r}: no such file; create the proxy or fix the path")
        return path.absolute()
    path = Path(os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}")
    if path.is_file():
        return path.absolute()
    logger.info("no grid proxy found (voms-proxy, $X509_USER_PROXY, %s): workers run without one", path)
    return None
