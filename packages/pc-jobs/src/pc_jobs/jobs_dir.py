"""The jobs folder of the manual-job executors: its file names, flags and ``jobs_config.yaml``.

Layout (docs/condor-jobs.md)::

    <jobs-dir>/<job-name>/
        configurator.pkl        the ONE cloudpickle of the Configurator, shared by every job
        config_job_{i}.pkl      job i's inputs as plain data (format pocket-coffea-job/1, pc_jobs.job_config)
        jobs_config.yaml        every job's fileset slice, config and output (docs/merging.md)
        job_{i}.sub             submit file of job i alone (for resubmission)
        jobs_all.sub            every job in one submission (queue chunksize from (...))
        job.sh                  the wrapper each job runs
        inner_run_options.yaml  run options forwarded to the inner ``pocket-coffea run``
        job_{i}.{idle,running,done,failed}   state flags, exactly one per job
        logs/job_{i}.{out,err,log}
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pc_core.atomic import atomic_path
from pc_core.errors import PocketCoffeaError

from .submit_file import SHARED_CONFIGURATOR

JOBS_CONFIG = "jobs_config.yaml"
JOBS_CONFIG_VERSION = 1
FLAGS = ("idle", "running", "done", "failed")
INNER_OPTIONS_KEYS = ("skip-bad-files", "tree-reduction")
"""Run options the inner (in-job) ``pocket-coffea run`` consumes; nothing else is forwarded."""


def write_job_file(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Atomic write with a normal file mode (mkstemp's 0600 would hide the file from the
    HTCondor daemons when they act as another user than the submitter, as in test pools)."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        tmp.chmod(mode)


class JobsDirError(PocketCoffeaError):
    """A jobs folder that is missing, incomplete or does not match the request."""


@dataclass(frozen=True)
class JobsDir:
    """Names inside one jobs folder; creates nothing by itself."""

    path: Path

    @property
    def jobs_config(self) -> Path:
        return self.path / JOBS_CONFIG

    @property
    def shared_configurator(self) -> Path:
        return self.path / SHARED_CONFIGURATOR

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def script(self) -> Path:
        return self.path / "job.sh"

    @property
    def all_sub(self) -> Path:
        return self.path / "jobs_all.sub"

    @property
    def inner_options(self) -> Path:
        return self.path / "inner_run_options.yaml"

    def config(self, index: int) -> Path:
        return self.path / f"config_job_{index}.pkl"

    def sub(self, index: int) -> Path:
        return self.path / f"job_{index}.sub"

    def flag(self, index: int, state: str) -> Path:
        return self.path / f"job_{index}.{state}"

    def log(self, index: int, kind: str) -> Path:
        return self.logs / f"job_{index}.{kind}"

    # ------------------------------------------------------------------ flags
    def set_flag(self, index: int, state: str) -> None:
        """Exactly one flag file for the job: ``state``."""
        if state not in FLAGS:
            raise ValueError(f"unknown job state {state!r}; expected one of {FLAGS}")
        for other in FLAGS:
            if other != state:
                self.flag(index, other).unlink(missing_ok=True)
        self.flag(index, state).touch()

    def state(self, index: int) -> str | None:
        """The job's flag (the most advanced one if several are left over); None without flag."""
        for state in ("done", "failed", "running", "idle"):
            if self.flag(index, state).exists():
                return state
        return None

    # ------------------------------------------------------------------ jobs_config.yaml
    def write_jobs_config(self, jobs: Mapping[int, Mapping[str, Any]], extra: Mapping[str, Any]) -> None:
        document = {"version": JOBS_CONFIG_VERSION, **extra, "jobs": {int(i): dict(job) for i, job in jobs.items()}}
        write_job_file(self.jobs_config, yaml.safe_dump(document, sort_keys=False))

    def read_jobs_config(self) -> dict[str, Any]:
        if not self.jobs_config.is_file():
            raise JobsDirError(
                f"{self.jobs_config} does not exist: {self.path} is not a jobs folder of a manual-job run "
                "(submit the jobs first, without --recreate-jobs, or point jobs-dir/job-name at the right folder)"
            )
        try:
            document = yaml.safe_load(self.jobs_config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise JobsDirError(f"{self.jobs_config} cannot be read as YAML: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict) or not document["jobs"]:
            raise JobsDirError(f"{self.jobs_config}: expected a mapping with a non-empty 'jobs' mapping (version 1)")
        return document

    def job_indices(self) -> list[int]:
        return sorted(int(i) for i in self.read_jobs_config()["jobs"])

    # ------------------------------------------------------------------ inner run options
    def write_inner_options(self, run_options: Mapping[str, Any]) -> dict[str, Any]:
        """``inner_run_options.yaml``: only the Coffea-Runner keys of ``run_options``."""
        inner = {key: run_options[key] for key in INNER_OPTIONS_KEYS if run_options.get(key) is not None}
        write_job_file(self.inner_options, yaml.safe_dump(inner, sort_keys=False))
        return inner


def parse_job_selection(selection: str, available: list[int]) -> list[int] | None:
    """``"0,1,3"`` -> [0, 1, 3]; ``"auto"`` -> None (chosen from the flags)."""
    text = str(selection).strip()
    if text.lower() == "auto":
        return None
    if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        raise JobsDirError(
            f"--recreate-jobs {selection!r} is not valid; expected 'auto' or a comma separated list of "
            f"job indices such as 0,1,3 (jobs of this folder: 0-{max(available)})"
        )
    indices = sorted({int(part) for part in text.split(",")})
    unknown = [i for i in indices if i not in available]
    if unknown:
        raise JobsDirError(
            f"--recreate-jobs {selection!r}: no job {', '.join(map(str, unknown))} in the jobs folder "
            f"(jobs: {min(available)}-{max(available)}, {len(available)} in total)"
        )
    return indices
