"""Histogram specifications: which field to histogram, with which binning, in which categories."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

AXIS_TYPES = ("regular", "variable", "integer")


@dataclass(frozen=True)
class Axis:
    """One histogram axis on an event field (``coll="events"``) or a collection field.

    ``bins`` is a number of bins (regular between ``start`` and ``stop``; integer axes use
    ``start``/``stop`` as the integer range) or a list of bin edges (variable). ``pos``
    picks the object at that position (0 = leading); without it every object fills.
    """

    field: str
    label: str
    bins: int | Sequence[float]
    start: float | None = None
    stop: float | None = None
    coll: str = "events"
    name: str | None = None
    pos: int | None = None
    type: str | None = None
    underflow: bool = True
    overflow: bool = True

    def __post_init__(self) -> None:
        kind = self.type
        if kind is None:
            kind = "regular" if isinstance(self.bins, int) else "variable"
            object.__setattr__(self, "type", kind)
        if kind not in AXIS_TYPES:
            raise ValueError(f"Axis {self.field!r}: type {kind!r} unknown; accepted: {', '.join(AXIS_TYPES)}")
        if kind == "variable":
            edges = tuple(float(x) for x in self.bins)
            if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(f"Axis {self.field!r}: variable bins must be >= 2 increasing edges, got {edges}")
            object.__setattr__(self, "bins", edges)
        else:
            if not isinstance(self.bins, int) or self.bins <= 0:
                raise ValueError(f"Axis {self.field!r}: bins must be a positive int for a {kind} axis")
            if self.start is None or self.stop is None or self.stop <= self.start:
                raise ValueError(f"Axis {self.field!r}: a {kind} axis needs start < stop")
        if self.name is None:
            default = self.field if self.coll == "events" else f"{self.coll}_{self.field}"
            if self.pos is not None:
                default = f"{default}_{self.pos}"
            object.__setattr__(self, "name", default)


@dataclass(frozen=True)
class HistConf:
    """A histogram: its axes (1D or 2D) and where it is filled.

    ``only_categories``/``exclude_categories`` and ``only_samples``/``exclude_samples``
    restrict filling; ``no_weights`` fills with unit weights; ``variations=False`` fills the
    nominal only.
    """

    axes: Sequence[Axis]
    only_categories: Sequence[str] | None = None
    exclude_categories: Sequence[str] | None = None
    only_samples: Sequence[str] | None = None
    exclude_samples: Sequence[str] | None = None
    no_weights: bool = False
    variations: bool = True
    metadata: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", tuple(self.axes))
        if not self.axes:
            raise ValueError("HistConf needs at least one Axis")
        if not all(isinstance(a, Axis) for a in self.axes):
            raise TypeError("HistConf axes must be Axis objects")

    def fills_category(self, category: str) -> bool:
        if self.only_categories is not None and category not in self.only_categories:
            return False
        return not (self.exclude_categories is not None and category in self.exclude_categories)

    def fills_sample(self, sample: str) -> bool:
        if self.only_samples is not None and sample not in self.only_samples:
            return False
        return not (self.exclude_samples is not None and sample in self.exclude_samples)
