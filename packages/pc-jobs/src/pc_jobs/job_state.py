"""The state of every manual job, from HTCondor itself: the schedd, the job event logs, then the flags.

The flag files ``job_{i}.{idle,running,done,failed}`` are written by the job's wrapper, so
they cannot know what HTCondor did to the job: a held job keeps ``.running`` (or ``.idle``
when it never started), a job killed by a signal or removed from the queue keeps its flag
forever. HTCondor records everything in two places, which this module reads:

- the **job event log** of each job, ``logs/job_{i}.log`` (``log =`` of ``job_{i}.sub`` and
  ``jobs_all.sub``; ``job_<cluster>.{i}.log`` is understood too). Every submission of the
  job appends to it, so its latest submit event names the job's current HTCondor id
  (``cluster.proc``) and what followed tells what became of it: executing, evicted (and
  why), held (HoldReason, HoldReasonCode, HoldReasonSubCode), released, aborted/removed,
  terminated with a return value or by a signal, shadow exceptions, failed reconnects. The
  logs are read with ``htcondor2.JobEventLog`` *incrementally*: a reader's offset is kept
  between polls (pickled, the bindings' way to resume) and a log that did not change is not
  opened at all.
- the **schedd**, asked once per poll (``Schedd.query``) for the clusters whose latest
  event-log state is still live (idle, running, evicted, held): its ``JobStatus`` is the
  truth for queued jobs, and a job it no longer has whose log never recorded an end is
  *lost*. When every job has ended in its log, the schedd is not asked at all.

The flags then only say what HTCondor cannot: whether a job that exited 0 really produced
its output (``.done``), and what a job never submitted (no log) is waiting for.

States (``STATES``): ``idle``, ``running``, ``evicted`` (HTCondor put it back in the queue
and will restart it; restarts are counted with the last reason), ``held`` (with HoldReason
and codes), ``done`` (exit 0 and flagged done), ``failed`` (exit code N, or flagged failed),
``killed`` (terminated by signal N), ``removed`` (aborted: ``condor_rm``, a periodic remove),
``lost`` (the schedd no longer has it, its log has no end and its flag says idle/running).
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .job_flags import JobsSnapshot, scan_jobs
from .job_logs import parse_log_name

log = logging.getLogger(__name__)

STATES: tuple[str, ...] = ("idle", "running", "evicted", "held", "done", "failed", "killed", "removed", "lost")
ACTIVE: frozenset[str] = frozenset({"idle", "running", "evicted"})
"""HTCondor still works on these: a watch goes on while any job is in one of them."""
ENDED_BADLY: frozenset[str] = frozenset({"failed", "killed", "removed", "lost"})
"""Out of the queue without a result: candidates for resubmission."""
_LIVE = frozenset({"idle", "running", "evicted", "held"})  # event-log states the schedd should still have

HOLD_CODES: dict[int, str] = {
    0: "Unspecified", 1: "UserRequest", 3: "JobPolicy", 4: "CorruptedCredential", 5: "JobPolicyUndefined",
    6: "FailedToCreateProcess", 7: "UnableToOpenOutput", 8: "UnableToOpenInput", 9: "UnableToOpenOutputStream",
    10: "UnableToOpenInputStream", 11: "InvalidTransferAck", 12: "TransferOutputError", 13: "TransferInputError",
    14: "IwdError", 15: "SubmittedOnHold", 16: "SpoolingInput", 17: "JobShadowMismatch",
    18: "InvalidTransferGoAhead", 19: "HookPrepareJobFailure", 21: "StartdHeldJob", 22: "UnableToInitUserLog",
    24: "NoCompatibleShadow", 25: "InvalidCronSettings", 26: "SystemPolicy", 27: "SystemPolicyUndefined",
    34: "JobOutOfResources", 35: "InvalidDockerImage", 36: "FailedToCheckpoint", 43: "PreScriptFailed",
    44: "PostScriptFailed", 45: "SingularityTestFailed", 46: "JobDurationExceeded", 47: "JobExecuteExceeded",
}
"""HTCondor's HoldReasonCode values (condor_utils' CONDOR_HOLD_CODE)."""

_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "HoldReason", "HoldReasonCode", "HoldReasonSubCode",
               "EnteredCurrentStatus", "ExitCode", "ExitBySignal", "ExitSignal", "NumJobStarts", "UserLog",
               "RemoveReason", "MemoryUsage", "RequestMemory"]
# JobStatus values
_IDLE, _RUNNING, _REMOVED, _COMPLETED, _HELD, _TRANSFERRING_OUTPUT, _SUSPENDED = 1, 2, 3, 4, 5, 6, 7
_MEMORY = re.compile(r"memory|MemoryUsage|\bOOM\b|out of memory", re.I)
_TRANSFER_DETAIL = re.compile(
    r"(?P<op>reading from|writing to|opening|read from|write to|open) (?:file|directory) (?P<file>\S+?):\s+"
    r"(?:\(errno (?P<errno>\d+)\))?\s*(?P<msg>[^;|\n]*)", re.I)

SchedQuery = Callable[[str, list[str]], Iterable[Mapping[str, Any]]]
"""``(constraint, projection) -> job ads``: ``htcondor2.Schedd().query`` in production, a fake in tests."""


def schedd_query(constraint: str, projection: list[str]) -> list[Mapping[str, Any]]:
    """Ask the schedd ``CONDOR_CONFIG`` names (one ``Schedd.query``)."""
    import htcondor2

    return list(htcondor2.Schedd().query(constraint=constraint, projection=projection))


# --------------------------------------------------------------------------- the value object


@dataclass(frozen=True)
class JobState:
    """What HTCondor (and the job's flag) say about job ``index`` right now."""

    index: int
    state: str
    cluster: int | None = None
    proc: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    hold_reason: str | None = None
    hold_code: int | None = None
    restarts: int = 0
    last_event: str | None = None
    detail: str = ""
    hold_subcode: int | None = None
    remove_reason: str | None = None
    restart_reason: str | None = None
    memory_mb: int | None = None
    flag: str | None = None

    @property
    def job_id(self) -> str | None:
        """HTCondor's ``cluster.proc`` of the job's latest submission (None: never submitted)."""
        return None if self.cluster is None else f"{self.cluster}.{self.proc}"

    @property
    def hold_kind(self) -> str | None:
        """``memory``, ``transfer-input``, ``transfer-output``, ``user``, ``policy`` or ``other``
        for a job held now, or removed after (or for) a hold; None otherwise."""
        if self.hold_code is None and not (self.state == "removed" and self.remove_reason
                                           and _MEMORY.search(self.remove_reason)):
            return None
        return hold_kind(self.hold_code, self.hold_subcode, self.hold_reason or self.remove_reason or "")

    @property
    def exceeded_memory(self) -> bool:
        """Held or removed for using more memory than requested (resubmit with more request_memory)."""
        return self.hold_kind == "memory"

    @property
    def outcome(self) -> str:
        """``exit 3``, ``signal 9``, ``held (code 1 UserRequest)``, ... for tables ('' when nothing to say)."""
        if self.signal is not None:
            return f"signal {self.signal}"
        if self.state == "held" and self.hold_code is not None:
            return f"held, code {self.hold_code} {HOLD_CODES.get(self.hold_code, '')}".rstrip()
        if self.exit_code is not None:
            return f"exit {self.exit_code}"
        return ""

    def advice(self) -> str:
        """What the user can do about the job in this state ('' when nothing is needed)."""
        return advice(self)


def hold_kind(code: int | None, subcode: int | None, reason: str) -> str:
    if code == 34 or subcode == 34 or (code in (3, 26, None) and _MEMORY.search(reason or "")):
        return "memory"
    if code == 13 or (code in (6, 8, 10) and "input" in (reason or "").lower()):
        return "transfer-input"
    if code in (12, 7, 9):
        return "transfer-output"
    if code == 1:
        return "user"
    if code in (3, 5, 26, 27, 46, 47):
        return "policy"
    return "other"


def transfer_problem(reason: str) -> str | None:
    """``<file>: Permission denied (errno 13)`` from a transfer HoldReason; None when it names no file."""
    match = _TRANSFER_DETAIL.search(reason or "")
    if match is None:
        return None
    message = match.group("msg").strip().rstrip(".") or None
    number = match.group("errno")
    if number and not message:
        message = os.strerror(int(number))
    text = match.group("file")
    if message:
        text += f": {message}"
    if number:
        text += f" (errno {number})"
    return text


def advice(job: JobState) -> str:
    ident = job.job_id or "<cluster.proc>"
    if job.state == "held":
        kind = job.hold_kind
        if kind == "memory":
            used = f" (it used {job.memory_mb} MB)" if job.memory_mb else ""
            return (f"the job needs more memory than its request_memory{used}: raise mem-per-worker "
                    f"(request_memory in job_{job.index}.sub) and resubmit (check-jobs --resubmit raises it), "
                    f"or condor_qedit {ident} RequestMemory <MB> then condor_release {ident}")
        if kind in ("transfer-input", "transfer-output"):
            problem = transfer_problem(job.hold_reason or "")
            what = "send an input file to" if kind == "transfer-input" else "write an output file of"
            fix = ("make it readable by the user HTCondor transfers as (chmod 644, and the folders above "
                   "a+x) or fix its path" if kind == "transfer-input" else
                   "make that folder writable by the job's user (e.g. chmod 777 the jobs/output folder) "
                   "or free space there")
            named = f" {problem};" if problem else ""
            return f"HTCondor could not {what} the job:{named} {fix}, then condor_release {ident}"
        if kind == "user":
            return f"held on request (condor_hold): condor_release {ident} to let it run, or condor_rm {ident}"
        if kind == "policy":
            return (f"held by a periodic_hold/SYSTEM_PERIODIC_HOLD policy: fix what the reason names, then "
                    f"condor_release {ident} (or condor_rm {ident} and resubmit)")
        return f"fix what the hold reason names, then condor_release {ident} (or condor_rm {ident} and resubmit)"
    if job.state == "killed":
        hint = " (SIGKILL: the out-of-memory killer, an admin or a kill -9)" if job.signal == 9 else ""
        return f"killed by signal {job.signal}{hint}: resubmit it (check-jobs --resubmit)"
    if job.state == "lost":
        return ("HTCondor no longer has the job and it never finished: resubmit it (check-jobs --resubmit, or "
                "pocket-coffea run --recreate-jobs)")
    if job.state == "removed":
        if job.exceeded_memory:
            return "removed for exceeding its memory: raise mem-per-worker and resubmit (check-jobs --resubmit)"
        if job.remove_reason and "SYSTEM_PERIODIC_REMOVE" in job.remove_reason:
            return "removed at the queue's time limit: check-jobs --resubmit moves it to a longer +JobFlavour"
        return "removed from the queue: resubmit it (check-jobs --resubmit) if that was not intended"
    if job.state == "failed":
        code = f" with exit code {job.exit_code}" if job.exit_code is not None else ""
        return (f"the job failed{code}: read its error line (check-jobs -d) and logs/job_{job.index}.err|out, "
                "fix the cause, resubmit (check-jobs --resubmit)")
    if job.state == "evicted":
        return ("HTCondor will run it again; if evictions repeat, fix the reason they name (e.g. a missing "
                "credential or an unreachable execute node)")
    return ""


# --------------------------------------------------------------------------- event logs


@dataclass
class Attempt:
    """One submission (``cluster.proc``) of a job, as its event log tells it."""

    cluster: int
    proc: int
    submitted: float = 0.0
    state: str = "idle"
    exit_code: int | None = None
    signal: int | None = None
    hold_reason: str | None = None
    hold_code: int | None = None
    hold_subcode: int | None = None
    remove_reason: str | None = None
    restarts: int = 0
    restart_reason: str | None = None
    last_error: str | None = None
    last_event: str | None = None
    last_time: float = 0.0
    memory_mb: int | None = None
    _evicted_just_now: bool = False  # an eviction may still turn out to be part of a hold/removal
    _counted: bool = False  # a restart counted ahead of its eviction event

    @property
    def ended(self) -> bool:
        return self.state not in _LIVE


def _event_time(event: Any) -> str:
    """The event's own time as HTCondor wrote it (local time of the submit node)."""
    return str(event.get("EventTime", "?")).replace("T", " ")


def _apply(attempt: Attempt, event: Any) -> None:
    """Advance ``attempt`` by one ``htcondor2.JobEvent``."""
    number = int(event.get("EventTypeNumber", -1))
    what: str | None = None
    if number == 0:  # submit
        attempt.submitted = _timestamp(event)
        what = "submitted"
    elif number == 1:  # execute
        attempt.state, attempt._evicted_just_now, attempt._counted = "running", False, False
        what = f"executing on {event.get('SlotName') or event.get('ExecuteHost', '?')}"
    elif number == 4:  # evicted (or terminated and requeued: max_retries, on_exit_remove)
        if event.get("TerminatedAndRequeued"):
            if event.get("TerminatedNormally"):
                reason = f"exited with code {event.get('ReturnValue')} and was requeued by HTCondor"
            else:
                reason = f"killed by signal {event.get('TerminatedBySignal')} and requeued by HTCondor"
        else:
            reason = event.get("Reason") or attempt.last_error
        if attempt._counted:  # the shadow exception / failed reconnect before it counted this restart
            attempt._counted = False
        else:
            attempt.restarts += 1
        attempt.state, attempt._evicted_just_now = "evicted", True
        attempt.restart_reason = str(reason) if reason else "evicted without a reason"
        what = f"evicted: {reason}" if reason else "evicted"
    elif number in (7, 24):  # shadow exception, reconnect failed: HTCondor requeues the job
        reason = event.get("Message") or event.get("Reason") or ("shadow exception" if number == 7 else
                                                                  "reconnect to the execute node failed")
        attempt.restarts += 1
        attempt._counted = True
        attempt.state, attempt._evicted_just_now = "evicted", True
        attempt.restart_reason = str(reason)
        what = ("shadow exception: " if number == 7 else "job reconnect failed: ") + str(reason)
    elif number == 22:  # disconnected: a new episode (reconnect or requeue) starts
        attempt._evicted_just_now = False
        what = f"disconnected: {event.get('DisconnectReason') or ''}".rstrip(": ")
    elif number == 21:  # remote error: the reason the next eviction/hold will name
        attempt.last_error = str(event.get("ErrorMsg") or "")
        what = f"error from the {event.get('Daemon', 'starter')}: {attempt.last_error}"
    elif number == 12:  # held
        if attempt._evicted_just_now:  # the eviction was part of the hold, not a restart
            attempt.restarts = max(0, attempt.restarts - 1)
            attempt._evicted_just_now = False
        attempt.state = "held"
        attempt.hold_reason = str(event.get("HoldReason") or "Reason unspecified")
        attempt.hold_code = _int(event.get("HoldReasonCode"))
        attempt.hold_subcode = _int(event.get("HoldReasonSubCode"))
        what = f"held: {attempt.hold_reason} (code {attempt.hold_code}, subcode {attempt.hold_subcode})"
    elif number == 13:  # released
        attempt.state, attempt._evicted_just_now = "idle", False
        attempt.hold_reason = attempt.hold_code = attempt.hold_subcode = None
        what = f"released: {event.get('Reason') or ''}".rstrip(": ")
    elif number == 9:  # aborted (condor_rm, periodic remove)
        if attempt._evicted_just_now:
            attempt.restarts = max(0, attempt.restarts - 1)
        attempt.state, attempt._evicted_just_now = "removed", False
        attempt.remove_reason = str(event.get("Reason")) if event.get("Reason") else None
        what = f"removed: {attempt.remove_reason}" if attempt.remove_reason else "removed"
    elif number == 5:  # terminated
        attempt._evicted_just_now = False
        if event.get("TerminatedNormally"):
            attempt.exit_code = _int(event.get("ReturnValue"))
            attempt.state = "done" if attempt.exit_code == 0 else "failed"
            what = f"terminated normally with exit code {attempt.exit_code}"
        else:
            attempt.signal = _int(event.get("TerminatedBySignal"))
            attempt.state = "killed"
            what = f"terminated by signal {attempt.signal}"
    elif number == 6:  # image size: remember the peak memory, not an event worth reporting
        usage = _int(event.get("MemoryUsage"))
        if usage is not None:
            attempt.memory_mb = max(attempt.memory_mb or 0, usage)
        return
    elif number == 40:  # file transfer steps
        return
    else:
        what = str(event.get("MyType") or f"event {number}")
    attempt.last_event = f"{_event_time(event)} {what}"
    attempt.last_time = attempt.submitted if number == 0 else (_timestamp(event) or attempt.last_time)


def _timestamp(event: Any) -> float:
    try:
        return float(event.timestamp or 0)
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


_FAST_EVENTS = frozenset({0, 1, 5, 6, 40})
"""Events the text reader understands (submit, execute, terminated, image size, transfer); any other
event in a log (held, evicted, aborted, ...) makes that log be read with ``htcondor2.JobEventLog``."""
_HEADER = re.compile(r"(\d{3}) \((\d+)\.(\d+)\.(\d+)\) (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) (.*)")
_NORMAL = re.compile(r"\s*\(1\) Normal termination \(return value (-?\d+)\)")
_SIGNAL = re.compile(r"\s*\(0\) Abnormal termination \(signal (\d+)\)")
_MEMORY_USAGE = re.compile(r"\s*(\d+)\s+-\s+MemoryUsage of job \(MB\)")
_SEPARATOR = "...\n"


class _TextEvent(dict):
    """The attributes of one event that ``_apply`` reads, parsed from the log's text (the common
    events of a job that ran undisturbed): the same values ``htcondor2.JobEvent`` gives."""

    cluster: int
    proc: int
    timestamp: float


def _text_events(text: str) -> list[_TextEvent] | None:
    """The events of complete event texts (``...``-separated); None when one is not a simple event."""
    import datetime

    events = []
    for chunk in text.split(_SEPARATOR):
        if not chunk:
            continue
        lines = chunk.split("\n")
        match = _HEADER.fullmatch(lines[0])
        if match is None:
            return None
        number = int(match.group(1))
        if number not in _FAST_EVENTS:
            return None
        stamp = f"{match.group(5)}T{match.group(6)}"
        event = _TextEvent(EventTypeNumber=number, EventTime=stamp)
        event.cluster, event.proc = int(match.group(2)), int(match.group(3))
        event.timestamp = datetime.datetime.fromisoformat(stamp).timestamp()
        rest = match.group(7)
        if number == 1:
            event["ExecuteHost"] = rest.removeprefix("Job executing on host: ")
            for line in lines[1:]:
                if line.startswith("\tSlotName: "):
                    event["SlotName"] = line[len("\tSlotName: "):].strip()
        elif number == 5:
            normal = _NORMAL.match(lines[1]) if len(lines) > 1 else None
            killed = _SIGNAL.match(lines[1]) if len(lines) > 1 else None
            if normal:
                event.update(TerminatedNormally=True, ReturnValue=int(normal.group(1)))
            elif killed:
                event.update(TerminatedNormally=False, TerminatedBySignal=int(killed.group(1)))
            else:
                return None
        elif number == 6:
            for line in lines[1:]:
                usage = _MEMORY_USAGE.match(line)
                if usage:
                    event["MemoryUsage"] = int(usage.group(1))
        events.append(event)
    return events


@dataclass
class _LogCursor:
    """A job event log read so far: where the reader stopped, and every attempt it described.

    A log holding only the events of undisturbed jobs (submit, execute, image size, transfer,
    terminated) is parsed from its text, from the byte offset reached at the last read (a
    10,000-job folder is read in a fraction of a second); the first other event (held,
    evicted, aborted, shadow exception, ...) switches that log, from its start, to
    ``htcondor2.JobEventLog``, which understands every event.
    """

    identity: tuple[int, int]  # (device, inode): a replaced file is read again from the start
    size: int = -1
    mtime_ns: int = -1
    reader: bytes | None = None  # a pickled htcondor2.JobEventLog (resumes at its offset)
    attempts: dict[tuple[int, int], Attempt] = field(default_factory=dict)
    offset: int = 0  # text reader: bytes of complete events read so far
    bindings: bool = False  # read with htcondor2 (an event the text reader does not handle)

    def _read_text(self, path: Path) -> bool:
        try:
            with path.open("rb") as stream:
                stream.seek(self.offset)
                data = stream.read()
        except OSError as exc:
            log.warning("cannot read the HTCondor event log %s: %s", path, exc)
            return True
        end = data.rfind(b"\n" + _SEPARATOR.encode())
        if data.startswith(_SEPARATOR.encode()) and end < 0:
            end = -1
        if end < 0 and not data.startswith(_SEPARATOR.encode()):
            return True  # no complete event yet
        complete = data[: end + 1 + len(_SEPARATOR)]
        events = _text_events(complete.decode("utf-8", errors="replace"))
        if events is None:
            return False
        for event in events:
            key = (event.cluster, event.proc)
            attempt = self.attempts.get(key)
            if attempt is None:
                attempt = self.attempts[key] = Attempt(*key)
            _apply(attempt, event)
        self.offset += len(complete)
        return True

    def read(self, path: Path) -> None:
        if not self.bindings:
            if self._read_text(path):
                return
            self.bindings, self.attempts, self.reader = True, {}, None  # again from the start, every event
        import htcondor2

        reader = None
        try:
            reader = pickle.loads(self.reader) if self.reader is not None else htcondor2.JobEventLog(str(path))
            for event in reader.events(stop_after=0):
                key = (int(event.cluster), int(event.proc))
                attempt = self.attempts.get(key)
                if attempt is None:
                    attempt = self.attempts[key] = Attempt(*key)
                _apply(attempt, event)
            self.reader = pickle.dumps(reader)
        except (htcondor2.HTCondorException, OSError, ValueError, RuntimeError, pickle.PickleError) as exc:
            log.warning("cannot read the HTCondor event log %s: %s", path, exc)
        finally:
            if reader is not None:
                reader.close()

    def latest(self) -> Attempt | None:
        if not self.attempts:
            return None
        return max(self.attempts.values(), key=lambda a: (a.submitted, a.cluster, a.proc))


# --------------------------------------------------------------------------- reconciliation


class JobStateReader:
    """Reconciles schedd, event logs and flags of one jobs folder; keep it between polls so each
    event log is read incrementally (``read()`` costs one listing of ``logs/``, one ``stat`` per
    log, the new events of changed logs, and at most one schedd query)."""

    def __init__(self, folder: str | os.PathLike, *, query: SchedQuery | None = schedd_query,
                 cluster_jobs: dict[int, int] | None = None) -> None:
        self.folder = Path(folder)
        self.logs_dir = self.folder / "logs"
        self.query = query
        self.cluster_jobs = cluster_jobs if cluster_jobs is not None else {}  # live: check-jobs adds to it
        self.schedd_error: str | None = None
        self.queries = 0
        self._cursors: dict[str, _LogCursor] = {}  # by the log's path
        self.log_names: list[str] | None = None
        """Every name in ``logs/`` at the last ``read()`` (its one listing; check-jobs finds the jobs'
        stdout/stderr in it instead of listing the folder again)."""

    # -- the event logs
    def _job_logs(self) -> dict[int, list[str]]:
        """Every job's event logs, from one listing of ``logs/`` (names only: no Path per file)."""
        logs: dict[int, list[str]] = {}
        try:
            names = self.log_names = os.listdir(self.logs_dir)
        except OSError:
            self.log_names = []
            return logs
        base = str(self.logs_dir)
        for name in names:
            if not name.endswith(".log"):
                continue
            parsed = parse_log_name(name)
            if parsed is None or parsed[2] != "log":
                continue
            cluster, index, _ = parsed
            if cluster is not None:
                index = self.cluster_jobs.get(cluster, index)
            logs.setdefault(index, []).append(os.path.join(base, name))
        return logs

    def _attempts(self, path: str) -> dict[tuple[int, int], Attempt]:
        try:
            stat = os.stat(path)
        except OSError:
            self._cursors.pop(path, None)
            return {}
        identity = (stat.st_dev, stat.st_ino)
        cursor = self._cursors.get(path)
        if cursor is None or cursor.identity != identity or stat.st_size < cursor.size:
            cursor = self._cursors[path] = _LogCursor(identity)
        if stat.st_size != cursor.size or stat.st_mtime_ns != cursor.mtime_ns:
            cursor.read(Path(path))
            cursor.size, cursor.mtime_ns = stat.st_size, stat.st_mtime_ns
        return cursor.attempts

    # -- the schedd
    def _ask_schedd(self, clusters: set[int]) -> dict[tuple[int, int], Mapping[str, Any]] | None:
        """Job ads of ``clusters`` by (cluster, proc); None when the schedd cannot be asked."""
        self.schedd_error = None
        if not clusters:
            return {}
        if self.query is None:
            self.schedd_error = "not asked"
            return None
        constraint = (f"ClusterId == {next(iter(clusters))}" if len(clusters) == 1 else
                      "member(ClusterId, {" + ", ".join(str(c) for c in sorted(clusters)) + "})")
        self.queries += 1
        try:
            ads = self.query(constraint, list(_PROJECTION))
            return {(int(ad["ClusterId"]), int(ad["ProcId"])): ad for ad in ads}
        except Exception as exc:  # noqa: BLE001 - the bindings raise several types when the schedd is away
            self.schedd_error = f"{type(exc).__name__}: {exc}"
            log.warning("cannot ask the HTCondor schedd (%s): job states come from the event logs only",
                        self.schedd_error)
            return None

    # -- all together
    def read(self, snapshot: JobsSnapshot | None = None) -> dict[int, JobState]:
        snapshot = snapshot if snapshot is not None else scan_jobs(self.folder)
        logs = self._job_logs()
        latest: dict[int, Attempt] = {}
        for index in snapshot.states:
            attempts = [a for path in logs.get(index, ()) for a in self._attempts(path).values()]
            if attempts:
                latest[index] = max(attempts, key=lambda a: (a.submitted, a.cluster, a.proc))
        ads = self._ask_schedd({a.cluster for a in latest.values() if not a.ended})
        return {index: decide(index, snapshot.states[index], snapshot.mtimes.get(index), latest.get(index),
                              ads, self.schedd_error)
                for index in snapshot.states}


def reconcile(jobs_dir: str | os.PathLike, *, query: SchedQuery | None = schedd_query) -> dict[int, JobState]:
    """Every job's state right now (one schedd query at most); keep a ``JobStateReader`` to poll."""
    return JobStateReader(jobs_dir, query=query).read()


def _from_attempt(index: int, state: str, attempt: Attempt, flag: str | None, detail: str = "",
                  **override: Any) -> JobState:
    values = dict(
        index=index, state=state, cluster=attempt.cluster, proc=attempt.proc, exit_code=attempt.exit_code,
        signal=attempt.signal, hold_reason=attempt.hold_reason, hold_code=attempt.hold_code,
        hold_subcode=attempt.hold_subcode, restarts=attempt.restarts, last_event=attempt.last_event,
        detail=detail, remove_reason=attempt.remove_reason, restart_reason=attempt.restart_reason,
        memory_mb=attempt.memory_mb, flag=flag)
    values.update(override)
    return JobState(**values)


def _restarts_detail(attempt: Attempt) -> str:
    if not attempt.restarts:
        return ""
    return f"restarted by HTCondor {attempt.restarts} time(s), last: {attempt.restart_reason}"


def decide(index: int, flag: str | None, flag_mtime: float | None, attempt: Attempt | None,
           ads: Mapping[tuple[int, int], Mapping[str, Any]] | None, schedd_error: str | None = None) -> JobState:
    """One job's state from its flag, its latest HTCondor attempt and the schedd's ads (None: unknown)."""
    if attempt is None:  # no event log: never submitted (dry-run), or the log is not there yet
        if flag in ("done", "failed"):
            return JobState(index, flag, flag=flag)
        return JobState(index, flag or "idle", flag=flag, detail="no HTCondor event log: not submitted yet")
    ad = ads.get((attempt.cluster, attempt.proc)) if ads is not None else None
    if ad is not None:
        status = _int(ad.get("JobStatus"))
        memory = _int(ad.get("MemoryUsage")) or attempt.memory_mb
        if status == _HELD:
            reason = str(ad.get("HoldReason") or attempt.hold_reason or "Reason unspecified")
            code = _int(ad.get("HoldReasonCode"))
            return _from_attempt(index, "held", attempt, flag, reason, hold_reason=reason,
                                 hold_code=code if code is not None else attempt.hold_code,
                                 hold_subcode=_int(ad.get("HoldReasonSubCode")), memory_mb=memory)
        if status in (_RUNNING, _TRANSFERRING_OUTPUT, _SUSPENDED):
            note = {_TRANSFERRING_OUTPUT: "transferring its output", _SUSPENDED: "suspended"}.get(status, "")
            detail = "; ".join(x for x in (note, _restarts_detail(attempt)) if x)
            return _from_attempt(index, "running", attempt, flag, detail, memory_mb=memory)
        if status == _IDLE:
            state = "evicted" if attempt.restarts and attempt.state in ("evicted", "running") else "idle"
            return _from_attempt(index, state, attempt, flag, _restarts_detail(attempt))
        if status == _REMOVED:
            reason = str(ad.get("RemoveReason") or attempt.remove_reason or "being removed")
            return _from_attempt(index, "removed", attempt, flag, reason, remove_reason=reason)
        if status == _COMPLETED:
            if ad.get("ExitBySignal"):
                return _from_attempt(index, "killed", attempt, flag, signal=_int(ad.get("ExitSignal")))
            code = _int(ad.get("ExitCode"))
            return _exited(index, attempt, flag, code)
    if attempt.ended:
        if flag == "idle" and flag_mtime is not None and flag_mtime > attempt.last_time + 1:
            return _from_attempt(index, "idle", attempt, flag,
                                 f"flagged idle after HTCondor's last event ({attempt.last_event}); "
                                 "waiting to be submitted again")
        if attempt.state == "done":
            return _exited(index, attempt, flag, 0)
        if attempt.state == "failed":
            return _from_attempt(index, "failed", attempt, flag, f"exit code {attempt.exit_code}")
        if attempt.state == "killed":
            return _from_attempt(index, "killed", attempt, flag, f"terminated by signal {attempt.signal}")
        detail = f"removed from the queue: {attempt.remove_reason}" if attempt.remove_reason else "removed from the queue"
        if attempt.hold_reason:
            detail += f" (it was held: {attempt.hold_reason})"
        return _from_attempt(index, "removed", attempt, flag, detail)
    # the log has no end for this attempt
    if ads is None:  # schedd not asked or unreachable: the event log is all we know
        why = f" (schedd: {schedd_error})" if schedd_error else ""
        detail = "; ".join(x for x in (_restarts_detail(attempt), f"from the event log{why}") if x)
        if attempt.state == "held":
            detail = attempt.hold_reason or detail
        return _from_attempt(index, attempt.state, attempt, flag, detail)
    if flag in ("done", "failed"):
        return _from_attempt(index, flag, attempt, flag, "finished by its flag; HTCondor's log has no end event")
    return _from_attempt(index, "lost", attempt, flag,
                         f"HTCondor no longer has job {attempt.cluster}.{attempt.proc} and its log records no end; "
                         f"last event: {attempt.last_event}")


def _exited(index: int, attempt: Attempt, flag: str | None, code: int | None) -> JobState:
    if code == 0 and flag == "done":
        return _from_attempt(index, "done", attempt, flag, exit_code=0)
    if code == 0:
        why = "flagged itself failed" if flag == "failed" else f"never flagged itself done (flag: {flag or 'none'})"
        return _from_attempt(index, "failed", attempt, flag, f"exit code 0, but the job {why}", exit_code=0)
    return _from_attempt(index, "failed", attempt, flag, f"exit code {code}", exit_code=code)


__all__ = [
    "ACTIVE",
    "ENDED_BADLY",
    "HOLD_CODES",
    "STATES",
    "JobState",
    "JobStateReader",
    "advice",
    "decide",
    "hold_kind",
    "reconcile",
    "schedd_query",
    "transfer_problem",
]
