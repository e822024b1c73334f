"""The one place that talks to Rucio: batched queries, call counting, clear errors.

Connection settings come from the standard rucio-clients configuration: the file named
by ``$RUCIO_CONFIG`` (else ``$RUCIO_HOME/etc/rucio.cfg`` / ``/opt/rucio/etc/rucio.cfg``),
section ``[client]``: ``rucio_host``, ``auth_host``, ``auth_type``, ``account`` and the
credentials (``username``/``password`` for userpass, ``client_cert``/``client_key`` for
x509, ...). Short timeouts are used so an unreachable Rucio is reported in seconds.

Queries are batched: one ``list_files`` per DAS name (it carries sizes and event counts),
``list_replicas`` for many DIDs per call. Nothing here makes one call per file.
"""
from __future__ import annotations

import configparser
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import RucioLookupError, RucioUnavailableError

log = logging.getLogger(__name__)

DEFAULT_SCOPE = "cms"
DEFAULT_TIMEOUT = 10.0
REPLICA_BATCH = 100  # DIDs per list_replicas call

# rucio-clients logs connection failures itself at ERROR; we raise a clear error instead
_quiet_rucio_logger = logging.getLogger("pc_datasets.rucio_client")
_quiet_rucio_logger.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class RucioSettings:
    """Where and how to connect; read from a rucio-clients config file."""

    rucio_host: str
    auth_host: str
    account: str
    auth_type: str
    creds: dict[str, str]
    source: str
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT) -> RucioSettings:
        """Read ``[client]`` of the rucio config (``path``, else ``$RUCIO_CONFIG``, else the defaults)."""
        candidates = [str(path)] if path else []
        if not candidates:
            if os.environ.get("RUCIO_CONFIG"):
                candidates = [os.environ["RUCIO_CONFIG"]]
            else:
                home = os.environ.get("RUCIO_HOME")
                candidates = ([f"{home}/etc/rucio.cfg"] if home else []) + ["/opt/rucio/etc/rucio.cfg"]
        source = next((c for c in candidates if os.path.isfile(c)), None)
        if source is None:
            raise RucioUnavailableError(
                f"No Rucio client configuration found (looked at {', '.join(candidates)}); "
                "set RUCIO_CONFIG to your rucio.cfg with a [client] section"
            )
        parser = configparser.ConfigParser()
        try:
            parser.read(source)
        except configparser.Error as exc:
            raise RucioUnavailableError(f"Rucio config {source} cannot be parsed: {exc}") from None
        if not parser.has_section("client") or not parser.has_option("client", "rucio_host"):
            raise RucioUnavailableError(f"Rucio config {source}: section [client] with 'rucio_host' is required")
        client = parser["client"]
        auth_type = client.get("auth_type", "userpass")
        creds: dict[str, str] = {}
        for key in ("username", "password", "client_cert", "client_key", "client_proxy", "oidc_scope", "oidc_audience"):
            if client.get(key):
                creds[key] = client[key]
        return cls(
            rucio_host=client["rucio_host"],
            auth_host=client.get("auth_host", client["rucio_host"]),
            account=client.get("account", os.environ.get("RUCIO_ACCOUNT", "")),
            auth_type=auth_type,
            creds=creds,
            source=source,
            timeout=timeout,
        )


def _rucio_exceptions():
    from rucio.common import exception as rex

    unavailable = (rex.ServerConnectionException, rex.CannotAuthenticate, rex.RucioException)
    return rex, unavailable


def default_client_factory(settings: RucioSettings) -> Any:
    """A rucio ``Client`` built from explicit settings (no hidden global config state)."""
    from rucio.client import Client

    return Client(
        rucio_host=settings.rucio_host,
        auth_host=settings.auth_host,
        account=settings.account or None,
        auth_type=settings.auth_type,
        creds=settings.creds or None,
        timeout=settings.timeout,
        logger=_quiet_rucio_logger,
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def split_did(did: str, default_scope: str = DEFAULT_SCOPE) -> tuple[str, str]:
    """``scope:name`` or a bare CMS name (``/A/B/TIER`` -> scope ``cms``)."""
    if ":" in did and not did.startswith("/"):
        scope, name = did.split(":", 1)
        return scope, name
    return default_scope, did


class RucioGateway:
    """Batched, counted, error-translating access to Rucio.

    One rucio ``Client`` per thread (created lazily by ``client_factory``), so the
    gateway can be used from a thread pool. ``calls`` counts every Rucio API call made.
    """

    def __init__(
        self,
        settings: RucioSettings | None = None,
        client_factory: Callable[[RucioSettings], Any] = default_client_factory,
        scope: str = DEFAULT_SCOPE,
    ) -> None:
        self.settings = settings or RucioSettings.from_config()
        self.scope = scope
        self._factory = client_factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self.calls = 0

    # -- plumbing
    def _where(self) -> str:
        return f"Rucio at {self.settings.rucio_host} (config {self.settings.source})"

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._guard(lambda: self._factory(self.settings), "connecting")
            self._local.client = client
        return client

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.calls += n

    def _guard(self, fn: Callable[[], Any], what: str) -> Any:
        import requests

        rex, _ = _rucio_exceptions()
        try:
            return fn()
        except rex.DataIdentifierNotFound:
            raise
        except (rex.ServerConnectionException, requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RucioUnavailableError(
                f"{self._where()} is unreachable while {what}: {type(exc).__name__}. "
                "Check that the server is up and RUCIO_CONFIG points at it."
            ) from None
        except rex.CannotAuthenticate as exc:
            raise RucioUnavailableError(f"{self._where()} refused the credentials while {what}: {exc}") from None
        except rex.RucioException as exc:
            raise RucioUnavailableError(f"{self._where()} failed while {what}: {type(exc).__name__}: {exc}") from None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a rucio Client method (fully consuming generators) with error translation."""
        client = self._client()
        self._count()
        result = self._guard(lambda: getattr(client, method)(*args, **kwargs), method)
        if isinstance(result, Iterator) or hasattr(result, "__next__"):
            result = self._guard(lambda: list(result), method)
        return result

    # -- queries
    def ping(self) -> None:
        """Fail fast (RucioUnavailableError) when Rucio cannot be reached or refuses us."""
        self.call("whoami")

    def list_rses(self) -> list[str]:
        return sorted(r["rse"] for r in self.call("list_rses"))

    def list_files(self, did: str) -> list[dict[str, Any]]:
        """Files of a container/block/dataset with ``bytes`` and ``events`` (one call)."""
        from rucio.common.exception import DataIdentifierNotFound

        scope, name = split_did(did, self.scope)
        try:
            return self.call("list_files", scope, name)
        except DataIdentifierNotFound:
            raise RucioLookupError(f"{self._where()} does not know the DID {scope}:{name}") from None

    def list_replicas(
        self, dids: Iterable[str], batch: int = REPLICA_BATCH, parallelism: int = 1
    ) -> dict[str, dict[str, Any]]:
        """Replicas of many DIDs (containers, blocks or files), at most ``batch`` DIDs per call.

        Returns ``{lfn: {"bytes": int, "rses": {site: [pfn, ...]}}}`` for AVAILABLE replicas
        with the ``root`` scheme. Unknown DIDs simply contribute nothing (Rucio returns []).
        With ``parallelism`` > 1 the DIDs are split in at least that many calls, run in
        threads (the server spends ~10 ms per file resolving PFNs; this overlaps them).
        """
        wanted = [dict(zip(("scope", "name"), split_did(d, self.scope))) for d in dict.fromkeys(dids)]
        if parallelism > 1 and wanted:
            batch = max(1, min(batch, -(-len(wanted) // parallelism)))
        chunks = [list(c) for c in _chunks(wanted, batch)]
        if parallelism > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=parallelism) as pool:
                answers = list(pool.map(lambda c: self.call("list_replicas", c, schemes=["root"]), chunks))
        else:
            answers = [self.call("list_replicas", c, schemes=["root"]) for c in chunks]
        result: dict[str, dict[str, Any]] = {}
        for answer in answers:
            for rep in answer:
                states = rep.get("states") or {}
                rses = {
                    rse: list(pfns)
                    for rse, pfns in (rep.get("rses") or {}).items()
                    if pfns and states.get(rse, "AVAILABLE") == "AVAILABLE"
                }
                entry = result.setdefault(rep["name"], {"bytes": rep.get("bytes"), "rses": {}})
                entry["rses"].update(rses)
        return result
