"""``--recreate-jobs``: resubmit jobs of an existing jobs folder without splitting again.

For every selected job (explicit indices, or ``auto``: the jobs flagged ``.failed``,
``.idle`` or ``.running``):

1. the job's fileset (``config_job_{i}.pkl``, plain data: ``pc_jobs.job_config``) is kept, except that
   - ``--use-redirector`` sends every ``/store/`` file through the global redirector (and
     wins over ``--blocklist-sites``, with a warning);
   - ``--blocklist-sites`` moves the files served by those sites to another Rucio replica
     (else the redirector);
   - a job whose logs show an XRootD read error gets each input file moved to another
     replica (Rucio; the redirector when Rucio is unreachable or has none);
   only the job's data file is rewritten, never the shared ``configurator.pkl`` (which is
   not unpickled: a submit node without coffea, pc-run or the workflow recreates jobs;
   ``jobs_config.yaml`` stays as submitted);
2. the queue: ``--recreate-queue`` rewrites ``+JobFlavour``; otherwise ``auto`` bumps
   jobs found ``.running`` one flavour longer;
3. ``inner_run_options.yaml`` is rewritten from the current run options and ``job.sh`` /
   ``job_{i}.sub`` are patched (idempotently) to use it; the submit commands that come from
   run options (``request_memory`` from ``mem-per-worker``, cpus, disk, image, retries, extra
   directives) are rewritten from the *current* run options (``+JobFlavour`` stays the
   queue logic's); a ``request_memory`` raised by an earlier memory recovery is kept if larger;
4. through ``recovery.RecoveryPass`` (the jobs folder's lock, one schedd query, the history):
   a job with a copy still queued, running, held or being retried in HTCondor is skipped
   (reported with its ``cluster.proc`` and status); a copy held for memory is removed and
   the job resubmitted with ``request_memory`` raised; the others are flagged ``.idle`` and
   ``job_{i}.sub`` submitted. With ``dry-run`` the files are prepared but no flag, log or
   history changes and nothing is submitted or removed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pc_core.errors import PocketCoffeaError
from rich.console import Console
from rich.table import Table

from .job_config import JobConfigError, job_fileset, load_job_config
from .job_logs import find_read_failures
from .job_script import patch_inner_options
from .jobs_dir import JobsDir, JobsDirError, parse_job_selection, write_job_file
from .recovery import (
    InputMoves,
    archive_logs,
    RecoveryError,
    RecoveryPass,
    Submitter,
    last_recorded,
    make_world_readable,
    move_job_inputs,
    request_memory_of,
    tag_job,
)
from .submission import Submitted
from .submit_file import (
    FLAVOUR_COMMAND,
    ensure_input,
    job_flavour,
    next_flavour,
    set_command,
    set_job_flavour,
    warn_unknown_flavour,
)

log = logging.getLogger(__name__)

AUTO_STATES = ("failed", "idle", "running")


@dataclass(frozen=True)
class RecreateRequest:
    selection: str  # "auto" or "0,1,3"
    queue: str | None = None
    blocklist_sites: tuple[str, ...] = ()
    use_redirector: bool = False


@dataclass
class JobChange:
    index: int
    state: str | None
    rewrites: int = 0
    reason: str = ""
    queue: str | None = None
    request_memory: int | None = None
    skipped: str = ""


@dataclass
class RecreateResult:
    changes: list[JobChange] = field(default_factory=list)
    submitted: list[Submitted] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def apply_run_options(sub: str, run_options: Mapping[str, Any], memory_floor: int | None = None) -> str:
    """``sub`` with the submit commands that come from run options set from the *current* ones.

    ``+JobFlavour`` is left to the queue logic; ``request_memory`` is at least ``memory_floor``
    (what an earlier memory recovery raised it to).
    """
    from .condor_executor import site_directives

    for key, value in site_directives(run_options).items():
        if key == FLAVOUR_COMMAND:
            continue
        if key == "request_memory" and memory_floor is not None and int(value) < memory_floor:
            log.warning("run option mem-per-worker gives request_memory %s MB, below the %d MB an earlier memory "
                        "recovery raised it to: keeping %d MB", value, memory_floor, memory_floor)
            value = str(memory_floor)
        sub = set_command(sub, key, value)
    return sub


def xrootd_failures(jobs_dir: JobsDir, index: int) -> tuple[bool, list[str]]:
    """Whether the job's logs show a read failure of an input file, and the URLs they name
    (the same log reading as ``check-jobs``: uproot's messages and pocket-coffea's own)."""
    urls: list[str] = []
    for kind in ("err", "out"):
        path = jobs_dir.log(index, kind)
        if path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            urls += [failure.url for failure in find_read_failures(lines, path)]
    return bool(urls), sorted(set(urls))


def _default_gateway() -> Any:
    from pc_datasets.rucio_gateway import RucioGateway

    return RucioGateway()


def _replica_rules(config_path: Path, cfg: Any, fileset: Mapping[str, Any], index: int, request: RecreateRequest,
                   failed_urls: list[str], xrootd_failed: bool,
                   gateway_factory: Callable[[], Any]) -> tuple[dict[str, Any], int, str]:
    """The job's fileset after the recreate options (redirector, blocklisted sites) and, for a job with
    read errors, ``recovery.move_job_inputs`` (a copy), how many URLs changed and why."""
    from pc_datasets.replicas import (
        find_other_replicas,
        rewrite_fileset_away_from_sites,
        rewrite_fileset_to_redirector,
    )
    from pc_datasets.rucio_gateway import RucioUnavailableError

    if request.use_redirector:
        result = rewrite_fileset_to_redirector(fileset)
        return result.fileset, len(result.rewrites), "global redirector"
    fileset = dict(fileset)
    rewrites, reasons = 0, []
    if request.blocklist_sites:
        try:
            result = rewrite_fileset_away_from_sites(fileset, request.blocklist_sites, gateway_factory())
        except RucioUnavailableError as exc:
            raise PocketCoffeaError(
                f"--blocklist-sites needs Rucio to find where files are: {exc}. Use --use-redirector to route "
                "every file through the global redirector without Rucio"
            ) from None
        fileset, rewrites = result.fileset, len(result.rewrites)
        reasons.append(f"blocklist {','.join(request.blocklist_sites)}")
    if xrootd_failed:
        try:  # recovery.py: the one replica rewrite (shared with check-jobs --resubmit), every file of the job
            moves = move_job_inputs(config_path, lambda url: True, lambda urls: find_other_replicas(
                urls, gateway_factory(), blocklist_sites=request.blocklist_sites, failed_urls=failed_urls),
                config=cfg, fileset=fileset)
        except RucioUnavailableError as exc:
            log.warning("job %d: XRootD errors in its logs but Rucio is unavailable (%s); "
                        "routing its files through the global redirector", index, exc)
            result = rewrite_fileset_to_redirector(fileset)
            return result.fileset, rewrites + len(result.rewrites), "XRootD error; global redirector (no Rucio)"
        fileset = moves.fileset
        rewrites += moves.moved
        reasons.append("XRootD error: other replicas")
    return fileset, rewrites, "; ".join(reasons)


def recreate_jobs(
    jobs_dir: JobsDir,
    request: RecreateRequest,
    run_options: Mapping[str, Any],
    *,
    gateway_factory: Callable[[], Any] = _default_gateway,
    console: Console | None = None,
    submitter: Submitter | None = None,
    schedd: Any = None,
) -> RecreateResult:
    console = console or Console(stderr=True)
    indices_available = jobs_dir.job_indices()
    chosen = parse_job_selection(request.selection, indices_available)
    states = {i: jobs_dir.state(i) for i in indices_available}
    if chosen is None:
        chosen = [i for i in indices_available if states[i] in AUTO_STATES]
        if not chosen:
            console.print(f"--recreate-jobs auto: no job of {jobs_dir.path} is failed, idle or running; nothing to do")
            return RecreateResult()
    if request.use_redirector and request.blocklist_sites:
        log.warning("--use-redirector routes every file through the global redirector: --blocklist-sites %s is ignored",
                    ",".join(request.blocklist_sites))
    if request.queue:
        warn_unknown_flavour(request.queue, "--recreate-queue")
    missing = [str(jobs_dir.config(i)) for i in chosen if not jobs_dir.config(i).is_file()]
    missing += [str(jobs_dir.sub(i)) for i in chosen if not jobs_dir.sub(i).is_file()]
    if missing or not jobs_dir.script.is_file():
        raise JobsDirError(f"cannot recreate jobs: missing files in {jobs_dir.path}: "
                           f"{', '.join(missing + ([] if jobs_dir.script.is_file() else [str(jobs_dir.script)]))}")
    dry_run = bool(run_options.get("dry-run"))
    with RecoveryPass(jobs_dir.path, "pocket-coffea run --recreate-jobs", submitter=submitter, schedd=schedd) as rpass:
        try:
            rpass.copies  # one schedd query for every job of the folder
        except RecoveryError as exc:
            if not dry_run:
                raise
            log.warning("dry-run: %s", exc)
            rpass.assume_no_copies()
        return _recreate_locked(jobs_dir, request, run_options, chosen, states, rpass, dry_run, gateway_factory,
                                console)


def _recreate_locked(jobs_dir: JobsDir, request: RecreateRequest, run_options: Mapping[str, Any], chosen: list[int],
                     states: Mapping[int, str | None], rpass: RecoveryPass, dry_run: bool,
                     gateway_factory: Callable[[], Any], console: Console) -> RecreateResult:
    result = RecreateResult()
    # everything is computed before anything is written, so a failure changes nothing
    script = patch_inner_options(jobs_dir.script.read_text())
    submitted_flavour = job_flavour(jobs_dir.all_sub.read_text()) if jobs_dir.all_sub.is_file() else None
    plans: list[tuple[JobChange, bytes | None, str, bool]] = []
    for index in chosen:
        change = JobChange(index, states[index])
        message = rpass.still_queued_message(index)
        if message:
            change.skipped = result.skipped[index] = message
            result.changes.append(change)
            continue
        config_path = jobs_dir.config(index)
        try:  # plain job data (pocket-coffea-job/1): the Configurator is never unpickled
            cfg = load_job_config(config_path)
        except JobConfigError as exc:
            raise JobsDirError(f"cannot recreate job {index}: {exc}") from None
        xrootd_failed, failed_urls = xrootd_failures(jobs_dir, index)
        fileset, change.rewrites, change.reason = _replica_rules(
            config_path, cfg, job_fileset(cfg, config_path), index, request, failed_urls, xrootd_failed, gateway_factory)
        pickled = InputMoves(cfg, fileset).payload(config_path) if change.rewrites else None
        sub = ensure_input(jobs_dir.sub(index).read_text(), str(jobs_dir.inner_options))
        sub = tag_job(apply_run_options(sub, run_options, last_recorded(jobs_dir.path, index, "request_memory")),
                      jobs_dir.path, index)
        current = job_flavour(sub)
        if request.queue:
            change.queue = request.queue
        elif request.selection.strip().lower() == "auto" and states[index] == "running" and current:
            # one flavour longer than the job was last submitted with (so a repeated dry-run bumps once)
            change.queue = next_flavour(last_recorded(jobs_dir.path, index, "queue") or submitted_flavour or current)
        if change.queue and change.queue != current:
            sub = set_job_flavour(sub, change.queue)
        else:
            change.queue = current
        new_memory, at_ceiling = rpass.planned_memory(index, sub)
        if at_ceiling:
            change.skipped = result.skipped[index] = at_ceiling
            result.changes.append(change)
            continue
        memory = rpass.memory_reason(index)
        if memory:
            change.reason = "; ".join(r for r in (change.reason, memory) if r)
        change.request_memory = new_memory or request_memory_of(sub)
        result.changes.append(change)
        plans.append((change, pickled, sub, xrootd_failed))

    if plans:
        jobs_dir.write_inner_options(run_options)
        make_world_readable(jobs_dir.inner_options)
        if script != jobs_dir.script.read_text():
            write_job_file(jobs_dir.script, script, 0o755)
    for change, pickled, sub, _ in plans:
        if pickled is not None:
            write_job_file(jobs_dir.config(change.index), pickled)
        write_job_file(jobs_dir.sub(change.index), sub)

    console.print(_table(result.changes))
    for index, why in sorted(result.skipped.items()):
        console.print(why, markup=False)
    if dry_run:
        console.print(f"dry-run: {len(plans)} jobs prepared for resubmission in {jobs_dir.path} "
                      "(no flag changed, nothing submitted)")
        return result
    for change, _, _, xrootd_failed in plans:
        previous = jobs_dir.state(change.index)
        jobs_dir.set_flag(change.index, "idle")
        try:
            outcome = rpass.resubmit(change.index, change.reason)
        except BaseException:
            if previous and previous != "idle":
                jobs_dir.set_flag(change.index, previous)
            raise
        if not outcome.submitted:  # cannot happen after the checks above, but never guess
            if previous and previous != "idle":
                jobs_dir.set_flag(change.index, previous)
            result.skipped[change.index] = outcome.skipped
            console.print(outcome.skipped, markup=False)
            continue
        if xrootd_failed:
            archive_logs(jobs_dir.logs, [jobs_dir.log(change.index, kind) for kind in ("out", "err")])
        if outcome.removed:
            console.print(f"job_{change.index}: removed held copy {', '.join(outcome.removed)}; resubmitted with "
                          f"request_memory {outcome.request_memory} MB", markup=False)
        result.submitted.append(Submitted(jobs_dir.sub(change.index), int(outcome.cluster or 0), 1))
    console.print(f"Resubmitted {len(result.submitted)} job(s) from {jobs_dir.path}"
                  + (f"; {len(result.skipped)} skipped" if result.skipped else ""))
    return result


def _table(changes: list[JobChange]) -> Table:
    table = Table(title="Recreated jobs")
    for name in ("job", "was", "files moved", "why", "queue", "memory (MB)"):
        table.add_column(name)
    for c in changes:
        if c.skipped:
            table.add_row(str(c.index), c.state or "-", "-", "skipped (see below)", "-", "-")
            continue
        table.add_row(str(c.index), c.state or "-", str(c.rewrites), c.reason or "-", c.queue or "-",
                      str(c.request_memory) if c.request_memory else "-")
    return table


__all__ = ["RecreateRequest", "RecreateResult", "apply_run_options", "recreate_jobs",
           "xrootd_failures"]
