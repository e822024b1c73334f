"""File URLs: logical file names (LFNs), the global redirector, local prefixes.

CMS files are named by an LFN ``/store/...``; a physical URL (PFN) is a site prefix plus
the LFN. Everything here works on strings and never needs Rucio.
"""
from __future__ import annotations

import re

GLOBAL_REDIRECTOR = "root://xrootd-cms.infn.it//"

_STORE = re.compile(r"(/store/.+)$")


def lfn_of(url: str) -> str | None:
    """The ``/store/...`` LFN inside a URL or path, or None when it has none."""
    # root://host:port//store/x -> '//store/x'; collapse the double slash first
    path = re.sub(r"^[a-z]+://[^/]+/", "/", url) if "://" in url else url
    path = re.sub(r"/{2,}", "/", path)
    match = _STORE.search(path)
    return match.group(1) if match else None


def join_prefix(prefix: str, lfn: str) -> str:
    """Prefix + LFN with exactly the slashes XRootD expects (``root://host//store/...``)."""
    if "://" in prefix:
        scheme, rest = prefix.split("://", 1)
        host, _, path = rest.partition("/")
        path = path.strip("/")
        base = f"{scheme}://{host}/" + (f"/{path}" if path else "")
        return base + "/" + lfn.lstrip("/")
    return prefix.rstrip("/") + "/" + lfn.lstrip("/")


def redirector_url(url: str, redirector: str = GLOBAL_REDIRECTOR) -> str:
    """The URL through the redirector; a URL without a ``/store/`` LFN is returned unchanged."""
    lfn = lfn_of(url)
    return url if lfn is None else join_prefix(redirector, lfn)


def local_url(url: str, prefix: str) -> str:
    """The URL rewritten to a local mount (e.g. ``/eos/cms``); URLs without an LFN unchanged."""
    lfn = lfn_of(url)
    return url if lfn is None else join_prefix(prefix, lfn)
