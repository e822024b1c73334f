"""Real broken copies of real NanoAOD files, for the tests of read failures.

Every function copies a source file (the read-only samples of ``../shared/data/nanoaod``)
to ``dst`` first and breaks the copy; nothing is mocked: uproot reads the broken bytes.

- ``truncated_copy``: the first ``fraction`` of the file, as a transfer cut short leaves
  it; uproot cannot open it (the file's metadata is at its end);
- ``corrupt_basket_copy``: one basket of one branch damaged, the rest intact: the file
  opens, its tree and entry count read fine, reading that branch raises:
  ``part="payload"`` overwrites the compressed bytes (a decompression error, ``zlib.error``
  for the ZLIB samples), ``part="header"`` the basket's key header (uproot's
  ``DeserializationError``, whether the basket is compressed or not);
- ``rewritten_copy``: some branches rewritten with uproot's writer, with another compression
  (LZMA, ZSTD) or none (``uncompressed_copy``; then ``corrupt_basket_copy(..., part="header")``
  breaks an uncompressed basket); leaving out a branch makes a file that lacks it;
- ``unreadable_copy``: the copy with mode 000. Root (and CAP_DAC_OVERRIDE) reads it anyway:
  ``reads_blocked(path)`` says whether this process is refused;
- ``FileServer``: a real HTTP server (byte ranges, as uproot reads) on 127.0.0.1 serving one
  file; ``stop()`` makes it die, e.g. between two lazy reads of NanoEvents, ``restart()``
  brings it back at the same URL.

Import from a test of this folder as ``from faults import ...`` (pytest puts the folder of
a test module on ``sys.path``; ``tests/`` itself is there too, so ``reliability.faults``
works from other folders).
"""
from __future__ import annotations

import http.server
import os
import re
import shutil
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

import uproot

_KEY_HEADER = struct.Struct(">ihiihh")  # fNbytes, fVersion, fObjlen, fDatime, fKeylen, fCycle
_COMPRESSION_HEADER = 9  # algorithm (2 bytes), method (1), compressed size (3), uncompressed size (3)


def _copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)  # contents only: the samples are read-only, the copy must not be
    dst.chmod(0o644)
    return dst


def truncated_copy(src: str | os.PathLike, dst: str | os.PathLike, fraction: float = 0.6) -> Path:
    """``dst`` holds the first ``fraction`` of ``src``'s bytes."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), not {fraction}")
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def basket_position(path: str | os.PathLike, branch: str, basket: int = 0, treename: str = "Events") -> dict[str, int]:
    """Where basket ``basket`` of ``branch`` is in the file: its seek, total bytes, key length, object length."""
    with uproot.open(path) as opened:
        tree = opened[treename]
        if branch not in tree:
            raise KeyError(f"no branch {branch!r} in {path}")
        item = tree[branch]
        if not 0 <= basket < item.num_baskets:
            raise IndexError(f"branch {branch!r} has {item.num_baskets} baskets, not {basket + 1}")
        seek = int(item.member("fBasketSeek")[basket])
    with open(path, "rb") as handle:
        handle.seek(seek)
        nbytes, _version, objlen, _datime, keylen, _cycle = _KEY_HEADER.unpack(handle.read(_KEY_HEADER.size))
    return {"seek": seek, "nbytes": nbytes, "keylen": keylen, "objlen": objlen}


def corrupt_basket_copy(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    branch: str = "Muon_pt",
    basket: int = 0,
    part: str = "payload",
    treename: str = "Events",
) -> Path:
    """A copy whose basket ``basket`` of ``branch`` cannot be read (see the module docstring for ``part``)."""
    dst = _copy(src, dst)
    where = basket_position(dst, branch, basket, treename)
    seek, nbytes, keylen, objlen = where["seek"], where["nbytes"], where["keylen"], where["objlen"]
    data = bytearray(dst.read_bytes())
    if part == "header":
        # fObjlen, fDatime, fKeylen: the key that says where the basket's bytes start and end
        data[seek + 6 : seek + 18] = b"\x5a" * 12
    elif part == "payload":
        if nbytes - keylen == objlen:
            raise ValueError(f"basket {basket} of {branch!r} is not compressed: its payload is raw numbers, damaging "
                             "them raises nothing; use part='header'")
        start = seek + keylen + _COMPRESSION_HEADER + 2  # keep the header and the first bytes of the stream
        data[start : seek + nbytes] = b"\x5a" * (seek + nbytes - start)
    else:
        raise ValueError(f"part must be 'payload' or 'header', not {part!r}")
    dst.write_bytes(bytes(data))
    return dst


MUON_BRANCHES = ("run", "luminosityBlock", "event", "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge")


def rewritten_copy(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    branches: Sequence[str] = MUON_BRANCHES,
    compression=None,
    treename: str = "Events",
) -> Path:
    """``branches`` of ``src``'s tree written to ``dst`` by uproot's writer with ``compression``
    (``None``, ``uproot.LZMA(5)``, ``uproot.ZSTD(5)``...): jagged ``<Collection>_*`` branches share
    their counter ``n<Collection>``, which must be among ``branches``."""
    with uproot.open(src) as opened:
        arrays = opened[treename].arrays(list(branches), how=dict)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(dst, compression=compression) as out:
        out.mktree(treename, {name: array.type for name, array in arrays.items() if not name.startswith("n")},
                   counter_name=lambda counted: "n" + counted.split("_")[0])
        out[treename].extend({name: array for name, array in arrays.items() if not name.startswith("n")})
    return dst


def uncompressed_copy(src: str | os.PathLike, dst: str | os.PathLike, branches: Sequence[str] = MUON_BRANCHES) -> Path:
    """``rewritten_copy`` without compression."""
    return rewritten_copy(src, dst, branches, compression=None)


def unreadable_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A copy with mode 000 (``reads_blocked`` says whether that stops this process)."""
    dst = _copy(src, dst)
    dst.chmod(0)
    return dst


def reads_blocked(path: str | os.PathLike) -> bool:
    """True when this process may not open ``path`` (False for root, who reads a mode-000 file)."""
    try:
        with open(path, "rb"):
            return False
    except PermissionError:
        return True


class FileServer:
    """Serve one file over HTTP with byte ranges on 127.0.0.1 (a free port) until ``stop()``."""

    def __init__(self, path: str | os.PathLike):
        data = Path(path).read_bytes()
        served = self.served = []  # the byte ranges asked for, in order

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _headers(self, status: int, length: int, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()

            def do_HEAD(self):
                self._headers(200, len(data))

            def do_GET(self):
                match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if not match:
                    self._headers(200, len(data))
                    self.wfile.write(data)
                    return
                start = int(match.group(1))
                stop = min(int(match.group(2) or len(data) - 1), len(data) - 1)
                served.append((start, stop))
                body = data[start : stop + 1]
                self._headers(206, len(body), {"Content-Range": f"bytes {start}-{stop}/{len(data)}"})
                self.wfile.write(body)

        self._handler = Handler
        self._serve(0)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/{Path(path).name}"

    def _serve(self, port: int) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The server dies: its port refuses connections from now on."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def restart(self) -> None:
        """A stopped server comes back, at the same URL (a storage server after its restart)."""
        if not self._thread.is_alive():
            self._serve(self._server.server_address[1])

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
