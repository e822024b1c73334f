"""The output folder of a run, owned: one run at a time, one run's files, resumable.

Everything the run keeps about itself lives in ``<outputdir>/.pocket-coffea/``:

- ``lock``: held (``flock``) for the whole run; its text names the holder (host, pid,
  start time, command). The kernel drops the lock when the process dies, even by SIGKILL.
- ``run_state.json``: the fingerprint of the configuration, and per group (``all`` or a
  dataset/group of ``-ps``) its fingerprint (fileset and chunking), status and output.
- ``checkpoints/<group>/snapshot.coffea``: the chunks a group finished (their sum and
  ledger), replaced atomically every ``checkpoint-interval`` seconds and when the run
  stops; a rerun of the same command starts from it and processes only what is missing.
  It is removed once the group's output is written.

A folder holding another configuration's results, or results of a run without a state,
is refused unless ``--overwrite``, which removes the earlier run's files first: a folder
never mixes two runs.
"""
from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import lz4.frame

from pc_core.atomic import atomic_path, atomic_write_text
from pc_core.errors import OutputError

log = logging.getLogger(__name__)

STATE_DIR = ".pocket-coffea"
MIN_FREE_BYTES = 64 * 1024 * 1024
# what a run writes at the top of its folder (removed by --overwrite; plots are left alone)
RUN_FILES = ("config.json", "configurator.pkl", "parameters_dump.yaml", "run_options.yaml",
             "processing_report.json", "failed_jobs.json")
RUN_FILE_PATTERNS = ("output_*.coffea",)


class OutputFolderError(OutputError):
    """The output folder cannot be used for this run (busy, another run's, unwritable, full)."""


def digest(value: Any) -> str:
    text = value if isinstance(value, (bytes, str)) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:16]


@dataclass(frozen=True)
class GroupPlan:
    """What to do with one group: ``run`` (fresh), ``resume`` (checkpoints exist) or ``done``."""

    name: str
    action: str
    fingerprint: str


class OutputFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().absolute()
        self.state_dir = self.path / STATE_DIR
        self._lock_stream = None

    # ------------------------------------------------------------------ lock

    def acquire(self) -> None:
        """Take the folder for this run, or say who has it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.state_dir / "lock"
        stream = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            holder = stream.read().strip() or "unknown"
            stream.close()
            raise OutputFolderError(
                f"output folder {self.path} is in use by another run ({holder}); wait for it to finish, "
                "or write to another folder with -o"
            ) from None
        stream.seek(0)
        stream.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        stream.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {' '.join(sys.argv)}\n")
        stream.flush()
        self._lock_stream = stream

    def release(self) -> None:
        if self._lock_stream is not None:
            fcntl.flock(self._lock_stream, fcntl.LOCK_UN)
            self._lock_stream.close()
            self._lock_stream = None

    def __enter__(self) -> OutputFolder:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # ------------------------------------------------------------------ space

    def check_writable(self, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        """Fail before processing, not after it, when results could not be saved."""
        probe = self.state_dir / f"probe-{os.getpid()}"
        try:
            with atomic_path(probe) as tmp:
                tmp.write_bytes(b"x" * 4096)
            probe.unlink()
        except OSError as exc:
            raise OutputFolderError(f"output folder {self.path} is not writable: {exc.strerror or exc}") from None
        free = shutil.disk_usage(self.path).free
        if free < min_free_bytes:
            raise OutputFolderError(
                f"output folder {self.path} has only {free / 1e6:.1f} MB free; at least {min_free_bytes / 1e6:.0f} MB "
                "are needed to save checkpoints and outputs. Free some space or write elsewhere with -o"
            )

    # ------------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        return self.state_dir / "run_state.json"

    def load_state(self) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OutputFolderError(f"{self.state_path} is unreadable ({exc}); rerun with --overwrite") from None

    def save_state(self, state: Mapping[str, Any]) -> None:
        atomic_write_text(self.state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def earlier_results(self) -> list[Path]:
        found = [self.path / name for name in RUN_FILES if (self.path / name).exists()]
        for pattern in RUN_FILE_PATTERNS:
            found += sorted(self.path.glob(pattern))
        return found

    def clear(self) -> None:
        """Remove the files of an earlier run (``--overwrite``); plots and other files stay."""
        for path in self.earlier_results():
            path.unlink(missing_ok=True)
        for group in (state.get("groups") or {}) if (state := self.load_state()) else {}:
            self.checkpoints(group, "").clear()
        shutil.rmtree(self.state_dir / "checkpoints", ignore_errors=True)
        self.state_path.unlink(missing_ok=True)

    def plan(
        self, configuration: Mapping[str, str], groups: Mapping[str, str], overwrite: bool
    ) -> tuple[dict[str, Any], list[GroupPlan]]:
        """Decide per group between a fresh run, a resume and nothing to do; refuse what would mix runs.

        ``configuration`` maps each part of the configuration (config file, workflow, ...) to
        its digest; ``groups`` maps each group of this run to its fingerprint.
        """
        state = self.load_state()
        if overwrite and (state is not None or self.earlier_results()):
            log.warning("--overwrite: removing the earlier run's files from %s", self.path)
            self.clear()
            state = None
        if state is None:
            earlier = self.earlier_results()
            if earlier:
                raise OutputFolderError(
                    f"output folder {self.path} holds the results of an earlier run ({', '.join(p.name for p in earlier[:5])}"
                    f"{', ...' if len(earlier) > 5 else ''}) that cannot be resumed; rerun with --overwrite to replace "
                    "them, or write to another folder with -o"
                )
            state = {"version": 1, "configuration": dict(configuration), "groups": {}}
        elif state.get("configuration") != dict(configuration):
            before = state.get("configuration") or {}
            changed = sorted(k for k in set(before) | set(configuration) if before.get(k) != configuration.get(k))
            raise OutputFolderError(
                f"output folder {self.path} holds the results of a run with a different configuration "
                f"(changed: {', '.join(changed)}), so this run can neither resume nor add to it; rerun with "
                "--overwrite to replace them, or write to another folder with -o"
            )
        plans: list[GroupPlan] = []
        for name, fingerprint in groups.items():
            previous = state["groups"].get(name)
            checkpoints = self.checkpoints(name, fingerprint)
            has_parts = checkpoints.exists()
            if previous is not None and previous.get("fingerprint") != fingerprint and (
                previous.get("status") == "done" or has_parts
            ):
                raise OutputFolderError(
                    f"output folder {self.path}: {name!r} was processed with a different fileset or chunking "
                    f"({'its output exists' if previous.get('status') == 'done' else 'its checkpoints exist'}); "
                    "rerun with --overwrite to replace it, or write to another folder with -o"
                )
            if previous is not None and previous.get("status") == "done" and Path(previous.get("output", "")).exists():
                plans.append(GroupPlan(name, "done", fingerprint))
            elif has_parts and previous is not None:
                plans.append(GroupPlan(name, "resume", fingerprint))
            else:
                checkpoints.clear()
                plans.append(GroupPlan(name, "run", fingerprint))
        return state, plans

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_dir(self, group: str) -> Path:
        return self.state_dir / "checkpoints" / group

    def checkpoints(self, group: str, fingerprint: str) -> Checkpoints:
        return Checkpoints(self.checkpoint_dir(group), fingerprint)


class Checkpoints:
    """The finished chunks of one group: one snapshot ``{fingerprint, output, ledger}`` of the
    running sum, replaced atomically, so it always holds whole chunks, each exactly once.

    A snapshot of the running sum (not of what changed since the last one) keeps a resumed
    run's additions in the same order as an uninterrupted run's: with the iterative
    executor the two outputs are identical to the last bit.
    """

    def __init__(self, folder: Path, fingerprint: str):
        self.folder = folder
        self.fingerprint = fingerprint
        self.path = folder / "snapshot.coffea"
        # where the snapshot goes when the output folder cannot take it (a full disk); the
        # next run of the same command picks it up from there
        self.rescue_path = (Path(tempfile.gettempdir()) / "pocket-coffea-rescue"
                            / digest(str(folder.resolve())) / "snapshot.coffea")

    def write(self, output: Any, ledger: Mapping[str, Any]) -> Path:
        """Replace the snapshot; if the output folder cannot take it, write it to ``rescue_path``
        and raise ``OutputFolderError`` saying where it is."""
        snapshot = {"fingerprint": self.fingerprint, "output": output, "ledger": dict(ledger)}
        try:
            self._dump(snapshot, self.path)
            self.rescue_path.unlink(missing_ok=True)
            return self.path
        except OSError as exc:
            problem = exc.strerror or str(exc)
        try:
            self._dump(snapshot, self.rescue_path)
        except OSError as exc:
            raise OutputFolderError(
                f"could not save the processed chunks to {self.path} ({problem}) nor to {self.rescue_path} "
                f"({exc.strerror or exc}): they are lost"
            ) from None
        raise OutputFolderError(
            f"could not save the processed chunks to {self.path} ({problem}); they are saved in {self.rescue_path}. "
            "Free some space and rerun the same command: it continues from there"
        )

    @staticmethod
    def _dump(snapshot: Mapping[str, Any], path: Path) -> None:
        with atomic_path(path) as tmp, lz4.frame.open(tmp, "wb") as stream:
            cloudpickle.dump(snapshot, stream)

    def exists(self) -> bool:
        return self.path.exists() or self.rescue_path.exists()

    def load(self) -> tuple[Any, dict[str, Any] | None]:
        """The snapshot's running sum and ledger; ``(None, None)`` when there is none."""
        path = self.rescue_path if self.rescue_path.exists() else self.path
        if not path.exists():
            return None, None
        try:
            with lz4.frame.open(path, "rb") as stream:
                snapshot = cloudpickle.load(stream)
        except Exception as exc:  # noqa: BLE001 - written atomically; unreadable means damaged
            raise OutputFolderError(
                f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); rerun with --overwrite"
            ) from None
        if snapshot.get("fingerprint") != self.fingerprint:
            raise OutputFolderError(f"checkpoint {path} belongs to another run; rerun with --overwrite")
        return snapshot["output"], snapshot["ledger"]

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.rescue_path.unlink(missing_ok=True)


__all__ = ["Checkpoints", "GroupPlan", "OutputFolder", "OutputFolderError", "digest"]
