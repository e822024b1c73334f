"""The jobs folder of the manual-job executors: which jobs exist and in which state they are.

A job ``i`` exists when ``job_{i}.sub`` exists; its state is the flag file the wrapper
script keeps next to it: ``job_{i}.idle`` (queued), ``.running``, ``.done`` or ``.failed``.
Flags are only ever read here, and changed through ``set_flag`` (which removes the others
so a job never has two states).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pc_core.errors import PocketCoffeaError

STATES: tuple[str, ...] = ("idle", "running", "done", "failed")
# when a job has several flags (a wrapper killed between rm and touch) the newest wins;
# on equal times the later stage wins
_STAGE = {state: rank for rank, state in enumerate(STATES)}
_SUB = re.compile(r"^job_(\d+)\.sub$")
_FLAG = re.compile(r"^job_(\d+)\.(idle|running|done|failed)$")


class JobsFolderError(PocketCoffeaError):
    """The jobs folder does not exist or holds no ``job_{i}.sub`` files."""


def job_name(index: int) -> str:
    return f"job_{index}"


def resolve_jobs_folder(path: str | os.PathLike) -> Path:
    """The jobs folder itself, or its ``job/`` subfolder when given the output folder above it."""
    path = Path(path)
    if not path.is_dir():
        raise JobsFolderError(f"--jobs-folder {path} is not a directory; pass the jobs folder of a condor run")
    if not any(_SUB.match(p.name) for p in path.iterdir()) and (path / "job").is_dir():
        return path / "job"
    return path


@dataclass(frozen=True)
class JobsSnapshot:
    """The state of every job at one moment (``states[i]`` is None when a job has no flag yet)."""

    folder: Path
    states: dict[int, str | None]
    mtimes: dict[int, float] = field(default_factory=dict)
    """When each job's flag was last written (jobs without a flag are absent)."""

    @property
    def total(self) -> int:
        return len(self.states)

    def jobs_in(self, state: str) -> list[int]:
        return sorted(i for i, s in self.states.items() if s == state)

    def counts(self) -> dict[str, int]:
        """Jobs per state; a job without a flag counts as idle (it never started)."""
        counter = Counter(s or "idle" for s in self.states.values())
        return {state: counter.get(state, 0) for state in STATES}


def scan_jobs(folder: str | os.PathLike) -> JobsSnapshot:
    """Read the job list (``job_{i}.sub``) and every job's flag file."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise JobsFolderError(f"cannot list the jobs folder {folder}: {exc.strerror or exc}") from None
    jobs = sorted(int(m.group(1)) for n in names if (m := _SUB.match(n)))
    if not jobs:
        raise JobsFolderError(
            f"{folder} holds no job_<i>.sub files: pass the jobs folder written by a condor@<site> run "
            "(or the output folder holding its 'job' subfolder)"
        )
    best: dict[int, tuple[float, int, str]] = {}
    for name in names:
        match = _FLAG.match(name)
        if match is None:
            continue
        index, state = int(match.group(1)), match.group(2)
        try:
            mtime = (folder / name).stat().st_mtime
        except FileNotFoundError:  # removed by the wrapper while we were listing
            continue
        key = (mtime, _STAGE[state], state)
        if index not in best or key > best[index]:
            best[index] = key
    return JobsSnapshot(folder, {i: best[i][2] if i in best else None for i in jobs},
                        {i: best[i][0] for i in jobs if i in best})


def set_flag(folder: str | os.PathLike, index: int, state: str) -> None:
    """Make ``state`` the only flag of job ``index`` (touch it, remove the others)."""
    if state not in STATES:
        raise ValueError(f"unknown job state {state!r}; accepted: {', '.join(STATES)}")
    folder = Path(folder)
    (folder / f"{job_name(index)}.{state}").touch()
    for other in STATES:
        if other != state:
            (folder / f"{job_name(index)}.{other}").unlink(missing_ok=True)


__all__ = ["STATES", "JobsFolderError", "JobsSnapshot", "job_name", "resolve_jobs_folder", "scan_jobs", "set_flag"]
