"""Column outputs: per-event (or per-object) arrays saved next to the histograms."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ColOut:
    """Save ``collection.column`` for each selected event.

    ``flatten=True`` stores objects flat and, with ``store_size``, the per-event count as
    ``{collection}_N`` so the jagged structure can be rebuilt. ``pos_start``/``pos_end``
    keep a slice of the objects (e.g. the two leading ones). ``collection="events"`` saves
    event-level fields.
    """

    collection: str
    columns: Sequence[str]
    flatten: bool = True
    store_size: bool = True
    pos_start: int | None = None
    pos_end: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        if not self.columns:
            raise ValueError(f"ColOut({self.collection!r}) needs at least one column")

    def key(self, column: str) -> str:
        return column if self.collection == "events" else f"{self.collection}_{column}"
