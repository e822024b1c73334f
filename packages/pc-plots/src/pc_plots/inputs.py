"""Find, load and normalise the `.coffea` outputs to plot, keeping only what is drawn.

Each file is loaded once; right after loading, every histogram that will not be drawn is
dropped (and so are ``columns``), so memory holds one file plus the selected histograms.
Reading, accumulating and normalising go through ``pc_core.output`` (docs/output-format.md).
"""
from __future__ import annotations

import glob
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pc_core.errors import OutputError
from pc_core.output import accumulate, check_output_keys, is_normalised, load_output, normalise
from pc_core.yaml_reader import read_yaml

log = logging.getLogger(__name__)

# the keys make-plots reads; `columns` (possibly huge) is never kept
PLOT_KEYS = ("variables", "cutflow", "sumw", "sumw2", "sum_genweights", "datasets_metadata", "processing_metadata")
REQUIRED_KEYS = ("variables", "datasets_metadata")
PARAMETERS_FILES = ("parameters_dump.yaml",)


def is_mc(metadata: dict) -> bool:
    """``isMC`` may be a bool or the strings "True"/"False" (PocketCoffea filesets)."""
    value = metadata.get("isMC", True)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def resolve_inputs(input_dir: str | None, input_files: Sequence[str]) -> list[Path]:
    """The .coffea files to plot: an output folder's merged output, or files/globs."""
    if input_dir and input_files:
        raise OutputError("Give either an output folder (-inp) or .coffea files (-i), not both")
    if input_dir:
        folder = Path(input_dir)
        if not folder.is_dir():
            raise OutputError(f"Output folder {folder} does not exist or is not a folder")
        for name in ("output_all.coffea", "output_merged.coffea", "merged.coffea"):
            if (folder / name).is_file():
                return [folder / name]
        candidates = sorted(folder.glob("output_*.coffea"))
        if not candidates:
            raise OutputError(
                f"Output folder {folder} has no output_all.coffea (nor output_merged.coffea, merged.coffea "
                "or output_*.coffea files to accumulate)"
            )
        log.info("No output_all.coffea in %s: accumulating %d output_*.coffea files", folder, len(candidates))
        return candidates
    if not input_files:
        raise OutputError("Nothing to plot: give an output folder (-inp) or .coffea files/globs (-i)")
    files: list[Path] = []
    for pattern in input_files:
        if glob.has_magic(pattern):
            matched = sorted(Path(p) for p in glob.glob(pattern))
            if not matched:
                raise OutputError(f"Input pattern {pattern!r} matches no file")
            files.extend(matched)
        else:
            path = Path(pattern)
            if not path.is_file():
                raise OutputError(f"Input file {path} does not exist")
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def saved_plotting_style(input_dir: str | None) -> list[tuple[str, dict]]:
    """The ``plotting_style`` section of the run's saved parameters, if any."""
    if not input_dir:
        return []
    layers = []
    for name in PARAMETERS_FILES:
        path = Path(input_dir) / name
        if not path.is_file():
            continue
        params = read_yaml(path, "Saved parameters", OutputError) or {}
        style = params.get("plotting_style") if isinstance(params, dict) else None
        if style:
            layers.append((f"{path}:plotting_style", style))
    return layers


def select_histograms(names: Iterable[str], only: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Histogram names matching any ``only`` regex (all when empty) and no ``exclude`` regex."""
    only_re = [_compile(p, "--only-hist") for p in only]
    excl_re = [_compile(p, "--exclude-hist") for p in exclude]
    return [
        n for n in names
        if (not only_re or any(r.search(n) for r in only_re)) and not any(r.search(n) for r in excl_re)
    ]


def _compile(pattern: str, option: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise OutputError(f"{option} {pattern!r}: invalid regular expression ({exc})") from None


def _filter_output(output: dict, path: Path, only_hist: Sequence[str], exclude_hist: Sequence[str]) -> dict:
    if not isinstance(output, dict):
        raise OutputError(f"Output file {path}: expected a dict, got {type(output).__name__}")
    check_output_keys(output, REQUIRED_KEYS, f"file {path} (needed for plotting)")
    if not isinstance(output["variables"], dict):
        raise OutputError(f"Output file {path}: 'variables' must be {{histogram: {{sample: {{dataset: hist}}}}}}")
    meta = output["datasets_metadata"]
    if not isinstance(meta, dict) or "by_dataset" not in meta:
        raise OutputError(f"Output file {path}: datasets_metadata lacks 'by_dataset' (see docs/output-format.md)")
    kept = {k: output[k] for k in PLOT_KEYS if k in output}
    names = select_histograms(output["variables"], only_hist, exclude_hist)
    kept["variables"] = {n: output["variables"][n] for n in names}
    return kept


def load_outputs(files: Sequence[Path], only_hist: Sequence[str] = (),
                 exclude_hist: Sequence[str] = ()) -> tuple[dict, list[str]]:
    """Load, filter and accumulate the outputs one file at a time.

    Returns the filtered output and the names of every histogram the files hold.
    """
    total: dict | None = None
    available: dict[str, None] = {}
    for path in files:
        loaded = load_output(path)  # a pickle cannot be read partially: keep one file at a time
        current = _filter_output(loaded, Path(path), only_hist, exclude_hist)
        available.update(dict.fromkeys(loaded["variables"]))
        del loaded
        total = current if total is None else accumulate([total, current])
    assert total is not None
    return total, list(available)


def normalise_for_plotting(output: dict, source: str) -> dict:
    """The output with MC scaled by xsec * lumi / sum_genweights (as is if already normalised)."""
    if is_normalised(output):
        return output
    try:
        return normalise(output)
    except OutputError as exc:
        raise OutputError(f"{source}: {exc}") from None


@dataclass
class DatasetIndex:
    """Which year each dataset belongs to and whether it is data."""

    year_of: dict[str, str]
    mc: dict[str, bool]

    @classmethod
    def from_output(cls, output: dict, source: str) -> "DatasetIndex":
        meta = output["datasets_metadata"]
        year_of: dict[str, str] = {}
        for year, samples in (meta.get("by_datataking_period") or {}).items():
            for datasets in samples.values():
                for ds in datasets:
                    year_of[ds] = str(year)
        mc = {}
        for ds, m in meta["by_dataset"].items():
            if ds not in year_of:
                if m.get("year") is None:
                    raise OutputError(f"{source}: dataset {ds!r} has no year in datasets_metadata")
                year_of[ds] = str(m["year"])
            mc[ds] = is_mc(m)
        return cls(year_of, mc)

    def years(self) -> list[str]:
        return sorted(set(self.year_of.values()))

    def check(self, datasets: Iterable[str], where: str) -> None:
        missing = sorted(set(d for d in datasets if d not in self.mc))
        if missing:
            raise OutputError(
                f"{where}: dataset(s) {', '.join(missing)} have no entry in datasets_metadata['by_dataset']"
            )


def output_samples(output: dict) -> set[str]:
    return {s for samples in output["variables"].values() for s in samples}

