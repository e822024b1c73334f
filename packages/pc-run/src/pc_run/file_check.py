"""Open every input file once before processing: its entry count, its UUID, or why it is unreadable.

coffea's Runner skips unreadable files silently (a Python warning, often in a worker
process) when ``skipbadfiles`` is on. Checking the files up front, in this process, lets the
run name every skipped file and the reason in the log and the report, or fail at once naming
the file when skipping is off. The result also fills the Runner's metadata cache, so coffea
does not open the files a second time to find their sizes.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import uproot

log = logging.getLogger(__name__)

DEFAULT_TREENAME = "Events"


@dataclass(frozen=True)
class FileCheck:
    """What opening one input file told us."""

    dataset: str
    file: str
    treename: str
    entries: int | None = None
    uuid: bytes | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _check_one(dataset: str, file: str, treename: str, timeout: int | None) -> FileCheck:
    try:
        with uproot.open({file: None}, timeout=timeout) as opened:
            if treename not in opened:
                return FileCheck(dataset, file, treename, error=f"no {treename!r} tree in the file (keys: {opened.keys()[:10]})")
            tree = opened[treename]
            return FileCheck(dataset, file, treename, entries=int(tree.num_entries), uuid=opened.file.fUUID)
    except FileNotFoundError:
        return FileCheck(dataset, file, treename, error="file not found")
    except Exception as exc:  # noqa: BLE001 - any failure to open is the reason we report
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return FileCheck(dataset, file, treename, error=f"{type(exc).__name__}: {message}"[:500])


def check_files(
    fileset: Mapping[str, Mapping[str, Any]],
    threads: int = 8,
    timeout: int | None = 60,
) -> list[FileCheck]:
    """Open every file of the fileset (a few at a time, I/O bound) and report on each, in fileset order."""
    tasks = []
    for dataset, entry in fileset.items():
        treename = entry.get("treename", DEFAULT_TREENAME)
        for file in entry["files"]:
            tasks.append((dataset, file, treename))
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(tasks)))) as pool:
        results = list(pool.map(lambda t: _check_one(*t, timeout), tasks))
    return results
