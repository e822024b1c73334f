"""File URLs, parsed one way (``urllib.parse``) by every package.

A CMS file has a logical name (LFN, ``/store/...``) that is the same on every replica; a
physical URL is a server (``root://host:port``) plus a path that ends with the LFN.
Comparing files, blaming a server and rewriting to another site all start here.
"""
from __future__ import annotations

import os
import posixpath
import re
from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"root": 1094, "xroot": 1094, "http": 80, "https": 443}
_STORE = re.compile(r"(/store/.+)$")


def _is_local(parts) -> bool:
    return parts.scheme in ("", "file") or (len(parts.scheme) == 1 and os.name == "nt")


def normalise_url(url: str) -> str:
    """One spelling per file: absolute real paths for local files (``./a.root``, ``a.root``,
    ``file:///x/a.root`` and a symlink to it are one file), and for URLs a lower-case
    scheme and host, no default port, no repeated slashes after the first one of the path
    (``root://h:1094//store/x`` is ``root://h//store/x``)."""
    text = str(url)
    parts = urlsplit(text)
    if _is_local(parts):
        path = parts.path if parts.scheme == "file" else text
        return os.path.realpath(os.path.expanduser(path))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = parts.path
    if path.strip("/"):
        # XRootD reads root://h/store/x and root://h//store/x as the same file
        leading = "//" if scheme in ("root", "xroot") or path.startswith("//") else "/"
        path = leading + posixpath.normpath(path.lstrip("/"))
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def server_of(url: str) -> str:
    """``root://host:port`` of a URL (the "site" a read failure is blamed on); local paths: ``file://``."""
    parts = urlsplit(str(url))
    if _is_local(parts):
        return "file://"
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def lfn_of(url: str) -> str | None:
    """The ``/store/...`` LFN inside a URL or path, or None when it has none."""
    path = urlsplit(url).path if "://" in url else url
    match = _STORE.search(re.sub(r"/{2,}", "/", path))
    return match.group(1) if match else None


def join_prefix(prefix: str, lfn: str) -> str:
    """Prefix + LFN with exactly the slashes XRootD expects (``root://host//store/...``)."""
    parts = urlsplit(prefix)
    if parts.scheme and parts.netloc:
        path = parts.path.strip("/")
        base = f"{parts.scheme}://{parts.netloc}/" + (f"/{path}" if path else "")
        return base + "/" + lfn.lstrip("/")
    return prefix.rstrip("/") + "/" + lfn.lstrip("/")
