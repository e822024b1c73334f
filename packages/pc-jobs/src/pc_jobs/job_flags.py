"""The job flags ``job_{i}.{idle,running,done,failed}`` of a jobs folder: thin helpers over ``jobs_dir``.

``pc_jobs.jobs_dir.JobsDir`` is the one model of the jobs folder (names, flags, logs,
``jobs_config.yaml``); these functions keep the older call style (a folder path) working.
A job ``i`` exists when ``job_{i}.sub`` exists; with several flags the newest wins.
"""
from __future__ import annotations

import os
from pathlib import Path

from .jobs_dir import STATES, JobsDir, JobsFolderError, JobsSnapshot, job_name, resolve_jobs_folder


def scan_jobs(folder: str | os.PathLike) -> JobsSnapshot:
    """Read the job list (``job_{i}.sub``) and every job's flag file (one listing of the folder)."""
    return JobsDir(Path(folder)).scan()


def set_flag(folder: str | os.PathLike, index: int, state: str) -> None:
    """Make ``state`` the only flag of job ``index`` (touch it, remove the others)."""
    JobsDir(Path(folder)).set_flag(index, state)


__all__ = ["STATES", "JobsFolderError", "JobsSnapshot", "job_name", "resolve_jobs_folder", "scan_jobs", "set_flag"]
