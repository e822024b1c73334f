"""Find another replica of a file that a job could not read, avoiding failed URLs and bad sites.

``check-jobs`` identifies a site by the server in the URL (``root://host:port``): that is
what failed, whatever Rucio calls the site. A ``ReplicaLookup`` is any callable
``(urls, blocked_servers, failed_urls) -> {url: replacement}``; the default asks Rucio
(``list_replicas``, one batched call) through ``pc_datasets``. Tests inject their own.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pc_core.urls import lfn_of, normalise_url, server_of

log = logging.getLogger(__name__)

ReplicaLookup = Callable[[Sequence[str], Collection[str], Collection[str]], dict[str, str]]


class RucioReplicaLookup:
    """Ask Rucio for the replicas of the files and pick one on a healthy server.

    The Rucio gateway is created on first use (``$RUCIO_CONFIG``), so watching jobs never
    needs Rucio. For each URL: the first replica (site order of
    ``pc_datasets.sites.SiteSelection``) that is not the URL itself, not on the URL's own
    server, not on a blocked server and not a failed URL. None found: the URL is returned
    unchanged (and a warning logged).
    """

    def __init__(self, gateway: Any | None = None) -> None:
        self._gateway = gateway

    def _get_gateway(self) -> Any:
        if self._gateway is None:
            from pc_datasets.rucio_gateway import RucioGateway

            self._gateway = RucioGateway()
        return self._gateway

    def __call__(self, urls: Sequence[str], blocked: Collection[str], failed: Collection[str]) -> dict[str, str]:
        from pc_datasets.sites import SiteSelection

        lfns = {url: lfn_of(url) for url in urls}
        wanted = sorted({lfn for lfn in lfns.values() if lfn})
        replicas = self._get_gateway().list_replicas(wanted) if wanted else {}
        failed_norm = {normalise_url(u) for u in failed}
        blocked_set = set(blocked)
        order = SiteSelection()
        result: dict[str, str] = {}
        for url in urls:
            lfn = lfns[url]
            result[url] = url
            if lfn is None:
                log.warning("%s has no /store/ LFN: no other replica can be looked up", url)
                continue
            rses = replicas.get(lfn, {}).get("rses", {})
            avoid = blocked_set | {server_of(url)}
            for site in order.order(rses):
                pick = next(
                    (pfn for pfn in rses[site]
                     if server_of(pfn) not in avoid and normalise_url(pfn) not in failed_norm | {normalise_url(url)}),
                    None,
                )
                if pick is not None:
                    result[url] = pick
                    log.info("replica: %s -> %s (site %s)", url, pick, site)
                    break
            else:
                log.warning("no other acceptable replica of %s in Rucio (sites: %s)", url, ", ".join(sorted(rses)) or "none")
        return result


__all__ = ["ReplicaLookup", "RucioReplicaLookup"]
