"""``check-jobs``: watch the jobs of a manual-job (condor) run and, with ``--resubmit``, recover them.

Every poll reads the flag files (``job_{i}.{idle,running,done,failed}``), shows a summary,
an optional per-sample/dataset progress table (from ``jobs_config.yaml``) and per-job
details. With ``--resubmit`` a failed job is resubmitted in place (``job_{i}.sub`` through
the ``htcondor2`` bindings), after:

- a failed read of an input file named in ``logs/job_*.{i}.out``: the URL goes to
  ``xrootdfaillist.txt``, the file in ``config_job_{i}.pkl`` is replaced by another replica
  (Rucio), and the log moves to ``logs/processedlogs/`` so it is not counted twice;
- a server that failed more than ``--blacklist-threshold`` reads is blacklisted: every file
  of a resubmitted job on that server moves to another replica;
- ``SYSTEM_PERIODIC_REMOVE`` (queue time limit) in the HTCondor log: ``+JobFlavour`` of
  ``job_{i}.sub`` is bumped by ``--queue-shift`` and the abort is remembered in ``maxtime.txt``.

Resubmissions per job are counted in ``check_jobs_state.json`` (with the clusters this tool
submitted), so a restarted ``check-jobs`` keeps counting; after ``--max-resubmit`` it gives up.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pc_core.atomic import atomic_write_text
from pc_core.cli_support import LOGLEVELS, run_cli, setup_logging
from pc_core.errors import PocketCoffeaError

from .job_config import JobConfigError, job_fileset, load_job_config, rewrite_job_files
from .job_flags import STATES, JobsSnapshot, job_name, resolve_jobs_folder, scan_jobs, set_flag
from .job_logs import LogEvent, ReadFailure, job_stdout_logs, parse_log_name, read_failure_in_file, read_user_logs
from .recovery import DEFAULT_MEMORY_CEILING_MB, DEFAULT_MEMORY_FACTOR, RecoveryLockError, RecoveryPass
from .submission import submit_file
from .submit_file import job_flavour, next_flavour, set_job_flavour
from .replica_lookup import ReplicaLookup, RucioReplicaLookup, normalise_url, server_of

log = logging.getLogger(__name__)

FAILLIST_NAME = "xrootdfaillist.txt"
MAXTIME_NAME = "maxtime.txt"
STATE_NAME = "check_jobs_state.json"
PROCESSED_LOGS = "processedlogs"
GROUP_BY = ("sample", "dataset", "none")
LOG_GRACE_SECONDS = 30.0  # HTCondor copies a job's stdout back after the wrapper flagged it failed
MESSAGES_SHOWN = 20
BAR_WIDTH = 30
STATE_COLOURS = {"done": "green", "running": "magenta", "idle": "blue", "failed": "red"}

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
    """
    if group_by == "none" or not (folder / "jobs_config.yaml").is_file():
        return None
    from .merge import load_jobs_config

    try:
        config = load_jobs_config(folder)
    except PocketCoffeaError as exc:
        log.warning("per-%s table disabled: %s", group_by, exc)
        return None
    groups: dict[str, list[int]] = {}
    for job in config.jobs:
        try:
            index = int(job.name.removeprefix("job_"))
        except ValueError:
            continue
        names = {ds if group_by == "dataset" else entry["metadata"]["sample"] for ds, entry in job.fileset.items()}
        for name in names:
            groups.setdefault(str(name), []).append(index)
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
        rows.append(GroupProgress(name, {state: counter.get(state, 0) for state in STATES}))
    return sorted(rows, key=lambda row: (row.pct_done, row.name))


def stacked_bar(counts: Mapping[str, int], width: int = BAR_WIDTH) -> Text:
    """done/running/idle/failed as coloured blocks whose lengths add up to ``width``."""
    order = ("done", "running", "idle", "failed")
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
    """The jobs after one poll: effective states (aborted jobs count as failed), what happened."""

    snapshot: JobsSnapshot
    states: dict[int, str]
    gave_up: set[int]
    messages: list[str]
    finished: bool

    def counts(self) -> dict[str, int]:
        counter = Counter(self.states.values())
        return {state: counter.get(state, 0) for state in STATES}

    def failed_jobs(self) -> list[int]:
        return sorted(i for i, s in self.states.items() if s == "failed")


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

    # -- helpers
    @property
    def failed_urls(self) -> list[str]:
        return _read_lines(self.faillist_path)

    @property
    def blacklist(self) -> set[str]:
        return blacklisted_servers(self.failed_urls, self.blacklist_threshold)

    def _job_of(self, event: LogEvent) -> int:
        """The job an HTCondor event belongs to: ``job_{i}.log`` names it; else our own
        resubmissions, the ``job_<c>.<i>.log`` name, or the ProcId (``jobs_all.sub``)."""
        parsed = parse_log_name(event.log.name)
        if parsed is not None and parsed[0] is None:
            return parsed[1]
        if event.cluster in self.state.clusters:
            return self.state.clusters[event.cluster]
        return parsed[1] if parsed is not None else event.proc

    def _aborted_jobs(self, events: list[LogEvent]) -> dict[int, LogEvent]:
        """The abort event of every job whose latest HTCondor attempt was aborted."""
        latest: dict[int, int] = {}
        for event in events:
            index = self._job_of(event)
            latest[index] = max(latest.get(index, -1), event.cluster)
        for cluster, index in self.state.clusters.items():
            latest[index] = max(latest.get(index, -1), cluster)
        aborted: dict[int, LogEvent] = {}
        for event in events:
            index = self._job_of(event)
            if event.is_abort and event.cluster == latest[index]:
                aborted[index] = event
        return aborted

    def _report_once(self, index: int, key: str, messages: list[str], text: str) -> None:
        if (index, key) not in self._reported:
            self._reported.add((index, key))
            messages.append(text)

    # -- one poll
    def poll(self) -> PollResult:
        messages: list[str] = []
        snapshot = scan_jobs(self.folder)
        states = {i: s or "idle" for i, s in snapshot.states.items()}
        handled = set(_read_lines(self.maxtime_path))
        ready: set[int] = set()  # flagged failed by us this poll: no wrapper log to wait for
        for index, event in sorted(self._aborted_jobs(read_user_logs(self.logs_dir)).items()):
            if index not in states or states[index] not in ("idle", "running") or event.job_id in handled:
                continue
            why = "the queue's time limit (SYSTEM_PERIODIC_REMOVE)" if event.is_periodic_remove else "HTCondor"
            if not self.resubmit:
                states[index] = "failed"
                self._report_once(index, f"abort {event.job_id}", messages,
                                  f"{job_name(index)} (HTCondor job {event.job_id}) was removed by {why}; "
                                  "use --resubmit to resubmit it")
                continue
            set_flag(self.folder, index, "failed")
            states[index] = "failed"
            _append_line(self.maxtime_path, event.job_id)
            handled.add(event.job_id)
            ready.add(index)
            if event.is_periodic_remove:
                try:
                    old, new = bump_queue(self.folder / f"{job_name(index)}.sub", self.queue_shift)
                    messages.append(f"{job_name(index)} (HTCondor job {event.job_id}) hit the time limit of queue "
                                    f"{old}: marked failed, +JobFlavour now {new}")
                except (OSError, PocketCoffeaError) as exc:
                    messages.append(f"{job_name(index)} hit the queue's time limit but its queue cannot be bumped: {exc}")
            else:
                messages.append(f"{job_name(index)} (HTCondor job {event.job_id}) was aborted by HTCondor: marked failed")

        if self.resubmit:
            # recovery.py: the folder's lock, one schedd query (the default HTCondor submitter only), the history
            try:
                with RecoveryPass(self.folder, "check-jobs --resubmit", memory_factor=self.memory_factor,
                                  memory_ceiling=self.memory_ceiling, submitter=self.submitter, schedd=self.schedd,
                                  query=self.submitter is condor_submit or self.schedd is not None) as rpass:
                    held = set(rpass.memory_held_jobs())
                    for index in sorted(i for i, s in states.items() if s == "failed" or i in held):
                        if self._recover(index, index in ready or index in held, messages, rpass):
                            states[index] = "idle"
            except RecoveryLockError as exc:
                messages.append(f"no resubmission this poll: {exc}")
        else:
            for index in sorted(i for i, s in states.items() if s == "failed"):
                failure = self._read_failure(index)
                detail = f": could not read {failure.url}" if failure else ""
                self._report_once(index, "failed", messages, f"{job_name(index)} failed{detail}")

        final = {"done"} | ({"failed"} if not self.resubmit else set())
        finished = all(s in final or (s == "failed" and i in self.gave_up) for i, s in states.items())
        return PollResult(snapshot, states, set(self.gave_up), messages, finished)

    def _read_failure(self, index: int) -> ReadFailure | None:
        for path in reversed(job_stdout_logs(self.logs_dir, index, self.state.clusters)):
            failure = read_failure_in_file(path)
            if failure is not None:
                return failure
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
        logs = job_stdout_logs(self.logs_dir, index, self.state.clusters)
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
        for path in logs:
            _archive(path, self.logs_dir / PROCESSED_LOGS)
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
        files = [u for entry in job_fileset(load_job_config(config_path), config_path).values() for u in entry["files"]]
        failed_norm = normalise_url(failure.url) if failure else None
        to_move = [u for u in files if normalise_url(u) == failed_norm or server_of(u) in blacklist]
        if failure is not None and not any(normalise_url(u) == failed_norm for u in files):
            messages.append(f"{name}: {failure.url} is not an input of {config_path.name}; inputs left as they are")
        if not to_move:
            return
        try:
            replacements = self.lookup(list(dict.fromkeys(to_move)), blacklist, self.failed_urls)
        except PocketCoffeaError as exc:
            messages.append(f"{name}: cannot look up other replicas ({exc}); resubmitting with the same files")
            return
        changes = rewrite_job_files(config_path, lambda url: replacements.get(url, url))
        for old, new in changes.items():
            messages.append(f"{name}: {old} -> {new}")
        unchanged = [u for u in dict.fromkeys(to_move) if u not in changes]
        if unchanged:
            messages.append(f"{name}: no other replica for {len(unchanged)} file(s), kept: {', '.join(unchanged)}")


def _archive(path: Path, folder: Path) -> Path:
    """Move a log into ``folder`` without overwriting: ``job_3.out`` -> ``job_3.out`` or ``job_3.<n>.out``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, _, ext = path.name.rpartition(".")
    target, n = folder / path.name, 0
    while target.exists():
        target = folder / f"{stem}.{n}.{ext}"
        n += 1
    shutil.move(str(path), target)
    return target


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return "no log"
    return lines[-1].strip()[:200] if lines else "empty log"


# --------------------------------------------------------------------------- rendering


def summary_table(result: PollResult) -> Table:
    counts = result.counts()
    table = Table(title=f"Jobs in {result.snapshot.folder}")
    table.add_column("Total jobs", style="cyan", justify="right")
    for state in STATES:
        table.add_column(f"{state.capitalize()} jobs", style=STATE_COLOURS[state], justify="right")
    table.add_row(str(result.snapshot.total), *(str(counts[s]) for s in STATES))
    return table


def progress_table(rows: list[GroupProgress], label: str, overlap: bool) -> Table:
    title = f"Progress by {label}" + (" (jobs with several samples counted under each)" if overlap else "")
    table = Table(title=title)
    table.add_column(label.capitalize(), style="cyan", no_wrap=True)
    table.add_column("Total", justify="right")
    for state in ("idle", "running", "done", "failed"):
        table.add_column(state.capitalize(), justify="right", style=STATE_COLOURS[state])
    table.add_column("Progress", no_wrap=True)
    table.add_column("% Done", justify="right")
    for row in rows:
        style = "green" if row.pct_done >= 99.5 else "yellow" if row.pct_done >= 50 else "red"
        table.add_row(row.name, str(row.total), *(str(row.counts[s]) for s in ("idle", "running", "done", "failed")),
                      stacked_bar(row.counts), Text(f"{row.pct_done:.1f}%", style=style))
    return table


def details_table(result: PollResult, monitor: JobsMonitor) -> Table:
    table = Table(title="Job status")
    for column in ("Job", "State", "Resubmissions", "Queue"):
        table.add_column(column)
    for index, state in sorted(result.states.items()):
        try:
            queue = job_flavour((monitor.folder / f"{job_name(index)}.sub").read_text(encoding="utf-8")) or "-"
        except OSError:
            queue = "-"
        label = state + (" (gave up)" if index in result.gave_up else "")
        table.add_row(job_name(index), Text(label, style=STATE_COLOURS[state]),
                      str(monitor.state.resubmissions.get(index, 0)), queue)
    return table


def render(result: PollResult, monitor: JobsMonitor, groups: tuple[dict[str, list[int]], bool] | None,
           group_by: str, details: bool, messages: list[str]) -> Group:
    parts: list[Any] = [summary_table(result)]
    if groups is not None:
        parts.append(progress_table(group_progress(groups[0], result.states), group_by, groups[1]))
    if details:
        parts.append(details_table(result, monitor))
    if messages:
        parts.append(Panel("\n".join(messages[-MESSAGES_SHOWN:]), title="Log"))
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
) -> PollResult:
    """Poll until every job is done or failed for good (or once); returns the last poll."""
    console = console or Console()
    monitor = JobsMonitor(jobs_folder, resubmit=resubmit, max_resubmit=max_resubmit,
                          blacklist_threshold=blacklist_threshold, queue_shift=queue_shift,
                          lookup=lookup, submitter=submitter, log_grace=log_grace,
                          memory_factor=memory_factor, memory_ceiling=memory_ceiling)
    groups = load_groups(monitor.folder, group_by)
    messages: list[str] = []

    def step() -> tuple[PollResult, Group]:
        result = monitor.poll()
        stamp = time.strftime("%H:%M:%S")
        for message in result.messages:
            log.debug("%s", message)
            messages.append(f"[dim]{stamp}[/dim] {message}")
        return result, render(result, monitor, groups, group_by, details, messages)

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
        console.print("[green]All jobs are completed")
        console.print(f"Now merge outputs with [yellow]merge-outputs -jc {monitor.folder}[/yellow]")
        failed = result.failed_jobs()
        if failed:
            raise JobsFailedError(
                f"{len(failed)} of {result.snapshot.total} jobs failed: {', '.join(job_name(i) for i in failed)}. "
                f"Their logs are in {monitor.logs_dir}; resubmit them with check-jobs --resubmit (or "
                "pocket-coffea run --recreate-jobs), or merge the rest with merge-outputs --allow-missing"
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
@click.option("-ll", "--loglevel", default="WARNING", type=click.Choice(LOGLEVELS, case_sensitive=False),
              help="Console logging level.")
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
