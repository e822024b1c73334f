"""Open every input file once before processing: its entry count, its UUID, or why it is unreadable.

coffea's Runner skips unreadable files silently (a Python warning, often in a worker
process) when ``skipbadfiles`` is on. The run finds the files that coffea's preprocessing
could not open and opens each of them once more here, in this process, to name the reason
in the log and the report (or in the error when skipping is off).

Each failure is classified with ``pc_core.read_errors`` (``dead-server``, ``missing-file``,
``corrupt-file``, ``dns``, ``permission``, ``other-io`` for any other failure to open it,
``other`` for a file without the tree), so a dead XRootD server is told apart from a wrong
URL. A file shorter than its ROOT header says is ``corrupt-file`` with the two sizes, even
when uproot can still open it. Opening reads no basket: a corrupt basket only shows when
its branch is read, during processing (``pc_run.failures``), or here with ``branches=``.
"""
from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import uproot

from pc_core.read_errors import CORRUPT_FILE, OTHER, OTHER_IO, classify_read_error

from .failures import one_line, read_location

log = logging.getLogger(__name__)

DEFAULT_TREENAME = "Events"
# pyxrootd puts the repr of a bound method in its messages: "Failed to submit <bound method
# File.open of <XRootD.client.file.File object at 0x7f..>> request"; keep just "File.open"
_BOUND_METHOD = re.compile(r"<bound method (\S+) of <[^<>]*>>")


@dataclass(frozen=True)
class FileCheck:
    """What opening one input file told us."""

    dataset: str
    file: str
    treename: str
    entries: int | None = None
    uuid: bytes | None = None
    error: str | None = None
    kind: str | None = None  # pc_core.read_errors kind when the file could not be read

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """``"<kind>: <error>"`` for reports and messages (empty when the file is fine)."""
        return f"{self.kind}: {self.error}" if self.error else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _BOUND_METHOD.sub(r"\1", text.splitlines()[0]) if text else ""


def _local_path(file: str) -> str | None:
    if file.startswith("file://"):
        return file[len("file://"):]
    return None if "://" in file else file


def _header_end(head: bytes) -> int | None:
    """``fEND`` of a ROOT file header (the file's size once written and closed), None if not a ROOT header."""
    if len(head) < 20 or head[:4] != b"root":
        return None
    version = struct.unpack(">i", head[4:8])[0]
    if version >= 1000000:  # large file: 64-bit seek pointers
        return struct.unpack(">q", head[12:20])[0]
    return struct.unpack(">i", head[12:16])[0]


def _truncation(size: int, end: int | None) -> str | None:
    if end is not None and 0 <= size < end:
        return f"truncated: the file has {size} bytes, its ROOT header says {end}"
    return None


def truncation_reason(file: str) -> str | None:
    """``"truncated: the file has N bytes, its ROOT header says M"`` for a local file shorter than its
    header says (a stat and a 20-byte read); None when it is not, or for a URL."""
    path = _local_path(file)
    if path is None:
        return None
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(20)
    except OSError:
        return None
    if size < 20:  # empty, or cut inside the header
        return f"truncated: the file has {size} bytes, less than a ROOT header" if head == b"root"[: len(head)] else None
    return _truncation(size, _header_end(head))


def check_file(
    dataset: str,
    file: str,
    treename: str = DEFAULT_TREENAME,
    timeout: int | None = 60,
    *,
    branches: Sequence[str] = (),
    entry_range: tuple[int, int] | None = None,
) -> FileCheck:
    """Open ``file`` and read its tree's entry count; the error message and its kind if that fails.

    A file shorter than its ROOT header says is ``corrupt-file`` ("truncated: the file has
    N bytes, its ROOT header says M"). Opening reads no basket; ``branches`` also reads
    those branches (over ``entry_range``, default all entries), to recheck a chunk whose
    read failed: a corrupt basket is ``corrupt-file`` naming the basket and the branch, a
    branch missing from the file ``other``.

    ``root://`` URLs are opened with uproot's own XRootD source, not fsspec-xrootd: the
    latter keeps file handles open across calls, and a handle whose server died answers
    "I/O operation on closed file" instead of the server's real state.
    """
    options = {"handler": uproot.source.xrootd.XRootDSource} if file.startswith("root://") else {}
    try:
        with uproot.open({file: None}, timeout=timeout, **options) as opened:
            truncated = _opened_truncation(opened)
            if truncated:
                return FileCheck(dataset, file, treename, kind=CORRUPT_FILE, error=truncated)
            if treename not in opened:
                return FileCheck(dataset, file, treename, kind=OTHER,
                                 error=f"no {treename!r} tree in the file (keys: {opened.keys()[:10]})")
            tree = opened[treename]
            entries = int(tree.num_entries)
            if branches:
                missing = [b for b in branches if b not in tree]
                if missing:
                    return FileCheck(dataset, file, treename, entries=entries, kind=OTHER,
                                     error=f"no branch {', '.join(map(repr, missing))} in tree {treename!r}")
                start, stop = entry_range or (0, entries)
                try:
                    tree.arrays(list(branches), entry_start=start, entry_stop=stop, library="np")
                except Exception as exc:  # noqa: BLE001 - the reason we report
                    kind = classify_read_error(exc)
                    return FileCheck(dataset, file, treename, entries=entries, kind=OTHER_IO if kind == OTHER else kind,
                                     error=_without_file(one_line(exc) + read_location(exc), file)[:500])
            return FileCheck(dataset, file, treename, entries=entries, uuid=opened.file.fUUID)
    except FileNotFoundError as exc:
        detail = _first_line(exc)  # over XRootD: "file not found (<the server's answer>)"
        return FileCheck(dataset, file, treename, kind=classify_read_error(exc),  # missing-file, dns, permission
                         error=detail if detail.lower().startswith("file not found") else "file not found")
    except Exception as exc:  # noqa: BLE001 - any failure to open is the reason we report
        kind = classify_read_error(exc)
        error = _without_file(one_line(exc), file)
        if kind == CORRUPT_FILE:
            truncated = truncation_reason(file)
            error = f"{truncated} ({error})" if truncated else error
        return FileCheck(dataset, file, treename, kind=OTHER_IO if kind == OTHER else kind, error=error[:500])


def _without_file(message: str, file: str) -> str:
    """The message without uproot's "in file <url>": the URL is named next to it anyway."""
    return message.replace(f" in file {file}", "").replace(f" for file path {file}", "")


def _opened_truncation(opened) -> str | None:
    """A file uproot could open although it is shorter than its header says (cut in its last metadata)."""
    path = _local_path(opened.file.file_path)
    try:
        size = os.path.getsize(path) if path is not None else int(opened.file.source.num_bytes)
        return _truncation(size, int(opened.file.fEND))
    except Exception:  # noqa: BLE001 - a size we cannot learn is no evidence of truncation
        return None


def release_cached_xrootd_handles() -> None:
    """Drop the file handles fsspec-xrootd keeps open in this process, without waiting or raising.

    fsspec-xrootd caches one open handle per URL and closes them all at interpreter exit;
    a handle whose server died makes that exit-time close print a traceback after our own
    error message (fsspec-xrootd 0.5 only ignores timeouts there). Closing them here, fire
    and forget as fsspec-xrootd itself does when its loop is gone, keeps the output clean;
    the next read simply opens a new handle.
    """
    try:
        from fsspec_xrootd.xrootd import XRootDFileSystem
    except ImportError:
        return
    for fs in list(getattr(XRootDFileSystem, "_cache", {}).values()):
        handles = getattr(getattr(fs, "_readonly_filehandle_cache", None), "_cache", None)
        if not isinstance(handles, dict):
            continue
        for item in list(handles.values()):
            try:
                item.handle.close(callback=lambda *args: None)
            except Exception:  # noqa: BLE001 - a handle that cannot even be closed is simply dropped
                pass
        handles.clear()
