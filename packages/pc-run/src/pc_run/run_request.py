"""What the ``run`` command was asked to do, and its run options: the part of a run that is
known before the analysis' heavy modules (coffea, awkward) are imported."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pc_core.run_options import RunOptions, load_run_options

if TYPE_CHECKING:
    from pc_core.configurator import Configurator

LOG_FILE = "run.log"  # in the output folder
TEST_LIMIT_FILES = 1
TEST_LIMIT_CHUNKS = 2


@dataclass
class RunRequest:
    """Everything the run command was asked to do (CLI options, already parsed)."""

    cfg: str | os.PathLike | Configurator
    outputdir: str | os.PathLike
    executor: str | None = None
    custom_run_options: str | os.PathLike | Mapping[str, Any] | None = None
    test: bool = False
    limit_files: int | None = None
    limit_chunks: int | None = None
    scaleout: int | None = None
    chunksize: int | None = None
    queue: str | None = None
    skip_bad_files: bool | None = None
    process_separately: bool = False
    filter_years: str | None = None
    filter_samples: str | None = None
    filter_datasets: str | None = None
    resubmit_failed: bool = False
    overwrite: bool = False
    executor_custom_setup: str | None = None
    extra_overrides: dict[str, Any] = field(default_factory=dict)
    # handed to the executor factory as keyword arguments (e.g. recreate_jobs for condor);
    # only manual-job executors (factories with submit(cfg)) accept any
    executor_options: dict[str, Any] = field(default_factory=dict)


def resolve_run_options(request: RunRequest) -> RunOptions:
    """Packaged defaults -> executor section -> custom YAML -> CLI flags (and --test limits)."""
    executor = request.executor or "iterative"
    overrides: dict[str, Any] = {
        "scaleout": request.scaleout,
        "chunksize": request.chunksize,
        "queue": request.queue,
        "limit-files": request.limit_files,
        "limit-chunks": request.limit_chunks,
        "skip-bad-files": request.skip_bad_files,
        **request.extra_overrides,
    }
    if request.test:
        if overrides["limit-files"] is None:
            overrides["limit-files"] = TEST_LIMIT_FILES
        if overrides["limit-chunks"] is None:
            overrides["limit-chunks"] = TEST_LIMIT_CHUNKS
    return load_run_options(executor, custom_options=request.custom_run_options, cli_overrides=overrides)
