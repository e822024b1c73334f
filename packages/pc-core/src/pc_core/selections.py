"""Categories: plain dicts of cut lists, or standard and cartesian selections built from MultiCuts."""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .cuts import Cut
from .errors import ConfigError

# Keys the processor writes into the output's ``cutflow`` next to the categories (events
# before the skim, after the skim, after the preselection: see pc_run.processor
# ``_empty_output``); a category with one of these names would overwrite them.
RESERVED_CATEGORY_NAMES: tuple[str, ...] = ("initial", "skim", "presel")


def check_category_names(names, where: str = "categories") -> None:
    """Raise ConfigError when a category uses a name reserved for the cutflow steps."""
    reserved = [name for name in names if name in RESERVED_CATEGORY_NAMES]
    if reserved:
        raise ConfigError(
            f"{where}: category name{'s' if len(reserved) > 1 else ''} {', '.join(map(repr, reserved))} "
            f"{'are' if len(reserved) > 1 else 'is'} reserved: the output's cutflow uses "
            f"{', '.join(map(repr, RESERVED_CATEGORY_NAMES))} for the events before the skim, after the skim "
            "and after the preselection; rename the category"
        )


@dataclass(frozen=True, eq=False)
class MultiCut:
    """One axis of a cartesian selection: mutually exclusive (or not) bins, one cut each."""

    name: str
    cuts: Sequence[Cut]
    cuts_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cuts", tuple(self.cuts))
        if self.cuts_names is None:
            object.__setattr__(self, "cuts_names", tuple(c.name for c in self.cuts))
        else:
            object.__setattr__(self, "cuts_names", tuple(self.cuts_names))
        if len(self.cuts_names) != len(self.cuts):
            raise ValueError(
                f"MultiCut {self.name!r}: {len(self.cuts)} cuts but {len(self.cuts_names)} cuts_names"
            )

    def bins(self) -> list[tuple[str, Cut]]:
        return list(zip(self.cuts_names, self.cuts))


@dataclass(frozen=True, eq=False)
class StandardSelection:
    """Independent categories, each the AND of its cuts."""

    categories: Mapping[str, Sequence[Cut]]

    def expand(self) -> dict[str, tuple[Cut, ...]]:
        return {name: tuple(cuts) for name, cuts in self.categories.items()}


@dataclass(frozen=True, eq=False)
class CartesianSelection:
    """Every combination of the MultiCuts' bins (names joined by ``_``), plus common categories."""

    multicuts: Sequence[MultiCut]
    common_cats: Mapping[str, Sequence[Cut]] = field(default_factory=dict)

    def expand(self) -> dict[str, tuple[Cut, ...]]:
        categories = {name: tuple(cuts) for name, cuts in self.common_cats.items()}
        for combination in itertools.product(*(mc.bins() for mc in self.multicuts)):
            name = "_".join(bin_name for bin_name, _ in combination)
            categories[name] = tuple(cut for _, cut in combination)
        return categories


def expand_categories(categories) -> dict[str, tuple[Cut, ...]]:
    """Normalise the ``categories`` argument of a Configurator into ``{name: (Cut, ...)}``.

    Raises ``TypeError`` for shapes it does not know; the Configurator turns that into a
    ConfigError naming the key.
    """
    if isinstance(categories, (StandardSelection, CartesianSelection)):
        return categories.expand()
    if isinstance(categories, Mapping):
        return {name: tuple(cuts) for name, cuts in categories.items()}
    raise TypeError(
        "categories must be a dict {name: [Cut, ...]}, a StandardSelection or a CartesianSelection, "
        f"got {type(categories).__name__}"
    )
