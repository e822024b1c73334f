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
from pc_run.chunk_scheduler import (
    ChunkCallbacks, ChunkScheduler, ChunkSettings, InlineBackend, ProcessorPayload, ProcessPoolBackend, WorkerDied,
)


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


# --------------------------------------------------------------------------- waits before retries


class FakeClock:
    """The scheduler's clock and sleep: time passes only when the scheduler sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def dead_server(item) -> Exception:
    return ConnectionRefusedError(111, f"Connection refused: {item.filename}")


def missing_file(item) -> Exception:
    return FileNotFoundError(2, "No such file or directory", item.filename)


def flaky_reads(monkeypatch, failures: dict[int, int], error=lambda entry: dead_server) -> list[int]:
    """``process_chunk`` whose chunk starting at entry ``e`` cannot open its file the first
    ``failures[e]`` times, with ``error(e)(item)`` (by default a refused connection: a dead
    server); returns the calls, in order."""
    from pc_run.chunk_work import ChunkPhaseError

    calls: list[int] = []

    def process(item, *args, **kwargs):
        calls.append(item.entrystart)
        if failures.get(item.entrystart, 0) > 0:
            failures[item.entrystart] -= 1
            raise ChunkPhaseError("open", error(item.entrystart)(item))
        return {"entries": item.entrystop - item.entrystart}

    monkeypatch.setattr(chunk_scheduler, "process_chunk", process)
    return calls


def scheduler_with(clock: FakeClock, retries: int, retry_delay: float, done: list, skipped: list, skip_bad=False,
                   backend=None) -> ChunkScheduler:
    return ChunkScheduler(
        backend or InlineBackend(object()), ChunkSettings(schema=object), retries=retries, skip_bad_files=skip_bad,
        callbacks=ChunkCallbacks(done=lambda item, output: done.append(item.entrystart),
                                 skipped=lambda item, failure: skipped.append((item.entrystart, failure.kind))),
        retry_delay=retry_delay, clock=clock.clock, sleep=clock.sleep,
    )


def chunks_of(files: str) -> list[WorkItem]:
    """One chunk per letter, chunk i of file ``<letter>.root`` starting at entry 10 * i."""
    return [WorkItem("DY", f"{name}.root", "Events", 10 * i, 10 * i + 7, "uuid", {}) for i, name in enumerate(files)]


def test_a_read_failure_waits_doubling_delays_while_the_other_files_go_on(monkeypatch):
    calls = flaky_reads(monkeypatch, {10: 2})
    clock, done, skipped = FakeClock(), [], []
    scheduler_with(clock, retries=3, retry_delay=1.0, done=done, skipped=skipped).run(chunks_of("abcd"))
    assert calls == [0, 10, 20, 30, 10, 10]  # the other files did not wait for it
    assert clock.sleeps == [1.0, 2.0]  # 1 s before its first retry, 2 s before its second
    assert done == [0, 20, 30, 10] and skipped == []  # each chunk once


def test_the_other_chunks_of_a_file_wait_for_its_retries_then_run(monkeypatch):
    """A dead server is a failure of the whole file: its other chunks are not tried meanwhile."""
    calls = flaky_reads(monkeypatch, {0: 2})
    clock, done, skipped = FakeClock(), [], []
    scheduler_with(clock, retries=3, retry_delay=1.0, done=done, skipped=skipped).run(chunks_of("aaba"))
    assert calls == [0, 20, 0, 0, 10, 30]  # file a's chunks 10 and 30 only once chunk 0 read it
    assert clock.sleeps == [1.0, 2.0] and done == [20, 0, 10, 30] and skipped == []


def test_the_other_chunks_of_a_file_given_up_on_are_skipped_unread(monkeypatch):
    calls = flaky_reads(monkeypatch, {0: 99})
    clock, done, skipped = FakeClock(), [], []
    scheduler_with(clock, retries=2, retry_delay=1.0, done=done, skipped=skipped, skip_bad=True).run(chunks_of("aaba"))
    assert calls == [0, 20, 0, 0]
    assert done == [20] and skipped == [(0, "dead-server"), (10, "dead-server"), (30, "dead-server")]


def test_waits_double_up_to_the_maximum():
    scheduler = scheduler_with(FakeClock(), retries=20, retry_delay=1.5, done=[], skipped=[], skip_bad=True)
    assert [scheduler._retry_wait(n) for n in range(1, 9)] == [1.5, 3, 6, 12, 24, 30, 30, 30]
    assert scheduler._retry_wait(10_000) == chunk_scheduler.MAX_RETRY_DELAY
    scheduler.retry_delay = 120  # asked for: longer than the doubling's limit, and not doubled
    assert [scheduler._retry_wait(n) for n in (1, 2, 50)] == [120, 120, 120]


def test_no_delay_retries_at_once_before_the_next_chunk(monkeypatch):
    calls = flaky_reads(monkeypatch, {10: 1})
    clock, done, skipped = FakeClock(), [], []
    scheduler_with(clock, retries=3, retry_delay=0.0, done=done, skipped=skipped).run(chunks_of("abc"))
    assert calls == [0, 10, 10, 20] and clock.sleeps == [] and done == [0, 10, 20]


def test_a_chunk_that_stays_unreadable_is_skipped_once_after_its_waits(monkeypatch):
    calls = flaky_reads(monkeypatch, {10: 99})
    clock, done, skipped = FakeClock(), [], []
    scheduler_with(clock, retries=2, retry_delay=1.0, done=done, skipped=skipped, skip_bad=True).run(chunks_of("abc"))
    assert calls == [0, 10, 20, 10, 10]
    assert clock.sleeps == [1.0, 2.0]
    assert done == [0, 20] and skipped == [(10, "dead-server")]


class TwoAtATime(InlineBackend):
    """Runs chunks in this process, two in flight at a time, as a two-worker pool hands them out."""

    capacity = 2
    runs_in_order = False


def test_chunks_held_by_a_retrying_chunk_are_released_when_another_chunk_gives_the_file_up(monkeypatch):
    """Chunk 0 retries a dead server (3 retries); chunk 10 of the same file, in flight with it,
    finds the file missing (1 retry) and gives it up first; chunk 0 and the chunk 30 it held back
    are then skipped with the file, and the run ends."""
    calls = flaky_reads(monkeypatch, {0: 99, 10: 99}, error=lambda entry: dead_server if entry == 0 else missing_file)
    clock, done, skipped = FakeClock(), [], []
    scheduler = scheduler_with(clock, retries=3, retry_delay=1.0, done=done, skipped=skipped, skip_bad=True,
                               backend=TwoAtATime(object()))
    scheduler.run(chunks_of("aaba"))
    assert done == [20]
    assert sorted(skipped) == [(0, "missing-file"), (10, "missing-file"), (30, "missing-file")]
    assert calls.count(30) == 0 and calls.count(10) == 2  # chunk 30 never read the given-up file
