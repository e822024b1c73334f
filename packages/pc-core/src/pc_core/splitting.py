"""Split a fileset into jobs (for the manual-job executors) and resolve each job's chunksize.

Fileset format: ``{dataset: {"files": [url, ...], "metadata": {"sample", "year", "isMC",
"xsec", "nevents", ...}}}``.  The events of each file come from the optional metadata list
``file_nevents`` (same order as ``files``); without it every file is assumed to hold an
equal share of ``nevents`` (``nevents // len(files)``, the remainder spread one event each
over the first files, so the shares add up to ``nevents`` exactly).

Files are never split, lost or duplicated, and the input fileset is never modified: each
job carries a deep copy of the metadata with ``nevents`` (and ``file_nevents`` when the
input had it) recomputed for its files.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import DatasetError, RunOptionsError
from .fileset import normalise_dataset
from .run_options import is_int, per_sample_int_problem, per_sample_value, warn_unknown_samples

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One group of files processed together: a fileset subset with the same metadata."""

    index: int
    fileset: dict[str, Any]

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.fileset)

    @property
    def samples(self) -> tuple[str, ...]:
        """Sorted samples of the job's datasets (a dataset without ``sample`` counts under its own name)."""
        return tuple(
            sorted({str(entry.get("metadata", {}).get("sample", name)) for name, entry in self.fileset.items()})
        )

    @property
    def nevents(self) -> int:
        """Total events of the job, from the recomputed ``nevents`` metadata."""
        return sum(int(entry["metadata"]["nevents"]) for entry in self.fileset.values()
                   if "nevents" in entry.get("metadata", {}))

    @property
    def nfiles(self) -> int:
        return sum(len(entry["files"]) for entry in self.fileset.values())


@dataclass(frozen=True)
class _FileRef:
    dataset: str
    position: int  # index in the dataset's "files"
    nevents: int | None


# ----------------------------------------------------------------------------------------
# Reading the fileset
# ----------------------------------------------------------------------------------------


def file_events(dataset: str, entry: Mapping[str, Any]) -> list[int] | None:
    """Per-file event counts of one dataset; None when the metadata has neither ``file_nevents``
    nor ``nevents``. The entry is validated by ``pc_core.fileset.normalise_dataset``."""
    entry = normalise_dataset(dataset, entry, "the fileset to split")
    files, metadata = entry["files"], entry["metadata"]
    if metadata.get("file_nevents") is not None:
        return metadata["file_nevents"]
    if metadata.get("nevents") is None:
        return None
    if not files:
        return []
    base, remainder = divmod(metadata["nevents"], len(files))
    return [base + 1 if i < remainder else base for i in range(len(files))]


def _check_fileset(fileset: Any) -> None:
    if not isinstance(fileset, Mapping) or not fileset:
        raise DatasetError("the fileset to split is empty or not a mapping {dataset: {files, metadata}}")


def _file_refs(fileset: Mapping[str, Any], need_events: bool) -> dict[str, list[_FileRef]]:
    """The files of every non-empty dataset, in input order."""
    refs: dict[str, list[_FileRef]] = {}
    for name, entry in fileset.items():
        if not entry["files"]:
            logger.warning("dataset %r has no files; it is left out of the jobs", name)
            continue
        counts = file_events(name, entry)
        if counts is None and need_events:
            raise DatasetError(
                f"dataset {name!r}: splitting by events needs metadata 'nevents' or 'file_nevents'"
            )
        refs[name] = [
            _FileRef(name, i, None if counts is None else counts[i]) for i in range(len(entry["files"]))
        ]
    if not refs:
        raise DatasetError("the fileset to split has no files")
    return refs


# ----------------------------------------------------------------------------------------
# Building jobs
# ----------------------------------------------------------------------------------------


def _build_job(index: int, refs: Sequence[_FileRef], fileset: Mapping[str, Any]) -> Job:
    by_dataset: dict[str, list[_FileRef]] = {}
    for ref in refs:
        by_dataset.setdefault(ref.dataset, []).append(ref)
    subset: dict[str, Any] = {}
    for name in fileset:  # keep the input's dataset order
        if name not in by_dataset:
            continue
        chosen = sorted(by_dataset[name], key=lambda r: r.position)
        entry = fileset[name]
        new_entry = {key: copy.deepcopy(value) for key, value in entry.items() if key not in ("files", "metadata")}
        new_entry["files"] = [copy.deepcopy(entry["files"][r.position]) for r in chosen]
        metadata = copy.deepcopy(dict(entry.get("metadata") or {}))
        if all(r.nevents is not None for r in chosen):
            total = sum(r.nevents for r in chosen)  # type: ignore[misc]
            metadata["nevents"] = str(total) if isinstance(metadata.get("nevents"), str) else total
            if "file_nevents" in metadata:
                metadata["file_nevents"] = [copy.deepcopy(entry["metadata"]["file_nevents"][r.position]) for r in chosen]
        new_entry["metadata"] = metadata
        subset[name] = new_entry
    return Job(index=index, fileset=subset)


def _pack(refs: Sequence[_FileRef], budget: int) -> list[list[_FileRef]]:
    """Greedy in-order packing: a group closes before a file would push it over ``budget``."""
    groups: list[list[_FileRef]] = []
    current: list[_FileRef] = []
    load = 0
    for ref in refs:
        events = ref.nevents or 0
        if current and load + events > budget:
            groups.append(current)
            current, load = [], 0
        current.append(ref)
        load += events
    if current:
        groups.append(current)
    return groups


def _balanced_partition(refs: Sequence[_FileRef], njobs: int) -> list[list[_FileRef]]:
    """Exactly ``njobs`` contiguous non-empty groups minimising the largest event sum."""
    weights = [ref.nevents or 0 for ref in refs]
    low, high = max(weights), sum(weights)
    while low < high:  # smallest capacity that packs into <= njobs groups
        middle = (low + high) // 2
        if len(_pack(refs, middle)) <= njobs:
            high = middle
        else:
            low = middle + 1
    groups = _pack(refs, low)
    while len(groups) < njobs:  # split further: never raises the largest sum
        splittable = [i for i, g in enumerate(groups) if len(g) > 1]
        target = max(splittable, key=lambda i: (sum(r.nevents or 0 for r in groups[i]), len(groups[i]), -i))
        group = groups[target]
        prefix = [0]
        for ref in group:
            prefix.append(prefix[-1] + (ref.nevents or 0))
        total = prefix[-1]
        cut = min(
            range(1, len(group)),
            key=lambda c: (max(prefix[c], total - prefix[c]), abs(len(group) - 2 * c)),
        )
        groups[target : target + 1] = [group[:cut], group[cut:]]
    return groups


def split_fileset(
    fileset: Mapping[str, Any],
    scaleout: int | None = None,
    max_events_per_job: int | Mapping[str, int] | None = None,
) -> list[Job]:
    """Split ``fileset`` into jobs; the input is not modified.

    * ``max_events_per_job`` int: files of all datasets, in order, packed into jobs of at
      most that many events (a file larger than the budget is a job of its own).
    * ``max_events_per_job`` dict ``{default: int, sample: int}``: every dataset split on
      its own with its sample's budget, so each job holds one sample (and one dataset).
    * ``scaleout`` N: ``min(N, number of files)`` jobs of contiguous files, balanced by
      events across all datasets.
    * both given: ``max_events_per_job`` wins (warning); neither: one job (warning).
    """
    _check_fileset(fileset)
    if scaleout is not None and (not is_int(scaleout) or scaleout < 1):
        raise RunOptionsError(f"scaleout = {scaleout!r} is not valid for splitting; expected an integer > 0")
    if max_events_per_job is not None:
        problem = per_sample_int_problem(max_events_per_job)
        if problem is not None:
            raise RunOptionsError(
                f"max-events-per-job = {max_events_per_job!r} is not valid ({problem}); expected an integer > 0 "
                "or a mapping {default: int, <sample>: int}"
            )
        if scaleout is not None:
            logger.warning(
                "both scaleout (%s) and max-events-per-job are set: splitting by max-events-per-job, "
                "scaleout is ignored", scaleout,
            )
        if isinstance(max_events_per_job, Mapping):
            return _split_per_sample(fileset, max_events_per_job)
        refs = _file_refs(fileset, need_events=True)
        groups = _pack([r for dataset_refs in refs.values() for r in dataset_refs], max_events_per_job)
    elif scaleout is not None:
        refs = _file_refs(fileset, need_events=True)
        flat = [r for dataset_refs in refs.values() for r in dataset_refs]
        groups = _balanced_partition(flat, min(scaleout, len(flat)))
    else:
        logger.warning(
            "neither scaleout nor max-events-per-job is set: the whole fileset goes into one job; "
            "set --scaleout N or max-events-per-job to split it"
        )
        refs = _file_refs(fileset, need_events=False)
        groups = [[r for dataset_refs in refs.values() for r in dataset_refs]]
    return [_build_job(i, group, fileset) for i, group in enumerate(groups)]


def _split_per_sample(fileset: Mapping[str, Any], budgets: Mapping[str, int]) -> list[Job]:
    refs = _file_refs(fileset, need_events=True)
    samples = {name: str(fileset[name]["metadata"]["sample"]) for name in refs}  # checked by file_events
    warn_unknown_samples(budgets, "max-events-per-job", samples.values())
    groups: list[list[_FileRef]] = []
    for name, dataset_refs in refs.items():
        budget = per_sample_value(dict(budgets), samples[name], "max-events-per-job")
        groups.extend(_pack(dataset_refs, budget))
    return [_build_job(i, group, fileset) for i, group in enumerate(groups)]


def resolve_job_chunksize(job: Job, chunksize: int | Mapping[str, int]) -> int:
    """The in-job chunksize: an int as is; a per-sample dict needs a single-sample job
    (``run_options.per_sample_value`` validates and resolves it)."""
    samples = job.samples
    if isinstance(chunksize, Mapping) and len(samples) != 1:
        raise RunOptionsError(
            f"job {job.index} contains files from multiple samples ({', '.join(samples)}) but chunksize is a "
            "per-sample dict, which needs one sample per job: use the dict form of max-events-per-job "
            "(one sample per job) or an integer chunksize"
        )
    return per_sample_value(dict(chunksize) if isinstance(chunksize, Mapping) else chunksize, samples[0], "chunksize")
