"""Hand chunks to the executor's workers one by one and account for every one of them.

coffea's executors take the whole list of chunks and give back one sum: a chunk either
ends in it or the run ends. Exactly-once accounting needs more, so the run drives the
executor's workers itself, one chunk per task, and decides per chunk:

- it **succeeded**: its output is added and its entry range goes into the ledger;
- its **input file could not be read** (``failures.ChunkFailure`` category ``read``): it is
  tried again, up to ``retries`` times (deterministic kinds such as a corrupt file twice at
  most), each time after a wait that doubles from ``retry_delay`` (a restarting server is
  given time; the other files' chunks go on meanwhile), then skipped (``skip-bad-files``)
  or the run fails naming the file; a skipped failure of the whole file (dead server,
  missing, unresolvable host, permission) skips the file's other chunks without reading it
  again (they wait for the outcome of its retries);
- **the analysis failed** (an exception of the user's code or configuration): never retried;
  the run stops, naming the dataset, file, entry range, exception and the user's frame;
- **its worker died** (killed by the OOM killer, ``kill -9``): every chunk that was running
  in the pool is run again, each alone; a chunk that kills its worker alone twice is failed.

Backends adapt coffea's executor objects, so a factory (also a user's custom one) keeps
returning ``IterativeExecutor``, ``FuturesExecutor``, ``DaskExecutor`` or ``ParslExecutor``.
"""
from __future__ import annotations

import collections
import concurrent.futures
import ctypes
import dataclasses
import hashlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import cloudpickle
from coffea import processor as coffea_processor

from pc_core.errors import ExecutorError, PocketCoffeaError
from pc_core.read_errors import read_error_hint

from .chunk_work import ChunkPhaseError, ReadChunkOutput, process_chunk
from .failures import ChunkFailure, classify_chunk_failure

log = logging.getLogger(__name__)

# read failures that do not change when read again: one retry (a network hiccup can still
# corrupt one transfer), not the full ``retries``
DETERMINISTIC_READ_KINDS = frozenset({"missing-file", "corrupt-file", "permission"})
DETERMINISTIC_READ_RETRIES = 1
# read failures of the whole file, not of one entry range (a corrupt basket is): once a chunk
# used up its retries on one, the file's other chunks are skipped without reading it again
WHOLE_FILE_READ_KINDS = frozenset({"dead-server", "missing-file", "dns", "permission"})
MAX_SOLO_DEATHS = 2
# the wait before a read failure's retry doubles from ``retry_delay`` up to this (seconds): with
# the default 20 retries of 1 s, a chunk gives up on a server that stays dead after ~8 minutes
MAX_RETRY_DELAY = 30.0


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class ProcessorPayload:
    """The processor, pickled once; unpickled once per worker process (by its digest)."""

    digest: str
    data: bytes

    @classmethod
    def of(cls, processor_instance) -> ProcessorPayload:
        data = cloudpickle.dumps(processor_instance)
        return cls(hashlib.sha256(data).hexdigest(), data)

    def load(self):
        cached = _PROCESSOR_CACHE.get(self.digest)
        if cached is None:
            _PROCESSOR_CACHE.clear()
            cached = _PROCESSOR_CACHE[self.digest] = cloudpickle.loads(self.data)
        return cached


# one processor per worker process; a process holds the processor of the run it serves
_PROCESSOR_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class ChunkSettings:
    schema: type
    timeout: int = 60
    # read the next chunk's branches in a helper process while the analysis runs, for chunks of at
    # least this many entries (``chunk_work.process_chunk``); None: never. From the run option
    # pipelined-reading (``read_ahead_from``)
    read_ahead_from: int | None = None


def run_chunk_task(item, processor, settings: ChunkSettings, following=None) -> tuple[str, Any]:
    """One chunk in a worker: ``("ok", output)`` or ``("failed", ChunkFailure)``; never raises.
    ``following``: the chunk this process runs next, when known (what it reads ahead)."""
    if isinstance(processor, ProcessorPayload):
        processor = processor.load()
    try:
        return "ok", process_chunk(item, processor, settings.schema, settings.timeout,
                                   read_ahead_from=settings.read_ahead_from, following=following)
    except ChunkPhaseError as exc:
        return "failed", classify_chunk_failure(exc.original, item.filename, exc.phase)
    except Exception as exc:  # noqa: BLE001 - anything else is ours or the user's: stop, named
        return "failed", classify_chunk_failure(exc, item.filename, "process")


# --------------------------------------------------------------------------- backends


def _first_completed(futures) -> set:
    """The futures done now, waiting at most a second (the loop wakes up for signals)."""
    done, _ = concurrent.futures.wait(futures, timeout=1.0, return_when=concurrent.futures.FIRST_COMPLETED)
    return done


class WorkerDied(Exception):
    """The process (or dask worker) running a chunk died."""


def _worker_initializer() -> None:
    """In a forked worker: die with the main process (a SIGKILLed run leaves no orphans) and
    leave Ctrl-C to the main process, which stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class InlineBackend:
    """Iterative: each chunk in this process, when submitted."""

    isolates_deaths = False  # a chunk that kills this process kills the run
    capacity = 1
    description = "iterative"
    local_processes = 1  # processes of this machine that run chunks (None: elsewhere, or not known)
    runs_in_order = True  # runs the chunks one by one, as submitted

    def __init__(self, payload_processor):
        self.processor = payload_processor

    def submit(self, item, settings, following=None):
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_result(run_chunk_task(item, self.processor, settings, following))
        return future

    def wait(self, futures):
        return set(futures)

    def result(self, future):
        return future.result()

    def restart(self):
        pass

    def stop(self):
        pass


class ProcessPoolBackend:
    """Futures: ``workers`` processes forked from this one; a dead worker breaks the pool,
    which is replaced."""

    isolates_deaths = True
    runs_in_order = False

    def __init__(self, payload: ProcessorPayload, workers: int):
        self.payload = payload
        self.workers = max(1, workers)
        self.capacity = 2 * self.workers
        self.local_processes = self.workers
        self.description = f"futures ({self.workers} workers)"
        self.pool = self._new_pool()
        self._processes: list = []  # the pool forgets its processes when it breaks; we keep them

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=_worker_initializer
        )

    def submit(self, item, settings, following=None):  # which worker runs what next is not known
        try:
            future = self.pool.submit(run_chunk_task, item, self.payload, settings)
        except BrokenProcessPool as exc:
            # a worker died after the last wait and before this submit: the chunk goes to the
            # loop as one the death took with it (``result`` raises ``WorkerDied``), and is rerun
            future = concurrent.futures.Future()
            future.set_exception(exc)
            return future
        if len(self._processes) < self.workers:
            self._processes = list((getattr(self.pool, "_processes", None) or {}).values())
        return future

    def wait(self, futures):
        return _first_completed(futures)

    def result(self, future):
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise WorkerDied(self._death_detail()) from exc

    def _death_detail(self) -> str:
        for process in self._processes:
            process.join(timeout=1)
        codes = [p.exitcode for p in self._processes]
        if any(c is not None and c < 0 and c != -signal.SIGTERM for c in codes):
            codes = [c for c in codes if c != -signal.SIGTERM]  # the pool's own SIGTERM to the survivors
        signals = [f"signal {-c} ({signal.Signals(-c).name})" for c in codes if c is not None and c < 0]
        others = [f"exit code {c}" for c in codes if c is not None and c > 0]
        return "a worker process died" + (f": {', '.join(signals + others)}" if signals or others else "")

    def restart(self):
        self._terminate()
        self.pool = self._new_pool()

    def _terminate(self):
        processes = list((getattr(self.pool, "_processes", None) or {}).values()) or self._processes
        self._processes = []
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join(timeout=5)

    def stop(self):
        self._terminate()


def _identity(value):
    return value


# no dask worker at all for this long (and no factory monitor that knows better): the run stops
DASK_NO_WORKERS_TIMEOUT = 300.0
DASK_MONITOR_PERIOD = 2.0


class DaskBackend:
    """Dask: one task per chunk; dask itself reruns the tasks of a worker that died or left
    (a batch job removed mid-run) and gives up (``KilledWorker``) on a task that killed
    ``allowed-failures`` workers.

    The processor is a *computed* task (``submit`` of the payload), not scattered data: when
    the last worker holding it leaves, the scheduler recomputes it on the next worker instead
    of forgetting it (scattered data is lost with its last holder, and every chunk task would
    be cancelled). While it waits, the backend calls ``monitor`` (the factory's check: replace
    lost batch jobs, stop after ``worker-timeout`` without workers) every
    ``DASK_MONITOR_PERIOD`` s; without one, it stops the run itself after
    ``DASK_NO_WORKERS_TIMEOUT`` s without any worker, instead of waiting forever.
    """

    isolates_deaths = False  # dask already reran the task on other workers
    runs_in_order = False
    local_processes = None

    def __init__(self, payload: ProcessorPayload, client, monitor: Callable[[], None] | None = None,
                 no_workers_timeout: float | None = DASK_NO_WORKERS_TIMEOUT):
        self.client = client
        self.payload = client.submit(_identity, payload, key=f"pocket-coffea-processor-{payload.digest[:16]}-{os.getpid()}",
                                     pure=False)
        workers = len(client.scheduler_info().get("workers", {})) or 1
        self.capacity = max(4, 4 * workers)
        self.description = f"dask ({client.scheduler.address})"
        self.monitor = monitor
        self.no_workers_timeout = no_workers_timeout
        self._submitted = 0
        self._last_check = time.monotonic()
        self._no_workers_since: float | None = None

    def submit(self, item, settings, following=None):  # which worker runs what next is not known
        self._submitted += 1
        key = f"pocket-coffea-chunk-{self._submitted}-{os.getpid()}"
        return self.client.submit(run_chunk_task, item, self.payload, settings, key=key, pure=False, retries=0)

    def wait(self, futures):
        from distributed import wait

        now = time.monotonic()
        if now - self._last_check >= DASK_MONITOR_PERIOD:
            self._last_check = now
            self._check_workers(now)
        try:
            done, _ = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED")
        except TimeoutError:  # nothing finished within the second (distributed raises, not returns)
            return set()
        return set(done)

    def _check_workers(self, now: float) -> None:
        if self.monitor is not None:
            self.monitor()  # raises to stop the run
            return
        if self.no_workers_timeout is None:
            return
        if len(self.client.scheduler_info().get("workers", {})):
            self._no_workers_since = None
            return
        if self._no_workers_since is None:
            self._no_workers_since = now
            log.warning("the dask scheduler %s has no worker left; waiting up to %.0f s for one",
                        self.client.scheduler.address, self.no_workers_timeout)
        elif now - self._no_workers_since > self.no_workers_timeout:
            raise ExecutorError(
                f"every worker of the dask scheduler {self.client.scheduler.address} left during the run and none came "
                f"back within {self.no_workers_timeout:g} s; the finished chunks are checkpointed: start workers (or "
                "check why they end) and rerun the same command to process the rest"
            )

    def result(self, future):
        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except KilledWorker as exc:
            raise WorkerDied(f"dask gave up after it killed workers repeatedly: {exc}") from exc

    def restart(self):
        pass

    def stop(self):
        pass


class ParslBackend:
    """Parsl: one app call per chunk on the DataFlowKernel the factory loaded (``parsl.load``).

    The processor travels pickled once per call (parsl has no broadcast); tasks whose block
    was lost are rerun by parsl itself (the config's ``retries``), then reported as a dead
    worker."""

    isolates_deaths = False  # parsl already reran the task on another block
    runs_in_order = False
    local_processes = None

    def __init__(self, payload: ProcessorPayload):
        import parsl
        from parsl.app.python import PythonApp

        try:
            dfk = parsl.dfk()
        except Exception as exc:  # parsl.errors.NoDataFlowKernelError
            raise ExecutorError(
                "the parsl executor has no loaded parsl configuration; its factory must call parsl.load() in setup()"
            ) from exc
        self.payload = payload
        self.app = PythonApp(run_chunk_task, data_flow_kernel=dfk)
        workers = 0
        for executor in dfk.executors.values():
            managers = getattr(executor, "connected_managers", None)
            if callable(managers):
                try:
                    workers += sum(int(m.get("worker_count", 0) or 0) for m in managers())
                except Exception:  # noqa: BLE001 - only sizes the queue
                    pass
        self.capacity = max(4, 2 * workers)
        self.description = f"parsl ({', '.join(dfk.executors)})"

    def submit(self, item, settings, following=None):  # which block runs what next is not known
        return self.app(item, self.payload, settings)

    def wait(self, futures):
        return _first_completed(futures)

    def result(self, future):
        from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

        try:
            return future.result()
        except (ManagerLost, WorkerLost) as exc:
            raise WorkerDied(f"parsl lost the worker running it: {exc}") from exc

    def restart(self):
        pass

    def stop(self):
        pass


def backend_for(executor, processor_instance):
    """The backend driving the workers of one of coffea's executor objects."""
    if isinstance(executor, coffea_processor.IterativeExecutor):
        return InlineBackend(processor_instance)
    payload = ProcessorPayload.of(processor_instance)
    if isinstance(executor, coffea_processor.FuturesExecutor):
        return ProcessPoolBackend(payload, int(executor.workers or 1))
    if isinstance(executor, coffea_processor.DaskExecutor):
        if executor.client is None:
            raise ExecutorError("the dask executor has no client; its factory must set one in setup()")
        # a pc-run factory's executor carries its worker check (lost batch jobs, worker-timeout)
        return DaskBackend(payload, executor.client, monitor=getattr(executor, "worker_monitor", None))
    if isinstance(executor, coffea_processor.ParslExecutor):
        return ParslBackend(payload)
    raise ExecutorError(
        f"executor object {type(executor).__name__} is not supported: an executor factory's get() must return "
        "coffea.processor.IterativeExecutor, FuturesExecutor, DaskExecutor or ParslExecutor"
    )


# --------------------------------------------------------------------------- the loop


class AnalysisError(PocketCoffeaError):
    """The user's code or configuration failed on a chunk: never retried, the run stops."""

    def __init__(self, item, failure: ChunkFailure):
        self.item = item
        self.failure = failure
        where = f" at {failure.user_frame}" if failure.user_frame else ""
        super().__init__(
            f"the analysis failed on dataset {item.dataset!r}, file {item.filename}, entries "
            f"{item.entrystart}-{item.entrystop}: {failure.message}{where}"
        )


def _detail(failure: ChunkFailure) -> str:
    """A read failure's message without its leading kind (printed next to it anyway)."""
    return failure.message.removeprefix(f"{failure.kind}: ")


class InputFileError(PocketCoffeaError):
    """An input file cannot be read and skip-bad-files is off."""


class ReadFailure(InputFileError):
    """An input file could not be read after every retry, and skip-bad-files is off."""

    def __init__(self, item, failure: ChunkFailure, attempts: int):
        self.item = item
        self.failure = failure
        hint = read_error_hint(failure.kind)
        message = _detail(failure)
        super().__init__(
            f"input file {item.filename} of dataset {item.dataset!r} cannot be read ({failure.kind}) "
            f"at entries {item.entrystart}-{item.entrystop} after {attempts} attempt(s): {message}. "
            + (f"Hint: {hint}. " if hint else "")
            + "Fix or remove it from the fileset, or run with --skip-bad-files (run option "
            "'skip-bad-files: true') to skip it"
        )


class ChunkKilledWorkers(PocketCoffeaError):
    """A chunk killed the worker running it, alone, repeatedly; not skippable (it is not the file)."""

    def __init__(self, item, detail: str):
        self.item = item
        super().__init__(
            f"chunk of dataset {item.dataset!r}, file {item.filename}, entries {item.entrystart}-{item.entrystop} "
            f"killed the worker running it ({detail}); this is usually memory: lower the chunksize or raise "
            "mem-per-worker"
        )


@dataclass
class _Attempt:
    item: Any
    read_failures: int = 0
    deaths: int = 0
    solo: bool = False
    not_before: float = 0.0  # a read failure's retry waits until then (the scheduler's clock)


def _file_of(item) -> tuple[str, str]:
    return item.dataset, item.filename


@dataclass
class _Retries:
    """Chunks waiting to retry a read failure, and the chunks held back meanwhile. While a chunk
    retries a failure of its whole file (a dead server, a missing file), the file's other chunks
    wait for the outcome instead of each failing and waiting on its own; if the retries give up,
    they are skipped with it (``ChunkScheduler.unreadable``) without reading the file again."""

    waiting: list[_Attempt] = dataclasses.field(default_factory=list)
    holders: dict[tuple[str, str], _Attempt] = dataclasses.field(default_factory=dict)  # file -> its retrying chunk
    held: list[_Attempt] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.waiting or self.held)

    def wait(self, attempt: _Attempt, whole_file: bool) -> None:
        self.waiting.append(attempt)
        if whole_file:
            self.holders.setdefault(_file_of(attempt.item), attempt)

    def due(self, now: float) -> list[_Attempt]:
        """The waiting chunks whose wait is over, in the order they failed."""
        due = [attempt for attempt in self.waiting if attempt.not_before <= now]
        self.waiting = [attempt for attempt in self.waiting if attempt.not_before > now]
        return due

    def next_due(self) -> float:
        return min(attempt.not_before for attempt in self.waiting)

    def holds(self, attempt: _Attempt) -> bool:
        """Hold ``attempt`` back if another chunk of its file retries a whole-file failure."""
        holder = self.holders.get(_file_of(attempt.item))
        if holder is None or holder is attempt or attempt.read_failures:
            return False
        self.held.append(attempt)
        return True

    def resolved(self, attempt: _Attempt) -> list[_Attempt]:
        """``attempt`` succeeded or was skipped: the chunks of its file it held back, in order."""
        key = _file_of(attempt.item)
        if self.holders.get(key) is not attempt:
            return []
        del self.holders[key]
        released = [a for a in self.held if _file_of(a.item) == key]
        self.held = [a for a in self.held if _file_of(a.item) != key]
        return released

    def release_all(self) -> list[_Attempt]:
        """Every chunk held back (none can be, once no chunk waits and none runs: a safety net)."""
        released, self.held, self.holders = self.held, [], {}
        return released


@dataclass
class ChunkCallbacks:
    """What the scheduler tells its caller, in the caller's process."""

    done: Callable[[Any, Any], None]  # (item, output)
    skipped: Callable[[Any, ChunkFailure], None]  # (item, failure) skip-bad-files
    progress: Callable[[Any], None] = lambda item: None


@dataclass
class ChunkScheduler:
    backend: Any
    settings: ChunkSettings
    retries: int
    skip_bad_files: bool
    callbacks: ChunkCallbacks
    # seconds before the first retry of a read failure; doubled for each next one (``_retry_wait``)
    retry_delay: float = 0.0
    # (dataset, file) -> the whole-file failure that made a chunk of it skipped
    unreadable: dict[tuple[str, str], ChunkFailure] = dataclasses.field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def _retry_limit(self, failure: ChunkFailure) -> int:
        if failure.kind in DETERMINISTIC_READ_KINDS:
            return min(self.retries, DETERMINISTIC_READ_RETRIES)
        return self.retries

    def _retry_wait(self, failures: int) -> float:
        """Seconds before the retry that follows the ``failures``-th read failure of a chunk: doubling,
        up to ``MAX_RETRY_DELAY`` (or ``retry_delay`` itself when it is longer)."""
        return min(self.retry_delay * 2 ** min(failures - 1, 32), max(self.retry_delay, MAX_RETRY_DELAY))

    def run(self, items: Iterable[Any]) -> None:
        """Process every item exactly once (or skip it, named), or raise the first fatal error.

        On a fatal error or an interruption, nothing more is submitted, the chunks already
        running are abandoned (the backend is stopped) and every chunk that completed has
        been passed to ``callbacks.done``.
        """
        backend = self.backend
        queue = collections.deque(_Attempt(item) for item in items)
        solo_queue: collections.deque[_Attempt] = collections.deque()
        inflight: dict[Any, _Attempt] = {}
        retries = _Retries()
        try:
            while queue or solo_queue or inflight or retries:
                if retries:
                    now = self.clock()
                    queue.extendleft(reversed(retries.due(now)))  # retried before the chunks not tried yet
                    if not (queue or solo_queue or inflight):
                        if not retries.waiting:
                            queue.extend(retries.release_all())
                            continue
                        self.sleep(retries.next_due() - now)
                        continue
                if solo_queue:
                    if not inflight:
                        attempt = solo_queue.popleft()
                        inflight[backend.submit(attempt.item, self.settings)] = attempt
                else:
                    while queue and len(inflight) < backend.capacity:
                        attempt = queue.popleft()
                        if self._skipped_as_unreadable(attempt.item):
                            queue.extendleft(reversed(retries.resolved(attempt)))
                        elif not retries.holds(attempt):
                            # a backend that runs the queue in order runs its head next: what to read ahead
                            following = queue[0].item if backend.runs_in_order and queue else None
                            inflight[backend.submit(attempt.item, self.settings, following)] = attempt
                for future in backend.wait(list(inflight)):
                    attempt = inflight.pop(future, None)
                    if attempt is None:
                        continue
                    try:
                        status, value = backend.result(future)
                    except WorkerDied as death:
                        self._worker_died(attempt, str(death), inflight, solo_queue)
                        break
                    if status == "ok":
                        item = attempt.item
                        if isinstance(value, ReadChunkOutput):  # planned without opening the file: its UUID as read
                            item, value = dataclasses.replace(item, fileuuid=value.fileuuid), value.output
                        self.callbacks.done(item, value)
                        self.callbacks.progress(attempt.item)
                        queue.extendleft(reversed(retries.resolved(attempt)))
                        continue
                    self._failed(attempt, value, retries, queue)
        except BaseException:
            for future in inflight:
                future.cancel()
            backend.stop()
            raise

    def _worker_died(self, attempt: _Attempt, detail: str, inflight: dict, solo_queue) -> None:
        """Every chunk that was in the pool goes again, alone; one that kills its worker alone
        ``MAX_SOLO_DEATHS`` times is failed."""
        if not self.backend.isolates_deaths:
            raise ChunkKilledWorkers(attempt.item, detail)
        victims = [attempt, *inflight.values()]
        inflight.clear()
        if attempt.solo:
            attempt.deaths += 1
            log.warning("A worker died running alone the chunk %s[%d:%d] of %s (%s); death %d of %d",
                        attempt.item.filename, attempt.item.entrystart, attempt.item.entrystop,
                        attempt.item.dataset, detail, attempt.deaths, MAX_SOLO_DEATHS)
            if attempt.deaths >= MAX_SOLO_DEATHS:
                raise ChunkKilledWorkers(attempt.item, f"{MAX_SOLO_DEATHS} times while running alone; last: {detail}")
        else:
            log.warning("%s; its %d chunk(s) in flight are run again, one at a time", detail, len(victims))
        self.backend.restart()
        for victim in victims:
            victim.solo = True
        solo_queue.extendleft(reversed(victims))

    def _failed(self, attempt: _Attempt, failure: ChunkFailure, retries: _Retries, queue) -> None:
        """A read failure goes again (with a freshly opened file) after its wait, until its retries
        are used up; then it is skipped (the chunks of its file it held back go back to the
        queue) or fatal. Any other failure is fatal at once."""
        item = attempt.item
        if failure.category != "read":
            raise AnalysisError(item, failure)
        if self._skipped_as_unreadable(item):  # in flight while another chunk of its file gave up on it
            queue.extendleft(reversed(retries.resolved(attempt)))
            return
        attempt.read_failures += 1
        limit = self._retry_limit(failure)
        if attempt.read_failures <= limit:
            wait = self._retry_wait(attempt.read_failures)
            log.warning("Reading %s (entries %d-%d) failed (%s), attempt %d of %d, tried again in %g s: %s",
                        item.filename, item.entrystart, item.entrystop, failure.kind, attempt.read_failures, limit + 1,
                        wait, _detail(failure))
            attempt.not_before = self.clock() + wait
            retries.wait(attempt, whole_file=failure.kind in WHOLE_FILE_READ_KINDS)
            return
        if not self.skip_bad_files:
            raise ReadFailure(item, failure, attempt.read_failures)
        log.warning("Skipping entries %d-%d of input file %s of dataset %r (%s) after %d attempt(s): %s",
                    item.entrystart, item.entrystop, item.filename, item.dataset, failure.kind,
                    attempt.read_failures, _detail(failure))
        if failure.kind in WHOLE_FILE_READ_KINDS:
            self.unreadable[(item.dataset, item.filename)] = failure
        self.callbacks.skipped(item, failure)
        self.callbacks.progress(item)
        queue.extendleft(reversed(retries.resolved(attempt)))

    def _skipped_as_unreadable(self, item) -> bool:
        """Skip ``item`` at once if another chunk of its file was skipped for a whole-file failure."""
        failure = self.unreadable.get((item.dataset, item.filename))
        if failure is None:
            return False
        log.info("Skipping entries %d-%d of input file %s of dataset %r (%s, as its other chunk)",
                 item.entrystart, item.entrystop, item.filename, item.dataset, failure.kind)
        self.callbacks.skipped(item, failure)
        self.callbacks.progress(item)
        return True


__all__ = [
    "AnalysisError",
    "ChunkCallbacks",
    "ChunkKilledWorkers",
    "ChunkScheduler",
    "ChunkSettings",
    "InputFileError",
    "ProcessorPayload",
    "ReadFailure",
    "backend_for",
    "run_chunk_task",
]
