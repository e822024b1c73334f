"""Open every input file once before processing: its entry count, its UUID, or why it is unreadable.

coffea's Runner skips unreadable files silently (a Python warning, often in a worker
process) when ``skipbadfiles`` is on. The run finds the files that coffea's preprocessing
could not open and opens each of them once more here, in this process, to name the reason
in the log and the report (or in the error when skipping is off).

Each failure is classified with ``pc_core.read_errors`` (``dead-server``, ``missing-file``,
``corrupt-file``, ``other``), so a dead XRootD server is told apart from a wrong URL.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import uproot

from pc_core.read_errors import MISSING_FILE, OTHER, classify_read_error

log = logging.getLogger(__name__)

DEFAULT_TREENAME = "Events"
# pyxrootd puts the repr of a bound method in its messages: "Failed to submit <bound method
# File.open of <XRootD.client.file.File object at 0x7f..>> request"; keep just "File.open"
_BOUND_METHOD = re.compile(r"<bound method (\S+) of <[^<>]*>>")


def is_read_failure(exc: BaseException) -> bool:
    """True when ``exc`` says an input file could not be read (rather than a bug in the analysis).

    coffea wraps a chunk's failed ``uproot.open`` in a bare ``Exception("Failed to open file:
    ...")`` whose cause can be anything (fsspec-xrootd raises ``ValueError("I/O operation on
    closed file")`` for a handle whose server died); other read failures are recognised by
    ``pc_core.read_errors``.
    """
    if type(exc) is Exception and str(exc).startswith("Failed to open file:"):
        return True
    return classify_read_error(exc) != OTHER


class _ReadFailureMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, BaseException) and is_read_failure(instance)


class InputReadFailure(Exception, metaclass=_ReadFailureMeta):
    """``isinstance(exc, InputReadFailure)`` is ``is_read_failure(exc)``.

    coffea's ``skipbadfiles`` takes exception *types*; this one lets it skip every read
    failure (dead server, missing or corrupt file) without also skipping analysis bugs.
    """


READ_FAILURES: tuple[type[BaseException], ...] = (OSError, InputReadFailure)
"""What ``skip-bad-files`` skips while processing chunks (coffea's ``skipbadfiles``)."""


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


def check_file(dataset: str, file: str, treename: str = DEFAULT_TREENAME, timeout: int | None = 60) -> FileCheck:
    """Open ``file`` and read its tree's entry count; the error message and its kind if that fails.

    ``root://`` URLs are opened with uproot's own XRootD source, not fsspec-xrootd: the
    latter keeps file handles open across calls, and a handle whose server died answers
    "I/O operation on closed file" instead of the server's real state.
    """
    options = {"handler": uproot.source.xrootd.XRootDSource} if file.startswith("root://") else {}
    try:
        with uproot.open({file: None}, timeout=timeout, **options) as opened:
            if treename not in opened:
                return FileCheck(dataset, file, treename, kind=OTHER,
                                 error=f"no {treename!r} tree in the file (keys: {opened.keys()[:10]})")
            tree = opened[treename]
            return FileCheck(dataset, file, treename, entries=int(tree.num_entries), uuid=opened.file.fUUID)
    except FileNotFoundError as exc:
        detail = _first_line(exc)  # over XRootD: "file not found (<the server's answer>)"
        return FileCheck(dataset, file, treename, kind=MISSING_FILE,
                         error=detail if detail.lower().startswith("file not found") else "file not found")
    except Exception as exc:  # noqa: BLE001 - any failure to open is the reason we report
        message = _first_line(exc).replace(f" in file {file}", "")  # the URL is named next to it anyway
        return FileCheck(dataset, file, treename, kind=classify_read_error(exc),
                         error=f"{type(exc).__name__}: {message}"[:500])


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
