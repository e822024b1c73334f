"""Orchestrate make-plots: validate everything, then draw in worker processes, then the report.

All checks (inputs, style, filters, output folder) run before the first file is written, so
bad input never leaves a half-made plot folder behind.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import re
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from pc_core.cli_support import progress_bar
from pc_core.errors import OutputError, PocketCoffeaError

from .draw import PlotRecord, run_cutflow_task, run_histogram_task
from .inputs import (DatasetIndex, load_outputs, normalise_for_plotting, output_samples, resolve_inputs,
                     saved_plotting_style, select_histograms)
from .report import write_index
from .style import load_style
from .tasks import (PlotOptions, categories_of, cutflow_tasks, histogram_tasks, match_any, year_selections)

log = logging.getLogger(__name__)


@dataclass
class MakePlotsRequest:
    input_dir: str | None = None
    input_files: tuple[str, ...] = ()
    style_files: tuple[str, ...] = ()
    outputdir: str | None = None
    workers: int = 1
    only_cat: tuple[str, ...] = ()
    only_year: tuple[str, ...] = ()
    only_hist: tuple[str, ...] = ()
    exclude_hist: tuple[str, ...] = ()
    options: PlotOptions = field(default_factory=PlotOptions)
    overwrite: bool = False
    cutflow: bool = True
    progress: bool = True


@dataclass
class MakePlotsResult:
    outdir: Path
    index: Path
    records: list[PlotRecord]

    @property
    def n_plots(self) -> int:
        return sum(1 for r in self.records if r.kind != "cutflow")


def _check_regexes(patterns: Sequence[str], option: str) -> None:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as exc:
            raise PocketCoffeaError(f"{option} {p!r}: invalid regular expression ({exc})") from None


def output_folder(req: MakePlotsRequest) -> Path:
    """The plot folder: -o, else <input folder>/plots; refuses a non-empty one without --overwrite."""
    if req.outputdir:
        out = Path(req.outputdir)
    elif req.input_dir:
        out = Path(req.input_dir) / "plots"
    else:
        raise PocketCoffeaError("Give the plot folder with -o/--outputdir when plotting explicit .coffea files")
    if out.exists() and not out.is_dir():
        raise PocketCoffeaError(f"Plot folder {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not req.overwrite:
        raise PocketCoffeaError(f"Plot folder {out} already exists and is not empty; pass --overwrite to replace its plots")
    return out


def make_plots(req: MakePlotsRequest) -> MakePlotsResult:
    for patterns, option in ((req.only_cat, "--only-cat"), (req.only_year, "--only-year"),
                             (req.only_hist, "--only-hist"), (req.exclude_hist, "--exclude-hist")):
        _check_regexes(patterns, option)
    if req.workers < 1:
        raise PocketCoffeaError(f"-j/--workers must be >= 1, got {req.workers}")
    files = resolve_inputs(req.input_dir, req.input_files)
    outdir = output_folder(req)
    style = load_style(list(req.style_files), saved_plotting_style(req.input_dir))
    source = ", ".join(str(f) for f in files) if len(files) <= 3 else f"{files[0]} (+{len(files) - 1} files)"

    log.info("Loading %d output file(s)", len(files))
    output, available = load_outputs(files, req.only_hist, req.exclude_hist)
    names = list(output["variables"])
    if not names:
        raise PocketCoffeaError(
            f"No histogram matches --only-hist {list(req.only_hist)} / --exclude-hist {list(req.exclude_hist)}; "
            f"histograms in {source}: {', '.join(available) or '(none)'}"
        )
    style.check_samples(output_samples(output), " + ".join(style.sources))
    index = DatasetIndex.from_output(output, source)
    all_categories = categories_of(output, names)
    categories = [c for c in all_categories if match_any(c, req.only_cat)]
    if not categories:
        raise PocketCoffeaError(
            f"No category matches --only-cat {list(req.only_cat)}; categories: {', '.join(all_categories) or '(none)'}"
        )
    selections = year_selections(index, output, style, req.only_year)
    if not selections:
        raise PocketCoffeaError(
            f"No year matches --only-year {list(req.only_year)}; years in the output: {', '.join(index.years())}"
        )
    output = normalise_for_plotting(output, source)
    # validated: from here on files are written
    outdir.mkdir(parents=True, exist_ok=True)
    cutflows = cutflow_tasks(output, index, selections, categories) if req.cutflow else []
    if req.cutflow and "cutflow" not in output:
        log.warning("%s has no 'cutflow' key: no cutflow plots or tables", source)

    total = len(names) * len(selections) + len(cutflows)
    records: list[PlotRecord] = []
    jobs = [(run_cutflow_task, t) for t in cutflows]
    hist_jobs = ((run_histogram_task, t) for t in histogram_tasks(output, index, selections, categories, source))
    console = Console(stderr=True)
    with progress_bar(enabled=req.progress, unit="plots", console=console) as progress:
        bar = progress.add_task("make-plots", total=total)
        args = (style, req.options, str(outdir))
        if req.workers == 1:
            for fn, task in itertools.chain(jobs, hist_jobs):
                records.extend(fn(task, *args))
                progress.advance(bar)
        else:
            # spawn: workers start clean (no inherited threads/locks); each task carries its own arrays
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=req.workers, mp_context=ctx) as pool:
                pending: deque[Future] = deque()
                for fn, task in itertools.chain(jobs, hist_jobs):
                    pending.append(pool.submit(fn, task, *args))
                    while len(pending) >= 2 * req.workers:  # bounded: few tasks in flight at once
                        records.extend(pending.popleft().result())
                        progress.advance(bar)
                while pending:
                    records.extend(pending.popleft().result())
                    progress.advance(bar)
        progress.update(bar, completed=total)
    if not records:
        raise OutputError(f"{source}: nothing to draw for the selected histograms, categories and years")
    index_path = write_index(outdir, records, "pocket-coffea plots", [str(f) for f in files])
    log.info("Wrote %d plots; report: %s", sum(1 for r in records if r.kind != "cutflow"), index_path)
    return MakePlotsResult(outdir, index_path, records)


__all__ = ["MakePlotsRequest", "MakePlotsResult", "make_plots", "output_folder", "select_histograms"]
