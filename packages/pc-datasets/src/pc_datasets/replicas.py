"""Replica tools for the job tools: find another replica, move filesets off sites.

All functions return new objects and never mutate their input; every rewrite is logged
(logger ``pc_datasets.replicas``, INFO) and returned as a ``Rewrite`` record. Rucio is
asked in batches (``list_replicas`` on many LFNs per call). When Rucio offers no
acceptable replica the URL falls back to the global redirector + LFN.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pc_core.urls import normalise_url

from .rucio_gateway import RucioGateway
from .site_map import SiteMap
from .sites import SiteSelection
from .urls import GLOBAL_REDIRECTOR, join_prefix, lfn_of, redirector_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rewrite:
    """One file URL changed: where, from, to and why."""

    dataset: str | None
    index: int | None
    old: str
    new: str
    reason: str


@dataclass
class RewriteResult:
    """The rewritten fileset (a deep copy) and the list of rewrites made."""

    fileset: dict[str, Any]
    rewrites: list[Rewrite] = field(default_factory=list)


def site_of(url: str, rses: Mapping[str, Sequence[str]], site_map: SiteMap | None = None) -> str | None:
    """The site serving ``url``: the Rucio site listing that PFN, else the site-map site whose URL matches."""
    target = normalise_url(url)
    for site, pfns in rses.items():
        if any(normalise_url(p) == target for p in pfns):
            return site
    lfn = lfn_of(url)
    if site_map is not None and lfn is not None:
        for site in site_map.sites:
            candidate = site_map.url(site, lfn)
            if candidate and normalise_url(candidate) == target:
                return site
    return None


def _pick(
    lfn: str,
    rses: Mapping[str, Sequence[str]],
    avoid_sites: set[str],
    failed: set[str],
    selection: SiteSelection,
    site_map: SiteMap | None,
) -> tuple[str, str] | None:
    for site in selection.order(rses):
        if site in avoid_sites:
            continue
        candidates = [site_map.url(site, lfn)] if site_map is not None and site in site_map else []
        candidates += list(rses[site])
        for url in candidates:
            if url and normalise_url(url) not in failed:
                return site, url
    return None


def find_other_replicas(
    urls: Sequence[str],
    gateway: RucioGateway,
    *,
    blocklist_sites: Iterable[str] = (),
    failed_urls: Iterable[str] = (),
    current_sites: Mapping[str, str] | None = None,
    redirector: str = GLOBAL_REDIRECTOR,
    site_map: SiteMap | None = None,
    selection: SiteSelection | None = None,
) -> dict[str, str]:
    """For each URL, a replica at another acceptable site (one batched Rucio lookup).

    Skipped: blocklisted sites, URLs in ``failed_urls`` (and the URL itself), and the site
    currently serving the URL (``current_sites[url]`` or the site Rucio lists for that
    PFN). No acceptable replica: redirector + LFN. A URL without a ``/store/`` LFN is
    returned unchanged (nothing to look up).
    """
    selection = selection or SiteSelection()
    blocked = set(blocklist_sites)
    failed = {normalise_url(u) for u in failed_urls}
    lfns = {u: lfn_of(u) for u in urls}
    replicas = gateway.list_replicas(sorted({lfn for lfn in lfns.values() if lfn}))
    result: dict[str, str] = {}
    for url in urls:
        lfn = lfns[url]
        if lfn is None:
            log.warning("no /store/ LFN in %s: cannot look for another replica, left unchanged", url)
            result[url] = url
            continue
        rses = replicas.get(lfn, {}).get("rses", {})
        current = (current_sites or {}).get(url) or site_of(url, rses, site_map)
        avoid = blocked | ({current} if current else set())
        picked = _pick(lfn, rses, avoid, failed | {normalise_url(url)}, selection, site_map)
        if picked is None:
            new = join_prefix(redirector, lfn)
            log.info("replica: %s -> %s (no other acceptable replica in Rucio; global redirector)", url, new)
        else:
            new = picked[1]
            log.info("replica: %s -> %s (site %s instead of %s)", url, new, picked[0], current or "unknown")
        result[url] = new
    return result


def find_other_replica(url: str, gateway: RucioGateway, **kwargs: Any) -> str:
    """Another replica of one file; see ``find_other_replicas`` for the rules."""
    return find_other_replicas([url], gateway, **kwargs)[url]


def rewrite_fileset_away_from_sites(
    fileset: Mapping[str, Any],
    blocklist_sites: Iterable[str],
    gateway: RucioGateway,
    *,
    redirector: str = GLOBAL_REDIRECTOR,
    site_map: SiteMap | None = None,
    failed_urls: Iterable[str] = (),
) -> RewriteResult:
    """A copy of ``fileset`` where every file served by a blocklisted site moves elsewhere.

    Files at other sites (and URLs without a ``/store/`` LFN) are untouched; file order
    and metadata are preserved. One batched Rucio lookup for the whole fileset.
    """
    blocked = set(blocklist_sites)
    out = copy.deepcopy(dict(fileset))
    if not blocked:
        return RewriteResult(out)
    all_urls = [u for entry in out.values() for u in entry.get("files", [])]
    lfns = sorted({lfn for u in all_urls if (lfn := lfn_of(u))})
    replicas = gateway.list_replicas(lfns)
    to_move: dict[str, str] = {}
    for url in all_urls:
        lfn = lfn_of(url)
        if lfn is None:
            continue
        site = site_of(url, replicas.get(lfn, {}).get("rses", {}), site_map)
        if site in blocked:
            to_move[url] = site
    if not to_move:
        return RewriteResult(out)
    # reuse the lookup above instead of a second Rucio call
    selection = SiteSelection()
    failed = {normalise_url(u) for u in failed_urls}
    rewrites: list[Rewrite] = []
    for dataset, entry in out.items():
        files = entry.get("files", [])
        for i, url in enumerate(files):
            if url not in to_move:
                continue
            lfn = lfn_of(url)
            assert lfn is not None
            rses = replicas.get(lfn, {}).get("rses", {})
            picked = _pick(lfn, rses, blocked, failed | {normalise_url(url)}, selection, site_map)
            new = picked[1] if picked else join_prefix(redirector, lfn)
            reason = (f"site {to_move[url]} blocklisted; replica at {picked[0]}" if picked
                      else f"site {to_move[url]} blocklisted; no other replica, global redirector")
            files[i] = new
            rewrites.append(Rewrite(dataset, i, url, new, reason))
            log.info("%s[%d]: %s -> %s (%s)", dataset, i, url, new, reason)
    return RewriteResult(out, rewrites)


def rewrite_fileset_to_redirector(fileset: Mapping[str, Any], redirector: str = GLOBAL_REDIRECTOR) -> RewriteResult:
    """A copy of ``fileset`` with every ``/store/`` URL through the redirector (no Rucio)."""
    out = copy.deepcopy(dict(fileset))
    rewrites: list[Rewrite] = []
    for dataset, entry in out.items():
        files = entry.get("files", [])
        for i, url in enumerate(files):
            new = redirector_url(url, redirector)
            if new != url:
                files[i] = new
                rewrites.append(Rewrite(dataset, i, url, new, "global redirector"))
                log.info("%s[%d]: %s -> %s (global redirector)", dataset, i, url, new)
            elif lfn_of(url) is None:
                log.info("%s[%d]: %s has no /store/ LFN; left unchanged", dataset, i, url)
    return RewriteResult(out, rewrites)
