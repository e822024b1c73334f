"""One recovery path for a jobs folder: lock, history, "is a copy still queued?", resubmit job i.

Both ``pocket-coffea run --recreate-jobs`` (``recreate.py``) and ``check-jobs --resubmit``
(``check_jobs.py``) resubmit jobs through a :class:`RecoveryPass`:

- **one lock per jobs folder**: ``.recovery.lock`` (``fcntl.flock``, non-blocking). A second
  recovery of the same folder stops at once with a message naming the holder (pid, host,
  command, since when);
- **one schedd query per pass**: every job of the folder carries ``+PocketCoffeaJobsDir``
  and ``+PocketCoffeaJob`` (``submit_file.SubmitSpec``); one ``Schedd.query`` returns every
  copy of every job still in the queue (folders written before the tags existed are matched
  by their ``UserLog`` under ``<jobs dir>/logs/``). A job with a copy idle, running, held,
  suspended or waiting for a retry (``max_retries``) is never resubmitted: it is reported
  ``still queued/running/held in HTCondor (cluster.proc, status)`` and skipped;
- **memory holds**: a copy held for exceeding memory (``HoldReasonCode`` 34, or a policy
  hold 3/26 whose subcode is 34 or whose reason names memory) is removed (``condor_rm``)
  and the job resubmitted with ``request_memory`` raised by ``memory_factor`` up to
  ``memory_ceiling`` (MB); a job already at the ceiling is left held, with what to do;
- **one history per jobs folder**: ``recovery_history.jsonl``, append-only JSON lines
  ``{time, job, action, cluster, reason, request_memory, queue, command, host, pid}``,
  one line per resubmission (``resubmit``) and per removed copy (``remove``);
- **one replica rewrite**: :func:`move_job_inputs` moves the chosen input files of a job's
  data file (``config_job_{i}.pkl``, ``pc_jobs.job_config``) to the replicas a finder
  returns; ``check-jobs --resubmit`` (the failed URL, blacklisted servers) and
  ``run --recreate-jobs`` (every file of a job with read errors) only choose the files and
  the finder. The file is rewritten atomically and 0644, never by unpickling the Configurator.

Nothing here imports coffea, pc-run or dask.
"""
from __future__ import annotations

import copy
import fcntl
import json
import logging
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pc_core.errors import PocketCoffeaError

from .job_config import dump_job_data, is_job_data, job_fileset, load_job_config, save_job_config, with_fileset
from .submission import SubmissionError, submit_file
from .submit_file import JOB_ATTR, JOBS_DIR_ATTR, get_command, job_flavour, quote_value, set_command, size_in_mb

log = logging.getLogger(__name__)

LOCK_NAME = ".recovery.lock"
HISTORY_NAME = "recovery_history.jsonl"
DEFAULT_MEMORY_FACTOR = 1.5
DEFAULT_MEMORY_CEILING_MB = 8000  # lxplus: 2 GB per core; 8 GB is what a 4-core slot offers
DEFAULT_REQUEST_MEMORY_MB = 2000
FILE_MODE = 0o644
MEMORY_HOLD_CODE = 34  # JobOutOfResources
POLICY_HOLD_CODES = (3, 26)  # JobPolicy (periodic_hold), SystemPolicy (SYSTEM_PERIODIC_HOLD)
REMOVE_REASON = "pocket-coffea recovery: held copy replaced by a resubmission"

STATUS_NAMES = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "transferring output",
                7: "suspended"}
LEAVING_STATUSES = (3, 4)  # removed / completed copies still listed while they leave the queue

PROJECTION = ["ClusterId", "ProcId", "JobStatus", JOB_ATTR, "UserLog", "HoldReasonCode", "HoldReasonSubCode",
              "HoldReason", "RequestMemory", "MemoryUsage", "NumJobCompletions", "JobMaxRetries", "ExitCode"]

Submitter = Callable[[Path], int]
"""Submit one ``job_{i}.sub``; returns the cluster id."""


class RecoveryError(PocketCoffeaError):
    """The jobs folder cannot be recovered now (locked, schedd unreachable)."""


class RecoveryLockError(RecoveryError):
    """Another process is recovering the same jobs folder."""


# --------------------------------------------------------------------------- file modes


PROCESSED_LOGS = "processedlogs"


def archive_logs(logs_dir: Path, logs: Iterable[Path]) -> list[Path]:
    """Move logs already acted on to ``logs/processedlogs/`` so the same failure is not acted on
    twice, never overwriting: ``job_3.out``, then ``job_3.0.out``, ``job_3.1.out``, ...; missing logs are skipped."""
    folder = logs_dir / PROCESSED_LOGS
    moved = []
    for path in logs:
        if not path.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        stem, _, ext = path.name.rpartition(".")
        target, n = folder / path.name, 0
        while target.exists():
            target = folder / f"{stem}.{n}.{ext}"
            n += 1
        path.replace(target)
        moved.append(target)
    return moved


def make_world_readable(path: str | os.PathLike, mode: int = FILE_MODE) -> None:
    """``chmod`` a file the job (or HTCondor's daemons, acting as another user) must read.

    Atomic writes go through ``mkstemp``, which creates 0600 files whatever the umask;
    callers chmod after the rename.
    """
    os.chmod(path, mode)


# --------------------------------------------------------------------------- lock


def _holder_text(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not holder:
        return "another process"
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} ({holder.get('command', '?')}, since {when})"


@contextmanager
def recovery_lock(folder: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold the jobs folder's recovery lock for the ``with`` block; never waits.

    Raises ``RecoveryLockError`` naming the holder when another process has it.
    """
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask: anyone may read who holds it
        except OSError:
            pass  # another user's lock file: reading and locking it is enough
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RecoveryLockError(
                f"the jobs folder {Path(folder)} is being recovered by {_holder_text(path)}; "
                f"{command} resubmits nothing while it runs. Wait for it to finish (or stop it), then try again. "
                "Use either check-jobs --resubmit or --recreate-jobs on a folder, one at a time"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- history


def history_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / HISTORY_NAME


def append_history(folder: str | os.PathLike, *, job: int, action: str, reason: str = "", cluster: int | None = None,
                   request_memory: int | None = None, queue: str | None = None, command: str = "",
                   clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Append one JSON line to ``recovery_history.jsonl`` (one ``write`` with ``O_APPEND``)."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(clock())),
        "job": int(job),
        "action": action,
        "cluster": cluster,
        "reason": reason,
        "request_memory": request_memory,
        "queue": queue,
        "command": command,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    path = history_path(folder)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, FILE_MODE)
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)
    return record


def read_history(folder: str | os.PathLike, job: int | None = None) -> list[dict[str, Any]]:
    """The history records (of one job), oldest first; unreadable lines are skipped with a warning."""
    path = history_path(folder)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            log.warning("%s:%d is not a JSON line; skipped", path, number)
            continue
        if isinstance(record, dict) and (job is None or record.get("job") == job):
            records.append(record)
    return records


def last_recorded(folder: str | os.PathLike, job: int, key: str) -> Any:
    """The latest non-null ``key`` of the job's ``resubmit`` records, or None."""
    for record in reversed(read_history(folder, job)):
        if record.get("action") == "resubmit" and record.get(key) is not None:
            return record[key]
    return None


# --------------------------------------------------------------------------- memory


def bumped_memory(current_mb: int, factor: float = DEFAULT_MEMORY_FACTOR,
                  ceiling_mb: int = DEFAULT_MEMORY_CEILING_MB) -> int | None:
    """``ceil(current * factor)`` capped at ``ceiling``; None when ``current`` is already at the ceiling."""
    if factor <= 1:
        raise ValueError(f"memory factor must be > 1, got {factor}")
    if current_mb >= ceiling_mb:
        return None
    return min(int(math.ceil(current_mb * factor)), int(ceiling_mb))


def request_memory_of(sub_text: str) -> int | None:
    """``request_memory`` of a submit description in MB (a number, or a size such as ``2GB``); None if absent/an expression."""
    value = get_command(sub_text, "request_memory")
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+", value):
        return int(value)
    try:
        return size_in_mb(value, "request_memory")
    except PocketCoffeaError:
        return None


def is_memory_hold(code: int | None, subcode: int | None, reason: str | None) -> bool:
    """A hold for exceeding memory: code 34, or a policy hold (3, 26) with subcode 34 or a reason naming memory."""
    if code == MEMORY_HOLD_CODE:
        return True
    if code in POLICY_HOLD_CODES:
        return subcode == MEMORY_HOLD_CODE or "memory" in (reason or "").lower()
    return False


_EVENT_HEAD = re.compile(r"^(\d{3}) \(\d+\.\d+\.\d+\)")


def memory_removal_in_log(log_path: str | os.PathLike) -> str | None:
    """The reason when the job's latest submission (in its HTCondor user log) was held or aborted for memory."""
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    events = [block.strip() for block in text.split("\n...") if block.strip()]
    last_submit = max((n for n, e in enumerate(events) if e.startswith("000 ")), default=-1)
    for event in reversed(events[last_submit + 1:]):
        head = _EVENT_HEAD.match(event)
        if head and head.group(1) in ("009", "012") and "memory" in event.lower() and REMOVE_REASON not in event:
            return " ".join(line.strip() for line in event.splitlines()[1:3])[:200] or "memory"
    return None


# --------------------------------------------------------------------------- schedd


@dataclass(frozen=True)
class QueuedCopy:
    """One copy of a job still in the schedd's queue."""

    job: int
    cluster: int
    proc: int
    status: int
    hold_code: int | None = None
    hold_subcode: int | None = None
    hold_reason: str = ""
    request_memory: int | None = None
    memory_usage: int | None = None
    completions: int = 0
    max_retries: int | None = None
    exit_code: int | None = None

    @property
    def job_id(self) -> str:
        return f"{self.cluster}.{self.proc}"

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"status {self.status}")

    @property
    def memory_held(self) -> bool:
        return self.status == 5 and is_memory_hold(self.hold_code, self.hold_subcode, self.hold_reason)

    @property
    def blocking(self) -> bool:
        """Still alive for HTCondor (idle, running, held, retrying...): no second copy may be submitted."""
        return self.status not in LEAVING_STATUSES

    def describe(self) -> str:
        detail = self.status_name
        if self.status == 5:
            detail += f": {self.hold_reason or 'no reason'} (code {self.hold_code}"
            detail += f"/{self.hold_subcode})" if self.hold_subcode else ")"
        elif self.status == 1 and self.completions:
            detail += (f", retried by HTCondor after exit code {self.exit_code} "
                       f"({self.completions} of max_retries {self.max_retries})")
        return f"{self.job_id}, {detail}"


def _int(ad: Any, key: str) -> int | None:
    try:
        value = ad.eval(key) if hasattr(ad, "eval") else ad.get(key)
    except Exception:  # noqa: BLE001 - an undefined or broken attribute is just "unknown"
        value = ad.get(key) if hasattr(ad, "get") else None
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _job_of(ad: Any, logs_prefix: str) -> int | None:
    index = _int(ad, JOB_ATTR)
    if index is not None:
        return index
    match = re.fullmatch(re.escape(logs_prefix) + r"job_(?:\d+\.)?(\d+)\.log", str(ad.get("UserLog", "")))
    return int(match.group(1)) if match else None


def classad_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def copies_constraint(folder: str | os.PathLike) -> str:
    """Every job of the folder: tagged with ``PocketCoffeaJobsDir``, or (older folders) logging under its ``logs/``."""
    folder = str(Path(folder).absolute())
    prefix = f"{folder}/logs/"
    return (f"({JOBS_DIR_ATTR} =?= {classad_string(folder)}) || "
            f"(substr(UserLog, 0, {len(prefix)}) =?= {classad_string(prefix)})")


def query_copies(folder: str | os.PathLike, schedd: Any = None) -> dict[int, list[QueuedCopy]]:
    """``{job index: [copies in the queue]}`` for every job of the folder: one ``Schedd.query``."""
    folder = Path(folder).absolute()
    try:
        if schedd is None:
            import htcondor2

            schedd = htcondor2.Schedd()
        ads = schedd.query(constraint=copies_constraint(folder), projection=PROJECTION)
    except Exception as exc:  # noqa: BLE001 - the bindings raise several types
        config = os.environ.get("CONDOR_CONFIG", "not set")
        raise RecoveryError(
            f"cannot ask the HTCondor schedd (CONDOR_CONFIG={config}) which jobs of {folder} are still queued: "
            f"{type(exc).__name__}: {exc}. Nothing was resubmitted (a second copy of a running job could "
            "otherwise start); check that HTCondor answers (condor_q) and try again"
        ) from None
    copies: dict[int, list[QueuedCopy]] = {}
    prefix = f"{folder}/logs/"
    for ad in ads:
        index = _job_of(ad, prefix)
        if index is None:
            continue
        copies.setdefault(index, []).append(QueuedCopy(
            job=index, cluster=_int(ad, "ClusterId") or 0, proc=_int(ad, "ProcId") or 0,
            status=_int(ad, "JobStatus") or 0, hold_code=_int(ad, "HoldReasonCode"),
            hold_subcode=_int(ad, "HoldReasonSubCode"), hold_reason=str(ad.get("HoldReason", "") or ""),
            request_memory=_int(ad, "RequestMemory"), memory_usage=_int(ad, "MemoryUsage"),
            completions=_int(ad, "NumJobCompletions") or 0, max_retries=_int(ad, "JobMaxRetries"),
            exit_code=_int(ad, "ExitCode"),
        ))
    for found in copies.values():
        found.sort(key=lambda c: (c.cluster, c.proc))
    return copies


def remove_copies(copies: Iterable[QueuedCopy], schedd: Any = None, reason: str = REMOVE_REASON) -> None:
    """``condor_rm`` the given copies (by cluster.proc), checking the schedd's answer."""
    ids = [c.job_id for c in copies]
    if not ids:
        return
    import htcondor2

    schedd = schedd if schedd is not None else htcondor2.Schedd()
    try:
        result = schedd.act(htcondor2.JobAction.Remove, ids, reason=reason)
    except Exception as exc:  # noqa: BLE001
        raise RecoveryError(f"HTCondor refused to remove job(s) {', '.join(ids)}: {type(exc).__name__}: {exc}") from None
    failed = _int(result, "TotalError") if result is not None else None
    if failed:
        raise RecoveryError(f"HTCondor could not remove job(s) {', '.join(ids)} ({failed} failed); check condor_q")


# --------------------------------------------------------------------------- submit-file helpers


def tag_job(sub_text: str, folder: str | os.PathLike, index: int) -> str:
    """``job_{i}.sub`` with the identity attributes the copy query looks for (idempotent)."""
    text = set_command(sub_text, f"+{JOBS_DIR_ATTR}", quote_value(str(Path(folder).absolute())))
    return set_command(text, f"+{JOB_ATTR}", str(int(index)))


def write_world_readable(path: Path, text: str) -> None:
    from pc_core.atomic import atomic_write_text

    atomic_write_text(path, text)
    make_world_readable(path)


def _default_submitter(path: Path) -> int:
    return submit_file(path, 1).cluster


# --------------------------------------------------------------------------- job inputs (replicas)


ReplicaFinder = Callable[[Sequence[str]], Mapping[str, str]]
"""``urls -> {url: replacement}`` for the files to move (a missing key or the same URL: no other replica)."""


@dataclass
class InputMoves:
    """A job's inputs after :func:`move_job_inputs`: nothing is written until ``save``/``payload``."""

    config: Any  # the job's data (or, legacy folders, its Configurator) as read
    fileset: dict[str, Any]  # the fileset after the moves (a copy)
    changes: dict[str, str] = field(default_factory=dict)  # old URL -> new URL
    moved: int = 0  # file entries rewritten (a URL listed twice counts twice)
    kept: list[str] = field(default_factory=list)  # to move, but the finder had no other replica

    def new_config(self, path: str | os.PathLike = "<config>") -> Any:
        return with_fileset(self.config, self.fileset, path)

    def payload(self, path: str | os.PathLike = "<config>") -> bytes:
        """The bytes of the rewritten ``config_job_{i}.pkl`` (plain data with ``pickle``; legacy with cloudpickle)."""
        new = self.new_config(path)
        if is_job_data(new):
            return dump_job_data(new)
        import cloudpickle

        return cloudpickle.dumps(new)

    def save(self, path: str | os.PathLike) -> None:
        """Rewrite ``path`` (atomically, 0644) when a file moved."""
        if self.changes:
            save_job_config(self.new_config(path), path)


def move_job_inputs(config_path: str | os.PathLike, should_move: Callable[[str], bool], find: ReplicaFinder, *,
                    config: Any = None, fileset: Mapping[str, Any] | None = None) -> InputMoves:
    """The replica rewrite of recovery (``check-jobs --resubmit`` and ``run --recreate-jobs``).

    Reads the job's data file ``config_path`` (never the Configurator of plain-data folders),
    asks ``find`` once for the files ``should_move`` picks (each URL once, in file order) and
    replaces them in every dataset of the job, keeping file order and metadata. ``config``: the
    job's data already read from ``config_path``; ``fileset``: start from this fileset instead of
    the file's (a caller that already moved some files).
    Writes nothing: ``InputMoves.save``/``payload``.
    """
    config = load_job_config(config_path) if config is None else config
    current = job_fileset(config, config_path) if fileset is None else copy.deepcopy(dict(fileset))
    moves = InputMoves(config, current)
    urls = list(dict.fromkeys(u for entry in current.values() for u in entry.get("files", [])))
    to_move = [u for u in urls if should_move(u)]
    if not to_move:
        return moves
    replacements = find(to_move)
    for entry in current.values():
        files = list(entry.get("files", []))
        for i, url in enumerate(files):
            new = replacements.get(url, url)
            if new != url:
                files[i] = new
                moves.changes[url] = new
                moves.moved += 1
        entry["files"] = files
    moves.kept = [u for u in to_move if u not in moves.changes]
    return moves


# --------------------------------------------------------------------------- the pass


@dataclass
class Outcome:
    """What ``RecoveryPass.resubmit`` did with one job."""

    job: int
    cluster: int | None = None
    skipped: str = ""  # why nothing was submitted
    request_memory: int | None = None
    removed: list[str] = field(default_factory=list)

    @property
    def submitted(self) -> bool:
        return self.cluster is not None


class RecoveryPass:
    """A locked recovery of one jobs folder, with one schedd query for all its jobs.

    ``with RecoveryPass(folder, "check-jobs --resubmit") as rpass:`` then, per job,
    ``rpass.blocking(i)`` (the copies that forbid a resubmission) and ``rpass.resubmit(i, reason)``.
    """

    def __init__(self, folder: str | os.PathLike, command: str, *, memory_factor: float = DEFAULT_MEMORY_FACTOR,
                 memory_ceiling: int = DEFAULT_MEMORY_CEILING_MB, submitter: Submitter | None = None,
                 schedd: Any = None, query: bool = True) -> None:
        if memory_factor <= 1:
            raise RecoveryError(f"--memory-factor must be greater than 1, got {memory_factor}")
        self.folder = Path(folder).absolute()
        self.command = command
        self.memory_factor = memory_factor
        self.memory_ceiling = int(memory_ceiling)
        self.submitter = submitter or _default_submitter
        self.schedd = schedd
        self._query = query
        self._copies: dict[int, list[QueuedCopy]] | None = None
        self._lock: Any = None

    def __enter__(self) -> RecoveryPass:
        self._lock = recovery_lock(self.folder, self.command)
        self._lock.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(*exc)

    # -- the schedd's view (asked once, on first need)
    @property
    def copies(self) -> dict[int, list[QueuedCopy]]:
        if self._copies is None:
            self._copies = query_copies(self.folder, self.schedd) if self._query else {}
        return self._copies

    def assume_no_copies(self) -> None:
        """Proceed as if the schedd held no copy (dry-runs when the schedd cannot be asked)."""
        self._copies = {}

    def blocking(self, index: int) -> list[QueuedCopy]:
        """Copies of job ``index`` that forbid a resubmission (alive and not held for memory)."""
        alive = [c for c in self.copies.get(index, []) if c.blocking]
        if alive and all(c.memory_held for c in alive):
            return []
        return alive

    def memory_held(self, index: int) -> list[QueuedCopy]:
        return [c for c in self.copies.get(index, []) if c.blocking and c.memory_held]

    def memory_held_jobs(self) -> list[int]:
        return sorted(i for i in self.copies if self.memory_held(i) and not self.blocking(i))

    def still_queued_message(self, index: int) -> str | None:
        """``job_i still queued/running/held in HTCondor (cluster.proc, status)``, or None when it may be resubmitted."""
        blocking = self.blocking(index)
        if not blocking:
            return None
        return (f"job_{index} is still queued/running/held in HTCondor ({'; '.join(c.describe() for c in blocking)}): "
                "not resubmitted (condor_rm it first to replace it)")

    # -- memory
    def memory_reason(self, index: int) -> str | None:
        """Why the job needs more memory: a held copy, or its latest attempt held/removed for memory (user log)."""
        held = self.memory_held(index)
        if held:
            c = held[-1]
            usage = f", MemoryUsage {c.memory_usage} MB" if c.memory_usage is not None else ""
            return f"held for memory ({c.job_id}: {c.hold_reason or 'code ' + str(c.hold_code)}{usage})"
        in_log = memory_removal_in_log(self.folder / "logs" / f"job_{index}.log")
        return f"held/removed for memory ({in_log})" if in_log else None

    def planned_memory(self, index: int, sub_text: str) -> tuple[int | None, str | None]:
        """(new request_memory, None) for a job needing more memory; (None, why not) at the ceiling; (None, None) otherwise."""
        if self.memory_reason(index) is None:
            return None, None
        current = max([m for m in [request_memory_of(sub_text), *(c.request_memory for c in self.memory_held(index))]
                       if m is not None], default=DEFAULT_REQUEST_MEMORY_MB)
        new = bumped_memory(current, self.memory_factor, self.memory_ceiling)
        if new is None:
            return None, (f"job_{index} needs more memory but request_memory {current} MB is already at the ceiling "
                          f"({self.memory_ceiling} MB): left as it is; raise --memory-ceiling or reduce the job's "
                          "memory use (smaller chunksize, fewer files per job)")
        return new, None

    # -- resubmission
    def resubmit(self, index: int, reason: str = "") -> Outcome:
        """Submit ``job_{index}.sub`` unless a copy is still queued; memory-held copies are removed first and
        ``request_memory`` raised. Records the resubmission (and removals) in the history."""
        outcome = Outcome(index)
        message = self.still_queued_message(index)
        if message:
            outcome.skipped = message
            return outcome
        sub_path = self.folder / f"job_{index}.sub"
        text = sub_path.read_text(encoding="utf-8")
        new_memory, at_ceiling = self.planned_memory(index, text)
        if at_ceiling:
            outcome.skipped = at_ceiling
            return outcome
        memory_reason = self.memory_reason(index) if new_memory is not None else None
        tagged = tag_job(text, self.folder, index)
        if new_memory is not None:
            tagged = set_command(tagged, "request_memory", str(new_memory))
        if tagged != text:
            write_world_readable(sub_path, tagged)
        held = self.memory_held(index)
        if held:
            remove_copies(held, self.schedd)
            outcome.removed = [c.job_id for c in held]
            for c in held:
                append_history(self.folder, job=index, action="remove", cluster=c.cluster, command=self.command,
                               reason=f"held for memory: {c.hold_reason}", request_memory=c.request_memory)
        reasons = [r for r in (reason, memory_reason and f"{memory_reason}: request_memory -> {new_memory} MB") if r]
        outcome.cluster = int(self.submitter(sub_path))
        outcome.request_memory = request_memory_of(tagged)
        append_history(self.folder, job=index, action="resubmit", cluster=outcome.cluster, reason="; ".join(reasons),
                       request_memory=outcome.request_memory, queue=job_flavour(tagged), command=self.command)
        # this pass's view: the new copy is queued
        self.copies.setdefault(index, [])
        self.copies[index] = [c for c in self.copies[index] if c.job_id not in outcome.removed]
        self.copies[index].append(QueuedCopy(index, outcome.cluster, 0, 1, request_memory=outcome.request_memory))
        return outcome


def command_line() -> str:
    """The running command, for the lock holder text (``check-jobs -j out/job --resubmit``)."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "python"


__all__ = [
    "PROCESSED_LOGS",
    "archive_logs",
    "DEFAULT_MEMORY_CEILING_MB",
    "DEFAULT_MEMORY_FACTOR",
    "HISTORY_NAME",
    "InputMoves",
    "LOCK_NAME",
    "Outcome",
    "QueuedCopy",
    "RecoveryError",
    "RecoveryLockError",
    "RecoveryPass",
    "SubmissionError",
    "append_history",
    "bumped_memory",
    "copies_constraint",
    "is_memory_hold",
    "make_world_readable",
    "memory_removal_in_log",
    "move_job_inputs",
    "query_copies",
    "read_history",
    "recovery_lock",
    "remove_copies",
    "request_memory_of",
    "tag_job",
]
