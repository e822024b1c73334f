"""Run one configuration over one fileset with coffea's Runner, and account for every input.

``run_fileset`` chunks the files with coffea's preprocessing (per-sample chunksize, chunk
limit), names every file that could not be opened (``file_check``), runs the processor with
the executor (coffea's Runner, keeping input files open across their chunks and preloading
the branches the analysis reads: ``chunk_work``), and then compares the chunks that came
back with the chunks that were sent: a chunk coffea dropped under ``skipbadfiles`` is
reported as a skipped file with its reason, never silently lost.
"""
from __future__ import annotations

import gc
import logging
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coffea import processor as coffea_processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import WorkItem

from pc_core.errors import PocketCoffeaError
from pc_core.read_errors import OTHER, classify_read_error, read_error_hint
from pc_core.run_options import chunksize_for_sample

from .chunk_work import INPUT_FILE, PocketCoffeaRunner, import_chunk_modules, order_for_workers
from .file_check import READ_FAILURES, check_file, is_read_failure, release_cached_xrootd_handles
from .processor import finalise_output

log = logging.getLogger(__name__)


class NanoAODSchemaQuiet(NanoAODSchema):
    """NanoAODSchema without one warning per chunk for each cross-reference whose target
    collection the file does not have (common in slimmed or synthetic NanoAOD)."""

    def __init__(self, base_form, *args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Missing cross-reference", category=RuntimeWarning)
            super().__init__(base_form, *args, **kwargs)


class InputFileError(PocketCoffeaError):
    """An input file cannot be read and skip-bad-files is off."""


@dataclass
class RunResult:
    """The output of one run plus what the report needs."""

    output: dict[str, Any]
    chunks_expected: dict[str, int] = field(default_factory=dict)
    processing_seconds: float = 0.0
    skipped_files: list[dict[str, str]] = field(default_factory=list)


def _skip_entry(dataset: str, file: str, reason: str, kind: str = OTHER) -> dict[str, str]:
    """One ``skipped_files`` entry; ``kind`` is the ``pc_core.read_errors`` classification."""
    return {"dataset": dataset, "file": file, "reason": reason, "kind": kind}


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


_WORKITEM_FILE = re.compile(r"filename='([^']+)'")


def _processing_read_error(exc: BaseException, chunks: list[WorkItem], fileset: Mapping[str, Any]) -> InputFileError:
    """The error naming the file (and the kind of failure) that a chunk could not read, skip-bad-files off."""
    chain = _exception_chain(exc)
    text = " | ".join(str(e) for e in chain)
    match = _WORKITEM_FILE.search(text)  # coffea names the chunk's WorkItem when opening its file fails
    candidates = [c for c in chunks if (match and c.filename == match.group(1)) or (not match and c.filename in text)]
    detail = next((str(e).strip().splitlines()[0] for e in reversed(chain) if str(e).strip()), type(exc).__name__)
    if not candidates:
        kind = classify_read_error(exc)
        return InputFileError(f"an input file could not be read while processing ({kind}): {detail}. "
                              "Run with --skip-bad-files to skip unreadable files and see them in the report")
    chunk = candidates[0]
    check = check_file(chunk.dataset, chunk.filename, fileset[chunk.dataset].get("treename", "Events"))
    kind = check.kind if check.error else classify_read_error(exc)
    hint = read_error_hint(kind)
    return InputFileError(
        f"input file {chunk.filename} of dataset {chunk.dataset!r} could not be read while processing ({kind}): "
        f"{check.error or detail}. " + (f"Hint: {hint}. " if hint else "")
        + "Fix or remove it from the fileset, or run with --skip-bad-files (run option "
        "'skip-bad-files: true') to skip it"
    )


def _coffea_fileset(fileset: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        dataset: {"files": list(entry["files"]), "metadata": dict(entry.get("metadata") or {}), "treename": entry.get("treename", "Events")}
        for dataset, entry in fileset.items()
    }


def prepare_chunks(fileset: Mapping[str, Any], run_options: Mapping[str, Any], executor) -> list[WorkItem]:
    """The work items of the whole fileset: chunksize per sample, ``limit-chunks`` per dataset.

    coffea's preprocessing opens the files on the executor (in parallel); files it cannot
    open are left out here (``skipbadfiles`` catching every exception) and accounted for by
    the caller, which decides between skipping and failing.
    """
    by_chunksize: dict[int, dict[str, Any]] = {}
    for dataset, entry in _coffea_fileset(fileset).items():
        chunksize = chunksize_for_sample(run_options, entry["metadata"]["sample"])
        by_chunksize.setdefault(chunksize, {})[dataset] = entry
    chunks: list[WorkItem] = []
    cache: dict = {}  # fresh per run: coffea's global cache would keep stale fileset metadata
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


def run_fileset(
    cfg,
    fileset: Mapping[str, Any],
    executor,
    run_options: Mapping[str, Any],
    processor_instance=None,
) -> RunResult:
    """Process ``fileset`` (a subset of ``cfg.fileset``) and return the finalised output."""
    skip_bad = bool(run_options.get("skip-bad-files"))
    chunks = prepare_chunks(fileset, run_options, executor)
    opened = {(c.dataset, c.filename) for c in chunks}
    unreadable = [
        check_file(dataset, file, entry.get("treename", "Events"))
        for dataset, entry in fileset.items()
        for file in entry["files"]
        if (dataset, file) not in opened
    ]
    skipped: list[dict[str, str]] = []
    for check in unreadable:
        kind = check.kind or OTHER
        reason = check.reason or f"{kind}: could not be opened during preprocessing"
        if not skip_bad:
            hint = read_error_hint(kind)
            raise InputFileError(
                f"input file {check.file} of dataset {check.dataset!r} cannot be read ({kind}): {check.error or reason}. "
                + (f"Hint: {hint}. " if hint else "")
                + "Fix or remove it from the fileset, or run with --skip-bad-files (run option "
                "'skip-bad-files: true') to skip it"
            )
        log.warning("Skipping input file %s of dataset %r: %s", check.file, check.dataset, reason)
        skipped.append(_skip_entry(check.dataset, check.file, reason, kind))

    executor_instance = executor
    expected: dict[str, int] = {}
    for chunk in chunks:
        expected[chunk.dataset] = expected.get(chunk.dataset, 0) + 1
    if processor_instance is None:
        processor_instance = cfg.workflow(cfg)
    if not chunks:
        log.warning("No chunk to process: every input file was skipped")
        output = finalise_output({}, cfg)
        output["processing_metadata"]["skipped_files"] = skipped
        return RunResult(output=output, chunks_expected=expected, skipped_files=skipped)

    runner = PocketCoffeaRunner(
        executor=executor_instance,
        chunksize=max(len(c) for c in chunks) or 1,
        skipbadfiles=READ_FAILURES if skip_bad else False,
        schema=NanoAODSchemaQuiet,
    )
    import_chunk_modules(NanoAODSchemaQuiet)
    start = time.perf_counter()
    # Everything alive now (modules, the configuration) lives for the whole run: frozen, it is
    # not rescanned by each full garbage collection (~80 ms each, ~5% of a run), and forked
    # workers do not copy its pages when the collector would touch them.
    gc.freeze()
    try:
        ordered = order_for_workers(chunks, int(getattr(executor_instance, "workers", 1) or 1))
        wrapped = runner.run(ordered, processor_instance, treename="Events")
    except Exception as exc:
        if skip_bad and isinstance(exc, ValueError) and "No chunks returned results" in str(exc):
            # coffea's way of saying that every chunk was dropped (only possible with skipbadfiles)
            wrapped = {"out": finalise_output({}, cfg), "processed": set()}
        elif not skip_bad and any(is_read_failure(e) for e in _exception_chain(exc)):
            raise _processing_read_error(exc, chunks, fileset) from exc
        else:
            raise
    finally:
        gc.unfreeze()
        INPUT_FILE.forget()
        release_cached_xrootd_handles()
    seconds = time.perf_counter() - start
    output = wrapped["out"]
    processed = wrapped.get("processed") or set()

    lost: dict[tuple[str, str], list[WorkItem]] = {}
    done = {(c.dataset, c.filename, c.entrystart, c.entrystop) for c in processed}
    for chunk in chunks:
        if (chunk.dataset, chunk.filename, chunk.entrystart, chunk.entrystop) not in done:
            lost.setdefault((chunk.dataset, chunk.filename), []).append(chunk)
    for (dataset, file), missing in lost.items():
        events = sum(len(c) for c in missing)
        # coffea swallowed the exception: open the file once more to classify why (a server
        # that died during the run is a dead-server; a file that opens fine is "other")
        recheck = check_file(dataset, file, fileset[dataset].get("treename", "Events"))
        kind = recheck.kind or OTHER
        reason = (
            f"{kind}: read or processing error in {len(missing)} chunk(s), {events} events not processed "
            "(skipped by skip-bad-files; see the log for the error)"
            + (f"; reopening the file: {recheck.error}" if recheck.error else "")
        )
        log.warning("Input file %s of dataset %r partly skipped: %s", file, dataset, reason)
        skipped.append(_skip_entry(dataset, file, reason, kind))
    output["processing_metadata"]["skipped_files"] = skipped
    return RunResult(output=output, chunks_expected=expected, processing_seconds=seconds, skipped_files=skipped)
