"""pc-run: the processor, the local and Dask/Parsl executors, and the ``run`` command.

What an analysis imports::

    from pc_run import BaseProcessorABC, FlatObjects, near_any, not_near, run_analysis, RunRequest

The names are loaded on first use (PEP 562), so importing ``pc_run`` (as every command of the
umbrella CLI does to find its commands) does not import coffea.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaseProcessorABC": "pc_run.processor",
    "FlatObjects": "pc_run.flat_objects",
    "near_any": "pc_run.object_cleaning",
    "not_near": "pc_run.object_cleaning",
    "delta_phi": "pc_run.object_cleaning",
    "RunRequest": "pc_run.run_request",
    "run_analysis": "pc_run.analysis_run",
    "RunFailedError": "pc_run.analysis_run",
    "ChunkFailure": "pc_run.failures",
    "OutputFolder": "pc_run.output_folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pc_run' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
