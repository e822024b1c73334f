"""Classify why reading a file failed, so callers can retry elsewhere or skip it.

``classify_read_error(exc)`` returns one of:

- ``"dead-server"``: the server did not answer (connection refused/reset, timeout,
  "Operation expired", socket errors): try another replica of the same file;
- ``"missing-file"``: the server answered that the file is not there (XRootD [3011],
  ``FileNotFoundError``, "No such file"): another replica may exist, the URL is wrong;
- ``"corrupt-file"``: the bytes arrived but are not a readable ROOT file;
- ``"other"``: anything else (a bug, permissions, ...): do not hide it.

It only inspects the exception chain (type, errno, message), so it works for uproot's
fsspec-xrootd and pyxrootd handlers, local files and HTTP alike. It lives in pc-core (no
third-party imports) because both the runner (pc-run) and the replica tools (pc-datasets,
which re-exports it) need it, and neither may import the other.
"""
from __future__ import annotations

import errno as _errno
import re

DEAD_SERVER = "dead-server"
MISSING_FILE = "missing-file"
CORRUPT_FILE = "corrupt-file"
OTHER = "other"
READ_ERROR_KINDS = (DEAD_SERVER, MISSING_FILE, CORRUPT_FILE, OTHER)

_HINTS = {
    DEAD_SERVER: "the server did not answer: read another replica (pc_datasets.rewrite_fileset_away_from_sites "
                 "or build-datasets --blocklist-sites) or retry when the site is back",
    MISSING_FILE: "the server answered that the file is not there: check the URL or read another replica",
    CORRUPT_FILE: "the bytes are not a readable ROOT file: read another replica or remove the file",
    OTHER: "",
}

_MISSING = re.compile(r"\[3011\]|no such file|does not exist|\[ERROR\] Server responded with an error: \[3011\]", re.I)
_DEAD = re.compile(
    r"operation expired|connection refused|connection reset|socket error|\[3010\]|"
    r"no route to host|network is unreachable|timed out|timeout|\[FATAL\] (connection|socket|invalid address)|"
    r"stream is broken|name or service not known|auth failed",
    re.I,
)
_CORRUPT = re.compile(r"not a ROOT file|wrong magic|decompress|truncated", re.I)
_DEAD_ERRNOS = {_errno.ECONNREFUSED, _errno.ECONNRESET, _errno.ETIMEDOUT, _errno.EHOSTUNREACH, _errno.ENETUNREACH}


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def classify_read_error(exc: BaseException) -> str:
    """Name the kind of read failure: dead-server, missing-file, corrupt-file or other."""
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, FileNotFoundError):
            return MISSING_FILE
    for item in chain:
        if isinstance(item, (TimeoutError, ConnectionError)) or getattr(item, "errno", None) in _DEAD_ERRNOS:
            return DEAD_SERVER
    text = " | ".join(f"{type(item).__name__}: {item}" for item in chain)
    if _MISSING.search(text):
        return MISSING_FILE
    if _DEAD.search(text):
        return DEAD_SERVER
    if _CORRUPT.search(text):
        return CORRUPT_FILE
    return OTHER


def read_error_hint(kind: str) -> str:
    """What a user can do about a read failure of this kind (empty for ``other``)."""
    return _HINTS.get(kind, "")
