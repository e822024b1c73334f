"""A small synthetic `.coffea` output built with hist, following docs/output-format.md.

Two MC samples (TTTo, DY with two datasets), one data sample, two categories, weight
variations (a two-sided `pileup`, a one-sided `btagSF` with only Up), a 1D histogram with
flow entries, a variable-binned one and a 2D one. Every number is derived from a fixed seed,
so tests recompute expectations independently from the raw fill arrays kept in `FILLS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cloudpickle
import hist
import lz4.frame
import numpy as np

YEAR = "2022_postEE"
YEAR2 = "2023_preBPix"
LUMI_PB = {YEAR: 26671.7, YEAR2: 17794.0}
CATEGORIES = ("baseline", "SR")
MC_DATASETS = {
    # dataset: (sample, xsec pb, year)
    "TTTo_2022_postEE": ("TTTo", 98.0, YEAR),
    "DY_M50_2022_postEE": ("DY", 2000.0, YEAR),
    "DY_M10_2022_postEE": ("DY", 500.0, YEAR),
    "TTTo_2023_preBPix": ("TTTo", 98.0, YEAR2),
}
DATA_DATASETS = {"DATA_Mu_2022_postEE_F": ("DATA_Mu", YEAR), "DATA_Mu_2023_preBPix_C": ("DATA_Mu", YEAR2)}
VARIATIONS = ("nominal", "pileupUp", "pileupDown", "btagSFUp")


@dataclass
class Fill:
    """The raw arrays behind one (histogram, sample, dataset) entry, per category and variation."""

    values: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def _axes(name: str):
    if name == "jet_pt":
        return [hist.axis.Regular(20, 0, 200, name="jet_pt", label="Jet $p_T$ [GeV]")]
    if name == "ht":
        return [hist.axis.Variable([0, 50, 100, 200, 400, 800], name="ht", label="$H_T$ [GeV]")]
    return [hist.axis.Regular(10, -2.5, 2.5, name="eta", label="$\\eta$"),
            hist.axis.Regular(8, -3.2, 3.2, name="phi", label="$\\phi$")]


HISTOGRAMS = ("jet_pt", "ht", "jet_eta_phi")


def _new_hist(name: str, variations):
    return hist.Hist(
        hist.axis.StrCategory(list(CATEGORIES), name="cat"),
        hist.axis.StrCategory(list(variations), name="variation"),
        *_axes(name),
        storage=hist.storage.Weight(),
    )


def _events(rng, n: int, name: str):
    if name == "jet_pt":
        return [rng.exponential(60.0, n) - 5.0]  # some underflow (<0) and overflow (>200)
    if name == "ht":
        return [rng.exponential(200.0, n)]
    return [rng.normal(0, 1.5, n), rng.uniform(-3.2, 3.2, n)]


def build_output(seed: int = 7, histograms=HISTOGRAMS, n_events: int = 400, two_years: bool = True,
                 fills: dict | None = None) -> dict:
    """The output dict. If ``fills`` is a dict it receives {(hist, sample, dataset, cat, variation): (x, w)}."""
    rng = np.random.default_rng(seed)
    variables: dict = {name: {} for name in histograms}
    sumw: dict = {c: {} for c in CATEGORIES}
    sumw2: dict = {c: {} for c in CATEGORIES}
    cutflow: dict = {"initial": {}, "skim": {}, "presel": {}, **{c: {} for c in CATEGORIES}}
    genw: dict = {}
    datasets = {ds: (s, True, y) for ds, (s, _, y) in MC_DATASETS.items()}
    datasets.update({ds: (s, False, y) for ds, (s, y) in DATA_DATASETS.items()})
    if not two_years:
        datasets = {ds: v for ds, v in datasets.items() if v[2] == YEAR}
    for ds, (sample, mc, year) in datasets.items():
        n_initial = int(rng.integers(5000, 8000))
        cutflow["initial"][ds] = n_initial
        cutflow["skim"][ds] = n_initial // 2
        cutflow["presel"][ds] = n_initial // 3
        if mc:
            genw[ds] = float(n_initial * 1.3)
        variations = VARIATIONS if mc else ("nominal",)
        for ci, cat in enumerate(CATEGORIES):
            n = n_events // (ci + 1) if mc else (n_events // (ci + 1)) * 3
            cutflow[cat][ds] = {sample: n}
            w = rng.normal(1.3, 0.2, n) if mc else np.ones(n)
            sumw[cat][ds] = {sample: float(w.sum())}
            sumw2[cat][ds] = {sample: float((w**2).sum())}
            for name in histograms:
                h = variables[name].setdefault(sample, {}).get(ds)
                if h is None:
                    h = _new_hist(name, variations)
                    variables[name][sample][ds] = h
                xs = _events(rng, n, name)
                for var in variations:
                    scale = {"nominal": 1.0, "pileupUp": 1.1, "pileupDown": 0.93, "btagSFUp": 1.05}[var]
                    wv = w * scale
                    if var == "pileupUp":  # shape effect: up in the first half of events only
                        wv = np.where(np.arange(n) % 2 == 0, w * 1.2, w * 0.98)
                    h.fill(cat=cat, variation=var, **{ax.name: x for ax, x in zip(_axes(name), xs)}, weight=wv)
                    if fills is not None:
                        fills[(name, sample, ds, cat, var)] = (xs, wv)
    by_period: dict = {}
    by_dataset: dict = {}
    for ds, (sample, mc, year) in datasets.items():
        by_period.setdefault(year, {}).setdefault(sample, []).append(ds)
        meta = {"sample": sample, "year": year, "isMC": "True" if mc else "False"}
        if mc:
            meta["xsec"] = MC_DATASETS[ds][1]
        by_dataset[ds] = meta
    return {
        "sum_genweights": genw,
        "sum_signOf_genweights": {ds: v / 1.3 for ds, v in genw.items()},
        "cutflow": cutflow,
        "sumw": sumw,
        "sumw2": sumw2,
        "variables": variables,
        "columns": {},
        "datasets_metadata": {"by_datataking_period": by_period, "by_dataset": by_dataset},
        "processing_metadata": {"events": {}, "chunks": {}, "skipped_files": [], "normalised": False,
                                "lumi_pb": {y: LUMI_PB[y] for y in {v[2] for v in datasets.values()}}},
    }


def save(output: dict, path: Path) -> Path:
    """Write the documented format (lz4-compressed cloudpickle of the dict)."""
    try:
        from pc_core.output import save_output
    except ImportError:
        with lz4.frame.open(path, "wb") as f:
            cloudpickle.dump(output, f)
        return path
    save_output(output, path)
    return path



def norm_factor(output: dict, dataset: str) -> float:
    """xsec * lumi / sum_genweights for an MC dataset, from the fixture's constants."""
    _, xsec, year = MC_DATASETS[dataset]
    return xsec * LUMI_PB[year] / output["sum_genweights"][dataset]
