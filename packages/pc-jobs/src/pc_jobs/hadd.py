"""``hadd-skimmed-files``: regroup the many small skimmed files of a skim into fewer, bigger ones.

A skimming run writes one ROOT file per chunk. This joins consecutive files of a dataset
into files of at most ``--events`` events, ``--max-size`` MB (of input) and/or ``--files``
inputs, with uproot (no ROOT ``hadd`` needed):

- ``Events``: the entries of the inputs, in order, every branch kept with its NanoAOD
  layout (``nX`` counters and ``X_field`` branches);
- ``Runs`` (a TTree): one entry whose ``genEvent*`` branches (``genEventCount``, ``genEventSumw``,
  ``genEventSumw2``, with or without NanoAOD's trailing ``_``) are the sums over the inputs,
  so the regrouped files normalise exactly like the originals.

The inputs come from a merged skim output (``.coffea`` with ``skimmed_files`` and
``nskimmed_events``) or a ``skimmed_dataset_definition.json``. Each output is written
atomically and read back to check its event count; the updated dataset definition
(``files``, ``file_nevents``, ``nevents`` of the new files, other metadata kept) is written
at the end. Inputs are only read.
"""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pc_core.atomic import atomic_path
from pc_core.cli_support import loglevel_option, progress_bar, run_cli, setup_logging
from pc_core.errors import PocketCoffeaError
from pc_core.fileset import load_fileset_json, save_fileset_json
from pc_core.output import load_output

log = logging.getLogger(__name__)

DEFINITION_NAME = "skimmed_dataset_definition.json"
STEP_SIZE = "200 MB"  # Events read per step: memory stays bounded whatever the file sizes


class HaddError(PocketCoffeaError):
    """Skimmed files cannot be regrouped (bad input, unreadable file, existing output)."""


@dataclass(frozen=True)
class SkimFile:
    """One input file: where, how many Events entries, how many bytes."""

    path: str
    nevents: int
    size: int


@dataclass(frozen=True)
class HaddGroup:
    """Consecutive inputs of one dataset that become one output file."""

    dataset: str
    output: Path
    inputs: tuple[SkimFile, ...]

    @property
    def nevents(self) -> int:
        return sum(f.nevents for f in self.inputs)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.inputs)


# --------------------------------------------------------------------------- inputs


def read_source(path: str | os.PathLike) -> dict[str, Any]:
    """The skimmed-files definition ``{dataset: {files, metadata}}`` of a ``.coffea`` or JSON."""
    path = Path(path)
    if not path.is_file():
        raise HaddError(f"--files-list {path} does not exist; pass a merged skim output (.coffea) "
                        f"or a {DEFINITION_NAME}")
    if path.suffix == ".json":
        return load_fileset_json(path)
    from .merge import skimmed_dataset_definition

    definition = skimmed_dataset_definition(load_output(path))
    if definition is None:
        raise HaddError(f"{path} has no 'skimmed_files': it is not the output of a skimming run "
                        "(save_skimmed_files in the configuration)")
    return definition


def inspect_files(dataset: str, files: Sequence[str], declared: Sequence[int] | None = None) -> list[SkimFile]:
    """Open every input for its Events entry count (authoritative) and size."""
    import uproot

    result = []
    for i, path in enumerate(files):
        try:
            with uproot.open(path) as handle:
                if "Events" not in handle:
                    raise HaddError(f"dataset {dataset!r}: {path} has no 'Events' tree (keys: {handle.keys()})")
                nevents = int(handle["Events"].num_entries)
        except HaddError:
            raise
        except Exception as exc:  # uproot raises OSError, ValueError, DeserializationError...
            raise HaddError(f"dataset {dataset!r}: cannot read skimmed file {path}: {type(exc).__name__}: {exc}") from None
        if declared is not None and i < len(declared) and int(declared[i]) != nevents:
            log.warning("dataset %s: %s has %d events, the definition says %d; using %d",
                        dataset, path, nevents, declared[i], nevents)
        result.append(SkimFile(path, nevents, os.path.getsize(path) if os.path.exists(path) else 0))
    return result


def plan_groups(
    dataset: str,
    files: Sequence[SkimFile],
    outputdir: str | os.PathLike,
    *,
    max_events: int | None = None,
    max_size_mb: float | None = None,
    max_files: int | None = None,
) -> list[HaddGroup]:
    """Split ``files`` (kept in order) into groups within every given limit.

    A file alone above a limit becomes a group of its own; no limit: one group.
    """
    groups: list[list[SkimFile]] = []
    current: list[SkimFile] = []
    for item in files:
        if current:
            too_many = max_files is not None and len(current) + 1 > max_files
            too_big = max_events is not None and sum(f.nevents for f in current) + item.nevents > max_events
            too_large = max_size_mb is not None and (sum(f.size for f in current) + item.size) > max_size_mb * 1e6
            if too_many or too_big or too_large:
                groups.append(current)
                current = []
        current.append(item)
    if current:
        groups.append(current)
    folder = Path(outputdir) / dataset
    return [HaddGroup(dataset, folder / f"{dataset}_{n}.root", tuple(g)) for n, g in enumerate(groups, start=1)]


# --------------------------------------------------------------------------- writing


def _layout(tree: Any) -> tuple[list[str], dict[str, list[str]]]:
    """Flat branches, and jagged branches grouped by their counter (``nMuon`` -> ``[Muon_pt, ...]``)."""
    jagged: dict[str, list[str]] = {}
    flat: list[str] = []
    for name in tree.keys(recursive=False):
        counter = tree[name].count_branch
        if counter is not None:
            jagged.setdefault(counter.name, []).append(name)
        else:
            flat.append(name)
    flat = [name for name in flat if name not in jagged]
    return flat, jagged


def _branches(arrays: Any, flat: list[str], jagged: Mapping[str, list[str]]) -> dict[str, Any]:
    import awkward as ak

    out: dict[str, Any] = {name: ak.to_numpy(arrays[name]) for name in flat}
    for counter, members in jagged.items():
        key = _group_key(counter)
        if members == [key]:  # nLHEPdfWeight -> LHEPdfWeight alone: a plain jagged branch
            out[key] = arrays[key]
        else:
            out[key] = ak.zip({name: arrays[name] for name in members}, depth_limit=2)
    return out


def _group_key(counter: str) -> str:
    return counter[1:] if counter.startswith("n") and len(counter) > 1 else f"_{counter}"


RUNS_SUMMED_PREFIX = "genEvent"


def _runs_sums(path: str) -> dict[str, Any] | None:
    """Sums of the scalar numeric ``genEvent*`` columns of one file's Runs (None without Runs).

    Runs may be a TTree (NanoAOD) or an RNTuple (what ``uproot``'s ``file[name] = {...}``
    writes); both are read the same way.
    """
    import numpy as np
    import uproot

    with uproot.open(path) as handle:
        if "Runs" not in handle:
            return None
        runs = handle["Runs"]
        names = [n for n in runs.keys() if n.startswith(RUNS_SUMMED_PREFIX)]
        arrays = runs.arrays(names, library="np")
    sums = {}
    for name in names:
        values = np.asarray(arrays[name])
        if values.ndim == 1 and values.dtype.kind in "iuf":
            sums[name] = values.sum()
    return sums


def hadd_group(group: HaddGroup) -> int:
    """Write one output file (atomically); returns its Events entries, checked by reading it back."""
    import numpy as np
    import uproot

    counters: dict[str, str] = {}
    runs_total: dict[str, Any] | None = None
    runs_missing: list[str] = []
    written = 0
    with atomic_path(group.output) as tmp:
        with uproot.recreate(tmp) as out:
            tree = None
            for item in group.inputs:
                try:
                    with uproot.open(item.path) as handle:
                        events = handle["Events"]
                        flat, jagged = _layout(events)
                        counters.update({_group_key(c): c for c in jagged})
                        for arrays in events.iterate(step_size=STEP_SIZE, library="ak"):
                            branches = _branches(arrays, flat, jagged)
                            if tree is None:
                                tree = out.mktree(
                                    "Events",
                                    {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in branches.items()},
                                    counter_name=lambda counted: counters[counted],
                                    field_name=lambda outer, inner: inner,
                                )
                            if len(arrays):
                                tree.extend(branches)
                                written += len(arrays)
                except HaddError:
                    raise
                except Exception as exc:
                    raise HaddError(f"{group.output}: cannot add {item.path}: {type(exc).__name__}: {exc}") from None
                sums = _runs_sums(item.path)
                if sums is None:
                    runs_missing.append(item.path)
                elif runs_total is None:
                    runs_total = dict(sums)
                else:
                    common = runs_total.keys() & sums.keys()
                    runs_total = {k: runs_total[k] + sums[k] for k in runs_total if k in common}
            if runs_total is not None:
                if runs_missing:
                    raise HaddError(f"{group.output}: inputs without a Runs tree ({', '.join(runs_missing)}) "
                                    "mixed with inputs that have one: the summed genEventSumw would be wrong")
                runs = {k: np.asarray([v]) for k, v in runs_total.items()}
                out.mktree("Runs", {k: v.dtype for k, v in runs.items()})  # a TTree, as in NanoAOD
                out["Runs"].extend(runs)
        with uproot.open(tmp) as check:
            entries = int(check["Events"].num_entries)
    if entries != group.nevents or written != group.nevents:
        raise HaddError(f"{group.output}: wrote {entries} events, expected {group.nevents} from the inputs")
    return entries


# --------------------------------------------------------------------------- the command


@dataclass
class HaddResult:
    groups: list[HaddGroup]
    definition: dict[str, Any]
    definition_path: Path | None


def hadd_skimmed_files(
    source: str | os.PathLike,
    outputdir: str | os.PathLike,
    *,
    max_events: int | None = None,
    max_size_mb: float | None = None,
    max_files: int | None = None,
    datasets: Iterable[str] = (),
    definition_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    dry: bool = False,
    scaleout: int = 1,
    console: Console | None = None,
) -> HaddResult:
    """Regroup the skimmed files of ``source`` into ``outputdir``; see the module docstring."""
    console = console or Console(stderr=True)
    definition = read_source(source)
    wanted = list(datasets)
    unknown = [d for d in wanted if d not in definition]
    if unknown:
        raise HaddError(f"--only-datasets {', '.join(unknown)} not in {source} (datasets: {', '.join(definition)})")
    selected = {d: e for d, e in definition.items() if not wanted or d in wanted}
    outputdir = Path(outputdir)
    definition_path = Path(definition_path) if definition_path else outputdir / DEFINITION_NAME
    if definition_path.resolve() == Path(source).resolve():
        raise HaddError(f"the new dataset definition would overwrite the input {source}; choose --definition")

    groups: list[HaddGroup] = []
    for dataset, entry in selected.items():
        files = inspect_files(dataset, entry["files"], entry["metadata"].get("file_nevents"))
        groups += plan_groups(dataset, files, outputdir, max_events=max_events, max_size_mb=max_size_mb,
                              max_files=max_files)
    inputs = {os.path.realpath(f.path) for g in groups for f in g.inputs}
    for group in groups:
        if os.path.realpath(group.output) in inputs:
            raise HaddError(f"output {group.output} is also an input; choose another --outputdir")
    existing = [str(p) for p in [g.output for g in groups] + [definition_path] if p.exists()]
    if existing and not overwrite and not dry:
        raise HaddError(f"{len(existing)} output file(s) exist already (e.g. {existing[0]}); pass --overwrite "
                        "to replace them")

    new_definition: dict[str, Any] = {}
    for dataset, entry in selected.items():
        mine = [g for g in groups if g.dataset == dataset]
        meta = copy.deepcopy(entry["metadata"])
        meta["nevents"] = sum(g.nevents for g in mine)
        meta["file_nevents"] = [g.nevents for g in mine]
        meta.pop("size", None)
        new_definition[dataset] = {"files": [str(g.output.absolute()) for g in mine], "metadata": meta}

    if dry:
        return HaddResult(groups, new_definition, None)
    with progress_bar(console=console) as progress:
        task = progress.add_task("Regrouping skimmed files", total=len(groups))
        if scaleout > 1 and len(groups) > 1:
            with ProcessPoolExecutor(max_workers=scaleout) as pool:
                for _ in pool.map(hadd_group, groups):
                    progress.advance(task)
        else:
            for group in groups:
                hadd_group(group)
                progress.advance(task)
    save_fileset_json(new_definition, definition_path)
    return HaddResult(groups, new_definition, definition_path)


def groups_table(result: HaddResult) -> Table:
    table = Table(title="Regrouped skimmed files")
    for column in ("dataset", "output", "inputs", "events"):
        table.add_column(column, justify="right" if column in ("inputs", "events") else "left")
    for group in result.groups:
        table.add_row(group.dataset, str(group.output), str(len(group.inputs)), str(group.nevents))
    return table


@click.command("hadd-skimmed-files")
@click.option("-fl", "--files-list", required=True, type=click.Path(dir_okay=False),
              help=f"Merged skim output (.coffea with skimmed_files) or a {DEFINITION_NAME}.")
@click.option("-o", "--outputdir", required=True, type=click.Path(file_okay=False),
              help="Folder for the regrouped files (<outputdir>/<dataset>/<dataset>_<n>.root).")
@click.option("-e", "--events", "max_events", type=click.IntRange(min=1), default=None,
              help="At most this many events per output file.")
@click.option("--max-size", "max_size_mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="At most this many MB of input files per output file.")
@click.option("-f", "--files", "max_files", type=click.IntRange(min=1), default=None,
              help="At most this many input files per output file.")
@click.option("--only-datasets", multiple=True, help="Regroup only this dataset (repeatable).")
@click.option("--definition", "definition_path", type=click.Path(dir_okay=False), default=None,
              help=f"Where to write the new dataset definition [default: <outputdir>/{DEFINITION_NAME}].")
@click.option("-s", "--scaleout", type=click.IntRange(min=1), default=1, show_default=True,
              help="Output files written in parallel (processes).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("--dry", is_flag=True, help="Only show the grouping; write nothing.")
@loglevel_option()
def hadd_skimmed_files_command(files_list, outputdir, max_events, max_size_mb, max_files, only_datasets,
                               definition_path, scaleout, overwrite, dry, loglevel) -> None:
    """Regroup skimmed datasets by joining different files (like hadd), with uproot."""
    setup_logging(loglevel)
    result = hadd_skimmed_files(files_list, outputdir, max_events=max_events, max_size_mb=max_size_mb,
                                max_files=max_files, datasets=only_datasets, definition_path=definition_path,
                                overwrite=overwrite, dry=dry, scaleout=scaleout)
    console = Console()
    console.print(groups_table(result))
    if result.definition_path is None:
        console.print("[yellow]--dry: nothing written")
    else:
        console.print(f"[green]Dataset definition of the regrouped files written to {result.definition_path}")


def main() -> None:
    run_cli(hadd_skimmed_files_command, prog_name="hadd-skimmed-files")


__all__ = ["HaddError", "HaddGroup", "HaddResult", "SkimFile", "hadd_group", "hadd_skimmed_files",
           "hadd_skimmed_files_command", "plan_groups", "read_source"]
