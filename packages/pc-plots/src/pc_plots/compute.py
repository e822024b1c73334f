"""The numbers behind a plot, as pure functions on numpy arrays.

Drawing only renders what these functions return, so the tests check the physics (stack
totals, uncertainty band, blinding, rescaling) without looking at pixels.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

NOMINAL = "nominal"


@dataclass
class HistArrays:
    """A histogram as plain arrays, flow bins folded into the edge bins.

    ``values``/``variances`` have shape ``(n_categories, n_variations, *bins)``.
    """

    categories: list[str]
    variations: list[str]
    edges: list[np.ndarray]
    axis_labels: list[str]
    values: np.ndarray
    variances: np.ndarray

    def get(self, category: str, variation: str = NOMINAL) -> tuple[np.ndarray, np.ndarray] | None:
        """(values, variances) of one category/variation, or None when absent."""
        if category not in self.categories or variation not in self.variations:
            return None
        c, v = self.categories.index(category), self.variations.index(variation)
        return self.values[c, v], self.variances[c, v]

    def scaled(self, factor: float) -> "HistArrays":
        return HistArrays(self.categories, self.variations, self.edges, self.axis_labels,
                          self.values * factor, self.variances * factor**2)

    @property
    def nbytes(self) -> int:
        return self.values.nbytes + self.variances.nbytes


def fold_flow(array: np.ndarray, axis: int, underflow: bool, overflow: bool) -> np.ndarray:
    """Add the underflow (overflow) slice along ``axis`` into the first (last) bin and drop it."""
    array = np.moveaxis(np.asarray(array, dtype=float), axis, 0).copy()
    start = 1 if underflow else 0
    stop = array.shape[0] - (1 if overflow else 0)
    inner = array[start:stop].copy()
    if underflow:
        inner[0] += array[0]
    if overflow:
        inner[-1] += array[-1]
    return np.moveaxis(inner, 0, axis)


def hist_to_arrays(h) -> HistArrays:
    """Convert a ``hist.Hist`` with ``cat``, ``variation`` and 1-2 variable axes."""
    names = [ax.name for ax in h.axes]
    if names[:2] != ["cat", "variation"]:
        raise ValueError(f"histogram axes are {names}; expected 'cat', 'variation', then the variable axes")
    values = np.asarray(h.values(flow=True), dtype=float)
    variances = h.variances(flow=True)
    variances = np.asarray(values if variances is None else variances, dtype=float).copy()
    cat_ax, var_ax = h.axes[0], h.axes[1]
    categories, variations = [str(c) for c in cat_ax], [str(v) for v in var_ax]
    # categorical axes: keep only the named bins (their flow bin, if any, sits after them)
    values = values[: len(categories), : len(variations)]
    variances = variances[: len(categories), : len(variations)]
    edges = []
    for i, axis in enumerate(h.axes[2:], start=2):
        under, over = bool(axis.traits.underflow), bool(axis.traits.overflow)
        values = fold_flow(values, i, under, over)
        variances = fold_flow(variances, i, under, over)
        edges.append(np.asarray(axis.edges, dtype=float))
    labels = [axis.label or axis.name for axis in h.axes[2:]]
    return HistArrays(categories, variations, edges, labels, values, variances)


def add_arrays(a: HistArrays | None, b: HistArrays) -> HistArrays:
    """Sum two histograms bin by bin, aligning categories and variations by name."""
    if a is None:
        return HistArrays(list(b.categories), list(b.variations), b.edges, b.axis_labels,
                          b.values.copy(), b.variances.copy())
    if len(a.edges) != len(b.edges) or any(not np.array_equal(x, y) for x, y in zip(a.edges, b.edges)):
        raise ValueError("cannot add histograms with different binning")
    cats = a.categories + [c for c in b.categories if c not in a.categories]
    vars_ = a.variations + [v for v in b.variations if v not in a.variations]
    shape = (len(cats), len(vars_), *a.values.shape[2:])
    values, variances = np.zeros(shape), np.zeros(shape)
    for src in (a, b):
        ci = [cats.index(c) for c in src.categories]
        vi = [vars_.index(v) for v in src.variations]
        values[np.ix_(ci, vi)] += src.values
        variances[np.ix_(ci, vi)] += src.variances
    return HistArrays(cats, vars_, a.edges, a.axis_labels, values, variances)


def group_samples(samples: Mapping[str, HistArrays], groups: Mapping[str, Sequence[str]],
                  rescale: Mapping[str, float]) -> dict[str, HistArrays]:
    """Apply per-sample rescale factors, merge grouped samples, then apply group factors.

    Returns entries in first-appearance order: a group takes the place of its first member.
    """
    member_of = {s: g for g, members in groups.items() for s in members}
    merged: dict[str, HistArrays] = {}
    for name, arrays in samples.items():
        arrays = arrays.scaled(rescale[name]) if name in rescale else arrays
        key = member_of.get(name, name)
        merged[key] = add_arrays(merged.get(key), arrays)
    for group in groups:
        if group in merged and group in rescale:
            merged[group] = merged[group].scaled(rescale[group])
    return merged


def select_samples(names: Sequence[str], only: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Keep ``only`` (when non-empty), drop ``exclude``; order preserved."""
    return [n for n in names if (not only or n in only) and n not in exclude]


def stack_order(names: Sequence[str], order: Sequence[str], yields: Mapping[str, float]) -> list[str]:
    """Bottom-first stack order: the style's order, then the rest by increasing yield."""
    listed = [n for n in order if n in names]
    rest = sorted((n for n in names if n not in listed), key=lambda n: (yields.get(n, 0.0), n))
    return listed + rest


def systematic_shifts(nominal: np.ndarray, varied: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per systematic, the (down, up) error magnitudes per bin.

    ``varied`` maps variation names (``<syst>Up``/``<syst>Down``) to the varied MC total.
    With both directions, the upward error is the largest positive shift of the two and the
    downward error the largest negative one (so a one-sided systematic where Up and Down
    move the same way only widens that side). A systematic with only one direction is
    symmetrised.
    """
    systs: dict[str, dict[str, np.ndarray]] = {}
    for name, values in varied.items():
        for suffix in ("Up", "Down"):
            if name.endswith(suffix) and len(name) > len(suffix):
                systs.setdefault(name[: -len(suffix)], {})[suffix] = np.asarray(values, dtype=float) - nominal
    shifts = {}
    zero = np.zeros_like(nominal, dtype=float)
    for syst, deltas in systs.items():
        if len(deltas) == 1:
            delta = np.abs(next(iter(deltas.values())))
            shifts[syst] = (delta, delta)
        else:
            up = np.maximum(np.maximum(deltas["Up"], deltas["Down"]), zero)
            down = np.maximum(np.maximum(-deltas["Up"], -deltas["Down"]), zero)
            shifts[syst] = (down, up)
    return shifts


def quadrature_band(stat_variance: np.ndarray,
                    shifts: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Total (down, up) errors: MC statistics and every systematic added in quadrature."""
    down2 = np.asarray(stat_variance, dtype=float).copy()
    up2 = down2.copy()
    for down, up in shifts.values():
        down2 += down**2
        up2 += up**2
    return np.sqrt(down2), np.sqrt(up2)


def blind_mask(edges: np.ndarray, ranges: Sequence[tuple[float, float]] | None) -> np.ndarray:
    """True for bins to hide: bins overlapping any range; all bins for ``[]``; none for None."""
    n = len(edges) - 1
    if ranges is None:
        return np.zeros(n, dtype=bool)
    if len(ranges) == 0:
        return np.ones(n, dtype=bool)
    lo, hi = edges[:-1], edges[1:]
    mask = np.zeros(n, dtype=bool)
    for a, b in ranges:
        mask |= (lo < b) & (hi > a)
    return mask


def poisson_errors(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Garwood (central 68%) Poisson interval half-widths for observed counts."""
    from hist.intervals import poisson_interval

    values = np.asarray(values, dtype=float)
    lo, hi = poisson_interval(values)
    lo = np.where(np.isnan(lo), 0.0, lo)
    return values - lo, hi - values


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def density_factor(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per-bin factor turning ``values`` into a unit-area density (zeros if empty)."""
    widths = np.diff(edges)
    total = float(np.sum(values))
    if total == 0:
        return np.zeros_like(widths)
    return 1.0 / (total * widths)


@dataclass
class StackEntry:
    name: str
    label: str
    color: str
    values: np.ndarray
    variances: np.ndarray


@dataclass
class PlotArrays:
    """Everything a 1D data/MC plot draws, per bin."""

    histogram: str
    category: str
    edges: np.ndarray
    xlabel: str
    stack: list[StackEntry]
    signals: list[StackEntry]
    mc_total: np.ndarray
    mc_stat_variance: np.ndarray
    band_down: np.ndarray
    band_up: np.ndarray
    systematics: list[str]
    data: np.ndarray | None = None
    data_err_down: np.ndarray | None = None
    data_err_up: np.ndarray | None = None
    blinded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    density: bool = False

    @property
    def ratio(self) -> np.ndarray | None:
        return None if self.data is None else safe_divide(self.data, self._positive_mc)

    @property
    def _positive_mc(self) -> np.ndarray:
        """The MC total where it is positive, 0 elsewhere: a ratio to a negative or empty
        prediction (negative weights, few events) is undefined and left out (NaN)."""
        return np.where(self.mc_total > 0, self.mc_total, 0.0)

    @property
    def ratio_err(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.data is None:
            return None
        return safe_divide(self.data_err_down, self._positive_mc), safe_divide(self.data_err_up, self._positive_mc)


def build_plot_arrays(
    histogram: str,
    category: str,
    samples: Mapping[str, HistArrays],
    data_samples: Sequence[str],
    style,
    *,
    with_syst: bool = True,
    only_syst: Sequence[str] = (),
    density: bool = False,
) -> PlotArrays | None:
    """Combine the (normalised) per-sample histograms of one category into a plot's numbers.

    ``samples`` maps sample name -> HistArrays (1D); ``data_samples`` names the data ones.
    Returns None when no sample has this category.
    """
    data_set = set(data_samples)
    mc = {n: a for n, a in samples.items() if n not in data_set}
    data = {n: a for n, a in samples.items() if n in data_set}
    grouped = group_samples(mc, style.groups, style.rescale)
    names = select_samples(list(grouped), style.only_samples, style.exclude_samples)
    present = [n for n in names if category in grouped[n].categories]
    # only_samples restricts the simulation; exclude_samples can also drop a data sample
    data_present = [n for n in data if category in data[n].categories and n not in style.exclude_samples]
    if not present and not data_present:
        return None
    ref = grouped[present[0]] if present else data[data_present[0]]
    edges = ref.edges[0]
    nbins = len(edges) - 1
    signal_names = [n for n in present if n in style.signal]
    bkg_names = [n for n in present if n not in style.signal]
    nominal = {n: grouped[n].get(category) for n in present}
    yields = {n: float(np.sum(nominal[n][0])) for n in bkg_names}
    order = stack_order(bkg_names, style.order, yields)

    palette = list(style.palette) or ["#3f90da"]
    colour_index = {n: i for i, n in enumerate(sorted(present))}

    def entry(n: str, factor: float = 1.0) -> StackEntry:
        v, var = nominal[n]
        return StackEntry(n, style.label(n), style.colors.get(n, palette[colour_index[n] % len(palette)]),
                          v * factor, var * factor**2)

    stack = [entry(n) for n in order]
    signals = [entry(n, style.signal[n]) for n in signal_names]
    total = np.sum([e.values for e in stack], axis=0) if stack else np.zeros(nbins)
    stat_var = np.sum([e.variances for e in stack], axis=0) if stack else np.zeros(nbins)

    shifts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    systematics: list[str] = []
    if with_syst and stack:
        variations = sorted({v for n in order for v in grouped[n].variations if v != NOMINAL})
        varied = {}
        for variation in variations:
            syst = variation[:-2] if variation.endswith("Up") else variation[:-4] if variation.endswith("Down") else variation
            if only_syst and syst not in only_syst:
                continue
            total_v = np.zeros(nbins)
            for n in order:
                got = grouped[n].get(category, variation)
                total_v += (got if got is not None else nominal[n])[0]
            varied[variation] = total_v
        shifts = systematic_shifts(total, varied)
        systematics = sorted(shifts)
    band_down, band_up = quadrature_band(stat_var, shifts)

    data_values = err_down = err_up = None
    blinded = np.zeros(nbins, dtype=bool)
    if data_present:
        data_values = np.sum([data[n].get(category)[0] for n in data_present], axis=0)
        err_down, err_up = poisson_errors(data_values)
        blinded = blind_mask(edges, style.blind_ranges(category, histogram))
        data_values = np.where(blinded, np.nan, data_values)
        err_down = np.where(blinded, np.nan, err_down)
        err_up = np.where(blinded, np.nan, err_up)

    if density:
        factor = density_factor(total, edges)
        for e in stack:
            e.values, e.variances = e.values * factor, e.variances * factor**2
        for e in signals:
            f = density_factor(e.values, edges)
            e.values, e.variances = e.values * f, e.variances * f**2
        total, stat_var = total * factor, stat_var * factor**2
        band_down, band_up = band_down * factor, band_up * factor
        if data_values is not None:
            f = density_factor(np.nan_to_num(data_values), edges)
            data_values, err_down, err_up = data_values * f, err_down * f, err_up * f

    xlabel = style.variables.get(histogram, {}).get("xlabel", ref.axis_labels[0])
    return PlotArrays(histogram, category, edges, xlabel, stack, signals, total, stat_var, band_down, band_up,
                      systematics, data_values, err_down, err_up, blinded, density)
