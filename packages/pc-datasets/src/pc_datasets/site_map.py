"""Site map: CMS site name -> how to turn an LFN into a URL at that site.

Two input forms are accepted (a local path or an http(s) URL):

- a simple YAML/JSON mapping ``{T2_CH_CERN: "root://eoscms.cern.ch//eos/cms", ...}``
  (the URL is prefix + LFN);
- the CMS ``storage.json`` style: a list of ``{"site": ..., "protocols": [{"protocol":
  "XRootD", "access": "global-ro", "prefix": ...} or {..., "rules": [{"lfn": regex,
  "pfn": template with $1}]}]}``. The first XRootD protocol with access
  global-ro/global-rw/site-ro/site-rw (in that preference) is used.

The parsed map is cached in the user cache folder (see ``cache.py``) with an expiry, so
a remote site map is fetched at most once per expiry period; a local file is re-parsed
whenever its modification time or size changes.
"""
from __future__ import annotations

import logging
import os
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pc_core.yaml_reader import parse_yaml

from .cache import DEFAULT_EXPIRY_SECONDS, read_cache, write_cache
from .errors import SiteMapError
from .urls import join_prefix

log = logging.getLogger(__name__)

ACCESS_PREFERENCE = ("global-ro", "global-rw", "site-ro", "site-rw", "")
CACHE_NAMESPACE = "sitemaps"


@dataclass(frozen=True)
class SiteRule:
    """One site's LFN -> URL recipe: a prefix, or regex rules tried in order."""

    prefix: str | None = None
    rules: tuple[tuple[str, str], ...] = ()

    def url(self, lfn: str) -> str | None:
        if self.prefix is not None:
            return join_prefix(self.prefix, lfn)
        for pattern, template in self.rules:
            match = re.match(pattern, lfn)
            if match:
                # storage.json uses $1, $2 ...; turn them into \1 for re
                return match.expand(re.sub(r"\$(\d+)", r"\\\1", template))
        return None


@dataclass(frozen=True)
class SiteMap:
    """Site name -> ``SiteRule``. Immutable; ``url(site, lfn)`` gives the URL or None."""

    sites: Mapping[str, SiteRule] = field(default_factory=dict)
    source: str = "<empty>"

    def __contains__(self, site: str) -> bool:
        return site in self.sites

    def url(self, site: str, lfn: str) -> str | None:
        rule = self.sites.get(site)
        return None if rule is None else rule.url(lfn)

    def to_json(self) -> dict[str, Any]:
        return {s: {"prefix": r.prefix, "rules": [list(x) for x in r.rules]} for s, r in self.sites.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> SiteMap:
        return cls({s: SiteRule(v["prefix"], tuple(tuple(x) for x in v["rules"])) for s, v in data.items()}, source)


def parse_site_map(data: Any, source: str) -> SiteMap:
    """Parse the already-decoded content of a site-map file (either accepted form)."""
    if isinstance(data, Mapping):
        sites = {}
        for site, prefix in data.items():
            if not isinstance(prefix, str) or not prefix:
                raise SiteMapError(
                    f"{source}: site {site!r} maps to {prefix!r}; a simple site map needs "
                    "{site: 'root://host//prefix'} with a non-empty string prefix"
                )
            sites[str(site)] = SiteRule(prefix=prefix)
        return SiteMap(sites, source)
    if isinstance(data, list):
        sites: dict[str, SiteRule] = {}
        for i, entry in enumerate(data):
            if not isinstance(entry, Mapping) or "site" not in entry or not isinstance(entry.get("protocols"), list):
                raise SiteMapError(f"{source}: entry [{i}] needs 'site' and a 'protocols' list (CMS storage.json style)")
            rule = _storage_json_rule(entry, f"{source}: entry [{i}] ({entry['site']})")
            if rule is not None and entry["site"] not in sites:
                sites[str(entry["site"])] = rule
        return SiteMap(sites, source)
    raise SiteMapError(
        f"{source}: a site map is either a mapping {{site: prefix}} or a CMS storage.json list, "
        f"got {type(data).__name__}"
    )


def _storage_json_rule(entry: Mapping[str, Any], where: str) -> SiteRule | None:
    xrootd = [p for p in entry["protocols"] if isinstance(p, Mapping) and str(p.get("protocol", "")).lower() == "xrootd"]
    xrootd.sort(key=lambda p: ACCESS_PREFERENCE.index(p.get("access", "")) if p.get("access", "") in ACCESS_PREFERENCE else 99)
    for proto in xrootd:
        if proto.get("prefix"):
            return SiteRule(prefix=str(proto["prefix"]))
        rules = proto.get("rules")
        if isinstance(rules, list) and rules:
            parsed = []
            for rule in rules:
                if not isinstance(rule, Mapping) or "lfn" not in rule or "pfn" not in rule:
                    raise SiteMapError(f"{where}: every rule needs 'lfn' (regex) and 'pfn' (template)")
                try:
                    re.compile(rule["lfn"])
                except re.error as exc:
                    raise SiteMapError(f"{where}: lfn regex {rule['lfn']!r} is invalid: {exc}") from None
                parsed.append((str(rule["lfn"]), str(rule["pfn"])))
            return SiteRule(rules=tuple(parsed))
    log.debug("%s: no XRootD protocol with a prefix or rules; site skipped", where)
    return None


def _read_text(location: str, timeout: float) -> str:
    if re.match(r"^https?://", location):
        try:
            with urllib.request.urlopen(location, timeout=timeout) as response:  # noqa: S310 (user-named URL)
                return response.read().decode()
        except OSError as exc:
            raise SiteMapError(f"site map {location} cannot be fetched: {exc}") from None
    try:
        with open(location, encoding="utf-8") as stream:
            return stream.read()
    except FileNotFoundError:
        raise SiteMapError(f"site map {location} does not exist") from None
    except OSError as exc:
        raise SiteMapError(f"site map {location} cannot be read: {exc.strerror or exc}") from None


def load_site_map(location: str | os.PathLike, max_age: float = DEFAULT_EXPIRY_SECONDS, timeout: float = 10) -> SiteMap:
    """Load a site map from a path or URL, through the user cache (expiry ``max_age`` s)."""
    location = str(location)
    is_url = bool(re.match(r"^https?://", location))
    if is_url:
        key = location
    else:
        try:
            st = os.stat(location)
        except FileNotFoundError:
            raise SiteMapError(f"site map {location} does not exist") from None
        key = f"{os.path.abspath(location)}|{st.st_mtime_ns}|{st.st_size}"
    cached = read_cache(CACHE_NAMESPACE, key, max_age)
    if cached is not None:
        log.debug("site map %s read from the cache", location)
        return SiteMap.from_json(cached, location)
    text = _read_text(location, timeout)
    data = parse_yaml(text, f"site map {location} (JSON or YAML)", SiteMapError)  # YAML reads JSON too
    site_map = parse_site_map(data, location)
    if not site_map.sites:
        raise SiteMapError(f"site map {location} defines no site with an XRootD prefix or rules")
    write_cache(CACHE_NAMESPACE, key, site_map.to_json())
    log.info("site map %s: %d sites", location, len(site_map.sites))
    return site_map
