"""Cuts: named boolean selections with parameters, shared by skim, preselection and categories."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

CutFunction = Callable[..., Any]


@dataclass(frozen=True, eq=False)
class Cut:
    """A selection: ``function(events, params, **context)`` returns one boolean per event.

    ``context`` carries ``year``, ``sample``, ``dataset``, ``isMC`` and ``metadata`` (the
    dataset metadata), so one function serves every sample and year. ``params`` is frozen
    so a cut cannot be changed behind the configuration's back.
    """

    name: str
    function: CutFunction
    params: Mapping[str, Any] = field(default_factory=dict)
    collection: str = "events"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Cut name must be a non-empty string, got {self.name!r}")
        if not callable(self.function):
            raise TypeError(f"Cut {self.name!r}: function must be callable, got {self.function!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def get_mask(self, events, **context):
        """The boolean mask of this cut on ``events``."""
        return self.function(events, self.params, **context)

    def __repr__(self) -> str:
        return f"Cut({self.name!r}, params={dict(self.params)!r})"

    # A Cut is immutable, so copies are the object itself; this also keeps the frozen
    # ``params`` (a mappingproxy, which neither deepcopy nor pickle handle) out of the way.
    def __copy__(self) -> Cut:
        return self

    def __deepcopy__(self, memo) -> Cut:
        return self

    def __reduce__(self):
        return (type(self), (self.name, self.function, dict(self.params), self.collection))


def _passthrough(events, params, **context):
    return np.ones(len(events), dtype=bool)


passthrough = Cut(name="passthrough", function=_passthrough)
"""A cut that keeps every event (an inclusive category)."""
