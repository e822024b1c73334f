"""Rewriting file URLs to the global redirector or a local mount (parsing: ``pc_core.urls``)."""
from __future__ import annotations

from pc_core.urls import join_prefix, lfn_of

GLOBAL_REDIRECTOR = "root://xrootd-cms.infn.it//"


def redirector_url(url: str, redirector: str = GLOBAL_REDIRECTOR) -> str:
    """The URL through the redirector; a URL without a ``/store/`` LFN is returned unchanged."""
    lfn = lfn_of(url)
    return url if lfn is None else join_prefix(redirector, lfn)


def local_url(url: str, prefix: str) -> str:
    """The URL rewritten to a local mount (e.g. ``/eos/cms``); URLs without an LFN unchanged."""
    lfn = lfn_of(url)
    return url if lfn is None else join_prefix(prefix, lfn)


__all__ = ["GLOBAL_REDIRECTOR", "join_prefix", "lfn_of", "local_url", "redirector_url"]
