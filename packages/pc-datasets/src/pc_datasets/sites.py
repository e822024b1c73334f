"""Which replica to use: allow/block/priority lists, a site regex and a sort mode.

Sort modes (no GeoIP service is needed for any of them):

- ``priority`` (default): sites of the priority list first, in the order given, then the
  other acceptable sites alphabetically (deterministic);
- ``random``: priority-list sites first, then the others in a random order drawn from
  ``seed`` (same seed, same choice);
- ``tier``: priority-list sites first, then by CMS tier (T0 < T1 < T2 < T3), then name.
"""
from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import SiteSelectionError

SORT_MODES = ("priority", "random", "tier")


def _tier(site: str) -> int:
    match = re.match(r"^T(\d)_", site)
    return int(match.group(1)) if match else 9


@dataclass(frozen=True)
class SiteSelection:
    """The user's replica-choice options; immutable and hashable for reuse across threads."""

    allowlist: tuple[str, ...] = ()
    blocklist: tuple[str, ...] = ()
    prioritylist: tuple[str, ...] = ()
    regex: str | None = None
    sort: str = "priority"
    seed: int | None = None
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sort not in SORT_MODES:
            raise SiteSelectionError(f"--sort {self.sort!r} is not a sort mode; accepted: {', '.join(SORT_MODES)}")
        if self.regex:
            try:
                object.__setattr__(self, "_pattern", re.compile(self.regex))
            except re.error as exc:
                raise SiteSelectionError(f"--regex-sites {self.regex!r} is not a valid regular expression: {exc}") from None
        both = set(self.allowlist) & set(self.blocklist)
        if both:
            raise SiteSelectionError(f"sites {sorted(both)} are both in --allowlist-sites and --blocklist-sites")

    def named_sites(self) -> set[str]:
        return set(self.allowlist) | set(self.blocklist) | set(self.prioritylist)

    def validate_names(self, known: Iterable[str], where: str = "Rucio") -> None:
        """Every site named in a list must exist (a typo would silently select nothing)."""
        known_set = set(known)
        for option, names in (
            ("--allowlist-sites", self.allowlist),
            ("--blocklist-sites", self.blocklist),
            ("--prioritylist-sites", self.prioritylist),
        ):
            unknown = [n for n in names if n not in known_set]
            if unknown:
                raise SiteSelectionError(
                    f"{option}: unknown site(s) {', '.join(unknown)}; sites known to {where}: "
                    f"{', '.join(sorted(known_set)) or '(none)'}"
                )

    def acceptable(self, site: str) -> bool:
        if site in self.blocklist:
            return False
        if self.allowlist and site not in self.allowlist:
            return False
        if self._pattern is not None and not self._pattern.search(site):
            return False
        return True

    def order(self, sites: Iterable[str], rng: random.Random | None = None) -> list[str]:
        """Acceptable sites among ``sites``, best first."""
        ok = sorted(s for s in set(sites) if self.acceptable(s))
        first = [s for s in self.prioritylist if s in ok]
        rest = [s for s in ok if s not in first]
        if self.sort == "random":
            (rng or random.Random(self.seed)).shuffle(rest)
        elif self.sort == "tier":
            rest.sort(key=lambda s: (_tier(s), s))
        return first + rest


def parse_site_list(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Comma and/or space separated site names (repeated options are concatenated)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out += [s for s in re.split(r"[,\s]+", item) if s]
    return tuple(dict.fromkeys(out))
