"""``check-jobs``: watch the jobs of a manual-job (condor) run and, with ``--resubmit``, recover them.

Every poll asks HTCondor what became of each job (``pc_jobs.job_state``: the schedd, once per
poll, and each job's event log ``logs/job_{i}.log``, reconciled with the flag files
``job_{i}.{idle,running,done,failed}``), shows a summary (idle, running, evicted, held,
done, failed, killed, removed, lost), what to do about held/killed/lost jobs, an optional
per-sample/dataset progress table (from ``jobs_config.yaml``) and per-job details (exit code
or signal, hold reason, the classified error line of the job's log). With ``--resubmit`` a failed job is resubmitted in place (``job_{i}.sub`` through
the ``htcondor2`` bindings), after:

- a failed read of an input file named in ``logs/job_*.{i}.out``: the URL goes to
  ``xrootdfaillist.txt``, the file in ``config_job_{i}.pkl`` is replaced by another replica
  (Rucio), and the log moves to ``logs/processedlogs/`` so it is not counted twice;
- a server that failed more than ``--blacklist-threshold`` reads is blacklisted: every file
  of a resubmitted job on that server moves to another replica;
- a job killed by a signal, or lost (HTCondor no longer has it, it never ended), is resubmitted
  like a failed one; a held job stays queued (memory holds aside, see ``recovery.py``) and
  check-jobs says what to do;
- ``SYSTEM_PERIODIC_REMOVE`` (queue time limit) in the HTCondor log: ``+JobFlavour`` of
  ``job_{i}.sub`` is bumped by ``--queue-shift`` and the abort is remembered in ``maxtime.txt``.

Resubmissions per job are counted in ``check_jobs_state.json`` (with the clusters this tool
submitted), so a restarted ``check-jobs`` keeps counting; after ``--max-resubmit`` it gives up.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pc_core.atomic import atomic_write_text
from pc_core.cli_support import loglevel_option, run_cli, setup_logging
from pc_core.errors import PocketCoffeaError
from pc_core.urls import normalise_url, server_of

from .job_config import JobConfigError
from .job_flags import JobsSnapshot, job_name, resolve_jobs_folder, scan_jobs, set_flag
from .jobs_dir import JobsDir
from .job_logs import LogDiagnosis, ReadFailure, diagnose_logs, parse_log_name, read_failure_in_file
from .job_state import ACTIVE, ENDED_BADLY, HOLD_CODES, JobState, JobStateReader, SchedQuery
from .job_state import STATES as JOB_STATES
from .job_state import schedd_query as default_schedd_query
from .recovery import (
    DEFAULT_MEMORY_CEILING_MB, DEFAULT_MEMORY_FACTOR, RecoveryError, RecoveryPass, archive_logs, move_job_inputs,
)
from .replica_lookup import ReplicaLookup, RucioReplicaLookup
from .submission import submit_file
from .submit_file import job_flavour, next_flavour, set_job_flavour

log = logging.getLogger(__name__)

FAILLIST_NAME = "xrootdfaillist.txt"
MAXTIME_NAME = "maxtime.txt"
STATE_NAME = "check_jobs_state.json"
GROUP_BY = ("sample", "dataset", "none")
LOG_GRACE_SECONDS = 30.0  # HTCondor copies a job's stdout back after the wrapper flagged it failed
MESSAGES_SHOWN = 20
BAR_WIDTH = 30
STATE_COLOURS = {"done": "green", "running": "magenta", "idle": "blue", "failed": "red", "evicted": "cyan",
                 "held": "yellow", "killed": "bright_red", "removed": "dark_orange", "lost": "orange1"}
BASE_STATES = ("idle", "running", "done", "failed")
"""Always shown; the other states (evicted, held, killed, removed, lost) get a column when a job is in them."""
BAR_ORDER = ("done", "running", "evicted", "idle", "held", "failed", "killed", "removed", "lost")
ATTENTION_JOBS_SHOWN = 8
DETAILS_ALL_JOBS = 200
"""``--details`` lists every job of a folder up to this many jobs; in larger folders only the jobs that are
not idle, running or done (those are counted in the summary: 10,000 rows are neither readable nor quick)."""

Submitter = Callable[[Path], int]
"""Submit one ``job_{i}.sub`` file; returns the HTCondor cluster id."""


class JobsFailedError(PocketCoffeaError):
    """Every job finished, but some failed for good."""


# --------------------------------------------------------------------------- submission


def condor_submit(sub_file: Path) -> int:
    """Submit one ``job_{i}.sub`` through the ``htcondor2`` bindings; returns its cluster id."""
    return submit_file(sub_file, 1).cluster


def bump_queue(sub_file: Path, shift: int) -> tuple[str, str]:
    """Rewrite ``sub_file`` (atomically) with ``+JobFlavour`` ``shift`` queues longer; (old, new)."""
    text = sub_file.read_text(encoding="utf-8")
    current = job_flavour(text)
    new = next_flavour(current, shift)
    if current is None or new is None:
        raise PocketCoffeaError(f"{sub_file} has no +JobFlavour: there is no longer queue to move the job to")
    if new == current and shift > 0 and current != "nextweek":
        raise PocketCoffeaError(f"{sub_file}: +JobFlavour {current!r} is not a known queue, cannot bump it")
    if new != current:
        atomic_write_text(sub_file, set_job_flavour(text, new))
    return current, new


# --------------------------------------------------------------------------- persistent state


@dataclass
class ResubmitState:
    """What check-jobs did to the folder, kept across restarts in ``check_jobs_state.json``."""

    resubmissions: dict[int, int] = field(default_factory=dict)
    clusters: dict[int, int] = field(default_factory=dict)  # cluster submitted by check-jobs -> job

    @classmethod
    def load(cls, path: Path) -> ResubmitState:
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                resubmissions={int(k): int(v) for k, v in raw.get("resubmissions", {}).items()},
                clusters={int(k): int(v) for k, v in raw.get("clusters", {}).items()},
            )
        except (ValueError, AttributeError, TypeError) as exc:
            raise PocketCoffeaError(
                f"{path} is not a check-jobs state file ({exc}); remove it to restart the resubmission counts"
            ) from None

    def save(self, path: Path) -> None:
        data = {
            "resubmissions": {str(k): v for k, v in sorted(self.resubmissions.items())},
            "clusters": {str(k): v for k, v in sorted(self.clusters.items())},
        }
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append_line(path: Path, line: str) -> None:
    atomic_write_text(path, "".join(f"{existing}\n" for existing in _read_lines(path)) + f"{line}\n")


def blacklisted_servers(failed_urls: Iterable[str], threshold: int) -> set[str]:
    """Servers that produced more than ``threshold`` failed reads."""
    counts = Counter(server_of(url) for url in dict.fromkeys(failed_urls))
    return {server for server, n in counts.items() if n > threshold}


# --------------------------------------------------------------------------- groups (jobs_config.yaml)


def load_groups(folder: Path, group_by: str) -> tuple[dict[str, list[int]], bool] | None:
    """``{sample or dataset: [job index, ...]}`` from ``jobs_config.yaml``; None when unavailable.

    The second value is True when some job belongs to several groups (uniform splitting).
    Read through ``JobsDir.read_jobs_config`` (its JSON cache: 10,000 jobs in ~0.1 s).
    """
    jobs_dir = JobsDir(Path(folder))
    if group_by == "none" or not jobs_dir.jobs_config.is_file():
        return None
    try:
        config = jobs_dir.read_jobs_config()
    except PocketCoffeaError as exc:
        log.warning("per-%s table disabled: %s", group_by, exc)
        return None
    groups: dict[str, list[int]] = {}
    for key, job in config["jobs"].items():
        try:
            index = int(str(key).removeprefix("job_"))
        except ValueError:
            continue
        fileset = job.get("fileset") if isinstance(job, dict) else None
        if not isinstance(fileset, dict):
            continue
        names = {ds if group_by == "dataset" else (entry.get("metadata") or {}).get("sample", ds)
                 for ds, entry in fileset.items() if isinstance(entry, dict)}
        for name in names:
            groups.setdefault(str(name), []).append(index)
    if not groups:
        log.warning("per-%s table disabled: %s lists no job filesets", group_by, jobs_dir.jobs_config)
        return None
    listed = [i for jobs in groups.values() for i in jobs]
    return groups, len(listed) != len(set(listed))


@dataclass(frozen=True)
class GroupProgress:
    name: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pct_done(self) -> float:
        return 100.0 * self.counts["done"] / self.total if self.total else 0.0


def group_progress(groups: Mapping[str, Iterable[int]], states: Mapping[int, str]) -> list[GroupProgress]:
    """Per-group job counts, slowest group (lowest % done) first. Unknown jobs are ignored."""
    rows = []
    for name, jobs in groups.items():
        counter = Counter(states[i] for i in set(jobs) if i in states)
        rows.append(GroupProgress(name, {state: counter.get(state, 0) for state in JOB_STATES}))
    return sorted(rows, key=lambda row: (row.pct_done, row.name))


def stacked_bar(counts: Mapping[str, int], width: int = BAR_WIDTH) -> Text:
    """Jobs per state (done, running, evicted, idle, held, failed, killed, removed, lost) as coloured
    blocks whose lengths add up to ``width``."""
    order = BAR_ORDER
    total = sum(counts.get(s, 0) for s in order)
    bar = Text()
    if total == 0:
        return bar.append("·" * width, style="dim")
    exact = [counts.get(s, 0) * width / total for s in order]
    lengths = [int(x) for x in exact]
    for i in sorted(range(len(order)), key=lambda i: exact[i] - lengths[i], reverse=True)[: width - sum(lengths)]:
        lengths[i] += 1
    for state, length in zip(order, lengths):
        bar.append("█" * length, style=STATE_COLOURS[state])
    return bar


# --------------------------------------------------------------------------- the monitor


@dataclass
class PollResult:
    """The jobs after one poll: their states (``pc_jobs.job_state.STATES``), what happened."""

    snapshot: JobsSnapshot
    states: dict[int, str]
    gave_up: set[int]
    messages: list[str]
    finished: bool
    jobs: dict[int, JobState] = field(default_factory=dict)
    schedd_error: str | None = None

    def counts(self) -> dict[str, int]:
        """Jobs per state, every state of ``pc_jobs.job_state.STATES`` (zeros included)."""
        counter = Counter(self.states.values())
        return {state: counter.get(state, 0) for state in JOB_STATES}

    def failed_jobs(self) -> list[int]:
        """Jobs that ended without a result (failed, killed, removed, lost) or wait on the user (held)."""
        return sorted(i for i, s in self.states.items() if s != "done" and s not in ACTIVE)


class JobsMonitor:
    """Polls a jobs folder; with ``resubmit`` it also recovers failed jobs (module docstring)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        resubmit: bool = False,
        max_resubmit: int = 4,
        blacklist_threshold: int = 3,
        queue_shift: int = 1,
        lookup: ReplicaLookup | None = None,
        submitter: Submitter = condor_submit,
        log_grace: float = LOG_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
        memory_factor: float = DEFAULT_MEMORY_FACTOR,
        memory_ceiling: int = DEFAULT_MEMORY_CEILING_MB,
        schedd: Any = None,
        schedd_query: SchedQuery | None = default_schedd_query,
    ) -> None:
        self.memory_factor, self.memory_ceiling, self.schedd = memory_factor, memory_ceiling, schedd
        self.folder = resolve_jobs_folder(folder)
        self.logs_dir = self.folder / "logs"
        self.resubmit = resubmit
        self.max_resubmit = max_resubmit
        self.blacklist_threshold = blacklist_threshold
        self.queue_shift = queue_shift
        self.lookup: ReplicaLookup = lookup if lookup is not None else RucioReplicaLookup()
        self.submitter = submitter
        self.log_grace = log_grace
        self.clock = clock
        self.state_path = self.folder / STATE_NAME
        self.state = ResubmitState.load(self.state_path)
        self.faillist_path = self.folder / FAILLIST_NAME
        self.maxtime_path = self.folder / MAXTIME_NAME
        self.gave_up: set[int] = set()
        self._reported: set[tuple[int, str]] = set()
        if schedd is not None and schedd_query is default_schedd_query:  # one schedd (real or fake) for both
            def schedd_query(constraint: str, projection: list[str]) -> Any:
                return schedd.query(constraint=constraint, projection=projection)
        self.reader = JobStateReader(self.folder, query=schedd_query, cluster_jobs=self.state.clusters)
        self._diagnoses: dict[tuple[tuple[str, int, int], ...], LogDiagnosis | None] = {}
        self._failures: dict[tuple[str, int, int], ReadFailure | None] = {}
        self._stdout_logs: dict[int, list[str]] | None = None

    # -- helpers
    @property
    def failed_urls(self) -> list[str]:
        return _read_lines(self.faillist_path)

    @property
    def blacklist(self) -> set[str]:
        return blacklisted_servers(self.failed_urls, self.blacklist_threshold)

    def _report_once(self, index: int, key: str, messages: list[str], text: str) -> None:
        if (index, key) not in self._reported:
            self._reported.add((index, key))
            messages.append(text)

    # -- one poll
    def poll(self) -> PollResult:
        messages: list[str] = []
        snapshot = scan_jobs(self.folder)
        self._stdout_logs = None  # from the reader's listing of logs/, once per poll
        jobs = self.reader.read(snapshot)  # schedd + event logs + flags (pc_jobs.job_state)
        states = {i: job.state for i, job in jobs.items()}
        handled = set(_read_lines(self.maxtime_path))
        ready: set[int] = set()  # ended in HTCondor or flagged failed by us: no wrapper log to wait for
        for index, job in sorted(jobs.items()):
            self._report_state(job, messages)
            if job.state != "removed" or job.flag not in (None, "idle", "running") or job.job_id in handled:
                continue
            periodic = bool(job.remove_reason and "SYSTEM_PERIODIC_REMOVE" in job.remove_reason)
            why = ("the queue's time limit (SYSTEM_PERIODIC_REMOVE)" if periodic else
                   "HTCondor" + (f" ({job.remove_reason})" if job.remove_reason else ""))
            if job.hold_reason:
                why += f" while held: {job.hold_reason}"
            if not self.resubmit:
                self._report_once(index, f"abort {job.job_id}", messages,
                                  f"{job_name(index)} (HTCondor job {job.job_id}) was removed by {why}; "
                                  "use --resubmit to resubmit it")
                continue
            set_flag(self.folder, index, "failed")
            _append_line(self.maxtime_path, str(job.job_id))
            handled.add(str(job.job_id))
            ready.add(index)
            if periodic:
                try:
                    old, new = bump_queue(self.folder / f"{job_name(index)}.sub", self.queue_shift)
                    messages.append(f"{job_name(index)} (HTCondor job {job.job_id}) hit the time limit of queue "
                                    f"{old}: marked failed, +JobFlavour now {new}")
                except (OSError, PocketCoffeaError) as exc:
                    messages.append(f"{job_name(index)} hit the queue's time limit but its queue cannot be bumped: {exc}")
            else:
                messages.append(f"{job_name(index)} (HTCondor job {job.job_id}) was removed by {why}: marked failed")
        if self.resubmit:  # killed, lost, or an exit code HTCondor saw: flag failed, resubmit like a failed job
            for index, job in sorted(jobs.items()):
                if job.state not in ENDED_BADLY:
                    continue
                if job.flag != "failed" and job.state != "removed":
                    set_flag(self.folder, index, "failed")
                if job.cluster is not None:
                    ready.add(index)

        if self.resubmit:
            # recovery.py: the folder's lock, one schedd query (the default HTCondor submitter only), the history
            try:
                with RecoveryPass(self.folder, "check-jobs --resubmit", memory_factor=self.memory_factor,
                                  memory_ceiling=self.memory_ceiling, submitter=self.submitter, schedd=self.schedd,
                                  query=self.submitter is condor_submit or self.schedd is not None) as rpass:
                    held = set(rpass.memory_held_jobs())
                    for index in sorted(i for i, s in states.items() if s in ENDED_BADLY or i in held):
                        if self._recover(index, index in ready or index in held, messages, rpass):
                            states[index] = "idle"
            except RecoveryError as exc:  # locked by another recovery, or the schedd cannot be asked
                messages.append(f"no resubmission this poll: {exc}")
        else:
            for index in sorted(i for i, s in states.items() if s == "failed"):
                failure = self._read_failure(index)
                detail = f": could not read {failure.url}" if failure else ""
                code = jobs[index].exit_code
                exit_text = f" (exit code {code})" if code is not None else ""
                self._report_once(index, "failed", messages, f"{job_name(index)} failed{exit_text}{detail}")

        # the watch ends when HTCondor works on no job any more (held, killed, lost are not running);
        # with --resubmit, failed/killed/removed/lost jobs are resubmitted until given up
        finished = all(s not in ACTIVE and not (self.resubmit and s in ENDED_BADLY and i not in self.gave_up)
                       for i, s in states.items())
        return PollResult(snapshot, states, set(self.gave_up), messages, finished, jobs, self.reader.schedd_error)

    def _report_state(self, job: JobState, messages: list[str]) -> None:
        """Say once what happened to a held, killed, lost or evicted job, and what to do."""
        name, ident = job_name(job.index), job.job_id
        if job.state == "held":
            code = (f"code {job.hold_code} {HOLD_CODES.get(job.hold_code, '')}".rstrip()
                    if job.hold_code is not None else "no code")
            subcode = f", subcode {job.hold_subcode}" if job.hold_subcode else ""
            self._report_once(job.index, f"held {ident} {job.hold_code} {job.hold_reason}", messages,
                              f"{name} (HTCondor job {ident}) is held: {job.hold_reason} ({code}{subcode}). "
                              f"What to do: {job.advice()}")
        elif job.state == "killed":
            self._report_once(job.index, f"killed {ident}", messages,
                              f"{name} (HTCondor job {ident}) was killed by signal {job.signal}. "
                              f"What to do: {job.advice()}")
        elif job.state == "lost":
            self._report_once(job.index, f"lost {ident}", messages,
                              f"{name} (HTCondor job {ident}) is lost: HTCondor no longer has it and its log records "
                              f"no end (flag: {job.flag or 'none'}; last event: {job.last_event}). "
                              f"What to do: {job.advice()}")
        elif job.state == "evicted" and job.restarts & (job.restarts - 1) == 0:  # after 1, 2, 4, 8, ... restarts
            self._report_once(job.index, f"evicted {ident} {job.restarts}", messages,
                              f"{name} (HTCondor job {ident}) was evicted {job.restarts} time(s), last: "
                              f"{job.restart_reason}; HTCondor will run it again")

    def diagnosis(self, index: int) -> LogDiagnosis | None:
        """The classified error line of the job's stdout/stderr (cached while its logs do not change)."""
        parts = []
        for path in self._job_logs(index):
            try:
                stat = path.stat()
            except OSError:
                continue
            parts.append((str(path), stat.st_size, stat.st_mtime_ns))
        key = tuple(sorted(parts))
        if key not in self._diagnoses:
            self._diagnoses[key] = diagnose_logs([Path(p) for p, _, _ in key]) if key else None
        return self._diagnoses[key]

    def _job_logs(self, index: int) -> list[Path]:
        """The job's unprocessed stdout/stderr logs, oldest first, from the poll's one listing of ``logs/``
        (the one ``JobStateReader.read`` made; listed here only before a first poll)."""
        if self._stdout_logs is None:
            self._stdout_logs = {}
            names = self.reader.log_names
            if names is None:
                try:
                    names = os.listdir(self.logs_dir)
                except OSError:
                    names = []
            for name in names:  # names only: a Path is built for the logs of the jobs asked about
                if not name.endswith((".out", ".err")):
                    continue
                parsed = parse_log_name(name)
                if parsed is None or parsed[2] == "log":
                    continue
                cluster, log_index, _ = parsed
                owner = self.state.clusters.get(cluster, log_index) if cluster is not None else log_index
                self._stdout_logs.setdefault(owner, []).append(name)
        paths = []
        for name in self._stdout_logs.get(index, []):
            path = self.logs_dir / name
            try:
                paths.append((path.stat().st_mtime, name, path))
            except OSError:
                continue
        return [path for _, _, path in sorted(paths)]

    def _read_failure(self, index: int) -> ReadFailure | None:
        for path in reversed(self._job_logs(index)):
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (str(path), stat.st_size, stat.st_mtime_ns)
            if key not in self._failures:  # read a log again only when it changed
                self._failures[key] = read_failure_in_file(path)
            if self._failures[key] is not None:
                return self._failures[key]
        return None

    def _flag_age(self, index: int) -> float:
        try:
            return self.clock() - (self.folder / f"{job_name(index)}.failed").stat().st_mtime
        except FileNotFoundError:
            return float("inf")

    def _recover(self, index: int, ready: bool, messages: list[str], rpass: RecoveryPass) -> bool:
        """Fix and resubmit one failed job; False when it is left failed (waiting or given up)."""
        name = job_name(index)
        if index in self.gave_up:
            return False
        done = self.state.resubmissions.get(index, 0)
        if done >= self.max_resubmit:
            self.gave_up.add(index)
            messages.append(f"{name} failed after {done} resubmissions (--max-resubmit {self.max_resubmit}): giving up")
            return False
        logs = self._job_logs(index)
        if not logs and not ready and self._flag_age(index) < self.log_grace:
            return False  # HTCondor has not copied the job's stdout back yet
        queued = rpass.still_queued_message(index)
        if queued:  # never a second copy: HTCondor still has (or is retrying) this one
            self._report_once(index, queued, messages, queued)
            return False
        failure = self._read_failure(index)
        config_path = self.folder / f"config_{name}.pkl"
        try:
            self._fix_inputs(index, failure, config_path, messages)
        except JobConfigError as exc:
            self.gave_up.add(index)
            messages.append(f"{name} cannot be recovered: {exc}")
            return False
        if failure is None and not ready:
            tail = _last_line(logs[-1]) if logs else "no log"
            messages.append(f"{name} failed (not a read failure; last log line: {tail})")
        outcome = rpass.resubmit(index, f"could not read {failure.url}" if failure else "failed")
        if not outcome.submitted:  # request_memory already at --memory-ceiling
            self.gave_up.add(index)
            messages.append(outcome.skipped)
            return False
        cluster = int(outcome.cluster or 0)
        if outcome.removed:
            messages.append(f"{name}: held copy {', '.join(outcome.removed)} removed; request_memory now "
                            f"{outcome.request_memory} MB")
        self.state.resubmissions[index] = done + 1
        self.state.clusters[cluster] = index
        self.state.save(self.state_path)
        archive_logs(self.logs_dir, logs)
        set_flag(self.folder, index, "idle")
        messages.append(f"{name} resubmitted as HTCondor cluster {cluster} ({done + 1}/{self.max_resubmit})")
        return True

    def _fix_inputs(self, index: int, failure: ReadFailure | None, config_path: Path, messages: list[str]) -> None:
        """Record the failed URL, update the blacklist, move the job's files off failed/blacklisted servers."""
        name = job_name(index)
        blacklist_before = self.blacklist
        if failure is not None:
            if normalise_url(failure.url) not in {normalise_url(u) for u in self.failed_urls}:
                _append_line(self.faillist_path, failure.url)
            messages.append(f"{name} could not read {failure.url} (server {server_of(failure.url)})")
        blacklist = self.blacklist
        for server in sorted(blacklist - blacklist_before):
            messages.append(f"server {server} failed more than {self.blacklist_threshold} reads: blacklisted")
        if failure is None and not blacklist:
            return
        failed_norm = normalise_url(failure.url) if failure else None
        failed_urls = self.failed_urls

        def find(urls: list[str]) -> Mapping[str, str]:
            return self.lookup(list(urls), blacklist, failed_urls)

        try:  # recovery.py: the one replica rewrite (shared with run --recreate-jobs)
            moves = move_job_inputs(config_path, lambda u: normalise_url(u) == failed_norm or server_of(u) in blacklist,
                                    find)
        except JobConfigError:
            raise
        except PocketCoffeaError as exc:
            messages.append(f"{name}: cannot look up other replicas ({exc}); resubmitting with the same files")
            return
        if failure is not None and not any(normalise_url(u) == failed_norm for u in [*moves.changes, *moves.kept]):
            messages.append(f"{name}: {failure.url} is not an input of {config_path.name}; inputs left as they are")
        moves.save(config_path)
        for old, new in moves.changes.items():
            messages.append(f"{name}: {old} -> {new}")
        if moves.kept:
            messages.append(f"{name}: no other replica for {len(moves.kept)} file(s), kept: {', '.join(moves.kept)}")


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "no log"
    return lines[-1].strip()[:200] if lines else "empty log"


# --------------------------------------------------------------------------- rendering


def shown_states(states: Iterable[str]) -> list[str]:
    """idle, running, done, failed, plus every other state some job is in (in ``JOB_STATES`` order)."""
    present = set(states)
    return [state for state in JOB_STATES if state in BASE_STATES or state in present]


def summary_table(result: PollResult) -> Table:
    counts = result.counts()
    columns = shown_states(result.states.values())
    table = Table(title=Text(f"Jobs in {result.snapshot.folder}"))
    table.add_column("Total", style="cyan", justify="right")
    for state in columns:
        table.add_column(state.capitalize(), style=STATE_COLOURS[state], justify="right")
    table.add_row(str(result.snapshot.total), *(str(counts[s]) for s in columns))
    if result.schedd_error:
        table.caption = Text(f"HTCondor schedd not reachable ({result.schedd_error}): states from the event logs",
                             style="yellow")
    return table


SHORT_STATES = {"idle": "Idle", "running": "Run", "evicted": "Evict", "held": "Held", "done": "Done",
                "failed": "Fail", "killed": "Kill", "removed": "Rm", "lost": "Lost"}
"""Column headers of the progress table on narrow terminals (below ``WIDE``)."""
WIDE = 110
NAME_WIDTH = 24


def progress_table(rows: list[GroupProgress], label: str, overlap: bool, width: int | None = None) -> Table:
    """Per-group progress; on a console narrower than ``WIDE`` columns (``width``) the headers are
    abbreviated, long group names are shortened with an ellipsis and the bar shrinks so that
    every row stays on one line (80 columns: nothing is wrapped or cut to '…')."""
    width = width or WIDE
    narrow = width < WIDE
    title = f"Progress by {label}" + (" (jobs with several samples counted under each)" if overlap else "")
    columns = shown_states(state for row in rows for state, n in row.counts.items() if n)
    headers = [SHORT_STATES[s] if narrow else s.capitalize() for s in columns]
    # every column: its content plus 3 (padding, separator); the table: one more border
    numbers = max([len("Total")] + [len(str(row.total)) for row in rows])
    states = sum(max([len(h)] + [len(str(row.counts.get(s, 0))) for row in rows]) for s, h in zip(columns, headers))
    room = width - (numbers + states + len("% Done")) - 3 * (len(columns) + 4) - 1  # for the name and the bar
    name_width = min(max([len(label)] + [len(row.name) for row in rows]), NAME_WIDTH if narrow else 60)
    name_width = max(6, min(name_width, room - 6))
    bar_width = max(6, min(BAR_WIDTH, room - name_width))
    bar_header = "Progress" if bar_width >= len("Progress") else "Bar"
    table = Table(title=title)
    table.add_column(label.capitalize(), style="cyan", no_wrap=True, max_width=name_width, overflow="ellipsis")
    table.add_column("Total", justify="right", no_wrap=True)
    for state, header in zip(columns, headers):
        table.add_column(header, justify="right", style=STATE_COLOURS[state], no_wrap=True)
    table.add_column(bar_header, no_wrap=True, width=bar_width)
    table.add_column("% Done", justify="right", no_wrap=True)
    for row in rows:
        style = "green" if row.pct_done >= 99.5 else "yellow" if row.pct_done >= 50 else "red"
        name = row.name if len(row.name) <= name_width else row.name[: name_width - 1] + "…"
        table.add_row(Text(name), str(row.total), *(str(row.counts.get(s, 0)) for s in columns),
                      stacked_bar(row.counts, bar_width), Text(f"{row.pct_done:.1f}%", style=style))
    return table


def _why(job: JobState, diagnosis: LogDiagnosis | None) -> Text:
    """Hold reason / removal / restarts, and the classified error line of the job's log, as plain text."""
    text = Text()
    if job.state == "held":
        text.append(job.hold_reason or "held", style="yellow")
    elif job.state in ("removed", "lost", "evicted") or (job.state == "running" and job.restarts):
        text.append(job.detail)
    elif job.state == "failed" and job.detail and job.exit_code is None:
        text.append(job.detail)
    if diagnosis is not None and job.state in ("failed", "killed", "lost", "removed", "held"):
        if text:
            text.append("\n")
        text.append(f"[{diagnosis.kind}] ", style="bold red")
        text.append(f"{diagnosis.log.name}:{diagnosis.number}: {diagnosis.line}")
    return text


def details_table(result: PollResult, monitor: JobsMonitor) -> Table:
    """One row per job (more than ``DETAILS_ALL_JOBS`` jobs: per job not idle, running or done): state,
    HTCondor id, exit code or signal, resubmissions, queue, and why (hold reason, the error line of
    its log with its class). Log text is never markup."""
    table = Table(title="Job status")
    for column in ("Job", "State", "HTCondor", "Exit", "Resubm.", "Queue"):
        table.add_column(column, no_wrap=True)
    table.add_column("Why", overflow="fold")
    shown = sorted(result.states.items())
    if len(shown) > DETAILS_ALL_JOBS:
        shown = [(i, s) for i, s in shown if s not in ("idle", "running", "done")]
        table.caption = Text(f"{len(result.states) - len(shown)} idle, running or done jobs not listed "
                             f"(more than {DETAILS_ALL_JOBS} jobs; see the summary)")
    for index, state in shown:  # logs from the poll's one listing of logs/
        job = result.jobs.get(index) or JobState(index, state)
        try:
            queue = job_flavour((monitor.folder / f"{job_name(index)}.sub").read_text(encoding="utf-8")) or "-"
        except OSError:
            queue = "-"
        label = state + (" (gave up)" if index in result.gave_up else "")
        diagnosis = monitor.diagnosis(index) if state not in ("done", "idle", "running", "evicted") else None
        table.add_row(job_name(index), Text(label, style=STATE_COLOURS.get(state, "")), job.job_id or "-",
                      job.outcome or "-", str(monitor.state.resubmissions.get(index, 0)), queue, _why(job, diagnosis))
    return table


def _state_label(job: JobState | None, state: str) -> str:
    outcome = job.outcome if job is not None else ""
    return f"{state}, {outcome}" if outcome and not outcome.startswith("held") else state


def attention_table(result: PollResult) -> Table | None:
    """Held, killed, lost, removed, evicted and failed jobs, grouped by state and kind of hold: a
    reason (the first job's) and what to do. None when every job is fine."""
    groups: dict[tuple[str, str], list[JobState]] = {}
    for index, state in sorted(result.states.items()):
        if state in ("done", "idle", "running"):
            continue
        job = result.jobs.get(index) or JobState(index, state)
        groups.setdefault((state, job.hold_kind or ""), []).append(job)
    if not groups:
        return None
    table = Table(title="Needs attention")
    table.add_column("State", no_wrap=True)
    table.add_column("Jobs")
    table.add_column("Reason (first job)", overflow="fold")
    table.add_column("What to do", overflow="fold")
    order = {state: n for n, state in enumerate(JOB_STATES)}
    for (state, kind), jobs in sorted(groups.items(), key=lambda item: order.get(item[0][0], 99)):
        names = ", ".join(job_name(j.index) for j in jobs[:ATTENTION_JOBS_SHOWN])
        if len(jobs) > ATTENTION_JOBS_SHOWN:
            names += f", ... ({len(jobs)} jobs)"
        first = jobs[0]
        reason = first.hold_reason if state == "held" else (first.detail or first.outcome)
        label = state + (f" ({kind})" if kind and state in ("held", "removed") else "")
        table.add_row(Text(label, style=STATE_COLOURS.get(state, "")), Text(names), Text(reason or "-"),
                      Text(first.advice() or "-"))
    return table


def render(result: PollResult, monitor: JobsMonitor, groups: tuple[dict[str, list[int]], bool] | None,
           group_by: str, details: bool, messages: list[Text | str], width: int | None = None) -> Group:
    parts: list[Any] = [summary_table(result)]
    if groups is not None:
        parts.append(progress_table(group_progress(groups[0], result.states), group_by, groups[1], width))
    attention = attention_table(result)
    if attention is not None:
        parts.append(attention)
    if details:
        parts.append(details_table(result, monitor))
    if messages:
        shown = [m if isinstance(m, Text) else Text(m) for m in messages[-MESSAGES_SHOWN:]]
        parts.append(Panel(Text("\n").join(shown), title="Log"))
    return Group(*parts)


# --------------------------------------------------------------------------- command


def check_jobs(
    jobs_folder: str | os.PathLike,
    *,
    details: bool = False,
    resubmit: bool = False,
    max_resubmit: int = 4,
    blacklist_threshold: int = 3,
    queue_shift: int = 1,
    group_by: str = "sample",
    interval: float = 5.0,
    once: bool = False,
    console: Console | None = None,
    lookup: ReplicaLookup | None = None,
    submitter: Submitter = condor_submit,
    log_grace: float = LOG_GRACE_SECONDS,
    memory_factor: float = DEFAULT_MEMORY_FACTOR,
    memory_ceiling: int = DEFAULT_MEMORY_CEILING_MB,
    schedd_query: SchedQuery | None = default_schedd_query,
) -> PollResult:
    """Poll until every job is done or failed for good (or once); returns the last poll."""
    console = console or Console()
    monitor = JobsMonitor(jobs_folder, resubmit=resubmit, max_resubmit=max_resubmit,
                          blacklist_threshold=blacklist_threshold, queue_shift=queue_shift,
                          lookup=lookup, submitter=submitter, log_grace=log_grace,
                          memory_factor=memory_factor, memory_ceiling=memory_ceiling, schedd_query=schedd_query)
    groups = load_groups(monitor.folder, group_by)
    messages: list[Text] = []

    def step() -> tuple[PollResult, Group]:
        result = monitor.poll()
        stamp = time.strftime("%H:%M:%S")
        for message in result.messages:
            log.debug("%s", message)
            messages.append(Text.assemble((stamp, "dim"), " ", message))  # log text: never markup
        return result, render(result, monitor, groups, group_by, details, messages, console.width)

    if once:
        result, view = step()
        console.print(view)
    else:
        result, view = step()
        try:
            with Live(view, console=console, auto_refresh=False, transient=False) as live:
                while not result.finished:
                    time.sleep(interval)
                    result, view = step()
                    live.update(view, refresh=True)
        except KeyboardInterrupt:
            console.print("[yellow]Stopped watching (the jobs keep running).")
            return result
    if result.finished:
        held = [i for i, s in result.states.items() if s == "held"]
        if held:
            console.print(f"[yellow]No job is idle or running any more; {len(held)} job(s) held in HTCondor "
                          "wait for you (see 'Needs attention')")
        else:
            console.print("[green]All jobs are completed")
        console.print(f"Now merge outputs with [yellow]merge-outputs -jc {escape(str(monitor.folder))}[/yellow]")
        failed = result.failed_jobs()
        if failed:
            listed = ", ".join(f"{job_name(i)} ({_state_label(result.jobs.get(i), result.states[i])})" for i in failed)
            raise JobsFailedError(
                f"{len(failed)} of {result.snapshot.total} jobs failed: {listed}. "
                f"Their logs are in {monitor.logs_dir}; release held jobs (condor_release) once their hold reason "
                "is fixed, resubmit the others with check-jobs --resubmit (or pocket-coffea run --recreate-jobs), "
                "or merge the rest with merge-outputs --allow-missing"
            )
    return result


@click.command("check-jobs")
@click.option("-j", "--jobs-folder", required=True, type=click.Path(file_okay=False),
              help="Jobs folder of a condor run (job_*.sub and flag files), or the output folder holding 'job/'.")
@click.option("-d", "--details", is_flag=True, help="Also show a per-job status table.")
@click.option("-r", "--resubmit", is_flag=True, help="Resubmit failed jobs, moving failed reads to other replicas.")
@click.option("-m", "--max-resubmit", type=click.IntRange(min=0), default=4, show_default=True,
              help="Give up on a job after this many resubmissions.")
@click.option("-b", "--blacklist-threshold", type=click.IntRange(min=0), default=3, show_default=True,
              help="Blacklist a server after more than this many failed reads.")
@click.option("-q", "--queue-shift", type=click.IntRange(min=0), default=1, show_default=True,
              help="Queues to move up (+JobFlavour) after a SYSTEM_PERIODIC_REMOVE abort.")
@click.option("--by", "group_by", type=click.Choice(GROUP_BY), default="sample", show_default=True,
              help="Per-group progress table from jobs_config.yaml; 'none' to disable.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Poll (and resubmit) once, print the tables and exit.")
@click.option("--memory-factor", type=click.FloatRange(min=1.0, min_open=True), default=DEFAULT_MEMORY_FACTOR,
              show_default=True, help="With --resubmit: multiply request_memory of a job held for memory by this.")
@click.option("--memory-ceiling", type=click.IntRange(min=1), default=DEFAULT_MEMORY_CEILING_MB, show_default=True,
              help="With --resubmit: never raise request_memory above this many MB.")
@loglevel_option("WARNING")
def check_jobs_command(jobs_folder, details, resubmit, max_resubmit, blacklist_threshold, queue_shift,
                       group_by, interval, once, memory_factor, memory_ceiling, loglevel) -> None:
    """Monitor the jobs of a condor run and optionally resubmit the failed ones."""
    setup_logging(loglevel)
    check_jobs(jobs_folder, details=details, resubmit=resubmit, max_resubmit=max_resubmit,
               blacklist_threshold=blacklist_threshold, queue_shift=queue_shift, group_by=group_by,
               interval=interval, once=once, memory_factor=memory_factor, memory_ceiling=memory_ceiling)


def main() -> None:
    run_cli(check_jobs_command, prog_name="check-jobs")


__all__ = [
    "JobsFailedError",
    "JobsMonitor",
    "PollResult",
    "blacklisted_servers",
    "check_jobs",
    "check_jobs_command",
    "condor_submit",
    "group_progress",
    "load_groups",
    "stacked_bar",
]
