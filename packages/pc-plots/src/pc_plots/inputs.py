"""Find, load and normalise the `.coffea` outputs to plot, keeping only what is drawn.

Each file is loaded once; right after loading, every histogram that will not be drawn is
dropped (and so are ``columns``), so memory holds one file plus the selected histograms.
Reading and accumulating go through ``pc_core.output`` (see docs/output-format.md).
"""
from __future__ import annotations

import glob
import inspect
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pc_core.errors import OutputError

log = logging.getLogger(__name__)

# the keys make-plots reads; `columns` (possibly huge) is never kept
PLOT_KEYS = ("variables", "cutflow", "sumw", "sumw2", "sum_genweights", "datasets_metadata", "processing_metadata")
REQUIRED_KEYS = ("variables", "datasets_metadata")
PARAMETERS_FILES = ("parameters_dump.yaml",)


def _output_module():
    try:
        from pc_core import output
    except ImportError:
        return None
    return output


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
        try:
            params = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise OutputError(f"Saved parameters {path}: malformed YAML: {exc}") from None
        style = params.get("plotting_style") if isinstance(params, dict) else None
        if style:
            layers.append((f"{path}:plotting_style", style))
    return layers


def _load_one(path: Path) -> dict:
    api = _output_module()
    try:
        if api is not None and hasattr(api, "load_output"):
            try:
                return api.load_output(path, keys=list(PLOT_KEYS))
            except TypeError:
                return api.load_output(path)
        # pc_core.output not available: the documented format is lz4 + cloudpickle of a dict
        import cloudpickle
        import lz4.frame

        with lz4.frame.open(path, "rb") as f:
            return cloudpickle.load(f)
    except OutputError:
        raise
    except FileNotFoundError:
        raise OutputError(f"Output file {path} does not exist") from None
    except Exception as exc:  # unreadable/corrupt pickle: a user-facing error naming the file
        raise OutputError(f"Output file {path} cannot be read as a .coffea output: {type(exc).__name__}: {exc}") from None


def _accumulate(a: Any, b: Any) -> Any:
    """Fallback sum of two outputs (pc_core.output.accumulate preferred)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _accumulate(a[key], value) if key in a else value
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    if isinstance(a, (str, bool)) or a is None:
        return a
    return a + b


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
    missing = [k for k in REQUIRED_KEYS if k not in output]
    if missing:
        raise OutputError(
            f"Output file {path} lacks the key(s) {', '.join(missing)} needed for plotting; "
            f"it has: {', '.join(sorted(map(str, output))) or '(nothing)'}"
        )
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
    api = _output_module()
    total: dict | None = None
    available: dict[str, None] = {}
    for path in files:
        loaded = _load_one(Path(path))
        current = _filter_output(loaded, Path(path), only_hist, exclude_hist)
        available.update(dict.fromkeys(loaded["variables"]))
        del loaded
        if total is None:
            total = current
        elif api is not None and hasattr(api, "accumulate"):
            total = api.accumulate([total, current])
        else:
            total = _accumulate(total, current)
    assert total is not None
    return total, list(available)


def lumi_by_year(output: dict) -> dict[str, float]:
    """Integrated luminosity per year in pb^-1 from processing_metadata['lumi_pb']."""
    lumi = (output.get("processing_metadata") or {}).get("lumi_pb") or {}
    return {str(k): float(v) for k, v in lumi.items()}


def normalise_for_plotting(output: dict, source: str) -> dict:
    """The output with MC scaled by xsec * lumi / sum_genweights (unchanged if already normalised)."""
    if (output.get("processing_metadata") or {}).get("normalised"):
        return output
    api = _output_module()
    if api is not None and hasattr(api, "normalise"):
        params = inspect.signature(api.normalise).parameters
        try:
            if len(params) >= 2 and list(params.values())[1].default is inspect.Parameter.empty:
                return api.normalise(output, lumi_by_year(output))
            return api.normalise(output)
        except KeyError as exc:
            raise OutputError(f"{source}: cannot normalise, missing key {exc}") from None
    return _normalise_fallback(output, source)


def _normalise_fallback(output: dict, source: str) -> dict:
    """docs/output-format.md normalisation, used only while pc_core.output.normalise is absent."""
    by_dataset = output["datasets_metadata"]["by_dataset"]
    processing = output.get("processing_metadata") or {}
    lumi = lumi_by_year(output)
    applied = set(processing.get("weights_applied") or [])
    genw = output.get("sum_genweights") or {}
    factors: dict[str, float] = {}

    def factor(dataset: str) -> float:
        if dataset in factors:
            return factors[dataset]
        meta = by_dataset.get(dataset)
        if meta is None:
            raise OutputError(f"{source}: dataset {dataset!r} has no entry in datasets_metadata['by_dataset']")
        if not is_mc(meta):
            factors[dataset] = 1.0
            return 1.0
        if dataset not in genw:
            raise OutputError(f"{source}: MC dataset {dataset!r} has no sum_genweights entry; cannot normalise")
        if genw[dataset] == 0:
            raise OutputError(f"{source}: MC dataset {dataset!r} has sum_genweights = 0; cannot normalise")
        xs_in, lumi_in = "XS" in applied, "lumi" in applied
        xsec = 1.0 if xs_in else meta.get("xsec")
        year = str(meta.get("year"))
        lum = 1.0 if lumi_in else lumi.get(year)
        if xsec is None:
            raise OutputError(f"{source}: MC dataset {dataset!r} has no 'xsec' in its metadata; cannot normalise")
        if lum is None:
            raise OutputError(
                f"{source}: no luminosity for year {year!r} (dataset {dataset!r}) in "
                f"processing_metadata['lumi_pb']; it has: {', '.join(sorted(lumi)) or '(none)'}"
            )
        factors[dataset] = float(xsec) * float(lum) / float(genw[dataset])
        return factors[dataset]

    result = dict(output)
    result["variables"] = {
        name: {sample: {ds: h * factor(ds) for ds, h in by_ds.items()} for sample, by_ds in samples.items()}
        for name, samples in output["variables"].items()
    }
    for key, power in (("sumw", 1), ("sumw2", 2)):
        if key in output:
            result[key] = {
                cat: {ds: {s: v * factor(ds) ** power for s, v in by_s.items()} for ds, by_s in by_ds.items()}
                for cat, by_ds in output[key].items()
            }
    result["processing_metadata"] = dict(processing, normalised=True)
    return result


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

