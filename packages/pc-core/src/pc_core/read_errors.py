"""Classify why reading a file failed, so callers can retry elsewhere, skip it or stop.

``classify_read_error(exc)`` returns one of:

- ``"dead-server"``: the server did not answer (connection refused/reset, timeout,
  "Operation expired", socket errors, a handle whose server died): try another replica of
  the same file, or retry when the site is back;
- ``"missing-file"``: the server answered that the file is not there (XRootD [3011],
  ``FileNotFoundError``, "No such file", HTTP 404): another replica may exist, the URL is wrong;
- ``"corrupt-file"``: the bytes arrived but are not a readable ROOT file: not a ROOT file
  (wrong magic), a file shorter than its ROOT header says (truncated), a basket that
  cannot be decompressed or deserialised (uproot's ``DeserializationError``);
- ``"dns"``: the host name of the URL could not be resolved ("Name or service not known",
  ``socket.gaierror``, XRootD's "[FATAL] Invalid address");
- ``"permission"``: the file is there but reading it is refused (``EACCES``/``EPERM``,
  "Permission denied", XRootD [3010] not authorised, "Auth failed": no valid grid proxy);
- ``"other"``: nothing above: not recognisably a read failure (a bug, ...): do not hide it.

``"other-io"`` is in ``READ_ERROR_KINDS`` too but ``classify_read_error`` never returns it:
callers that *know* a failure happened while reading a file (opening it, or a failure raised
inside uproot's I/O) use it for the read failures none of the kinds above names.

It only inspects the exception chain (type, errno, message, and the file names of the
frames that raised), so it works for uproot's fsspec-xrootd and pyxrootd handlers, local
files and HTTP alike. It lives in pc-core (no third-party imports) because both the runner
(pc-run) and the replica tools (pc-datasets, which re-exports it) need it, and neither may
import the other.
"""
from __future__ import annotations

import errno as _errno
import re

DEAD_SERVER = "dead-server"
MISSING_FILE = "missing-file"
CORRUPT_FILE = "corrupt-file"
DNS = "dns"
PERMISSION = "permission"
OTHER_IO = "other-io"
OTHER = "other"
READ_ERROR_KINDS = (DEAD_SERVER, MISSING_FILE, CORRUPT_FILE, DNS, PERMISSION, OTHER_IO, OTHER)
"""Every kind, most specific first; all but ``other`` mean that an input file could not be read."""

_HINTS = {
    DEAD_SERVER: "the server did not answer: read another replica (pc_datasets.rewrite_fileset_away_from_sites "
                 "or build-datasets --blocklist-sites) or retry when the site is back",
    MISSING_FILE: "the server answered that the file is not there: check the URL or read another replica",
    CORRUPT_FILE: "the bytes are not a readable ROOT file (truncated, or a damaged basket): read another replica "
                  "or remove the file",
    DNS: "the host name in the URL could not be resolved: check the host name and this machine's network/DNS "
         "(a temporary DNS failure may pass on retry), or read another replica",
    PERMISSION: "reading the file was refused: check its permissions, or your grid proxy (voms-proxy-info) for "
                "XRootD/HTTPS URLs, or read another replica",
    OTHER_IO: "an I/O error none of the known kinds names: retry, or read another replica",
    OTHER: "",
}

_DNS = re.compile(
    r"name or service not known|temporary failure in name resolution|nodename nor servname|"
    r"no address associated with hostname|could not resolve host|getaddrinfo failed|name does not resolve|"
    r"\[FATAL\] invalid address|failed to resolve|DNSError",
    re.I,
)
_PERMISSION = re.compile(
    r"permission denied|\[3010\]|not authori[sz]ed|auth(entication)? failed|operation not permitted|"
    r"\b403\b.{0,20}forbidden|\b401\b.{0,20}unauthori[sz]ed",
    re.I,
)
_MISSING = re.compile(r"\[3011\]|no such file|does not exist|\b404\b.{0,20}not found", re.I)
_DEAD = re.compile(
    r"operation expired|connection refused|connection reset|socket error|"
    r"no route to host|network is unreachable|timed out|timeout|\[FATAL\] (connection|socket)|"
    r"stream is broken|I/O operation on closed file|"
    r"ClientConnectorError|ServerDisconnectedError|ClientOSError|ClientPayloadError|RemoteDisconnected",  # aiohttp, http.client
    re.I,
)
_CORRUPT = re.compile(
    r"not a ROOT file|wrong magic|decompress|truncated|expected Chunk of length|DeserializationError|"
    r"compressed data ended|corrupt input data|input format not supported|checksum",
    re.I,
)
# exception types of the decompressors uproot uses, by module (no imports: pc-core stays pure)
_DECOMPRESSOR_MODULES = ("zlib", "lzma", "_lzma", "zstandard", "zstd", "lz4", "cramjam", "isal", "deflate")
# the raise site of a decompression or deserialisation failure, whatever the exception type
_CORRUPT_SITES = ("uproot/compression.py", "uproot/deserialization.py", "uproot/models/TBasket.py")
_DEAD_ERRNOS = {_errno.ECONNREFUSED, _errno.ECONNRESET, _errno.ETIMEDOUT, _errno.EHOSTUNREACH, _errno.ENETUNREACH,
                _errno.ECONNABORTED, _errno.EPIPE}
_PERMISSION_ERRNOS = {_errno.EACCES, _errno.EPERM}


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc``, its cause (or context), that one's cause, ...: outermost first, each once."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def raise_site(exc: BaseException) -> str:
    """The file name of the frame that raised ``exc`` (``/`` separated; empty without a traceback)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.replace("\\", "/")


def is_corrupt_exception(exc: BaseException) -> bool:
    """uproot could not deserialise or decompress what it read (a ``DeserializationError``, ``zlib.error``, ...)."""
    kind = type(exc)
    if kind.__name__ == "DeserializationError" or kind.__name__ in ("LZMAError", "ZstdError", "LZ4FrameError"):
        return True
    module = (kind.__module__ or "").split(".")[0]
    if module in _DECOMPRESSOR_MODULES and not isinstance(exc, OSError):
        return True  # zlib.error, lzma.LZMAError, zstd.ZstdError, ...
    return raise_site(exc).endswith(_CORRUPT_SITES)


def _text(chain: list[BaseException]) -> str:
    return " | ".join(f"{type(item).__name__}: {item}" for item in chain)


def classify_read_error(exc: BaseException) -> str:
    """Name the kind of read failure: dead-server, missing-file, corrupt-file, dns, permission or other."""
    chain = exception_chain(exc)
    if any(is_corrupt_exception(item) for item in chain):
        return CORRUPT_FILE
    text = _text(chain)
    if any(type(item).__name__ == "gaierror" or "DNSError" in type(item).__name__ for item in chain) or _DNS.search(text):
        return DNS
    if any(isinstance(item, PermissionError) or getattr(item, "errno", None) in _PERMISSION_ERRNOS for item in chain):
        return PERMISSION
    if _PERMISSION.search(text):
        return PERMISSION
    if any(isinstance(item, FileNotFoundError) for item in chain):
        return MISSING_FILE
    if any(isinstance(item, (TimeoutError, ConnectionError)) or getattr(item, "errno", None) in _DEAD_ERRNOS
           for item in chain):
        return DEAD_SERVER
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
