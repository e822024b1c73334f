"""The futures backend under a worker death that the loop learns of at submission.

A SIGKILLed worker breaks the process pool at once, while the loop may still be handling the
chunks that finished before it: its next ``submit`` meets a broken pool. That chunk must go
the way of the chunks the death took with it (rerun, counted once), not end the run.
"""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool

import pytest
from coffea.processor.executor import WorkItem

from pc_run import chunk_scheduler
from pc_run.chunk_scheduler import ChunkCallbacks, ChunkScheduler, ChunkSettings, ProcessorPayload, ProcessPoolBackend, WorkerDied


def entries_and_pid(item, processor, *args, **kwargs):
    """Stands in for the analysis of a chunk: what the scheduler must pass back once per item."""
    return {"entries": item.entrystop - item.entrystart, "pid": os.getpid(), "tag": processor["tag"]}


def items(count: int) -> list[WorkItem]:
    return [WorkItem("DY", "nano_dy.root", "Events", 10 * i, 10 * i + 7, "uuid", {}) for i in range(count)]


def broken_backend(monkeypatch) -> ProcessPoolBackend:
    """A two-worker pool, one worker killed with SIGKILL and the pool seen broken."""
    monkeypatch.setattr(chunk_scheduler, "process_chunk", entries_and_pid)  # the forked workers inherit it
    backend = ProcessPoolBackend(ProcessorPayload.of({"tag": "processor"}), workers=2)
    first = backend.submit(items(1)[0], ChunkSettings(schema=object))
    status, output = backend.result(first)
    assert (status, output["entries"]) == ("ok", 7)
    os.kill(output["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            backend.pool.submit(int).result()
        except BrokenProcessPool:
            return backend
        time.sleep(0.05)
    pytest.fail("the pool was not broken 30 s after one of its workers was killed")


def test_submit_to_a_broken_pool_is_a_worker_death(monkeypatch):
    backend = broken_backend(monkeypatch)
    try:
        future = backend.submit(items(1)[0], ChunkSettings(schema=object))
        with pytest.raises(WorkerDied, match=r"signal 9 \(SIGKILL\)"):
            backend.result(future)
    finally:
        backend.stop()


def test_chunks_submitted_after_a_death_run_exactly_once(monkeypatch):
    backend = broken_backend(monkeypatch)
    done: list[tuple[int, int]] = []
    scheduler = ChunkScheduler(
        backend, ChunkSettings(schema=object), retries=0, skip_bad_files=False,
        callbacks=ChunkCallbacks(done=lambda item, output: done.append((item.entrystart, output["entries"])),
                                 skipped=lambda item, failure: pytest.fail(f"skipped {item}")),
    )
    try:
        scheduler.run(items(6))
    finally:
        backend.stop()
    assert sorted(done) == [(10 * i, 7) for i in range(6)]
