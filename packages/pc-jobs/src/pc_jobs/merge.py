"""``merge-outputs``: merge per-job ``.coffea`` outputs and prove that no input was lost.

Inputs are ``.coffea`` files (or glob patterns) and/or a jobs directory written by the
manual-job executors (``-jc``), whose ``jobs_config.yaml`` lists every job and its output.
Before anything is written the command checks (docs/merging.md):

- with ``-jc``, that every job is flagged done (``pc_jobs.job_flags``) and its output exists;
- with the processing ledgers (``processing_metadata["ledger"]``, ``pc_core.ledger``), that
  no entry range of any input file is added twice (``LedgerOverlapError`` naming both
  outputs) and that every entry range of every file of the fileset (``--fileset``, else the
  jobs' filesets, else the files the outputs themselves name) is processed exactly once, or
  listed as skipped/failed (reported, not an error);
- for outputs written before ledgers existed only, that ``cutflow["initial"]`` summed over
  the outputs equals the dataset's ``nevents`` metadata (by event counts only).

The merged output is written atomically; inputs are only read.

``jobs_config.yaml`` (written by the condor executors, documented in docs/merging.md)::

    version: 1
    jobs:
      0:
        fileset: {dataset: {files: [...], metadata: {...}}}   # this job's slice
        config: config_job_0.pkl                              # relative to the jobs dir
        output: /path/to/output/output_job_0.coffea           # relative to the jobs dir
"""
from __future__ import annotations

import copy
import glob
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pc_core.cli_support import loglevel_option, progress_bar, run_cli, setup_logging
from pc_core.errors import DatasetError, OutputError
from pc_core.fileset import load_fileset_jsons, normalise_dataset, save_fileset_json
from pc_core.ledger import (
    FAILED,
    LEDGER_KEY,
    SKIPPED,
    LedgerOverlapError,
    completeness_problems,
    find_file,
    merge_ledgers,
    processed_events,
)
from pc_core.output import accumulate, check_output_keys, load_output, save_output
from pc_core.urls import lfn_of, normalise_url

from .job_flags import JobsFolderError, scan_jobs
from .jobs_dir import load_jobs_document

log = logging.getLogger(__name__)

JOBS_CONFIG_NAME = "jobs_config.yaml"
MERGED_OUTPUT_NAME = "output_merged.coffea"
SKIMMED_DEFINITION_NAME = "skimmed_dataset_definition.json"
# what merging itself relies on; the full format is pc_core.output.REQUIRED_KEYS
MERGE_REQUIRED_KEYS = ("cutflow", "datasets_metadata")
MAX_LISTED = 20  # longer lists of problems are cut, saying how many more there are


class IncompleteOutputError(OutputError):
    """Job outputs are missing or events were lost: merging would give a wrong result."""


# --------------------------------------------------------------------------- jobs_config.yaml


@dataclass(frozen=True)
class JobEntry:
    """One manual job: its fileset slice, pickled config and expected output file."""

    name: str
    output: Path
    config: Path | None
    fileset: dict[str, Any]


@dataclass(frozen=True)
class JobsConfig:
    path: Path
    jobs_dir: Path
    jobs: tuple[JobEntry, ...]

    def expected_datasets(self) -> dict[str, dict[str, Any]]:
        """Per dataset, the metadata summed over every job's slice: what the merge must contain.

        ``nevents`` is the sum of the jobs' slice ``nevents`` (None when a job does not know
        it); ``nevents_estimated`` is set when any slice is an estimate.
        """
        result: dict[str, dict[str, Any]] = {}
        for job in self.jobs:
            for dataset, entry in job.fileset.items():
                meta = entry["metadata"]
                total = result.setdefault(dataset, {"nevents": 0})
                if total["nevents"] is None or meta.get("nevents") is None:
                    total["nevents"] = None
                else:
                    total["nevents"] += int(meta["nevents"])
                if meta.get("nevents_estimated"):
                    total["nevents_estimated"] = True
        return result

    def union_fileset(self) -> dict[str, dict[str, Any]]:
        """Every job's slice united per dataset: its files (in order, once) and its metadata
        with ``nevents`` summed over the slices (``file_nevents`` dropped)."""
        totals = self.expected_datasets()
        result: dict[str, dict[str, Any]] = {}
        seen: dict[str, set[str]] = {}
        for job in self.jobs:
            for dataset, entry in job.fileset.items():
                if dataset not in result:
                    meta = {k: v for k, v in entry["metadata"].items() if k != "file_nevents"}
                    meta.update(totals[dataset])
                    result[dataset] = {"files": [], "metadata": meta}
                    seen[dataset] = set()
                for url in entry["files"]:
                    if url not in seen[dataset]:
                        seen[dataset].add(url)
                        result[dataset]["files"].append(url)
        return result

    def datasets_of(self, job_names: Iterable[str]) -> set[str]:
        names = set(job_names)
        return {ds for job in self.jobs if job.name in names for ds in job.fileset}


def find_jobs_config(path: str | os.PathLike) -> Path:
    """Accept the YAML itself, the jobs dir, or an output dir holding a single ``job/`` folder."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / JOBS_CONFIG_NAME, path / "job" / JOBS_CONFIG_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise OutputError(
        f"No {JOBS_CONFIG_NAME} found for --jobs-config {path} (looked for "
        f"{', '.join(str(c) for c in candidates)}); pass the jobs folder written by the condor executor"
    )


def _resolve(base: Path, value: Any, where: str, key: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise OutputError(f"{where}: {key!r} must be a file path, got {value!r}")
    path = Path(value)
    return path if path.is_absolute() else base / path


def load_jobs_config(path: str | os.PathLike) -> JobsConfig:
    """Read and validate ``jobs_config.yaml`` (schema in the module docstring)."""
    config_path = find_jobs_config(path)
    jobs_dir = config_path.parent
    try:
        raw = load_jobs_document(config_path)  # the one reader of jobs_config.yaml (jobs_dir)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise OutputError(f"{config_path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("jobs"), dict):
        raise OutputError(
            f"{config_path}: expected a mapping with a 'jobs' mapping {{job: {{fileset, config, output}}}}, "
            f"got {type(raw.get('jobs') if isinstance(raw, dict) else raw).__name__}"
        )
    if not raw["jobs"]:
        raise OutputError(f"{config_path}: 'jobs' is empty, there is nothing to merge")
    jobs = []
    for name, job in raw["jobs"].items():
        where = f"{config_path}: job {name!r}"
        if not isinstance(job, dict):
            raise OutputError(f"{where} must be a mapping with keys 'fileset', 'config', 'output'")
        if "output" not in job:
            raise OutputError(f"{where} lacks the key 'output' (the path of the job's .coffea output)")
        fileset_raw = job.get("fileset") or {}
        if not isinstance(fileset_raw, dict):
            raise OutputError(f"{where}: 'fileset' must be a mapping {{dataset: {{files, metadata}}}}")
        try:
            fileset = {ds: normalise_dataset(ds, entry, f"{where} fileset") for ds, entry in fileset_raw.items()}
        except DatasetError as exc:
            raise OutputError(str(exc)) from None
        jobs.append(
            JobEntry(
                name=str(name),
                output=_resolve(jobs_dir, job["output"], where, "output"),
                config=_resolve(jobs_dir, job["config"], where, "config") if job.get("config") else None,
                fileset=fileset,
            )
        )
    return JobsConfig(path=config_path, jobs_dir=jobs_dir, jobs=tuple(jobs))


# --------------------------------------------------------------------------- inputs


def expand_inputs(patterns: Iterable[str]) -> list[Path]:
    """Files and glob patterns to a list of files; a pattern matching nothing is an error."""
    files: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise OutputError(f"No file matches the input pattern {pattern!r}")
            files.extend(Path(m) for m in matches)
        else:
            path = Path(pattern)
            if not path.exists():
                raise OutputError(f"Input file {pattern} does not exist")
            files.append(path)
    return files


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    result = []
    for path in paths:
        key = path.resolve()
        if key in seen:
            log.warning("Input %s given twice: merged once", path)
            continue
        seen.add(key)
        result.append(path)
    return result


# --------------------------------------------------------------------------- job flags


def _cap(lines: Sequence[str], limit: int = MAX_LISTED) -> list[str]:
    """``lines`` cut to ``limit``, the last line saying how many more there are."""
    lines = list(lines)
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... and {len(lines) - limit} more"]


def job_states(jobs: JobsConfig) -> dict[str, str | None] | None:
    """Every job's state flag as ``pc_jobs.job_flags.scan_jobs`` reads it (the newest flag wins,
    so a ``job_{i}.failed`` newer than ``job_{i}.done`` means failed; no flag: None).

    None when the folder holds no ``job_{i}.sub`` (a ``jobs_config.yaml`` not written by a
    condor executor): the states are unknown and only the outputs' existence is checked.
    """
    try:
        snapshot = scan_jobs(jobs.jobs_dir)
    except JobsFolderError:
        log.warning(
            "%s holds no job_<i>.sub files (not written by a condor@<site> run?): the jobs' state flags "
            "(job_<i>.done/.failed) are not checked, only that their outputs exist", jobs.jobs_dir,
        )
        return None
    return {job.name: snapshot.states.get(int(job.name)) if job.name.isdigit() else None for job in jobs.jobs}


def _describe_flag(jobs_dir: Path, name: str, state: str | None) -> str:
    if state is None:
        return f"has no state flag (no {jobs_dir / f'job_{name}'}.{{idle,running,done,failed}})"
    flag = jobs_dir / f"job_{name}.{state}"
    if state == "failed" and (jobs_dir / f"job_{name}.done").exists():
        return f"is flagged failed ({flag}, newer than job_{name}.done)"
    return f"is flagged {state} ({flag})"


def select_job_outputs(jobs: JobsConfig, allow_missing: bool = False) -> tuple[list[Path], dict[str, str]]:
    """The outputs of the jobs that are done, and ``{job: why it is left out}`` for the others.

    A job whose output is missing, or which is not flagged done (failed, running, idle or no
    flag: its output, if any, is stale or partial), stops the merge unless ``allow_missing``.
    """
    states = job_states(jobs)
    outputs: list[Path] = []
    missing: list[str] = []
    not_done: list[str] = []
    excluded: dict[str, str] = {}
    for job in jobs.jobs:
        exists = job.output.is_file()
        state = states.get(job.name) if states is not None else None
        if states is not None and state != "done":
            flag = _describe_flag(jobs.jobs_dir, job.name, state)
            if exists:
                why = ("is stale or partial" if state == "failed"
                       else "is not final (an earlier attempt's, or still being written)")
                not_done.append(f"job {job.name} {flag}: its output {job.output} {why}")
                excluded[job.name] = f"job {job.name} {flag}"
            else:
                missing.append(f"job {job.name}: {job.output} (the job {flag})")
                excluded[job.name] = f"job {job.name} {flag}, no output"
        elif not exists:
            note = " (flagged done, but the file is not there: moved or deleted?)" if states is not None else ""
            missing.append(f"job {job.name}: {job.output}{note}")
            excluded[job.name] = f"job {job.name}: output {job.output} is missing"
        else:
            outputs.append(job.output)
    total = len(jobs.jobs)
    sections = []
    if missing:
        sections.append(f"{len(missing)} of {total} job outputs listed in {jobs.path} are missing:\n  "
                        + "\n  ".join(_cap(missing)))
    if not_done:
        sections.append(f"{len(not_done)} of {total} jobs listed in {jobs.path} are not done, their outputs "
                        "cannot be merged:\n  " + "\n  ".join(_cap(not_done)))
    if sections:
        text = "\n".join(sections)
        if not allow_missing:
            raise IncompleteOutputError(
                f"{text}\nNothing was written. Wait for/resubmit those jobs (check-jobs --resubmit, or run "
                "--recreate-jobs), or pass --allow-missing to merge the done jobs only."
            )
        log.warning("Merging without %d job(s) (--allow-missing):\n%s", len(excluded), text)
    return outputs, excluded


def _not_merged_files(jobs: JobsConfig, excluded: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, int | None]]:
    """``{(dataset, url): (reason, events)}`` of the files of the jobs left out by --allow-missing."""
    result: dict[tuple[str, str], tuple[str, int | None]] = {}
    for job in jobs.jobs:
        if job.name not in excluded:
            continue
        for dataset, entry in job.fileset.items():
            files, meta = entry["files"], entry["metadata"]
            per_file = meta.get("file_nevents")
            for i, url in enumerate(files):
                if per_file is not None and len(per_file) == len(files):
                    events = int(per_file[i])
                elif len(files) == 1 and meta.get("nevents") is not None and not meta.get("nevents_estimated"):
                    events = int(meta["nevents"])
                else:
                    events = None
                result[(dataset, url)] = (f"{excluded[job.name]} (--allow-missing)", events)
    return result


# --------------------------------------------------------------------------- checks


@dataclass
class EventsCheck:
    """One dataset's completeness check.

    ``method`` "ledger": ``found`` is the events the ledgers say were processed, ``status``
    "ok", "partial" (every entry accounted for, some skipped/failed/not merged),
    "incomplete" or "skipped" (--skip-initial-events-check). ``method`` "event counts" (outputs
    without ledger): ``found`` is ``cutflow["initial"]``, ``status`` "ok", "mismatch",
    "skipped", "unknown" or "estimated".
    """

    dataset: str
    expected: int | None
    found: int
    status: str
    not_processed: int = 0  # events in skipped/failed/not-merged ranges of known length
    unknown_ranges: int = 0  # such ranges whose length is unknown (file never opened)
    method: str = "event counts"


@dataclass(frozen=True)
class NotProcessed:
    """An entry range of an input file that is not in the merged output, and why."""

    dataset: str
    file: str
    start: int
    stop: int | None  # None: to the end of the file
    status: str  # "skipped" or "failed" (in the ledger), "not merged" (a job left out by --allow-missing)
    kind: str
    reason: str
    events: int | None  # None: unknown (a file that was never opened has no known length)

    @property
    def entries(self) -> str:
        return f"{self.start}-{'end' if self.stop is None else self.stop}"


def _ledger_rows(ledger: Mapping[str, Any]) -> list[NotProcessed]:
    """The skipped and failed ranges of ``ledger``, with their event counts where known."""
    rows = []
    for entry in (ledger.get("files") or {}).values():
        entries = entry.get("entries")
        for status in (SKIPPED, FAILED):
            for item in entry.get(status) or []:
                start, stop = int(item["start"]), item.get("stop")
                end = stop if stop is not None else entries
                rows.append(NotProcessed(
                    str(entry.get("dataset", "")), str(entry.get("url", "")), start, stop, status,
                    str(item.get("kind") or "other"), str(item.get("reason") or ""),
                    None if end is None else int(end) - start,
                ))
    return rows


def _spelled_as_in_ledger(ledger: Mapping[str, Any], urls: Sequence[str]) -> dict[str, str]:
    """``{fileset URL: URL to look up in the ledger}``.

    check-jobs --resubmit and run --recreate-jobs move a job's reads to another replica,
    while ``jobs_config.yaml`` keeps the submitted URLs: a fileset file that the ledger does
    not know by its URL is looked up by the URL of the one ledger file with the same
    ``/store/`` path that no fileset URL names.
    """
    files = ledger.get("files") or {}
    by_url = {entry.get("url"): identity for identity, entry in files.items()}

    def known(url: str) -> str | None:
        wanted = normalise_url(url)
        return by_url.get(wanted) or (f"url:{wanted}" if f"url:{wanted}" in files else None)

    named = {known(url) for url in urls} - {None}
    by_lfn: dict[str, list[str]] = {}
    for identity, entry in files.items():
        lfn = lfn_of(entry.get("url") or "") if identity not in named else None
        if lfn:
            by_lfn.setdefault(lfn, []).append(entry["url"])
    mapping = {}
    for url in urls:
        mapping[url] = url
        if known(url) is None and (lfn := lfn_of(url)) and len(by_lfn.get(lfn, ())) == 1:
            mapping[url] = by_lfn[lfn][0]
            log.info("File %s of the fileset was read from another replica, %s", url, mapping[url])
    return mapping


def _nevents_problem(dataset: str, ledger: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    """Without a fileset, a file missing altogether shows only as entries < the dataset's nevents."""
    nevents = meta.get("nevents")
    if nevents is None or meta.get("nevents_estimated"):
        return None
    entries = [entry.get("entries") for entry in (ledger.get("files") or {}).values()]
    if any(n is None for n in entries):
        log.warning("Dataset %s: a file of it was never opened (unknown length), so whether files are missing "
                    "altogether cannot be checked against its nevents %s; pass --fileset to name its files",
                    dataset, nevents)
        return None
    total, expected = sum(int(n) for n in entries), int(float(nevents))
    if total == expected:
        return None
    return (
        f"dataset {dataset!r}: the {len(entries)} input file(s) of it in the outputs' ledgers hold {total} entries, "
        f"but its nevents metadata is {expected}: files of it are in no output (or nevents is wrong); "
        "pass --fileset FILESET.json (or -jc) to name the files"
    )


def check_ledger(
    output: Mapping[str, Any],
    ledger: Mapping[str, Any],
    datasets: Iterable[str],
    fileset: Mapping[str, Any] | None = None,
    *,
    skip: Iterable[str] = (),
    not_merged: Mapping[tuple[str, str], tuple[str, int | None]] | None = None,
    source: str | None = None,
) -> tuple[list[EventsCheck], list[NotProcessed]]:
    """Check that ``ledger`` accounts for every entry of ``datasets`` exactly once.

    A dataset of ``fileset`` must have every entry range of every one of its files processed,
    skipped or failed (``pc_core.ledger.completeness_problems``), except the files in
    ``not_merged`` (jobs left out by --allow-missing), which are reported instead. A dataset
    that ``fileset`` does not name is checked against the files the ledger holds for it,
    and their entries against its ``nevents`` metadata (a file missing altogether).
    Skipped, failed and not-merged ranges are returned as rows, not errors. Raises
    IncompleteOutputError listing the problems, except for datasets in ``skip``, which warn.
    """
    skip = set(skip)
    fileset = fileset or {}
    not_merged = not_merged or {}
    by_dataset = output.get("datasets_metadata", {}).get("by_dataset", {})
    initial = output.get("cutflow", {}).get("initial", {})
    datasets = list(dict.fromkeys(datasets))
    wanted = set(datasets)
    rows = [row for row in _ledger_rows(ledger) if row.dataset in wanted]
    checks: list[EventsCheck] = []
    errors: list[str] = []
    self_described: list[str] = []
    for dataset in datasets:
        sub = {"version": ledger.get("version"),
               "files": {i: e for i, e in (ledger.get("files") or {}).items() if e.get("dataset") == dataset}}
        if dataset in fileset:
            urls = list(dict.fromkeys(fileset[dataset].get("files") or []))
            spelled = _spelled_as_in_ledger(sub, urls)
            kept = []
            for url in urls:
                if (dataset, url) in not_merged and find_file(sub, spelled[url]) is None:
                    reason, events = not_merged[(dataset, url)]
                    rows.append(NotProcessed(dataset, url, 0, None, "not merged", "job-not-merged", reason, events))
                else:
                    kept.append(spelled[url])
            problems = completeness_problems(sub, {dataset: {"files": kept}})
            expected = fileset[dataset].get("metadata", {}).get("nevents")
        else:
            self_described.append(dataset)
            meta = by_dataset.get(dataset, {})
            problems = completeness_problems(sub, {dataset: {"files": [e.get("url") for e in sub["files"].values()]}})
            problem = _nevents_problem(dataset, sub, meta)
            problems += [problem] if problem else []
            expected = meta.get("nevents")
        found = processed_events(sub).get(dataset, 0)
        mine = [row for row in rows if row.dataset == dataset]
        if dataset in initial and int(initial[dataset]) != found:
            log.warning("Dataset %s: cutflow['initial'] is %d but the ledgers say %d entries were processed",
                        dataset, int(initial[dataset]), found)
        if problems and dataset in skip:
            log.warning("Dataset %s is incomplete (downgraded to a warning by --skip-initial-events-check):\n  %s",
                        dataset, "\n  ".join(_cap(problems)))
            status = "skipped"
        elif problems:
            errors.extend(problems)
            status = "incomplete"
        else:
            status = "partial" if mine else "ok"
        checks.append(EventsCheck(
            dataset, None if expected is None else int(float(expected)), found, status,
            sum(row.events for row in mine if row.events is not None),
            sum(1 for row in mine if row.events is None), "ledger",
        ))
    if errors:
        against = source or "the files the outputs' ledgers name"
        if source and self_described:
            against += " (for datasets it does not name: the files the outputs' ledgers name)"
        raise IncompleteOutputError(
            f"The outputs do not hold every entry of the inputs (processing ledgers checked against {against}); "
            f"{len(errors)} problem(s):\n  " + "\n  ".join(_cap(errors))
            + "\nNothing was written. Merge the outputs that processed those entries too, or process them again; "
            "if the loss is intended, pass --skip-initial-events-check DATASET for each dataset."
        )
    return checks, rows


def check_initial_events(
    output: Mapping[str, Any],
    skip: Iterable[str] = (),
    expected_datasets: Mapping[str, Mapping[str, Any]] | None = None,
    tolerated: Iterable[str] = (),
    datasets: Iterable[str] | None = None,
) -> list[EventsCheck]:
    """Compare ``cutflow["initial"]`` to the ``nevents`` metadata of every dataset.

    The check of outputs without processing ledger: by event counts only, it cannot tell
    every event once from some events twice. Raises IncompleteOutputError for mismatches,
    except for datasets in ``skip`` (--skip-initial-events-check) or ``tolerated`` (touched
    by a job output that --allow-missing let go), which only warn. ``expected_datasets``
    (from jobs_config.yaml, summed over all jobs, or --fileset) replaces the merged
    metadata's ``nevents`` for its datasets and adds datasets that no merged output
    mentions. ``datasets``: check only those.
    """
    skip = set(skip)
    tolerated = set(tolerated)
    by_dataset = {name: dict(meta) for name, meta in output.get("datasets_metadata", {}).get("by_dataset", {}).items()}
    for dataset, meta in (expected_datasets or {}).items():
        entry = by_dataset.setdefault(dataset, {})
        entry["nevents"] = meta.get("nevents")
        if meta.get("nevents_estimated"):
            entry["nevents_estimated"] = True
    initial = output.get("cutflow", {}).get("initial", {})
    if datasets is None:
        unknown_skips = sorted(skip - set(by_dataset))
        if unknown_skips:
            log.warning("--skip-initial-events-check names datasets not in the outputs: %s (present: %s)",
                        unknown_skips, sorted(by_dataset))
    else:
        chosen = set(datasets)
        by_dataset = {name: meta for name, meta in by_dataset.items() if name in chosen}
    checks: list[EventsCheck] = []
    errors: list[str] = []
    for dataset, meta in by_dataset.items():
        found = int(initial.get(dataset, 0))
        nevents = meta.get("nevents")
        if nevents is None:
            checks.append(EventsCheck(dataset, None, found, "unknown"))
            continue
        expected = int(float(nevents))
        if meta.get("nevents_estimated"):
            log.warning("Dataset %s: nevents %d is an estimate (--limit-files), initial events %d not checked",
                        dataset, expected, found)
            checks.append(EventsCheck(dataset, expected, found, "estimated"))
            continue
        if expected == found:
            checks.append(EventsCheck(dataset, expected, found, "ok"))
            continue
        message = (
            f"Inconsistent number of initial events for dataset {dataset!r}: metadata nevents = {expected}, "
            f"cutflow['initial'] summed over the merged outputs = {found}"
        )
        if dataset in skip or dataset in tolerated:
            why = "--skip-initial-events-check" if dataset in skip else "--allow-missing (a job output is missing)"
            log.warning("%s (downgraded to a warning by %s)", message, why)
            checks.append(EventsCheck(dataset, expected, found, "skipped"))
        else:
            errors.append(message)
            checks.append(EventsCheck(dataset, expected, found, "mismatch"))
    if errors:
        raise IncompleteOutputError(
            "\n".join(errors)
            + "\nEvents were lost (a missing job output, a skipped file or chunk). Nothing was written. "
            "If the loss is intended, pass --skip-initial-events-check DATASET for each dataset."
        )
    return checks


# --------------------------------------------------------------------------- skimming


def skimmed_dataset_definition(output: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fileset JSON of the skimmed files, or None when the outputs carry no skim.

    ``nevents`` is the number of skimmed events, ``skim_efficiency`` = skim / initial, and
    MC datasets keep the *original* ``sum_genweights`` so a later run on the skim can
    still normalise to the full sample.
    """
    processing = output.get("processing_metadata", {})
    skimmed = processing.get("skimmed_files") or output.get("skimmed_files")
    if not skimmed:
        return None
    nskimmed = processing.get("nskimmed_events") or output.get("nskimmed_events") or {}
    by_dataset = output.get("datasets_metadata", {}).get("by_dataset", {})
    cutflow = output.get("cutflow", {})
    definition: dict[str, Any] = {}
    for dataset, files in skimmed.items():
        if dataset not in by_dataset:
            raise OutputError(f"Skimmed files of dataset {dataset!r} but no metadata for it in datasets_metadata")
        meta = copy.deepcopy(dict(by_dataset[dataset]))
        initial = int(cutflow.get("initial", {}).get(dataset, 0))
        skim = int(cutflow.get("skim", {}).get(dataset, 0))
        per_file = [int(n) for n in nskimmed.get(dataset, [])]
        meta.pop("file_nevents", None)
        meta.pop("nevents_estimated", None)
        meta["nevents"] = sum(per_file) if per_file else skim
        if per_file and len(per_file) == len(files):
            meta["file_nevents"] = per_file
        meta["skim_efficiency"] = skim / initial if initial else 0.0
        meta["isSkim"] = True
        if dataset in output.get("sum_genweights", {}):
            meta["sum_genweights"] = float(output["sum_genweights"][dataset])
        definition[dataset] = {"files": list(files), "metadata": meta}
    return definition


# --------------------------------------------------------------------------- merging


@dataclass
class MergeResult:
    outputfile: Path
    inputs: list[Path]
    missing_jobs: list[str] = field(default_factory=list)  # why each job left out by --allow-missing is
    checks: list[EventsCheck] = field(default_factory=list)
    skimmed_definition: Path | None = None
    not_processed: list[NotProcessed] = field(default_factory=list)
    fallback_note: str | None = None  # set when some datasets are checked by event counts only


def _load_fileset(fileset: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``--fileset``: a fileset mapping, one JSON path or several; None when not given."""
    if fileset is None:
        return None, None
    if isinstance(fileset, Mapping):
        return dict(fileset), "the given fileset"
    paths = [fileset] if isinstance(fileset, (str, os.PathLike)) else list(fileset)
    if not paths:
        return None, None
    try:
        loaded = load_fileset_jsons(paths)
    except DatasetError as exc:
        raise OutputError(f"--fileset: {exc}") from None
    return loaded, f"--fileset {', '.join(str(p) for p in paths)}"


def _datasets_in(output: Mapping[str, Any]) -> set[str]:
    """The datasets an output holds something of."""
    return {*output.get("datasets_metadata", {}).get("by_dataset", {}), *output.get("cutflow", {}).get("initial", {})}


def _overlap(exc: LedgerOverlapError) -> LedgerOverlapError:
    return LedgerOverlapError(f"{exc}\nNothing was written.")


def merge_outputs(
    inputs: Sequence[str] = (),
    outputfile: str | os.PathLike | None = None,
    jobs_config: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    allow_missing: bool = False,
    skip_initial_events_check: Iterable[str] = (),
    fileset: Mapping[str, Any] | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    console: Console | None = None,
) -> MergeResult:
    """Merge outputs after checking completeness; see the module docstring."""
    console = console or Console(stderr=True)
    skip = list(skip_initial_events_check)
    files = expand_inputs(inputs)
    expected_fileset, fileset_source = _load_fileset(fileset)
    jobs: JobsConfig | None = None
    excluded: dict[str, str] = {}
    if jobs_config is not None:
        jobs = load_jobs_config(jobs_config)
        job_outputs, excluded = select_job_outputs(jobs, allow_missing)
        files.extend(job_outputs)
        if expected_fileset is None:
            expected_fileset, fileset_source = jobs.union_fileset(), f"the jobs' filesets in {jobs.path}"
    files = _dedupe(files)
    if outputfile is None:
        # beside the jobs folder, else beside the inputs (`merge-outputs output/output_job_*.coffea`)
        folders = {path.resolve().parent for path in files}
        if jobs is not None:
            outputfile = jobs.jobs_dir.parent / MERGED_OUTPUT_NAME
        elif len(folders) == 1:
            outputfile = folders.pop() / MERGED_OUTPUT_NAME
        else:
            raise OutputError(
                "No output file: the inputs are in several folders "
                f"({', '.join(sorted(map(str, folders))[:3])}{', ...' if len(folders) > 3 else ''}); pass -o/--outputfile"
            )
    outputfile = Path(outputfile)
    if not files:
        raise OutputError("No input outputs to merge: pass .coffea files/globs and/or -jc/--jobs-config")
    if outputfile.exists() and not overwrite:
        raise OutputError(f"Output file {outputfile} already exists; pass --overwrite to replace it")
    if outputfile.resolve() in {f.resolve() for f in files}:
        raise OutputError(f"Output file {outputfile} is also one of the inputs; choose another -o/--outputfile")

    names = [str(path) for path in files]
    current: dict[str, Path] = {}
    ledgers: dict[str, Any] = {}
    touched: dict[str, set[str]] = {}

    def loaded(progress: Progress, task: Any) -> Iterator[dict[str, Any]]:
        for path in files:
            current["path"] = path
            output = load_output(path)
            check_output_keys(output, MERGE_REQUIRED_KEYS, str(path))
            ledgers[str(path)] = (output.get("processing_metadata") or {}).get(LEDGER_KEY)
            touched[str(path)] = _datasets_in(output)
            yield output
            progress.advance(task)

    with progress_bar(console=console) as progress:
        task = progress.add_task("Merging outputs", total=len(files))
        try:
            merged = accumulate(loaded(progress, task), names=names)
        except LedgerOverlapError as exc:
            raise _overlap(exc) from None
        except OutputError as exc:
            path = current.get("path")
            if path is None or str(path) in str(exc):
                raise
            raise OutputError(f"While merging {path}: {exc}") from None

    # the ledgers: accumulate unites them only when every output has one; the overlap check
    # among those that have one must hold in any case
    with_ledger = [(name, ledgers[name]) for name in names if ledgers[name] is not None]
    without = [name for name in names if ledgers[name] is None]
    ledger = None
    if with_ledger:
        try:
            ledger = merge_ledgers(with_ledger)
        except LedgerOverlapError as exc:
            raise _overlap(exc) from None
        if not without:
            merged.setdefault("processing_metadata", {})[LEDGER_KEY] = ledger

    by_dataset = merged.get("datasets_metadata", {}).get("by_dataset", {})
    datasets = list(dict.fromkeys([
        *(expected_fileset or {}), *by_dataset, *merged.get("cutflow", {}).get("initial", {}),
        *(str(entry.get("dataset", "")) for entry in ((ledger or {}).get("files") or {}).values()),
    ]))
    unknown_skips = sorted(set(skip) - set(datasets))
    if unknown_skips:
        log.warning("--skip-initial-events-check names datasets not in the outputs: %s (present: %s)",
                    unknown_skips, sorted(datasets))
    by_counts = set().union(*(touched[name] for name in without)) if ledger is not None else set(datasets)
    ledger_datasets = [d for d in datasets if d not in by_counts]
    count_datasets = [d for d in datasets if d in by_counts]

    checks: list[EventsCheck] = []
    rows: list[NotProcessed] = []
    if ledger_datasets:
        checks, rows = check_ledger(
            merged, ledger, ledger_datasets, expected_fileset, skip=skip,
            not_merged=_not_merged_files(jobs, excluded) if jobs is not None else None, source=fileset_source,
        )
    note = None
    if count_datasets:
        if ledger is None:
            note = ("No output carries a processing ledger (written before ledgers existed): the completeness "
                    "check is by event counts only (cutflow['initial'] summed over the outputs against the nevents "
                    "metadata); it cannot tell every event once from some events twice, nor name a missing file.")
        else:
            note = (f"{len(without)} of {len(names)} outputs carry no processing ledger (written before ledgers "
                    f"existed): {', '.join(_cap(without, 5))}. Datasets {', '.join(count_datasets)} are checked by "
                    "event counts only (cutflow['initial'] against the nevents metadata), which cannot tell every "
                    "event once from some events twice; the merged output has no ledger.")
        log.warning(note)
        expected_nevents = None
        if expected_fileset is not None:
            expected_nevents = {ds: entry.get("metadata", {}) for ds, entry in expected_fileset.items()}
        checks += check_initial_events(
            merged, skip, expected_nevents,
            tolerated=jobs.datasets_of(excluded) if jobs else (), datasets=count_datasets,
        )
    if rows:
        known = sum(row.events for row in rows if row.events is not None)
        unknown = sum(1 for row in rows if row.events is None)
        log.warning("%d entry range(s) of the inputs, %d events%s, were skipped, failed or not merged: they are not "
                    "in the merged output (see the table)", len(rows), known,
                    f" and {unknown} range(s) of unknown length" if unknown else "")

    skimmed = skimmed_dataset_definition(merged)
    skimmed_path = outputfile.parent / SKIMMED_DEFINITION_NAME if skimmed is not None else None
    if skimmed_path is not None and skimmed_path.exists() and not overwrite:
        raise OutputError(f"{skimmed_path} already exists; pass --overwrite to replace it")

    save_output(merged, outputfile)
    if skimmed_path is not None:
        save_fileset_json(skimmed, skimmed_path)
    return MergeResult(outputfile, files, list(excluded.values()), checks, skimmed_path, rows, note)


def _events(events: int, unknown: int) -> str:
    return f"{events} + {unknown} range(s) of unknown length" if unknown else str(events)


def summary_table(result: MergeResult) -> Table:
    table = Table(title=f"Merged {len(result.inputs)} outputs into {result.outputfile}")
    for column in ("dataset", "events processed", "not processed", "metadata nevents", "checked by", "check"):
        table.add_column(column, justify="right" if column in ("events processed", "metadata nevents") else "left")
    styles = {"ok": "green", "mismatch": "red", "incomplete": "red", "skipped": "yellow", "partial": "yellow",
              "estimated": "yellow", "unknown": "dim"}
    for check in result.checks:
        expected = "-" if check.expected is None else str(check.expected)
        lost = _events(check.not_processed, check.unknown_ranges) if check.method == "ledger" else "-"
        table.add_row(check.dataset, str(check.found), lost, expected, check.method,
                      f"[{styles.get(check.status, 'white')}]{check.status}")
    return table


def not_processed_table(result: MergeResult) -> Table | None:
    """Every skipped, failed or not-merged entry range; None when there is none."""
    if not result.not_processed:
        return None
    known = sum(row.events for row in result.not_processed if row.events is not None)
    unknown = sum(1 for row in result.not_processed if row.events is None)
    table = Table(title=f"Not processed (skipped, failed or not merged): {len(result.not_processed)} entry range(s), "
                        f"{known} events" + (f" + {unknown} range(s) of unknown length" if unknown else ""))
    for column in ("dataset", "file", "entries", "events", "status", "kind", "reason"):
        table.add_column(column, justify="right" if column == "events" else "left", overflow="fold")
    for row in result.not_processed:
        table.add_row(row.dataset, row.file, row.entries, "?" if row.events is None else str(row.events),
                      row.status, row.kind, row.reason)
    return table


@click.command("merge-outputs")
@click.argument("inputs", nargs=-1, metavar="[OUTPUTS]...")
@click.option("-jc", "--jobs-config", type=click.Path(), default=None,
              help="Jobs folder (or its jobs_config.yaml) of a condor run: merge every job's output.")
@click.option("-o", "--outputfile", type=click.Path(dir_okay=False), default=None,
              help="Merged output file [default: output_merged.coffea next to the jobs folder (-jc), else next to the inputs "
                   "when they share a folder].")
@click.option("-f", "--overwrite", is_flag=True, help="Replace an existing output file.")
@click.option("--allow-missing", is_flag=True,
              help="With -jc: merge even if some job outputs are missing or their jobs not done (warns).")
@click.option("--fileset", "filesets", multiple=True, type=click.Path(dir_okay=False), metavar="JSON",
              help="Fileset JSON the outputs must cover, every entry of every file once (repeatable) "
                   "[default: the jobs' filesets with -jc, else the files the outputs name].")
@click.option("--skip-initial-events-check", "skip_check", multiple=True, metavar="DATASET",
              help="Only warn when DATASET's entries are missing (or, for outputs without ledger, its initial "
                   "events differ from its nevents metadata) (repeatable).")
@loglevel_option()
def merge_outputs_command(inputs, jobs_config, outputfile, overwrite, allow_missing, filesets, skip_check,
                          loglevel) -> None:
    """Merge .coffea outputs (files, globs and/or a jobs folder), checking that every input event is in it once."""
    setup_logging(loglevel)
    if not inputs and jobs_config is None:
        raise OutputError("Nothing to merge: pass .coffea files/globs and/or -jc/--jobs-config JOBS_DIR")
    result = merge_outputs(
        inputs, outputfile, jobs_config,
        overwrite=overwrite, allow_missing=allow_missing, skip_initial_events_check=skip_check,
        fileset=filesets or None,
    )
    console = Console()
    console.print(summary_table(result))
    table = not_processed_table(result)
    if table is not None:
        console.print(table)
    if result.fallback_note:
        console.print(f"[yellow]{result.fallback_note}", highlight=False)
    console.print(f"[green]Merged output written to {result.outputfile}")
    if result.skimmed_definition is not None:
        console.print(f"[green]Skimmed dataset definition written to {result.skimmed_definition}")


def main() -> None:
    run_cli(merge_outputs_command, prog_name="merge-outputs")


__all__ = [
    "IncompleteOutputError",
    "JobsConfig",
    "MergeResult",
    "NotProcessed",
    "check_initial_events",
    "check_ledger",
    "load_jobs_config",
    "merge_outputs",
    "merge_outputs_command",
    "not_processed_table",
    "select_job_outputs",
    "skimmed_dataset_definition",
]
