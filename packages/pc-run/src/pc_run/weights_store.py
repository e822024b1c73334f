"""Per-chunk event weights: each configured weight computed once, then combined per category.

The nominal weight of a category is the product of the sample's inclusive weights and the
category's own weights. A variation ``{w}Up``/``{w}Down`` replaces the nominal factor of
``w`` by its up/down factor in that product. Categories where a variation is not configured
get the nominal weight on that variation bin, so every histogram's variation axis is
complete and can be summed across categories.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pc_core.errors import ConfigError
from pc_core.weights import WeightData, WeightWrapper

from .histograms import NOMINAL


def _as_numpy(values: Any, size: int, name: str, which: str) -> np.ndarray:
    try:
        import awkward as ak

        if isinstance(values, ak.Array):
            values = ak.to_numpy(values)
    except ImportError:  # pragma: no cover - awkward is a dependency
        pass
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(size, float(array))
    if array.shape != (size,):
        raise ConfigError(f"weight {name!r}: {which} has shape {array.shape}, expected one value per event ({size})")
    return array


class WeightsStore:
    """Computes the configured weights of one sample on one chunk of (preselected) events."""

    def __init__(
        self,
        events,
        *,
        sample: str,
        is_mc: bool,
        weights_config: Mapping[str, Any],
        variations_config: Mapping[str, Sequence[str]],
        weights_classes: Mapping[str, type[WeightWrapper]],
        params: Mapping[str, Any],
        metadata: Mapping[str, Any],
    ):
        self.size = len(events)
        self.sample = sample
        self.is_mc = is_mc
        self.inclusive = list(weights_config.get("inclusive", []))
        self.bycategory = {cat: list(names) for cat, names in (weights_config.get("bycategory") or {}).items()}
        self.variations_by_category = (
            {cat: list(names) for cat, names in variations_config.items()} if is_mc else {}
        )
        self._data: dict[str, WeightData] = {}
        self._by_variation: dict[tuple[str, tuple[str, ...]], dict[str, np.ndarray]] = {}
        needed = list(self.inclusive)
        for names in self.bycategory.values():
            needed += names
        for names in self.variations_by_category.values():
            needed += names
        for name in dict.fromkeys(needed):
            if name not in weights_classes:
                raise ConfigError(
                    f"sample {sample!r}: weight {name!r} is not defined; known weights: {sorted(weights_classes)}"
                )
            cls = weights_classes[name]
            if cls.isMC_only and not is_mc:
                continue
            result = cls(params, metadata).compute(events, self.size, NOMINAL)
            data = WeightData(
                name,
                _as_numpy(result.nominal, self.size, name, "nominal"),
                None if result.up is None else _as_numpy(result.up, self.size, name, "up"),
                None if result.down is None else _as_numpy(result.down, self.size, name, "down"),
            )
            self._data[name] = data
        for cat, names in self.variations_by_category.items():
            for name in names:
                data = self._data.get(name)
                if data is not None and (data.up is None or data.down is None):
                    raise ConfigError(
                        f"sample {sample!r}, category {cat!r}: variation of weight {name!r} requested but the "
                        "weight has no Up/Down (set has_variations=True and return (nominal, up, down))"
                    )

    def applied(self, category: str) -> list[str]:
        """The weight names whose factors enter ``category`` for this sample (data: non-MC-only ones)."""
        names = self.inclusive + self.bycategory.get(category, [])
        return [n for n in dict.fromkeys(names) if n in self._data]

    def _product(self, names: Sequence[str], replace: str | None = None, factor: np.ndarray | None = None) -> np.ndarray:
        weight = np.ones(self.size, dtype=np.float64)
        for name in names:
            weight = weight * (factor if name == replace else self._data[name].nominal)
        return weight

    def by_variation(self, category: str, variations: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-event weights for each requested variation label of ``category`` (computed once per chunk)."""
        key = (category, tuple(variations))
        if key not in self._by_variation:
            self._by_variation[key] = self._compute_by_variation(category, variations)
        return self._by_variation[key]

    def _compute_by_variation(self, category: str, variations: Sequence[str]) -> dict[str, np.ndarray]:
        applied = self.applied(category)
        nominal = self._product(applied)
        configured = set(self.variations_by_category.get(category, []))
        result: dict[str, np.ndarray] = {}
        for label in variations:
            if label == NOMINAL:
                result[label] = nominal
                continue
            name, direction = (label[:-2], "up") if label.endswith("Up") else (label[:-4], "down")
            if name not in configured or name not in applied:
                result[label] = nominal
                continue
            data = self._data[name]
            result[label] = self._product(applied, replace=name, factor=getattr(data, direction))
        return result
