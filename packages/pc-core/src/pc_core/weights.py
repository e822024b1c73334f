"""Event weights: a small public API for custom weights with Up/Down variations, and the built-ins.

A weight is a ``WeightWrapper`` subclass. The processor instantiates it once per chunk with
the run's parameters and the dataset metadata, then calls ``compute``. Variations are named
``{weight}Up`` / ``{weight}Down`` on the histograms' ``variation`` axis.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import ConfigError
from .parameters import lumi_pb


@dataclass(frozen=True)
class WeightData:
    """Per-event factors of one weight: nominal and, for weights with variations, up and down."""

    name: str
    nominal: Any
    up: Any = None
    down: Any = None


class WeightWrapper(ABC):
    """Base class of every weight; subclasses set ``name`` and implement ``compute``."""

    name: ClassVar[str] = ""
    has_variations: ClassVar[bool] = False
    isMC_only: ClassVar[bool] = True

    def __init__(self, params: Mapping[str, Any], metadata: Mapping[str, Any]):
        self.params = params
        self.metadata = metadata

    @classmethod
    def variation_names(cls) -> tuple[str, ...]:
        return (f"{cls.name}Up", f"{cls.name}Down") if cls.has_variations else ()

    @abstractmethod
    def compute(self, events, size: int, shape_variation: str = "nominal") -> WeightData:
        """The weight's per-event factors for this chunk."""


class WeightLambda(WeightWrapper):
    """Build a weight class from a function, without writing a class."""

    function: ClassVar[Callable[..., Any]]

    @classmethod
    def wrap_func(
        cls,
        name: str,
        function: Callable[..., Any],
        has_variations: bool = False,
        isMC_only: bool = True,
    ) -> type[WeightWrapper]:
        """``function(params, metadata, events, size, shape_variation)`` returns the nominal
        factors, or ``(nominal, up, down)`` when ``has_variations``."""
        if not callable(function):
            raise ConfigError(f"weight {name!r}: function must be callable")
        return type(
            f"WeightLambda_{name}",
            (cls,),
            {"name": name, "function": staticmethod(function), "has_variations": has_variations, "isMC_only": isMC_only},
        )

    def compute(self, events, size, shape_variation="nominal") -> WeightData:
        result = self.function(self.params, self.metadata, events, size, shape_variation)
        if self.has_variations:
            try:
                nominal, up, down = result
            except (TypeError, ValueError):
                raise ConfigError(
                    f"weight {self.name!r} has variations: its function must return (nominal, up, down)"
                ) from None
            return WeightData(self.name, nominal, up, down)
        return WeightData(self.name, result)


class GenWeight(WeightWrapper):
    """The generator weight (may be negative)."""

    name = "genWeight"

    def compute(self, events, size, shape_variation="nominal"):
        return WeightData(self.name, np.asarray(events["genWeight"], dtype=np.float64))


class SignOfGenWeight(WeightWrapper):
    """The sign of the generator weight, for samples where only the sign matters."""

    name = "signOf_genWeight"

    def compute(self, events, size, shape_variation="nominal"):
        return WeightData(self.name, np.sign(np.asarray(events["genWeight"], dtype=np.float64)))


class Lumi(WeightWrapper):
    """The integrated luminosity of the dataset's year, in pb^-1, from ``parameters``."""

    name = "lumi"

    def compute(self, events, size, shape_variation="nominal"):
        return WeightData(self.name, np.full(size, lumi_pb(self.params, self.metadata["year"])))


class CrossSection(WeightWrapper):
    """The dataset's cross-section in pb, from its metadata ``xsec``."""

    name = "XS"

    def compute(self, events, size, shape_variation="nominal"):
        return WeightData(self.name, np.full(size, float(self.metadata["xsec"])))


BUILTIN_WEIGHTS: dict[str, type[WeightWrapper]] = {
    w.name: w for w in (GenWeight, SignOfGenWeight, Lumi, CrossSection)
}
