"""Cut the normalised output into self-contained plotting tasks.

A task carries only the arrays of the plots it draws (one histogram, one year or year
combination, every selected category), so worker processes never see the whole output.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from pc_core.errors import OutputError

from .compute import HistArrays, add_arrays, hist_to_arrays
from .inputs import DatasetIndex


@dataclass(frozen=True)
class PlotOptions:
    """Command-line switches that shape every plot."""

    log_x: bool = False
    log_y: bool = False
    density: bool = False
    ratio: bool = True
    syst: bool = True
    only_syst: tuple[str, ...] = ()
    formats: tuple[str, ...] = ("png",)


@dataclass
class YearSelection:
    """A year, or a named combination of years, and its luminosity label."""

    name: str
    years: tuple[str, ...]
    lumi_fb: float | None
    com: float | None


@dataclass
class HistogramTask:
    histogram: str
    selection: YearSelection
    categories: list[str]
    samples: dict[str, HistArrays]
    data_samples: list[str]
    ndim: int

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.samples.values())


@dataclass
class CutflowRow:
    sample: str
    is_data: bool
    counts: dict[str, float]
    sumw: float | None = None
    sumw_err: float | None = None


@dataclass
class CutflowTask:
    selection: YearSelection
    category: str
    steps: list[str]
    rows: list[CutflowRow] = field(default_factory=list)


def match_any(value: str, patterns: Sequence[str]) -> bool:
    return not patterns or any(re.fullmatch(p, value) for p in patterns)


def year_selections(index: DatasetIndex, output: dict, style, only_years: Sequence[str]) -> list[YearSelection]:
    """Every year present (filtered by --only-year) plus the style's year combinations."""
    lumi_pb = {str(k): float(v) for k, v in ((output.get("processing_metadata") or {}).get("lumi_pb") or {}).items()}
    available = index.years()

    def selection(name: str, years: tuple[str, ...]) -> YearSelection:
        label = style.lumi_label.get(name, {})
        if "lumi_fb" in label:
            lumi = label["lumi_fb"]
        elif all(y in lumi_pb for y in years):
            lumi = sum(lumi_pb[y] for y in years) / 1000.0
        elif all(y in style.lumi_label and "lumi_fb" in style.lumi_label[y] for y in years):
            lumi = sum(style.lumi_label[y]["lumi_fb"] for y in years)
        else:
            lumi = None
        com = label.get("com", style.com(years[0]))
        return YearSelection(name, years, lumi, com)

    selections = [selection(y, (y,)) for y in available if match_any(y, only_years)]
    for name, years in style.year_combinations.items():
        missing = [y for y in years if y not in available]
        if missing:
            raise OutputError(
                f"year_combinations.{name}: year(s) {', '.join(missing)} not in the output; "
                f"years in the output: {', '.join(available)}"
            )
        if match_any(name, only_years):
            selections.append(selection(name, tuple(years)))
    return selections


def categories_of(output: dict, names: Sequence[str]) -> list[str]:
    """All categories on the histograms' ``cat`` axes, in first-seen order."""
    seen: dict[str, None] = {}
    for name in names:
        for by_ds in output["variables"][name].values():
            for h in by_ds.values():
                for c in h.axes["cat"]:
                    seen.setdefault(str(c), None)
    return list(seen)


def histogram_tasks(output: dict, index: DatasetIndex, selections: Sequence[YearSelection],
                    categories: Sequence[str], source: str) -> Iterator[HistogramTask]:
    """One task per histogram x year selection, with each sample summed over its datasets."""
    for name, by_sample in output["variables"].items():
        arrays_by_ds: dict[tuple[str, str], HistArrays] = {}
        for sample, by_ds in by_sample.items():
            index.check(by_ds, f"{source}: variables.{name}.{sample}")
            for ds, h in by_ds.items():
                try:
                    arrays_by_ds[(sample, ds)] = hist_to_arrays(h)
                except ValueError as exc:
                    raise OutputError(f"{source}: variables.{name}.{sample}.{ds}: {exc}") from None
        if not arrays_by_ds:
            continue
        ndim = len(next(iter(arrays_by_ds.values())).edges)
        for sel in selections:
            samples: dict[str, HistArrays] = {}
            data_samples: list[str] = []
            for (sample, ds), arrays in arrays_by_ds.items():
                if index.year_of.get(ds) not in sel.years:
                    continue
                keep = [c for c in arrays.categories if c in categories]
                if not keep:
                    continue
                ci = [arrays.categories.index(c) for c in keep]
                sub = HistArrays(keep, arrays.variations, arrays.edges, arrays.axis_labels,
                                 arrays.values[ci], arrays.variances[ci])
                samples[sample] = add_arrays(samples.get(sample), sub)
                if not index.mc[ds] and sample not in data_samples:
                    data_samples.append(sample)
            if samples:
                present = [c for c in categories if any(c in a.categories for a in samples.values())]
                yield HistogramTask(name, sel, present, samples, data_samples, ndim)


CUTFLOW_STEPS = ("initial", "skim", "presel")


def cutflow_tasks(output: dict, index: DatasetIndex, selections: Sequence[YearSelection],
                  categories: Sequence[str]) -> list[CutflowTask]:
    """The cutflow table of each category: event counts per step and weighted yields per sample.

    The dataset-level steps (initial, skim, presel) of a sample sum the datasets that
    contribute to that sample in the category; the yield is the normalised ``sumw``.
    """
    cutflow = output.get("cutflow") or {}
    sumw, sumw2 = output.get("sumw") or {}, output.get("sumw2") or {}
    steps = [s for s in CUTFLOW_STEPS if s in cutflow]
    tasks = []
    for sel in selections:
        for cat in categories:
            if cat not in cutflow:
                continue
            rows: dict[str, CutflowRow] = {}
            for ds, by_sample in cutflow[cat].items():
                if index.year_of.get(ds) not in sel.years:
                    continue
                for sample, count in by_sample.items():
                    row = rows.setdefault(sample, CutflowRow(sample, not index.mc.get(ds, True), {s: 0.0 for s in [*steps, cat]}))
                    for step in steps:
                        row.counts[step] += float(cutflow[step].get(ds, 0))
                    row.counts[cat] += float(count)
                    if cat in sumw and ds in sumw[cat] and sample in sumw[cat][ds]:
                        row.sumw = (row.sumw or 0.0) + float(sumw[cat][ds][sample])
                        w2 = float(sumw2.get(cat, {}).get(ds, {}).get(sample, 0.0))
                        row.sumw_err = float(np.hypot(row.sumw_err or 0.0, np.sqrt(w2)))
            if rows:
                ordered = sorted(rows.values(), key=lambda r: (r.is_data, r.sample))
                tasks.append(CutflowTask(sel, cat, [*steps, cat], ordered))
    return tasks
