"""Run one configuration over one fileset and account for every entry of every input file.

``run_fileset`` chunks the files with coffea's preprocessing (per-sample chunksize, chunk
limit), names every file that could not be opened (``file_check``), and hands the chunks to
the executor's workers through ``chunk_scheduler`` (retries for read failures only, worker
deaths survived, the first analysis error stops the run). Every chunk ends in the processing
ledger (``pc_core.ledger``) as processed or skipped, with its reason; the running sum and
its ledger are checkpointed every ``checkpoint-interval`` seconds and when the run stops,
so that a rerun resumes where this one ended.
"""
from __future__ import annotations

import gc
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coffea import processor as coffea_processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import FileMeta, WorkItem

from pc_core.cli_support import progress_bar
from pc_core.errors import PocketCoffeaError
from pc_core.ledger import (
    FAILED, LEDGER_KEY, PROCESSED, SKIPPED, file_identity, new_ledger, processed_events, record,
)
from pc_core.read_errors import OTHER, OTHER_IO, read_error_hint
from pc_core.run_options import chunksize_for_sample, warn_unknown_samples
from pc_core.urls import normalise_url

from .chunk_scheduler import (
    ChunkCallbacks, ChunkScheduler, ChunkSettings, InputFileError, backend_for,
)
from .chunk_work import DECLARED_ENTRIES, INPUT_FILE, import_chunk_modules, order_for_workers
from .file_check import check_file, release_cached_xrootd_handles
from .file_metadata import file_metadata
from .processor import finalise_output
from .read_ahead import read_ahead_from

log = logging.getLogger(__name__)


class NanoAODSchemaQuiet(NanoAODSchema):
    """NanoAODSchema without one warning per chunk for each cross-reference whose target
    collection the file does not have (common in slimmed or synthetic NanoAOD)."""

    def __init__(self, base_form, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Missing cross-reference", category=RuntimeWarning)
            super().__init__(base_form, *args, **kwargs)


@dataclass
class RunResult:
    """The output of one run plus what the report needs."""

    output: dict[str, Any]
    processing_seconds: float = 0.0
    processing_started: float | None = None  # wall-clock time (epoch) the first chunk was handed out
    skipped_files: list[dict[str, str]] = field(default_factory=list)
    ledger: dict[str, Any] = field(default_factory=new_ledger)


DEFAULT_CHECKPOINT_INTERVAL = 30.0


def _skip_entry(dataset: str, file: str, reason: str, kind: str = OTHER, events: int | None = None) -> dict[str, Any]:
    """One ``skipped_files`` entry; ``kind`` is the ``pc_core.read_errors`` classification,
    ``events`` how many events of the file were not processed (None: unknown, never opened)."""
    return {"dataset": dataset, "file": file, "reason": reason, "kind": kind, "events": events}


def _coffea_fileset(fileset: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        dataset: {"files": list(entry["files"]), "metadata": dict(entry.get("metadata") or {}), "treename": entry.get("treename", "Events")}
        for dataset, entry in fileset.items()
    }


def declared_counts(entry: Mapping[str, Any]) -> list[int] | None:
    """The entries of every file of a fileset entry as the fileset declares them: ``file_nevents``,
    or ``nevents`` of a one-file dataset (not when estimated by ``limit-files``); else None."""
    meta = entry.get("metadata") or {}
    files = list(entry["files"])
    per_file = meta.get("file_nevents")
    if per_file is not None and len(per_file) == len(files):
        return [int(n) for n in per_file]
    if len(files) == 1 and meta.get("nevents") is not None and not meta.get("nevents_estimated"):
        return [int(meta["nevents"])]
    return None


def _plan_from_counts(fileset: Mapping[str, dict[str, Any]], cache: dict) -> None:
    """Fill coffea's metadata cache for the files whose entries the fileset declares, so that
    its preprocessing plans their chunks (the same chunks) without opening them. Their UUID is
    left empty: each chunk reports the UUID it read (``ReadChunkOutput``) and checks the
    declared count against the file (``DECLARED_ENTRIES``)."""
    for dataset, entry in fileset.items():
        counts = declared_counts(entry)
        if counts is None:
            continue
        for filename, count in zip(entry["files"], counts):
            key = FileMeta(dataset, filename, entry["treename"])
            if key not in cache:
                cache[key] = {**entry["metadata"], "numentries": count, "uuid": b"", DECLARED_ENTRIES: count}


def _plan_from_metadata(fileset: Mapping[str, dict[str, Any]], cache: dict) -> None:
    """Fill coffea's metadata cache for the other files with their entries and UUID, read in
    parallel without parsing their trees (``file_metadata``); a file that cannot be read that
    way is left to coffea's preprocessing, which names the failure as before."""
    wanted = {}
    for dataset, entry in fileset.items():
        for filename in entry["files"]:
            key = FileMeta(dataset, filename, entry["treename"])
            if key not in cache:
                wanted[key] = entry["metadata"]
    found = file_metadata((key.filename, key.treename) for key in wanted)
    for key, metadata in wanted.items():
        meta = found.get((key.filename, key.treename))
        if meta is not None:
            cache[key] = {**metadata, **meta}


def prepare_chunks(
    fileset: Mapping[str, Any], run_options: Mapping[str, Any], executor, cache: dict | None = None
) -> list[WorkItem]:
    """The work items of the whole fileset: chunksize per sample, ``limit-chunks`` per dataset.

    Files whose entries the fileset declares (``declared_counts``) are not opened: their chunks
    are planned from the counts; the others' entries and UUIDs are read in parallel, without
    parsing their trees (``file_metadata``). coffea's preprocessing opens the files that could
    not be read so on the executor; files it cannot open either are left out here (``skipbadfiles`` catching every exception) and accounted for by
    the caller, which decides between skipping and failing.
    """
    by_chunksize: dict[int, dict[str, Any]] = {}
    warn_unknown_samples(run_options.get("chunksize"), "chunksize",
                         (entry["metadata"]["sample"] for entry in fileset.values()))
    for dataset, entry in _coffea_fileset(fileset).items():
        chunksize = chunksize_for_sample(run_options, entry["metadata"]["sample"])
        by_chunksize.setdefault(chunksize, {})[dataset] = entry
    chunks: list[WorkItem] = []
    cache = {} if cache is None else cache  # fresh per run: coffea's global cache would keep stale metadata
    planned = _coffea_fileset(fileset)
    _plan_from_counts(planned, cache)
    if not run_options.get("limit-chunks"):  # with a chunk limit, coffea opens only the files it needs
        _plan_from_metadata(planned, cache)
    for chunksize, subset in by_chunksize.items():
        runner = coffea_processor.Runner(
            executor=executor,
            chunksize=chunksize,
            maxchunks=run_options.get("limit-chunks"),
            metadata_cache=cache,
            skipbadfiles=(Exception,),
            schema=NanoAODSchemaQuiet,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping bad file")
            warnings.filterwarnings("ignore", message="Performed attempt")
            chunks += list(runner.preprocess(subset, treename="Events"))
    return chunks


@dataclass
class _Accounting:
    """The running sum of one run, its ledger, and when it was last checkpointed."""

    checkpoints: Any
    interval: float
    accumulator: Any = None
    ledger: dict = field(default_factory=new_ledger)
    skipped: list = field(default_factory=list)
    unsaved: int = 0
    last_saved: float = field(default_factory=time.monotonic)

    def add(self, output) -> None:
        self.accumulator = output if self.accumulator is None else coffea_processor.accumulate([output], self.accumulator)
        self.unsaved += 1
        if self.checkpoints is not None and time.monotonic() - self.last_saved >= self.interval:
            self.save()

    def save(self) -> None:
        """Write the snapshot if anything changed since the last one."""
        if self.checkpoints is None or not self.unsaved:
            return
        self.checkpoints.write(self.accumulator, self.ledger)
        self.unsaved = 0
        self.last_saved = time.monotonic()


def _save_keeping_error(accounting: _Accounting) -> None:
    """Checkpoint what finished while another error is on its way up: that error wins, the
    checkpoint's own problem (a full disk) is logged with where the chunks went."""
    try:
        accounting.save()
    except Exception as exc:  # noqa: BLE001 - the original error is the one to report
        log.error("%s", exc)


def _file_entries(cache: Mapping, chunks: list[WorkItem]) -> dict[tuple[str, str], int]:
    """Entries of every file preprocessing opened (``limit-chunks`` may plan only a part of them)."""
    entries: dict[tuple[str, str], int] = {}
    for key, meta in cache.items():
        if isinstance(meta, Mapping) and "numentries" in meta:
            entries[(getattr(key, "dataset", None), getattr(key, "filename", None))] = int(meta["numentries"])
    for chunk in chunks:
        key = (chunk.dataset, chunk.filename)
        entries[key] = max(entries.get(key, 0), chunk.entrystop)
    return entries


def _beyond_chunk_limit(fileset: Mapping[str, Any], chunks: list[WorkItem], limit: int | None) -> set[tuple[str, str]]:
    """Files that preprocessing never opened because ``limit-chunks`` was reached before them:
    not planned, so neither processed nor skipped (a file before them without chunks failed)."""
    if not limit:
        return set()
    beyond: set[tuple[str, str]] = set()
    for dataset, entry in fileset.items():
        files = list(entry["files"])
        planned = [files.index(c.filename) for c in chunks if c.dataset == dataset]
        if len(planned) >= limit:
            beyond |= {(dataset, f) for f in files[max(planned) + 1:]}
    return beyond


class _FileIdentities:
    """One ledger identity per input file of the run, found in O(1) per chunk.

    A file's identity is the UUID a chunk read it with (``file_identity``); a chunk planned
    from the fileset's counts carries no UUID, so it takes the identity its file already has
    (an earlier chunk's UUID, or a resumed checkpoint's), else the normalised URL. When the
    first UUID of a file recorded under its URL (a chunk skipped before any was read) arrives,
    the entry moves to the UUID: the file keeps one identity."""

    def __init__(self, ledger: dict):
        self.ledger = ledger
        self.by_url = {(entry.get("dataset"), entry.get("url")): identity
                       for identity, entry in ledger["files"].items()}

    def of(self, chunk: WorkItem) -> str:
        key = (chunk.dataset, normalise_url(chunk.filename))
        known = self.by_url.get(key)
        identity = file_identity(chunk.filename, chunk.fileuuid)
        if identity.startswith("uuid:"):
            files = self.ledger["files"]
            if known is not None and known.startswith("url:") and identity not in files and known in files:
                files[identity] = files.pop(known)
        elif known is not None:
            identity = known
        self.by_url[key] = identity
        return identity

    def record(self, chunk: WorkItem, entries: int | None, status: str, **extra) -> None:
        """The chunk's entry range in the ledger, under its file's identity."""
        record(self.ledger, identity=self.of(chunk), dataset=chunk.dataset, url=chunk.filename, entries=entries,
               start=chunk.entrystart, stop=chunk.entrystop, status=status, **extra)


def _already_processed(ledger: Mapping, identities: _FileIdentities, chunk: WorkItem) -> bool:
    entry = ledger["files"].get(identities.of(chunk))
    if entry is None:
        return False
    for start, stop in entry["processed"]:
        if start <= chunk.entrystart and chunk.entrystop <= stop:
            return True
        if start < chunk.entrystop and chunk.entrystart < stop:
            raise PocketCoffeaError(
                f"the checkpoint holds entries {start}-{stop} of {chunk.filename}, which cut the chunk "
                f"{chunk.entrystart}-{chunk.entrystop} of this run: the chunking changed; rerun with --overwrite"
            )
    return False


def _progress_bar(total: int, done: int, description: str):
    progress = progress_bar(transient=True, unit="chunks", eta=True)
    task = progress.add_task(description, total=total, completed=done)
    return progress, task


def run_fileset(
    cfg,
    fileset: Mapping[str, Any],
    executor,
    run_options: Mapping[str, Any],
    processor_instance=None,
    checkpoints=None,
) -> RunResult:
    """Process ``fileset`` (a subset of ``cfg.fileset``) and return the finalised output.

    ``checkpoints`` (``output_folder.Checkpoints``), when given, is resumed from and kept up
    to date; on any error or interruption it holds every chunk that finished.
    """
    skip_bad = bool(run_options.get("skip-bad-files"))
    cache: dict = {}
    chunks = prepare_chunks(fileset, run_options, executor, cache)
    entries = _file_entries(cache, chunks)
    interval = float(run_options.get("checkpoint-interval") or DEFAULT_CHECKPOINT_INTERVAL)
    accounting = _Accounting(checkpoints, interval)
    if checkpoints is not None:
        accumulator, ledger = checkpoints.load()
        if ledger is not None:
            for file_entry in ledger["files"].values():  # what was skipped is tried again
                file_entry[SKIPPED], file_entry[FAILED] = [], []
            accounting.accumulator, accounting.ledger = accumulator, ledger
            log.info("Resuming from %s: %d events already processed", checkpoints.path,
                     sum(processed_events(ledger).values()))
    opened = {(c.dataset, c.filename) for c in chunks}
    unplanned = _beyond_chunk_limit(fileset, chunks, run_options.get("limit-chunks"))
    for dataset, entry in fileset.items():
        for file in entry["files"]:
            if (dataset, file) in opened or (dataset, file) in unplanned:
                continue
            check = check_file(dataset, file, entry.get("treename", "Events"))
            kind = check.kind or OTHER_IO
            reason = check.reason or (f"{kind}: could not be opened during preprocessing, but opened when checked "
                                      "again (a transient failure: run the same command again)")
            if not skip_bad:
                hint = read_error_hint(kind)
                raise InputFileError(
                    f"input file {check.file} of dataset {check.dataset!r} cannot be read ({kind}): {check.error or reason}. "
                    + (f"Hint: {hint}. " if hint else "")
                    + "Fix or remove it from the fileset, or run with --skip-bad-files (run option "
                    "'skip-bad-files: true') to skip it"
                )
            log.warning("Skipping input file %s of dataset %r: %s", check.file, check.dataset, reason)
            accounting.skipped.append(_skip_entry(check.dataset, check.file, reason, kind, check.entries))
            record(accounting.ledger, identity=file_identity(file, check.uuid), dataset=dataset, url=file,
                   entries=check.entries, start=0, stop=check.entries, status=SKIPPED, kind=kind, reason=reason)

    identities = _FileIdentities(accounting.ledger)
    todo = [c for c in chunks if not _already_processed(accounting.ledger, identities, c)]
    if processor_instance is None:
        processor_instance = cfg.workflow(cfg)
    import_chunk_modules(NanoAODSchemaQuiet)

    def done(chunk, output):
        identities.record(chunk, entries.get((chunk.dataset, chunk.filename)), PROCESSED)
        accounting.add(output)

    def skipped(chunk, failure):
        identities.record(chunk, entries.get((chunk.dataset, chunk.filename)), SKIPPED, kind=failure.kind,
                          reason=failure.message)
        events = chunk.entrystop - chunk.entrystart
        for entry in accounting.skipped:  # one entry per file, however many of its chunks failed
            if (entry["dataset"], entry["file"]) == (chunk.dataset, chunk.filename):
                entry["events"] = (entry["events"] or 0) + events
                return
        reason = failure.message if failure.message.startswith(f"{failure.kind}:") else f"{failure.kind}: {failure.message}"
        accounting.skipped.append(_skip_entry(chunk.dataset, chunk.filename, reason, failure.kind, events))

    start = time.perf_counter()
    started = time.time()
    if todo:
        workers = int(getattr(executor, "workers", 1) or 1)
        backend = backend_for(executor, processor_instance)
        progress, task = _progress_bar(len(chunks), len(chunks) - len(todo), f"Processing ({backend.description})")
        callbacks = ChunkCallbacks(done=done, skipped=skipped, progress=lambda chunk: progress.advance(task))
        read_ahead = read_ahead_from(run_options.get("pipelined-reading"), backend.local_processes)
        settings = ChunkSettings(NanoAODSchemaQuiet, read_ahead_from=read_ahead)
        scheduler = ChunkScheduler(backend, settings, int(run_options.get("retries") or 0), skip_bad, callbacks,
                                   retry_delay=float(run_options.get("retry-delay") or 0))
        # Everything alive now (modules, the configuration) lives for the whole run: frozen, it is
        # not rescanned by each full garbage collection (~80 ms each, ~5% of a run), and forked
        # workers do not copy its pages when the collector would touch them.
        gc.freeze()
        try:
            with progress:
                scheduler.run(order_for_workers(todo, workers))
            backend.stop()
        except BaseException:
            _save_keeping_error(accounting)
            raise
        finally:
            gc.unfreeze()
            INPUT_FILE.forget()
            release_cached_xrootd_handles()
        accounting.save()
    elif not chunks:
        log.warning("No chunk to process: every input file was skipped")
    seconds = time.perf_counter() - start
    output = finalise_output(accounting.accumulator or {}, cfg)
    output["processing_metadata"]["skipped_files"] = accounting.skipped
    output["processing_metadata"][LEDGER_KEY] = accounting.ledger
    return RunResult(output=output, processing_seconds=seconds, processing_started=started,
                     skipped_files=accounting.skipped, ledger=accounting.ledger)
