"""Render plots with matplotlib + mplhep (CMS style) and write them atomically.

Runs inside worker processes: every function here takes a self-contained task and
returns the records of the files it wrote.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402

from pc_core.atomic import atomic_write_bytes
from .compute import NOMINAL, PlotArrays, build_plot_arrays  # noqa: E402
from .style import PlotStyle  # noqa: E402
from .tasks import CutflowTask, HistogramTask, PlotOptions, YearSelection  # noqa: E402


@dataclass
class PlotRecord:
    """One drawn plot: where its files are, relative to the output folder."""

    year: str
    category: str
    name: str
    kind: str  # "1d", "2d" or "cutflow"
    files: dict[str, str]
    thumbnail: str | None = None
    table: list[dict] = field(default_factory=list)
    csv: str | None = None


def safe_name(name: str) -> str:
    """A file-system safe version of a category/histogram/year name."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).strip("._")
    return cleaned or "_"


def cms_style():
    """The CMS matplotlib style as a context (no process-wide rcParams change)."""
    return plt.style.context(hep.style.CMS)


def save_figure(fig, outdir: Path, relbase: str, formats: tuple[str, ...], dpi: float) -> dict[str, str]:
    files = {}
    for fmt in formats:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=dpi)
        rel = f"{relbase}.{fmt}"
        atomic_write_bytes(outdir / rel, buffer.getvalue())
        files[fmt] = rel
    return files


def save_thumbnail(fig, outdir: Path, rel: str, width_px: int, png: Path | None = None) -> str:
    """A small PNG for the HTML report: the full PNG scaled down, else a low-dpi render."""
    buffer = io.BytesIO()
    if png is not None:
        from PIL import Image

        with Image.open(png) as image:
            image.thumbnail((width_px, width_px * 4))
            image.save(buffer, format="png")
    else:
        fig.savefig(buffer, format="png", dpi=max(20.0, width_px / fig.get_size_inches()[0]))
    atomic_write_bytes(outdir / rel, buffer.getvalue())
    return rel


def _cms_label(ax, style: PlotStyle, sel: YearSelection, has_data: bool) -> None:
    """"CMS <text>" top left and "<year> <lumi> fb^-1 (<com> TeV)" top right.

    Drawn with plain text artists (the extra text anchored to the "CMS" box at draw time):
    mplhep's exp_label re-renders the figure to place its texts, which costs ~1 s a plot.
    """
    inside = int(style.cms.get("loc", 0)) != 0
    x, y, va = (0.04, 0.96, "top") if inside else (0.0, 1.01, "bottom")
    cms = ax.text(x, y, "CMS", transform=ax.transAxes, ha="left", va=va, fontsize=24, fontweight="bold")
    extra = str(style.cms.get("text", "")) or ("" if has_data else "Simulation")
    if extra:
        ax.annotate(f" {extra}", xy=(1, 0), xycoords=cms, ha="left", va="bottom", fontsize=19, fontstyle="italic")
    right = [sel.name]
    if sel.lumi_fb is not None:
        right.append(f"{sel.lumi_fb:.3g} fb$^{{-1}}$")
    if sel.com is not None:
        right.append(f"({sel.com:g} TeV)")
    ax.text(1.0, 1.01, " ".join(right), transform=ax.transAxes, ha="right", va="bottom", fontsize=17)


def _cms_label_figure(fig, style: PlotStyle, sel: YearSelection, has_data: bool) -> None:
    """The CMS label once per figure (for multi-panel 2D plots)."""
    cms = fig.text(0.02, 0.97, "CMS", ha="left", va="top", fontsize=24, fontweight="bold")
    extra = str(style.cms.get("text", "")) or ("" if has_data else "Simulation")
    if extra:
        fig.axes[0].annotate(f" {extra}", xy=(1, 0), xycoords=cms, ha="left", va="bottom", fontsize=19,
                             fontstyle="italic", annotation_clip=False)
    right = [sel.name]
    if sel.lumi_fb is not None:
        right.append(f"{sel.lumi_fb:.3g} fb$^{{-1}}$")
    if sel.com is not None:
        right.append(f"({sel.com:g} TeV)")
    fig.text(0.98, 0.97, " ".join(right), ha="right", va="top", fontsize=17)


def _bin_widths_label(density: bool) -> str:
    return "Density" if density else "Events"


def draw_1d(p: PlotArrays, sel: YearSelection, style: PlotStyle, options: PlotOptions):
    """MC stack + signals + data points + band; a data/MC ratio panel unless disabled."""
    fig_opts = style.figure
    var_opts = style.variables.get(p.histogram, {})
    with_ratio = options.ratio and p.data is not None and len(p.stack) > 0
    if with_ratio:
        frac = float(fig_opts.get("ratio_fraction", 0.28))
        fig, (ax, rax) = plt.subplots(2, 1, figsize=(fig_opts["width"], fig_opts["height"]), sharex=True,
                                      gridspec_kw={"height_ratios": [1 - frac, frac], "hspace": 0.06})
    else:
        fig, ax = plt.subplots(figsize=(fig_opts["width"], fig_opts["height"] * 0.8))
        rax = None
    edges = p.edges
    centers = 0.5 * (edges[1:] + edges[:-1])
    baseline = np.zeros(len(edges) - 1)
    for e in p.stack:
        top = baseline + e.values
        ax.stairs(top, edges, baseline=baseline, fill=True, color=e.color, label=e.label, edgecolor="none")
        baseline = top
    if p.stack:
        ax.stairs(p.mc_total, edges, color="black", linewidth=0.8)
        band_label = "MC stat. + syst. unc." if p.systematics else "MC stat. unc."
        ax.stairs(p.mc_total + p.band_up, edges, baseline=p.mc_total - p.band_down, fill=True,
                  facecolor="none", edgecolor="grey", hatch="////", linewidth=0, label=band_label)
    for e in p.signals:
        scale = style.signal.get(e.name, 1.0)
        label = e.label if scale == 1 else f"{e.label} x{scale:g}"
        ax.stairs(e.values, edges, color=e.color, linewidth=2, label=label)
    if p.data is not None:
        ax.errorbar(centers, p.data, yerr=[p.data_err_down, p.data_err_up], fmt="o", color="black",
                    markersize=5, label=style.data_label)
    log_y = options.log_y or bool(var_opts.get("log_y", False))
    log_x = options.log_x or bool(var_opts.get("log_x", False))
    ymax = np.nanmax([np.max(p.mc_total + p.band_up) if p.stack else 0.0,
                      np.nanmax(p.data + p.data_err_up) if p.data is not None and np.any(np.isfinite(p.data)) else 0.0,
                      *[np.max(e.values) for e in p.signals]] or [1.0])
    ymax = ymax if np.isfinite(ymax) and ymax > 0 else 1.0
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(float(fig_opts.get("log_y_min", 0.01)), ymax * 100)
    else:
        ax.set_ylim(0, ymax * 1.45)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
    for a in (ax, rax):
        if a is None:
            continue
        if log_x:
            a.set_xscale("log")
        lo, hi = var_opts.get("xlim") or (edges[0], edges[-1])
        if log_x and lo <= 0:  # a log axis starts at the first positive edge
            lo = edges[edges > 0][0] if np.any(edges > 0) else 1.0
        a.set_xlim(lo, hi)
    ax.set_ylabel(var_opts.get("ylabel", _bin_widths_label(p.density)))
    ax.legend(ncol=int(fig_opts.get("legend_ncol", 1)), fontsize=fig_opts.get("legend_fontsize", 14), loc="upper right")
    _cms_label(ax, style, sel, p.data is not None)
    if rax is not None:
        ratio = p.ratio
        lo_err, hi_err = p.ratio_err
        rax.errorbar(centers, ratio, yerr=[lo_err, hi_err], fmt="o", color="black", markersize=4)
        rel_up = np.where(p.mc_total > 0, 1 + p.band_up / np.where(p.mc_total > 0, p.mc_total, 1), np.nan)
        rel_dn = np.where(p.mc_total > 0, 1 - p.band_down / np.where(p.mc_total > 0, p.mc_total, 1), np.nan)
        rax.stairs(rel_up, edges, baseline=rel_dn, fill=True, facecolor="none", edgecolor="grey", hatch="////", linewidth=0)
        rax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        rax.set_ylim(*style.figure.get("ratio_ylim", [0.5, 1.5]))
        rax.set_ylabel(fig_opts.get("ratio_label", "Data / MC"), fontsize=16)
        rax.set_xlabel(p.xlabel)
    else:
        ax.set_xlabel(p.xlabel)
    fig.subplots_adjust(left=0.16, right=0.96, top=0.92, bottom=0.11)
    return fig


def draw_2d(task: HistogramTask, category: str, style: PlotStyle, options: PlotOptions):
    """Colour maps: the nominal MC sum (after grouping/rescaling) and, if present, the data."""
    mc_names = [n for n in task.samples if n not in task.data_samples and n not in style.exclude_samples
                and n not in style.signal and (not style.only_samples or n in style.only_samples
                                               or any(n in style.groups.get(g, ()) for g in style.only_samples))]
    panels = []
    member_of = {s: g for g, members in style.groups.items() for s in members}
    mc_total = None
    for n in mc_names:
        got = task.samples[n].get(category, NOMINAL)
        if got is None:
            continue
        factor = style.rescale.get(n, 1.0) * style.rescale.get(member_of.get(n, ""), 1.0)
        mc_total = got[0] * factor if mc_total is None else mc_total + got[0] * factor
    if mc_total is not None:
        panels.append(("MC", mc_total))
    data_total = None
    for n in task.data_samples:
        got = task.samples[n].get(category, NOMINAL)
        if got is not None:
            data_total = got[0] if data_total is None else data_total + got[0]
    if data_total is not None and style.blind_ranges(category, task.histogram) is None:
        panels.append((style.data_label, data_total))
    if not panels:
        return None
    ref = next(iter(task.samples.values()))
    xedges, yedges = ref.edges
    fig, axes = plt.subplots(1, len(panels), figsize=(style.figure["width"] * len(panels), style.figure["height"] * 0.8),
                             squeeze=False)
    for ax, (title, values) in zip(axes[0], panels):
        values = np.asarray(values, dtype=float)
        if options.density and values.sum() > 0:
            area = np.outer(np.diff(xedges), np.diff(yedges))
            values = values / (values.sum() * area)
        norm = matplotlib.colors.LogNorm() if options.log_y and np.any(values > 0) else None
        mesh = ax.pcolormesh(xedges, yedges, np.where(values > 0, values, np.nan).T if norm else values.T,
                             cmap=style.figure.get("colormap", "viridis"), norm=norm)
        fig.colorbar(mesh, ax=ax, label="Density" if options.density else "Events")
        ax.set_xlabel(ref.axis_labels[0])
        ax.set_ylabel(ref.axis_labels[1])
        if options.log_x and xedges[-1] > 0:
            ax.set_xscale("log")
            ax.set_xlim(xedges[xedges > 0][0], xedges[-1])
        ax.set_title(title, loc="center", fontsize=18)
    _cms_label_figure(fig, style, task.selection, data_total is not None)
    fig.subplots_adjust(left=0.08, right=0.95, bottom=0.13, top=0.84, wspace=0.35)
    return fig


def run_histogram_task(task: HistogramTask, style: PlotStyle, options: PlotOptions, outdir: str) -> list[PlotRecord]:
    """Draw every category of one histogram x year; write the files; return their records."""
    with cms_style():
        return _run_histogram_task(task, style, options, outdir)


def _run_histogram_task(task: HistogramTask, style: PlotStyle, options: PlotOptions, outdir: str) -> list[PlotRecord]:
    out = Path(outdir)
    records = []
    dpi = float(style.figure.get("dpi", 120))
    for category in task.categories:
        relbase = f"{safe_name(task.selection.name)}/{safe_name(category)}"
        if task.ndim == 1:
            arrays = build_plot_arrays(task.histogram, category, task.samples, task.data_samples, style,
                                       with_syst=options.syst, only_syst=options.only_syst, density=options.density)
            if arrays is None:
                continue
            fig = draw_1d(arrays, task.selection, style, options)
            kind = "1d"
        elif task.ndim == 2:
            fig = draw_2d(task, category, style, options)
            if fig is None:
                continue
            kind = "2d"
        else:
            continue
        try:
            files = save_figure(fig, out, f"{relbase}/{safe_name(task.histogram)}", options.formats, dpi)
            thumb = save_thumbnail(fig, out, f"{relbase}/thumbs/{safe_name(task.histogram)}.png",
                                   int(style.figure.get("thumbnail_width", 320)),
                                   out / files["png"] if "png" in files else None)
        finally:
            plt.close(fig)
        records.append(PlotRecord(task.selection.name, category, task.histogram, kind, files, thumb))
    return records


def run_cutflow_task(task: CutflowTask, style: PlotStyle, options: PlotOptions, outdir: str) -> list[PlotRecord]:
    """The cutflow of one category: a plot of counts per step per sample, a CSV and the table rows."""
    with cms_style():
        return _run_cutflow_task(task, style, options, outdir)


def _run_cutflow_task(task: CutflowTask, style: PlotStyle, options: PlotOptions, outdir: str) -> list[PlotRecord]:
    out = Path(outdir)
    relbase = f"{safe_name(task.selection.name)}/{safe_name(task.category)}"
    table = []
    for row in task.rows:
        entry = {"sample": row.sample, "data": row.is_data, **{s: row.counts[s] for s in task.steps}}
        entry["yield"] = row.sumw
        entry["yield_err"] = row.sumw_err
        table.append(entry)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sample", "is_data", *task.steps, "weighted_yield", "weighted_yield_err"])
    for e in table:
        writer.writerow([e["sample"], e["data"], *[f"{e[s]:.0f}" for s in task.steps],
                         "" if e["yield"] is None else f"{e['yield']:.6g}",
                         "" if e["yield_err"] is None else f"{e['yield_err']:.6g}"])
    csv_rel = f"{relbase}/cutflow.csv"
    atomic_write_bytes(out / csv_rel, buffer.getvalue().encode())

    fig, ax = plt.subplots(figsize=(style.figure["width"], style.figure["height"] * 0.8))
    x = np.arange(len(task.steps))
    palette = list(style.palette) or ["#3f90da"]
    for i, row in enumerate(task.rows):
        counts = np.array([row.counts[s] for s in task.steps], dtype=float)
        colour = "black" if row.is_data else style.colors.get(row.sample, palette[i % len(palette)])
        ax.plot(x, np.where(counts > 0, counts, np.nan), marker="o", color=colour,
                label=style.data_label if row.is_data and len(task.rows) and row.sample not in style.labels
                else style.label(row.sample))
    ax.set_xticks(x, task.steps)
    ax.set_yscale("log")
    peak = max((max(r.counts.values()) for r in task.rows), default=1.0)
    ax.set_ylim(top=max(peak, 1.0) * 30)  # headroom for the CMS label and the legend
    ax.set_ylabel("Events (unweighted)")
    fig.subplots_adjust(left=0.16, right=0.96, top=0.9, bottom=0.12)
    ax.legend(fontsize=12, ncol=2)
    _cms_label(ax, style, task.selection, any(r.is_data for r in task.rows))
    try:
        files = save_figure(fig, out, f"{relbase}/cutflow", options.formats, float(style.figure.get("dpi", 120)))
        thumb = save_thumbnail(fig, out, f"{relbase}/thumbs/cutflow.png", int(style.figure.get("thumbnail_width", 320)),
                               out / files["png"] if "png" in files else None)
    finally:
        plt.close(fig)
    return [PlotRecord(task.selection.name, task.category, "cutflow", "cutflow", files, thumb, table, csv_rel)]
