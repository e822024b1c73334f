"""Register sites and files in a Rucio instance you administer (a local or test Rucio).

Production CMS Rucio is filled by the data-management system; this is for private
instances, the project's integration tests and benchmarks: bulk calls only (one
``add_files_to_dataset`` per block and site).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileSpec:
    """A file to register: LFN, size, adler32 and (optionally) its event count."""

    lfn: str
    bytes: int
    adler32: str
    events: int | None = None


def ensure_rse(client: Any, rse: str, hostname: str, port: int, attributes: Mapping[str, Any] | None = None) -> None:
    """Create an RSE with a root:// protocol (prefix ``/``: PFN = root://host:port//store/...)."""
    from rucio.common.exception import Duplicate, RSEProtocolNotSupported

    try:
        client.add_rse(rse)
    except Duplicate:
        pass
    for key, value in (attributes or {}).items():
        client.add_rse_attribute(rse, key, value)
    try:
        protocols = client.get_protocols(rse)
    except RSEProtocolNotSupported:
        protocols = []
    if not any(p.get("scheme") == "root" for p in protocols):
        client.add_protocol(rse, {
            "scheme": "root", "hostname": hostname, "port": port, "prefix": "/",
            "impl": "rucio.rse.protocols.xrootd.Default",
            "domains": {"lan": {"read": 1, "write": 1, "delete": 1},
                        "wan": {"read": 1, "write": 1, "delete": 1}},
        })


def ensure_scope(client: Any, scope: str = "cms", account: str = "root") -> None:
    from rucio.common.exception import Duplicate

    try:
        client.add_scope(account, scope)
    except Duplicate:
        pass


def register_container(
    client: Any,
    container: str,
    blocks: Mapping[str, Sequence[FileSpec]],
    placement: Mapping[str, Sequence[str]],
    scope: str = "cms",
) -> None:
    """Create ``container`` with ``blocks`` ({block name: files}); ``placement`` maps each LFN to its sites.

    Files go to their first site with ``add_files_to_dataset`` (bulk, with ``events``
    metadata) and to further sites with one ``add_replicas`` per site. Re-running with
    the same content is harmless.
    """
    from rucio.common.exception import DataIdentifierAlreadyExists, Duplicate, FileAlreadyExists, FileReplicaAlreadyExists

    try:
        client.add_container(scope, container)
    except (Duplicate, DataIdentifierAlreadyExists):
        pass
    for block, files in blocks.items():
        try:
            client.add_dataset(scope, block)
            client.attach_dids(scope, container, [{"scope": scope, "name": block}])
        except (Duplicate, DataIdentifierAlreadyExists):
            pass
        by_first: dict[str, list[dict[str, Any]]] = {}
        extra: dict[str, list[dict[str, Any]]] = {}
        for f in files:
            did: dict[str, Any] = {"scope": scope, "name": f.lfn, "bytes": f.bytes, "adler32": f.adler32}
            if f.events is not None:
                did["meta"] = {"events": f.events}
            sites = list(placement[f.lfn])
            by_first.setdefault(sites[0], []).append(did)
            for site in sites[1:]:
                extra.setdefault(site, []).append({k: did[k] for k in ("scope", "name", "bytes", "adler32")})
        for site, dids in by_first.items():
            try:
                client.add_files_to_dataset(scope, block, dids, rse=site)
            except (Duplicate, FileAlreadyExists, FileReplicaAlreadyExists, DataIdentifierAlreadyExists):
                log.debug("files of %s already registered", block)
        for site, dids in extra.items():
            try:
                client.add_replicas(site, dids)
            except (Duplicate, FileReplicaAlreadyExists):
                pass
