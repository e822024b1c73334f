"""Reading the next chunk's branches in a helper process while this process analyses a chunk.

Why a process and not a thread: a reading thread has to win the GIL back from the analysis
for every basket it decompresses and for all of uproot's interpretation and awkward's array
building, so it bought nothing (docs/performance.md). The helper process reads with its own
interpreter and hands the arrays over through one file in shared memory (``/dev/shm``): it
writes each array's buffers there (``ak.to_buffers``), this process maps the file, unlinks it
and rebuilds the arrays on the mapped buffers (``ak.from_buffers``) without copying them. The
arrays are those uproot would have returned here, byte for byte.

The helper is started as a script (not ``-m pc_run...``): it imports only numpy, awkward and
uproot, not coffea or the user's analysis. It ends when this process closes its pipe, exits
or dies (end of file on its input), and removes the file it wrote last if nobody took it.
"""
from __future__ import annotations

import contextlib
import gc
import mmap
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALIGNMENT = 64  # every buffer starts on a cache line, as numpy's own allocations do


def shared_memory_dir() -> str:
    """Where the hand-over files go: ``/dev/shm`` (memory) when it has room, else the temp folder."""
    candidate = "/dev/shm"
    try:
        if os.access(candidate, os.W_OK) and shutil.disk_usage(candidate).free > 2 * 1024**3:
            return candidate
    except OSError:
        pass
    return tempfile.gettempdir()


class ReadAheadProcess:
    """A helper process that reads one range of branches at a time, ahead of the chunk that needs it.

    ``submit`` sends a request and returns at once; ``take`` waits for its answer and returns the
    arrays (a dict as ``TTree.arrays(how=dict)`` gives it), or None when the helper failed; the
    caller then reads itself and meets the error, if there is one, in its own chunk. Before the
    branches are known (a process's first chunk learns them), ``prepare`` has the helper open
    the next chunk's file and ``learn`` read each branch for it as soon as the chunk touches it.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._pid = os.getpid()
        self._waiting = False
        self.last_seconds = 0.0  # how long the helper took to read and hand over its last answer

    def _forget_if_forked(self) -> None:
        """A forked worker inherits this object: the helper and its pending answer are the parent's."""
        if self._pid != os.getpid():
            self._pid, self._process, self._waiting = os.getpid(), None, False

    def _helper(self) -> subprocess.Popen:
        self._forget_if_forked()
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, close_fds=True,
            )
            self._waiting = False
        return self._process

    def start(self) -> None:
        """Start the helper now: its imports (~0.5 s) overlap the caller's work."""
        self._helper()

    def _send(self, message: tuple) -> bool:
        try:
            request = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            helper = self._helper()
            helper.stdin.write(len(request).to_bytes(8, "little") + request)
            helper.stdin.flush()
        except Exception:  # noqa: BLE001 - unpicklable options, a dead helper: the chunks read themselves
            self.close()
            return False
        return True

    def prepare(self, filename: str, timeout, uproot_options: dict, tree_path: str, start: int, stop: int) -> None:
        """Have the helper open ``filename`` and parse its tree now, and read entries
        ``start``-``stop`` of each branch ``learn`` names from then on, before the request for them
        (no answer: the ``submit`` of that range finds them read)."""
        self.discard()
        self._send(("prepare", filename, timeout, uproot_options, tree_path, start, stop))

    def learn(self, branches) -> None:
        """Branches to read for the range of ``prepare`` (the first chunk touched them just now)."""
        if self._process is not None and not self._waiting:
            self._send(("learn", sorted(branches)))

    def submit(self, filename: str, timeout, uproot_options: dict, tree_path: str, branches: frozenset,
               start: int, stop: int) -> bool:
        """Ask for ``branches`` of entries ``start``-``stop``; False if the request cannot be sent."""
        self.discard()
        if not self._send(("read", filename, timeout, uproot_options, tree_path, sorted(branches), start, stop,
                           shared_memory_dir())):
            return False
        self._waiting = True
        return True

    def _answer(self) -> tuple | None:
        """The helper's answer to the request sent last: ``("ok", path, size, layouts, seconds)``;
        None if there is no request, or the helper failed or died."""
        self._forget_if_forked()
        if not self._waiting:
            return None
        self._waiting = False
        try:
            answer = _read_message(self._process.stdout)
        except Exception:  # noqa: BLE001 - the helper died: start a new one next time
            self.close()
            return None
        return answer if answer[0] == "ok" else None

    def take(self) -> dict | None:
        """The arrays of the request sent last, or None (no request, or the helper failed)."""
        answer = self._answer()
        if answer is None:
            return None
        _, path, size, layouts, self.last_seconds = answer
        try:
            return _map_arrays(path, size, layouts)
        except OSError:  # the file went (a helper killed after writing it is cleaned up by the next one)
            return None

    def discard(self) -> None:
        """Wait for an answer nobody will take, and remove its file (one request at a time on the pipe)."""
        answer = self._answer()
        if answer is not None:
            _remove(answer[1])

    def close(self) -> None:
        self._forget_if_forked()
        process, self._process, self._waiting = self._process, None, False
        if process is None:
            return
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _read_message(stream):
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("the read-ahead helper ended")
    size = int.from_bytes(header, "little")
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the read-ahead helper ended mid-answer")
    return pickle.loads(payload)


def _map_arrays(path: str, size: int, layouts: list) -> dict:
    """The arrays the helper wrote to ``path``, on buffers of the mapped file (then unlinked: the
    mapping lives as long as an array uses it)."""
    import awkward as ak
    import numpy as np

    try:
        with open(path, "rb") as stream:
            # copy-on-write: the arrays are writable, as uproot's are, and nothing goes back to the file
            mapped = mmap.mmap(stream.fileno(), size, access=mmap.ACCESS_COPY) if size else b""
    finally:
        _remove(path)
    arrays = {}
    for name, form, length, buffers in layouts:
        container = {key: np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
                     for key, dtype, offset, count in buffers}
        arrays[name] = ak.from_buffers(form, length, container, highlevel=True)
    return arrays


class ReadShare:
    """Which of a chunk's branches the helper reads ahead and which this process reads itself.

    When reading takes longer than the analysis, a helper that reads everything leaves this
    process waiting; when it takes less, the helper waits. The helper gets the heaviest branches
    (by compressed bytes) up to ``fraction`` of the chunk's bytes, this process reads the rest
    when the chunk starts, and ``fraction`` follows the last chunks so that both finish together:
    with R the time to read every branch and A this process's other work per chunk, both are
    busy for (R + A) / 2 when the helper gets 1/2 + A / 2R of the bytes (all of them when A >= R).
    """

    def __init__(self) -> None:
        # before anything is measured: most of the reading to the helper, but not all, so that a
        # run whose reading outweighs its analysis does not wait a whole read for its second chunk
        self.fraction = 0.75

    def split(self, weights: dict[str, int]) -> tuple[frozenset, frozenset, float]:
        """(helper's branches, this process's branches, the helper's share of the bytes)."""
        total = sum(weights.values())
        if total <= 0 or self.fraction >= 1.0:
            return frozenset(weights), frozenset(), 1.0
        helper, taken = [], 0
        for name in sorted(weights, key=lambda n: (-weights[n], n)):
            if taken + weights[name] <= self.fraction * total or not helper:
                helper.append(name)
                taken += weights[name]
        return frozenset(helper), frozenset(weights) - frozenset(helper), taken / total

    def update(self, helper_seconds: float, helper_share: float, other_work_seconds: float) -> None:
        """After a chunk: the helper read ``helper_share`` of the bytes in ``helper_seconds``; this
        process spent ``other_work_seconds`` on everything but reading and waiting."""
        if helper_seconds <= 0 or helper_share <= 0:
            return
        read_all = helper_seconds / helper_share
        balanced = min(1.0, max(0.5, 0.5 + other_work_seconds / (2 * read_all)))
        self.fraction = (self.fraction + balanced) / 2


# ``pipelined-reading: auto`` reads ahead chunks of at least this many entries: below it, reading
# takes milliseconds and the helper process would cost more than it saves
AUTO_READ_AHEAD_ENTRIES = 10_000


def read_ahead_from(option, local_processes: int | None) -> int | None:
    """The run option ``pipelined-reading`` for this run, as the smallest chunk read ahead (None:
    none). ``true``: every chunk. ``auto``: chunks of ``AUTO_READ_AHEAD_ENTRIES`` or more, when
    this machine has a core for each process's read-ahead helper besides the ``local_processes``
    that run chunks (iterative on 2 cores: yes; ``futures -s 2`` on 2 cores: no, the helpers would
    take the workers' cores); never for workers elsewhere (dask, parsl), whose cores this process
    cannot see."""
    if option != "auto":
        return 0 if option else None
    if local_processes is not None and 2 * local_processes <= available_cores():
        return AUTO_READ_AHEAD_ENTRIES
    return None


def available_cores() -> int:
    """The cores this process may use: its CPU affinity (SLURM pins it), bounded by a batch slot's
    size as the batch system declares it (HTCondor sets OMP_NUM_THREADS to the slot's cores) and
    by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0))
    declared = os.environ.get("OMP_NUM_THREADS", "")
    if declared.isdigit() and int(declared) > 0:
        cores = min(cores, int(declared))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


# ---------------------------------------------------------------- the helper process


PREFIX = "pocket-coffea-read-ahead-"


def _remove_orphans(directory: str) -> None:
    """Hand-over files of processes that no longer exist (killed between writing and mapping)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        owner = name[len(PREFIX):].split("-", 1)[0] if name.startswith(PREFIX) else ""
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            _remove(os.path.join(directory, name))


def _write_arrays(arrays: dict, directory: str) -> tuple[str, int, list]:
    import awkward as ak
    import numpy as np

    layouts, chunks, offset = [], [], 0
    for name, array in arrays.items():
        form, length, container = ak.to_buffers(array)
        buffers = []
        for key, buffer in container.items():
            buffer = np.ascontiguousarray(buffer)
            offset = -(-offset // ALIGNMENT) * ALIGNMENT
            buffers.append((key, buffer.dtype.str, offset, buffer.size))
            chunks.append((offset, buffer))
            offset += buffer.nbytes
        layouts.append((name, form.to_json(), length, buffers))
    handle, path = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", dir=directory)
    try:
        os.ftruncate(handle, offset)
        with os.fdopen(handle, "r+b", closefd=False) as stream:
            for position, buffer in chunks:
                stream.seek(position)
                stream.write(memoryview(buffer).cast("B"))
    except BaseException:  # a full /dev/shm, or the parent's death (SystemExit) while writing
        _remove(path)
        raise
    finally:
        os.close(handle)
    return path, offset, layouts


def _remove(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _serve(requests, answers) -> None:
    import uproot

    opened: tuple | None = None  # (what identifies the open file, the file)
    learning: tuple | None = None  # (the file's identity, tree path, start, stop, tree) of the last prepare
    learnt: dict = {}  # the arrays read for it, by branch
    last_path = None  # the file of the last answer: removed if nobody took it
    swept = False

    def tree_of(filename, timeout, options, tree_path):
        nonlocal opened
        key = (filename, timeout, repr(sorted(options.items())))
        if opened is not None and opened[0] != key:
            opened[1].close()
            opened = None
        if opened is None:
            opened = (key, uproot.open({filename: None}, timeout=timeout, **{"array_cache": None, **options}))
        return key, opened[1][tree_path]

    def read(tree, branches, start, stop) -> dict:
        wanted = set(branches)
        return tree.arrays(filter_branch=lambda branch: branch.name in wanted, entry_start=start, entry_stop=stop,
                           ak_add_doc=True, how=dict)

    try:
        while True:
            try:
                kind, *request = _read_message(requests)
            except EOFError:
                return
            if kind == "learn":  # no answer; a failure is met again by the read that follows
                if learning is not None:
                    with contextlib.suppress(Exception):
                        learnt.update(read(learning[4], set(request[0]) - set(learnt), *learning[2:4]))
                continue
            if kind == "prepare":  # open and parse, no answer
                filename, timeout, options, tree_path, start, stop = request
                learnt, learning = {}, None
                with contextlib.suppress(Exception):
                    key, tree = tree_of(filename, timeout, options, tree_path)
                    learning = (key, tree_path, start, stop, tree)
                continue
            _remove(last_path)  # taken (then already unlinked), or never wanted
            last_path = None
            filename, timeout, options, tree_path, branches, start, stop, directory = request
            if not swept:
                _remove_orphans(directory)
                swept = True
            try:
                began = time.perf_counter()
                key, tree = tree_of(filename, timeout, options, tree_path)
                ready = learnt if learning is not None and learning[:4] == (key, tree_path, start, stop) else {}
                arrays = {name: ready[name] for name in branches if name in ready}
                arrays.update(read(tree, set(branches) - set(arrays), start, stop))
                learnt, learning = {}, None
                last_path, size, layouts = _write_arrays(arrays, directory)
                answer = ("ok", last_path, size, layouts, time.perf_counter() - began)
            except Exception as exc:  # noqa: BLE001 - reported; the chunk reads itself and meets it
                if opened is not None:
                    opened[1].close()
                opened, learnt, learning = None, {}, None
                answer = ("failed", f"{type(exc).__name__}: {exc}")
            payload = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
            answers.write(len(payload).to_bytes(8, "little") + payload)
            answers.flush()
    except BrokenPipeError:
        return
    finally:
        _remove(last_path)


def _die_with_parent() -> None:
    """Ctrl-C is the parent's to handle; no helper outlives its parent (PR_SET_PDEATHSIG), and a
    helper stopped by SIGTERM (its parent's death included) still removes its hand-over file."""
    import ctypes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
        except OSError:
            pass


if __name__ == "__main__":
    _die_with_parent()
    # numpy, awkward, uproot: imported without garbage collection (~0.03 s of walks that find nothing),
    # then frozen, so that the collections of the reads that follow do not walk them again (this
    # process holds nothing that needs finalizing at its exit: see the end)
    gc.disable()
    import uproot  # noqa: F401 - imported here, before the first request
    gc.freeze()
    gc.enable()
    # the answers keep the original standard output; anything printed goes to stderr instead
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, answers)
    # every answer is flushed and the last hand-over file removed: nothing is left to finalize, and
    # the parent, which waits for this process at the end of its run, is spared the teardown (~0.1 s)
    os._exit(0)
