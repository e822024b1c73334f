"""Turn dataset requests into filesets: files, replica choice, sizes and event counts.

Rucio traffic: one ``list_files`` per DAS name (threads, ``parallelism`` at a time),
``list_replicas`` for up to 100 DAS names per call, and one ``list_rses`` to validate the
site names the user typed. The number of calls grows with the number of DAS names, never
with the number of files.
"""
from __future__ import annotations

import copy
import logging
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pc_core.cli_support import progress_bar

from .definition import DatasetRequest
from .errors import SiteSelectionError
from .nevents import count_events_parallel
from .rucio_gateway import RucioGateway
from .site_map import SiteMap
from .sites import SiteSelection
from .urls import GLOBAL_REDIRECTOR, join_prefix, local_url, redirector_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    """How to choose replicas and which variants to produce."""

    selection: SiteSelection = field(default_factory=SiteSelection)
    include_redirector: bool = False
    redirector: str = GLOBAL_REDIRECTOR
    site_map: SiteMap | None = None
    parallelism: int = 4
    show_progress: bool = True


@dataclass
class BuiltDataset:
    """One dataset's resolved files; ``sites[i]`` is None where the redirector was used."""

    request: DatasetRequest
    lfns: list[str]
    files: list[str]
    sites: list[str | None]
    file_nevents: list[int]
    file_bytes: list[int]
    count_urls: list[str] = field(default_factory=list)  # where to open a file to count events

    @property
    def name(self) -> str:
        return self.request.name

    def metadata(self) -> dict[str, Any]:
        meta = copy.deepcopy(dict(self.request.metadata))
        meta["das_names"] = list(self.request.das_names)
        meta["nevents"] = int(sum(self.file_nevents))
        meta["size"] = int(sum(self.file_bytes))
        meta["file_nevents"] = list(self.file_nevents)
        return meta

    def entry(self, files: Sequence[str] | None = None) -> dict[str, Any]:
        return {"files": list(self.files if files is None else files), "metadata": self.metadata()}

    def redirector_entry(self, redirector: str = GLOBAL_REDIRECTOR) -> dict[str, Any]:
        return self.entry([redirector_url(f, redirector) for f in self.files])

    def local_entry(self, prefix: str) -> dict[str, Any]:
        return self.entry([local_url(f, prefix) for f in self.files])


def _fetch_file_lists(gateway: RucioGateway, das_names: list[str], options: BuildOptions) -> dict[str, list[dict[str, Any]]]:
    with progress_bar(enabled=options.show_progress, transient=True) as progress, ThreadPoolExecutor(max_workers=max(1, options.parallelism)) as pool:
        task = progress.add_task("Listing files in Rucio", total=len(das_names))
        out: dict[str, list[dict[str, Any]]] = {}
        for das, files in zip(das_names, pool.map(gateway.list_files, das_names)):
            out[das] = files
            progress.advance(task)
    return out


def build_datasets(
    requests: Sequence[DatasetRequest], gateway: RucioGateway, options: BuildOptions = BuildOptions()
) -> list[BuiltDataset]:
    """Resolve every request through Rucio; raise before anything is written on any problem."""
    selection = options.selection
    if selection.named_sites():
        known = set(gateway.list_rses()) | set(options.site_map.sites if options.site_map else ())
        selection.validate_names(known, where=f"Rucio ({gateway.settings.rucio_host})")
    das_names = list(dict.fromkeys(d for r in requests for d in r.das_names))
    file_lists = _fetch_file_lists(gateway, das_names, options)
    with progress_bar(enabled=options.show_progress, transient=True) as progress:
        progress.add_task("Asking Rucio for replicas", total=None)
        replicas = gateway.list_replicas(das_names, parallelism=options.parallelism)
    log.info("Rucio: %d DAS names, %d files with replicas, %d calls so far", len(das_names), len(replicas), gateway.calls)

    rng = random.Random(selection.seed)
    built: list[BuiltDataset] = []
    for request in requests:
        lfns: list[str] = []
        info: dict[str, dict[str, Any]] = {}
        for das in request.das_names:
            # Rucio lists files block by block in no fixed order: sort by LFN for stable output
            for f in sorted(file_lists[das], key=lambda f: f["name"]):
                if f["name"] not in info:
                    lfns.append(f["name"])
                    info[f["name"]] = f
        if not lfns:
            raise SiteSelectionError(f"dataset {request.name}: Rucio lists no files in {', '.join(request.das_names)}")
        files: list[str] = []
        sites: list[str | None] = []
        count_urls: dict[str, str] = {}
        missing: list[str] = []
        holding: set[str] = set()
        for lfn in lfns:
            rses = replicas.get(lfn, {}).get("rses", {})
            holding |= set(rses)
            ordered = selection.order(rses, rng)
            if ordered:
                site = ordered[0]
                url = options.site_map.url(site, lfn) if options.site_map and site in options.site_map else None
                files.append(url or rses[site][0])
                sites.append(site)
            elif options.include_redirector:
                # still count events on a real replica when one exists (at any site)
                if rses:
                    count_urls[lfn] = rses[sorted(rses)[0]][0]
                url = join_prefix(options.redirector, lfn)
                log.warning("dataset %s: no acceptable replica of %s; using the redirector: %s", request.name, lfn, url)
                files.append(url)
                sites.append(None)
            else:
                missing.append(lfn)
        if missing:
            held = ", ".join(sorted(holding)) or "no site at all"
            raise SiteSelectionError(
                f"dataset {request.name} ({', '.join(request.das_names)}): {len(missing)} of {len(lfns)} files have no "
                f"replica at an acceptable site (first: {missing[0]}). Sites holding its files: {held}. "
                "Relax --allowlist-sites/--blocklist-sites/--regex-sites or pass --include-redirector."
            )
        built.append(
            BuiltDataset(
                request=request,
                lfns=lfns,
                files=files,
                sites=sites,
                file_nevents=[info[lfn].get("events") for lfn in lfns],  # type: ignore[misc]
                file_bytes=[int(info[lfn].get("bytes") or 0) for lfn in lfns],
                count_urls=[count_urls.get(lfn, url) for lfn, url in zip(lfns, files)],
            )
        )

    # event counts Rucio does not have: open the chosen replicas with uproot
    todo = [(d, i) for d in built for i, n in enumerate(d.file_nevents) if n is None]
    if todo:
        log.info("%d files lack an event count in Rucio; reading them with uproot", len(todo))
        counts = count_events_parallel([(d.count_urls or d.files)[i] for d, i in todo], options.parallelism, options.show_progress)
        for (d, i), n in zip(todo, counts):
            d.file_nevents[i] = n
    for d in built:
        d.file_nevents = [int(n) for n in d.file_nevents]
    return built
