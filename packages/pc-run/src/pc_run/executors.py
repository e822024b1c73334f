"""Executor factories of pc-run: ``iterative``, ``futures``, ``dask`` / ``dask@site``, ``parsl`` / ``parsl@site``.

One generic class per engine; a site is data (a section of pc-core's packaged run-options
defaults, e.g. ``dask@lxplus``, or a section ``dask@mysite:`` of the user's run-options YAML)
that the class reads: ``jobqueue-system`` says which kind of cluster to start (``local``,
``htcondor``, ``slurm``, ``gateway``, ``external``), the other keys size and place the
workers. Each class declares the run-option keys it reads (``run_option_keys``); pc-core
refuses keys the user set that the engine does not read. The factories are found by engine
name through the ``pocket_coffea.executors`` entry points (see packages/pc-run/pyproject.toml).

What every batch worker (dask-jobqueue job, parsl block) gets, the same way manual condor
jobs get it: the Python environment (``local-virtualenv``/``conda-env``: PATH, VIRTUAL_ENV,
CONDA_PREFIX set directly, no ``source``/``conda activate``, so ``/bin/sh`` and micromamba
work), the grid proxy (transferred with the job on HTCondor, exported as
``X509_USER_PROXY``) and the ``custom-setup-commands``, in that order.
"""
from __future__ import annotations

import concurrent.futures
import logging
import math
import multiprocessing
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffea import processor

from pc_core.errors import ExecutorError
from pc_core.executors import ExecutorFactoryABC, find_grid_proxy
from pc_core.run_options import RUNNER_KEYS
from pc_core.units import size_bytes, walltime_seconds

log = logging.getLogger(__name__)

PERFORMANCE_REPORT_FILE = "dask-performance-report.html"
_POLL_SECONDS = 1.0

# the keys each engine reads (kept equal to the engine's template section of the packaged
# defaults by tests/pc_run/test_executor_options.py)
_WORKER_KEYS = frozenset({
    "cores-per-worker", "mem-per-worker", "disk-per-worker", "worker-image", "death-timeout", "queue",
    "walltime", "account", "adaptive", "custom-setup-commands", "conda-env", "local-virtualenv",
    "jobqueue-system", "worker-timeout", "scheduler-host", "scheduler-interface", "scheduler-port",
    "job-extra-directives",
})
DASK_KEYS = RUNNER_KEYS | _WORKER_KEYS | {
    "performance-report", "scheduler-address", "dashboard-address", "gateway-address", "gateway-proxy-address",
    "worker-extra-args",
}
PARSL_KEYS = RUNNER_KEYS | _WORKER_KEYS | {"logs-dir"}


def _scaleout(run_options: Mapping[str, Any], default: int = 1) -> int:
    value = run_options.get("scaleout")
    return int(value) if value else default


def _executor_name(run_options: Mapping[str, Any], engine: str) -> str:
    return getattr(run_options, "executor", engine)


# --------------------------------------------------------------------------- worker environment


def conda_prefix() -> str:
    """The conda/mamba environment to put on the workers: ``$CONDA_PREFIX`` (set by conda,
    mamba and micromamba activation), else this Python's prefix when it is an environment
    (has ``conda-meta/``)."""
    prefix = os.environ.get("CONDA_PREFIX")
    if prefix:
        return prefix
    if (Path(sys.prefix) / "conda-meta").is_dir():
        return sys.prefix
    raise ExecutorError(
        f"run option conda-env is true but no conda/mamba environment is active (CONDA_PREFIX unset) and this "
        f"Python ({sys.prefix}) is not one; run from the environment the workers should use, or set "
        "conda-env: false (local-virtualenv: true for a virtualenv)"
    )


def env_setup_commands(run_options: Mapping[str, Any], proxy: str | None = None) -> list[str]:
    """POSIX-shell lines run on a batch worker before the Dask/Parsl worker starts.

    The environment is set through its own paths (no ``source``, no ``conda activate``,
    so ``/bin/sh``, conda and micromamba environments all work); ``proxy`` is the shell
    expression of the proxy's path on the worker; the user's commands come last."""
    commands: list[str] = []
    if run_options.get("local-virtualenv"):
        venv = os.environ.get("VIRTUAL_ENV") or sys.prefix
        commands += [f"export VIRTUAL_ENV={shlex.quote(venv)}", f'export PATH={shlex.quote(venv + "/bin")}:"$PATH"']
    if run_options.get("conda-env"):
        prefix = conda_prefix()
        commands += [
            f"export CONDA_PREFIX={shlex.quote(prefix)}",
            f"export CONDA_DEFAULT_ENV={shlex.quote(Path(prefix).name)}",
            f'export PATH={shlex.quote(prefix + "/bin")}:"$PATH"',
        ]
    if proxy:
        commands.append(f"export X509_USER_PROXY={proxy}")
    commands += list(run_options.get("custom-setup-commands") or [])
    return commands


def _proxy_on_worker(system: str, proxy: Path | None) -> str | None:
    """Where the proxy is on a batch worker: transferred into the job's folder (HTCondor), or
    the same path (SLURM: shared file system)."""
    if proxy is None:
        return None
    if system == "htcondor":
        return f'"$PWD"/{shlex.quote(proxy.name)}'
    return shlex.quote(str(proxy))


def _condor_directive_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if (key.startswith("+") or key.upper().startswith("MY.")) and not (
        text.startswith('"') or text.replace(".", "", 1).isdigit() or text in ("true", "false")
    ):
        return f'"{text}"'
    return text


def condor_directives(run_options: Mapping[str, Any], proxy: Path | None) -> dict[str, str]:
    """HTCondor submit commands from the site's keys: queue (``+JobFlavour``), image,
    walltime (``+MaxRuntime``), the proxy's transfer, then ``job-extra-directives`` (which win)."""
    directives: dict[str, str] = {}
    if run_options.get("queue"):
        directives["+JobFlavour"] = f'"{run_options["queue"]}"'
    if run_options.get("worker-image"):
        directives["MY.SingularityImage"] = f'"{run_options["worker-image"]}"'
    if run_options.get("walltime"):
        directives["+MaxRuntime"] = str(walltime_seconds(run_options["walltime"]))
    extra = run_options.get("job-extra-directives") or {}
    for key, value in extra.items():
        directives[key] = _condor_directive_value(key, value)
    if proxy is not None:
        files = [f for f in (directives.get("transfer_input_files") or "").split(",") if f.strip()]
        directives["transfer_input_files"] = ",".join([*files, str(proxy)])
        directives.setdefault("should_transfer_files", "YES")
    return directives


def warn_unused_image(run_options: Mapping[str, Any], system: str) -> None:
    """``worker-image`` reaches HTCondor workers (``MY.SingularityImage``) and dask-gateway
    clusters (``image``); elsewhere say that it is not used instead of ignoring it silently."""
    image = run_options.get("worker-image")
    if image and system not in ("htcondor", "gateway"):
        log.warning("run option worker-image = %r is not used with jobqueue-system %s (used with: htcondor, as "
                    "MY.SingularityImage; gateway, as the cluster option image): the workers run in the environment "
                    "of the %s", image, system, "batch node" if system == "slurm" else "machine they run on")


def slurm_directives(run_options: Mapping[str, Any]) -> list[str]:
    """``job-extra-directives`` as sbatch options: ``{constraint: gpu}`` -> ``--constraint=gpu``,
    ``{exclusive: true}`` -> ``--exclusive`` (false: left out); a key may carry its dashes."""
    directives: list[str] = []
    for key, value in (run_options.get("job-extra-directives") or {}).items():
        flag = key if str(key).startswith("-") else f"--{key}"
        if value is True or value is None:
            directives.append(flag)
        elif value is not False:
            directives.append(f"{flag}={value}")
    return directives


# --------------------------------------------------------------------------- scheduler placement


DASHBOARD_PORT = 8787  # dask's (and dask-jobqueue's) dashboard port


def scheduler_options(run_options: Mapping[str, Any], configured: Mapping[str, Any] | None = None,
                      dashboard_port: int = DASHBOARD_PORT) -> dict[str, Any]:
    """The scheduler's options: dask's own configuration (``jobqueue.<system>.scheduler-options``)
    with the run options on top, each only where set: ``scheduler-host`` (``host``) or
    ``scheduler-interface`` (``interface``; the two exclude each other, so one replaces the
    other from the configuration), ``scheduler-port`` (``port``), ``dashboard-address``.

    The dashboard always gets an explicit address (``dashboard_address``), so that it never
    binds all interfaces by default (dask-jobqueue's own default, ``:8787``, does): a
    dashboard address with a host (``0.0.0.0:8787``, ``myhost:8787``) is used as given; one
    without (``:8787``, ``8787``), or none (``dashboard_port``), is bound to the scheduler's
    host, the address of its interface, or 127.0.0.1 when the scheduler listens everywhere
    (reach it through an ssh tunnel)."""
    options = dict(configured or {})
    host, interface = run_options.get("scheduler-host"), run_options.get("scheduler-interface")
    if host and interface:
        raise ExecutorError(
            f"run options scheduler-host ({host!r}) and scheduler-interface ({interface!r}) are both set; a "
            "scheduler listens on an address or on an interface: set one of them"
        )
    if host:
        options.pop("interface", None)
        options["host"] = host
    if interface:
        options.pop("host", None)
        options["interface"] = interface
    if run_options.get("scheduler-port") is not None:
        options["port"] = int(run_options["scheduler-port"])
    dashboard = run_options.get("dashboard-address")
    if dashboard in (None, ""):
        dashboard = options.get("dashboard_address")
    options["dashboard_address"] = dashboard_address(dashboard, options, dashboard_port)
    return options


def _split_address(address: Any) -> tuple[str, str]:
    """``(host, port)`` of ``:8787``, ``8787``, ``host:8787``, ``[::1]:8787``, ``host`` (dask's parser)."""
    from distributed.comm.addressing import parse_host_port

    text = str(address).strip()
    if text.isdigit():
        return "", text
    try:
        host, port = parse_host_port(text, default_port=0)
    except ValueError:  # a bare IPv6 address
        return text, ""
    return host, str(port) if port else ""


def dashboard_address(address: Any, placement: Mapping[str, Any], default_port: int = DASHBOARD_PORT) -> str:
    """Where the dashboard listens: ``address`` when it names a host, else the scheduler's
    host (``placement['host']``, the address of ``placement['interface']``, or 127.0.0.1)
    with ``address``'s port (or ``default_port``)."""
    host, port = _split_address(address) if address not in (None, "") else ("", "")
    if host:
        return str(address)
    if placement.get("host"):
        host = str(placement["host"])
    elif placement.get("interface"):
        host = _interface_address(str(placement["interface"]))
    else:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port or default_port}"


def _interface_address(interface: str) -> str:
    import psutil

    addresses = psutil.net_if_addrs()
    for family in (2, 10):  # AF_INET, then AF_INET6
        for entry in addresses.get(interface, []):
            if entry.family == family:
                return entry.address.split("%")[0]
    raise ExecutorError(
        f"run option scheduler-interface = {interface!r}: this machine has no network interface of that name with "
        f"an IP address; accepted: {', '.join(sorted(addresses)) or 'none found'}"
    )


# --------------------------------------------------------------------------- batch jobs


_CONDOR_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "transferring output",
                  7: "suspended"}


def condor_job_report(job_ids: list[str]) -> dict[str, str]:
    """``{job id: state and reason}`` from the schedd (htcondor2), for the jobs still queued."""
    if not job_ids:
        return {}
    try:
        import htcondor2

        constraint = " || ".join(
            f"(ClusterId == {int(c)} && ProcId == {int(p)})" for c, p in (j.split(".") for j in job_ids)
        )
        ads = htcondor2.Schedd().query(
            constraint=constraint,
            projection=["ClusterId", "ProcId", "JobStatus", "HoldReason", "LastRejMatchReason", "Requirements",
                        "RequestCpus", "RequestMemory", "RequestDisk"],
        )
    except Exception as exc:  # noqa: BLE001 - the report is best effort; the error names the jobs anyway
        return {job: f"state unknown (the schedd could not be queried: {type(exc).__name__}: {exc})" for job in job_ids}
    report: dict[str, str] = {}
    for ad in ads:
        job = f"{ad['ClusterId']}.{ad['ProcId']}"
        status = _CONDOR_STATUS.get(int(ad.get("JobStatus", 0)), f"status {ad.get('JobStatus')}")
        if status == "held":
            report[job] = f"held: {ad.get('HoldReason', 'no HoldReason')}"
        elif status == "idle":
            reason = ad.get("LastRejMatchReason")
            report[job] = "idle: " + (f"{reason}; " if reason else "no machine matched it yet; ") + (
                f"RequestCpus = {_evaluated(ad, 'RequestCpus')}, RequestMemory = {_evaluated(ad, 'RequestMemory')} MB, "
                f"RequestDisk = {_evaluated(ad, 'RequestDisk')} KB, Requirements = {ad.get('Requirements')}"
            )
        else:
            report[job] = status
    for job in job_ids:
        report.setdefault(job, "no longer in the queue")
    return report


def _evaluated(ad, attribute: str) -> Any:
    try:
        return ad.eval(attribute)
    except Exception:  # noqa: BLE001 - show the expression then
        return ad.get(attribute)


def remove_condor_jobs(job_ids: list[str], wait: float = 15.0) -> list[str]:
    """Remove the jobs from the schedd and wait (up to ``wait`` s) until they left the queue;
    returns the ids still queued."""
    if not job_ids:
        return []
    try:
        import htcondor2

        schedd = htcondor2.Schedd()
        ids = [j for j in job_ids if j.count(".") == 1]
        constraint = " || ".join(f"(ClusterId == {int(c)} && ProcId == {int(p)})" for c, p in (j.split(".") for j in ids))
        if not constraint:
            return []
        queued = schedd.query(constraint=f"({constraint}) && JobStatus != 3", projection=["ClusterId"])
        if queued:
            schedd.act(htcondor2.JobAction.Remove, f"({constraint}) && JobStatus != 3")
        deadline = time.monotonic() + wait
        while True:
            left = schedd.query(constraint=constraint, projection=["ClusterId", "ProcId", "JobStatus"])
            # removed jobs kept by leave_in_queue (parsl) are cleared for good
            if any(int(ad.get("JobStatus", 0)) == 3 for ad in left) and time.monotonic() > deadline - wait + 2:
                schedd.act(htcondor2.JobAction.RemoveX, f"({constraint}) && JobStatus == 3")
            if not left or time.monotonic() > deadline:
                return [f"{ad['ClusterId']}.{ad['ProcId']}" for ad in left]
            time.sleep(0.5)
    except Exception as exc:  # noqa: BLE001 - never mask the run's own outcome
        log.warning("could not check that the worker jobs %s left the HTCondor queue: %s: %s",
                    ", ".join(job_ids), type(exc).__name__, exc)
        return list(job_ids)


# SLURM job states after which a job never runs (again)
_SLURM_ENDED = ("completed", "cancelled", "failed", "timeout", "node_fail", "preempted", "boot_fail", "deadline",
                "out_of_memory", "revoked", "special_exit")


def _squeue(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """``{job id: (state, reason, partition)}`` for the jobs slurmctld still knows (``squeue -j``).
    Raises ``ExecutorError`` when squeue cannot be asked."""
    ids = [j for j in job_ids if j]
    if not ids:
        return {}
    try:
        res = subprocess.run(["squeue", "--noheader", "--states=all", "--jobs", ",".join(ids),
                              "--format=%i|%T|%r|%P"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExecutorError(f"squeue failed: {type(exc).__name__}: {exc}") from None
    if res.returncode != 0:
        if "Invalid job id" in res.stderr:  # none of them is known any more
            return {}
        raise ExecutorError(f"squeue exited with {res.returncode}: {res.stderr.strip()[-300:]}")
    jobs: dict[str, tuple[str, str, str]] = {}
    for line in res.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0] in ids:
            jobs[parts[0]] = (parts[1].lower(), parts[2], parts[3])
    return jobs


def slurm_job_report(job_ids: list[str]) -> dict[str, str]:
    """``{job id: state and reason}`` from ``squeue`` (e.g. ``pending (PartitionDown) in
    partition offline``), for every job id; ``no longer in the queue`` for jobs slurmctld forgot."""
    if not job_ids:
        return {}
    try:
        jobs = _squeue(job_ids)
    except ExecutorError as exc:  # the report is best effort; the error names the jobs anyway
        return {job: f"state unknown ({exc})" for job in job_ids}
    report: dict[str, str] = {}
    for job in job_ids:
        if job not in jobs:
            report[job] = "no longer in the queue"
            continue
        state, reason, partition = jobs[job]
        reason = "" if reason in ("", "None", "(null)") else f" ({reason})"
        report[job] = f"{state}{reason} in partition {partition}"
    return report


def remove_slurm_jobs(job_ids: list[str], wait: float = 15.0) -> list[str]:
    """``scancel`` the jobs still pending or running and wait (up to ``wait`` s) until none of
    them is; returns the ids still there."""
    if not job_ids:
        return []

    def alive() -> list[str]:
        return [j for j, (state, _, _) in _squeue(job_ids).items() if state not in _SLURM_ENDED]

    try:
        left = alive()
        if left:
            subprocess.run(["scancel", *left], capture_output=True, text=True, timeout=30)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = alive()
        return left
    except (ExecutorError, OSError, subprocess.TimeoutExpired) as exc:  # never mask the run's own outcome
        log.warning("could not check that the worker jobs %s left the SLURM queue: %s", ", ".join(job_ids), exc)
        return list(job_ids)


class WorkersNeverCame(ExecutorError):
    """No worker connected within ``worker-timeout``."""


class WorkersLost(ExecutorError):
    """Every worker left during the run and none came back within ``worker-timeout``."""


# a worker that connected once and has been gone this long: its batch job is lost (removed,
# wall time, node gone) and is replaced; a nanny restarting its worker comes back sooner
LOST_WORKER_GRACE = 5.0


_ENDED = ("completed", "removed", "no longer in the queue")


def _no_workers_message(executor: str, system: str, timeout: float, job_ids: list[str], why: str,
                        logs: Path | None = None) -> str:
    batch = {"htcondor": "HTCondor", "slurm": "SLURM"}.get(system, system)
    head = {
        "held": f"executor {executor!r}: every worker job is held",
        "ended": f"executor {executor!r}: every worker job ended before a worker connected",
    }.get(why, f"executor {executor!r}: no worker connected within {timeout:g} s (worker-timeout)")
    if logs is not None:
        head += f" (worker logs: {logs})"
    if system == "gateway":
        detail = f"dask-gateway cluster {', '.join(job_ids) or '(none created)'}: its workers did not start"
    elif system == "htcondor" and job_ids:
        states = condor_job_report(job_ids)
        jobs = "; ".join(f"{job} {state}" for job, state in states.items())
        detail = f"{batch} worker jobs: {jobs}"
    elif system == "slurm" and job_ids:
        states = slurm_job_report(job_ids)
        jobs = "; ".join(f"{job} {state}" for job, state in states.items())
        detail = f"{batch} worker jobs: {jobs}"
    elif job_ids:
        detail = f"{batch} worker jobs {', '.join(job_ids)}"
    else:
        detail = f"jobqueue-system {system}: no worker job was submitted"
    return (f"{head}; {detail}. The worker jobs were removed. Check the jobs' logs, their requirements "
            "(mem-per-worker, cores-per-worker, queue, job-extra-directives) and that the workers can reach the "
            "scheduler (scheduler-host/scheduler-interface), or raise worker-timeout")


def _wait_for_workers(
    count: Callable[[], int], timeout: float | None, job_ids: Callable[[], list[str]], system: str, executor: str,
    logs: Path | None = None,
) -> None:
    """Return when a worker is connected; raise WorkersNeverCame after ``timeout`` s, or as
    soon as every HTCondor worker job is held, or every HTCondor/SLURM worker job has ended
    without a worker connecting."""
    start = time.monotonic()
    last_check = start
    while not count():
        now = time.monotonic()
        if timeout is not None and now - start > timeout:
            raise WorkersNeverCame(_no_workers_message(executor, system, timeout, job_ids(), "timeout", logs))
        if system == "htcondor" and now - last_check > 3:
            last_check = now
            ids = job_ids()
            states = condor_job_report(ids) if ids else {}
            for why, prefixes in (("held", ("held",)), ("ended", _ENDED)):
                if states and all(state.startswith(prefixes) for state in states.values()) and not count():
                    raise WorkersNeverCame(_no_workers_message(executor, system, timeout or 0, ids, why, logs))
        if system == "slurm" and now - last_check > 3:
            last_check = now
            ids = job_ids()
            states = slurm_job_report(ids) if ids else {}
            if states and all(state.startswith((*_SLURM_ENDED, "no longer")) for state in states.values()) \
                    and not count():
                raise WorkersNeverCame(_no_workers_message(executor, system, timeout or 0, ids, "ended", logs))
        time.sleep(_POLL_SECONDS)
    log.info("first worker connected after %.1f s", time.monotonic() - start)


# --------------------------------------------------------------------------- local executors


class IterativeExecutorFactory(ExecutorFactoryABC):
    """One chunk after the other in this process: for debugging and small tests."""

    run_option_keys = RUNNER_KEYS

    def get(self):
        return processor.IterativeExecutor(**self.customized_args())


class FuturesExecutorFactory(ExecutorFactoryABC):
    """``scaleout`` local worker processes forked from this one, results merged in this process."""

    run_option_keys = RUNNER_KEYS

    def customized_args(self) -> dict[str, Any]:
        args = super().customized_args()
        args["workers"] = _scaleout(self.run_options)
        return args

    def get(self):
        return processor.FuturesExecutor(pool=_forked_process_pool, **self.customized_args())


def _forked_process_pool(max_workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """Worker processes forked from this one, where coffea, awkward and uproot are already
    imported: a spawned worker (loky's default) spends ~2.5 s importing them before its first
    chunk, as long as a whole 1M-event run of a light analysis takes. Falls back to spawning
    where fork does not exist."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return concurrent.futures.ProcessPoolExecutor(max_workers=max_workers, mp_context=context)


# --------------------------------------------------------------------------- dask


def _remove_batch_jobs(system: str, job_ids, what: str) -> None:
    """Remove the batch jobs a run submitted (HTCondor or SLURM); say which ones survive."""
    if not job_ids or system not in ("htcondor", "slurm"):
        return
    left = remove_condor_jobs(job_ids) if system == "htcondor" else remove_slurm_jobs(job_ids)
    if left:
        queue, tool = ("HTCondor", "condor_rm") if system == "htcondor" else ("SLURM", "scancel")
        log.warning("%s %s are still in the %s queue; remove them with %s", what, ", ".join(left), queue, tool)


class DaskExecutorFactory(ExecutorFactoryABC):
    """A Dask cluster chosen by the run option ``jobqueue-system``.

    ``local``: a ``distributed.LocalCluster`` of ``scaleout`` single-threaded worker
    processes (on ``scheduler-host``, default 127.0.0.1). ``htcondor``/``slurm``: a
    dask-jobqueue cluster sized by ``cores-per-worker``, ``mem-per-worker``, ... and scaled to
    ``scaleout`` jobs (or adaptive up to it). ``external``: connect to ``scheduler-address``.
    ``gateway``: a cluster of the dask-gateway server at ``gateway-address`` (scheduler
    traffic through ``gateway-proxy-address``; authentication from dask-gateway's own
    configuration, ``gateway.auth``), with ``cores-per-worker``, ``mem-per-worker`` and
    ``worker-image`` passed as cluster options where the gateway offers them, scaled to
    ``scaleout`` workers (adaptive: 1 to ``scaleout``) and shut down at ``close()``.

    During the run the chunk scheduler calls ``check_workers()`` every few seconds: batch
    jobs whose worker left (``condor_rm``, ``scancel``, wall time) are removed and replaced
    (dask reruns their tasks), and a run without any worker for ``worker-timeout`` seconds
    stops with the jobs' states instead of waiting forever.

    ``setup()`` returns once a worker is connected; after ``worker-timeout`` seconds without
    one (or as soon as every HTCondor worker job is held) it stops, naming the jobs and why
    they did not start, and removes them. ``close()`` always removes the worker jobs.
    """

    run_option_keys = DASK_KEYS

    cluster: Any = None
    client: Any = None
    _report: Any = None
    _job_ids: set[str]
    _gateway: Any = None
    _gateway_name: str | None = None

    def setup(self) -> None:
        self._job_ids = set()
        self._seen_workers: set[str] = set()      # job names whose worker connected once
        self._gone_since: dict[str, float] = {}   # job name -> when its worker was first missed
        self._replaced = 0
        self._no_workers_since: float | None = None
        self._start()

    def _start(self) -> None:
        from distributed import Client

        options = self.run_options
        system = options.get("jobqueue-system") or "local"
        scaleout = _scaleout(options)
        executor = _executor_name(options, "dask")
        if system not in ("local", "htcondor", "slurm", "gateway", "external"):
            raise ExecutorError(
                f"run option jobqueue-system = {system!r} is not supported by the dask executor; "
                "accepted: local, htcondor, slurm, gateway, external"
            )
        if system == "external":
            address = options.get("scheduler-address")
            if not address:
                raise ExecutorError(
                    f"executor {executor!r}: jobqueue-system is 'external' but run option "
                    "scheduler-address is empty; set it (e.g. tcp://host:8786) in --custom-run-options"
                )
            self.client = Client(address, timeout=30)
        else:
            if system == "local":
                self.cluster = self._local_cluster(scaleout)
            elif system in ("htcondor", "slurm"):
                self.cluster = self._jobqueue_cluster(system)
            else:
                self.cluster = self._gateway_cluster()
            if options.get("adaptive"):
                self.cluster.adapt(minimum=1, maximum=scaleout)
            elif system != "local":
                self.cluster.scale(scaleout)
            if system == "gateway":
                # the gateway's TLS credentials come with the cluster object; the default client, as
                # Client(cluster) is (coffea's preprocessing progress bar looks for it)
                self.client = self.cluster.get_client(set_as_default=True)
            else:
                self.client = Client(self.cluster)
        timeout = options.get("worker-timeout")
        _wait_for_workers(
            lambda: len(self.client.scheduler_info().get("workers", {})),
            float(timeout) if timeout else None,
            (lambda: [self._gateway_name] if self._gateway_name else []) if system == "gateway" else self._current_job_ids,
            system, executor,
            self.outputdir / "dask_logs" if self.outputdir is not None and system in ("htcondor", "slurm") else None,
        )
        log.info("Dask cluster %s ready; dashboard: %s", type(self.cluster or self.client).__name__,
                 self.client.dashboard_link)
        if options.get("performance-report"):
            self._start_performance_report()

    def _local_cluster(self, scaleout: int):
        from distributed import LocalCluster

        options = self.run_options
        placement = scheduler_options(options, dashboard_port=0)  # 0: a free port
        proxy = find_grid_proxy(options)
        if options.get("custom-setup-commands"):
            log.warning("custom-setup-commands are not run for jobqueue-system local: the workers are processes of "
                        "this machine, in this environment")
        warn_unused_image(options, "local")
        return LocalCluster(
            n_workers=0 if options.get("adaptive") else scaleout,
            threads_per_worker=1,
            processes=True,
            host=placement.get("host", None if "interface" in placement else "127.0.0.1"),
            interface=placement.get("interface"),
            scheduler_port=placement.get("port", 0),
            dashboard_address=placement["dashboard_address"],
            memory_limit=options.get("mem-per-worker") or "auto",
            silence_logs=logging.WARNING,
            env={"X509_USER_PROXY": str(proxy)} if proxy else {},
        )

    def _jobqueue_cluster(self, system: str):
        import dask
        import dask_jobqueue

        options = self.run_options
        proxy = find_grid_proxy(options)
        kwargs: dict[str, Any] = {
            "cores": int(options.get("cores-per-worker") or 1),
            "memory": options.get("mem-per-worker") or "2GB",
            "job_script_prologue": env_setup_commands(options, _proxy_on_worker(system, proxy)),
            "scheduler_options": scheduler_options(options, dask.config.get(f"jobqueue.{system}.scheduler-options", None)),
        }
        if options.get("death-timeout"):
            kwargs["death_timeout"] = int(options["death-timeout"])
        if options.get("worker-extra-args"):
            kwargs["worker_extra_args"] = list(options["worker-extra-args"])
        if self.outputdir is not None:
            kwargs["log_directory"] = str(self.outputdir / "dask_logs")
        if system == "htcondor":
            kwargs["disk"] = options.get("disk-per-worker") or "1GB"
            kwargs["job_extra_directives"] = condor_directives(options, proxy)
            return dask_jobqueue.HTCondorCluster(**kwargs)
        # SLURM: sbatch options, partition (queue), time limit, account; the proxy is read in place
        warn_unused_image(options, system)
        kwargs["job_extra_directives"] = slurm_directives(options)
        for option, argument in (("queue", "queue"), ("walltime", "walltime"), ("account", "account")):
            if options.get(option):
                kwargs[argument] = options[option]
        return dask_jobqueue.SLURMCluster(**kwargs)

    # run option -> the cluster-option names dask-gateway deployments use for it (dask-gateway's
    # own backends: worker_cores/worker_memory; kubernetes images: image)
    GATEWAY_OPTIONS = {
        "cores-per-worker": ("worker_cores",),
        "mem-per-worker": ("worker_memory",),
        "worker-image": ("image", "worker_image"),
    }

    def _gateway_cluster(self):
        try:
            from dask_gateway import Gateway
        except ImportError:
            raise ExecutorError(
                "jobqueue-system 'gateway' needs the dask-gateway package, which is not installed "
                "(pip install dask-gateway)"
            ) from None
        options = self.run_options
        executor = _executor_name(options, "dask")
        address = options.get("gateway-address")
        try:
            self._gateway = Gateway(address=address or None, proxy_address=options.get("gateway-proxy-address") or None)
            cluster_options = self._gateway.cluster_options()
        except Exception as exc:  # noqa: BLE001 - unreachable, refused, bad auth: say where and what to check
            raise ExecutorError(
                f"executor {executor!r}: cannot use the dask-gateway at {address or '(dask config gateway.address)'}: "
                f"{type(exc).__name__}: {exc}. Check run options gateway-address/gateway-proxy-address and the "
                "gateway's authentication (dask config gateway.auth.type/kwargs, e.g. DASK_GATEWAY__AUTH__TYPE)"
            ) from exc
        self._set_gateway_options(cluster_options)
        # submit, then connect: if connecting fails, the cluster is known by name and shut down at close()
        self._gateway_name = self._gateway.submit(cluster_options=cluster_options)
        log.info("dask-gateway cluster %s submitted to %s", self._gateway_name, self._gateway.address)
        return self._gateway.connect(self._gateway_name, shutdown_on_close=True)

    def _set_gateway_options(self, cluster_options) -> dict[str, Any]:
        """Set the run options the gateway offers as cluster options; say which ones it does not."""
        options = self.run_options
        offered = set(cluster_options)
        passed: dict[str, Any] = {}
        for key, names in self.GATEWAY_OPTIONS.items():
            value = options.get(key)
            if value in (None, ""):
                continue
            name = next((n for n in names if n in offered), None)
            if name is None:
                log.warning("run option %s = %r is not passed to the dask-gateway: it offers no cluster option %s "
                            "(it offers: %s)", key, value, " or ".join(names), ", ".join(sorted(offered)) or "none")
                continue
            field = cluster_options._fields[name]
            kind = type(field).__name__
            if key == "mem-per-worker" and kind in ("Float", "Integer"):
                value = size_bytes(value) / 2**30  # GiB, as dask-gateway's backends take worker_memory
                value = int(round(value)) if kind == "Integer" else value
            elif key == "cores-per-worker":
                value = int(value) if kind == "Integer" else float(value) if kind == "Float" else value
            try:
                cluster_options[name] = value
            except (TypeError, ValueError) as exc:
                raise ExecutorError(f"run option {key} = {options.get(key)!r} is not accepted by the dask-gateway's "
                                    f"cluster option {name}: {exc}") from None
            passed[name] = value
        log.info("dask-gateway cluster options: %s", dict(cluster_options))
        return passed

    def _current_job_ids(self) -> list[str]:
        """The batch job ids dask-jobqueue submitted (each ``Job`` records its ``job_id``)."""
        for job in list(getattr(self.cluster, "workers", {}).values()):
            job_id = getattr(job, "job_id", None)
            if job_id:
                self._job_ids.add(str(job_id))
        return sorted(self._job_ids)

    def _start_performance_report(self) -> None:
        if self.outputdir is None:
            log.warning("performance-report is true but the run has no output folder; no report is written")
            return
        from distributed import performance_report

        self.outputdir.mkdir(parents=True, exist_ok=True)
        self._report_part = self.outputdir / f".{PERFORMANCE_REPORT_FILE}.part{os.getpid()}"
        self._report = performance_report(filename=str(self._report_part))
        self._report.__enter__()

    def _finish_performance_report(self) -> None:
        report, self._report = self._report, None
        if report is None:
            return
        try:
            report.__exit__(None, None, None)
            os.replace(self._report_part, self.outputdir / PERFORMANCE_REPORT_FILE)
            log.info("Dask performance report: %s", self.outputdir / PERFORMANCE_REPORT_FILE)
        except Exception as exc:  # noqa: BLE001 - a missing report must not fail a finished run
            log.warning("could not write the dask performance report: %s: %s", type(exc).__name__, exc)
            Path(self._report_part).unlink(missing_ok=True)

    def customized_args(self) -> dict[str, Any]:
        args = super().customized_args()
        args["client"] = self.client
        if self.run_options.get("tree-reduction"):
            args["treereduction"] = int(self.run_options["tree-reduction"])
        return args

    def get(self):
        return MonitoredDaskExecutor(worker_monitor=self.check_workers, **self.customized_args())

    # ----------------------------------------------------------------------- lost workers

    def check_workers(self) -> None:
        """Called by the chunk scheduler every few seconds while chunks are out: batch jobs whose
        worker left are removed and replaced (dask reruns their tasks on the other workers, or
        on the replacement); without any worker for ``worker-timeout`` s the run stops
        (``WorkersLost``), naming the jobs and their states, instead of waiting forever."""
        options = self.run_options
        system = options.get("jobqueue-system") or "local"
        if self.client is None:
            return
        names = {str(w.get("name")) for w in self.client.scheduler_info().get("workers", {}).values()}
        now = time.monotonic()
        if system in ("htcondor", "slurm") and self.cluster is not None:
            self._replace_lost_jobs(system, names, now)
        if names:
            if self._no_workers_since is not None:
                log.info("a dask worker is connected again")
            self._no_workers_since = None
            return
        timeout = options.get("worker-timeout")
        if self._no_workers_since is None:
            self._no_workers_since = now
            log.warning("no dask worker is connected any more; the run waits for one%s",
                        f" (at most {float(timeout):g} s, worker-timeout)" if timeout else "")
            return
        if timeout and now - self._no_workers_since > float(timeout):
            raise WorkersLost(self._lost_message(system, float(timeout)))

    def _replace_lost_jobs(self, system: str, names: set[str], now: float) -> None:
        jobs = dict(getattr(self.cluster, "workers", {}) or {})
        spec = getattr(self.cluster, "worker_spec", None)
        if not jobs or spec is None:
            return
        self._current_job_ids()

        def connected(job_name: str) -> bool:
            return job_name in names or any(n.startswith(f"{job_name}-") for n in names)

        lost: list[str] = []
        for name in jobs:
            if connected(name):
                self._seen_workers.add(name)
                self._gone_since.pop(name, None)
            elif name in self._seen_workers and now - self._gone_since.setdefault(name, now) >= LOST_WORKER_GRACE:
                lost.append(name)
        if system == "htcondor":
            # jobs whose worker never connected but that left the queue or are held
            waiting = {str(job.job_id): name for name, job in jobs.items()
                       if getattr(job, "job_id", None) and name not in self._seen_workers}
            if waiting:
                for job_id, state in condor_job_report(list(waiting)).items():
                    if state.startswith(("held", *_ENDED)):
                        lost.append(waiting[job_id])
        if not lost:
            return
        scaleout = _scaleout(self.run_options)
        if self._replaced >= max(4, 2 * scaleout):
            if self._replaced != -1:
                log.warning("worker jobs keep leaving (%d replaced); no more replacements: the run goes on with the "
                            "workers it has, or stops after worker-timeout without any", self._replaced)
                self._replaced = -1
            return
        ids = [f"{name} (job {getattr(jobs[name], 'job_id', '?')})" for name in lost]
        log.warning("worker job(s) %s left the cluster; dask reruns their tasks, replacement job(s) are submitted",
                    ", ".join(ids))
        for name in lost:
            spec.pop(name, None)  # the cluster removes the job (condor_rm/scancel if still queued) ...
            self._gone_since.pop(name, None)
        self._replaced += len(lost)
        # new jobs get new names: SpecCluster would hand out the lowest free one again, the very
        # name of the lost job, which it then takes for that job and replaces nothing
        used = set(jobs) | set(spec) | self._seen_workers
        new_name = getattr(self.cluster, "_new_worker_name", None)
        if callable(new_name) and isinstance(getattr(self.cluster, "_i", None), int):
            while new_name(self.cluster._i) in used:
                self.cluster._i += 1
        if self.run_options.get("adaptive"):
            from distributed import SpecCluster

            SpecCluster.scale(self.cluster, len(spec))  # ... and adaptive scaling brings new ones
        else:
            self.cluster.scale(scaleout)  # ... and submits new ones

    def _lost_message(self, system: str, timeout: float) -> str:
        executor = _executor_name(self.run_options, "dask")
        batch = {"htcondor": "HTCondor", "slurm": "SLURM", "gateway": "dask-gateway"}.get(system, system)
        message = (f"executor {executor!r}: every dask worker left during the run and none came back within "
                   f"{timeout:g} s (worker-timeout)")
        job_ids = self._current_job_ids() if system in ("htcondor", "slurm") else []
        if system == "htcondor" and job_ids:
            message += "; HTCondor worker jobs: " + "; ".join(f"{j} {s}" for j, s in condor_job_report(job_ids).items())
        elif system == "slurm" and job_ids:
            message += "; SLURM worker jobs: " + "; ".join(f"{j} {s}" for j, s in slurm_job_report(job_ids).items())
        elif job_ids:
            message += f"; {batch} worker jobs {', '.join(job_ids)}"
        elif system == "gateway" and self._gateway_name:
            message += f"; dask-gateway cluster {self._gateway_name}"
        return (message + ". The finished chunks are checkpointed; check why the workers end (their logs, "
                "walltime, memory), then rerun the same command to process the rest")

    def close(self) -> None:
        """Report, client, cluster, then make sure no worker job is left in the batch queue."""
        system = self.run_options.get("jobqueue-system") or "local"
        job_ids = self._current_job_ids() if hasattr(self, "_job_ids") else []
        try:
            self._finish_performance_report()
        finally:
            try:
                if self.client is not None:
                    client, self.client = self.client, None
                    client.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("closing the dask client failed: %s: %s", type(exc).__name__, exc)
            try:
                if self.cluster is not None:
                    cluster, self.cluster = self.cluster, None
                    cluster.close()
                    if system == "gateway":
                        _forget_gateway_loop(cluster.gateway)
            except Exception as exc:  # noqa: BLE001
                log.warning("closing the dask cluster failed: %s: %s", type(exc).__name__, exc)
            finally:
                _remove_batch_jobs(system, job_ids, "worker jobs")
                if system == "gateway":
                    self._stop_gateway_cluster()

    def _stop_gateway_cluster(self) -> None:
        """Make sure the gateway cluster is gone (closing the cluster object shuts it down only
        while its event loop runs), then close the gateway client."""
        gateway, self._gateway = self._gateway, None
        name, self._gateway_name = self._gateway_name, None
        if gateway is None:
            return
        try:
            if name and any(c.name == name for c in gateway.list_clusters()):
                gateway.stop_cluster(name)
        except Exception as exc:  # noqa: BLE001 - never mask the run's own outcome
            log.warning("could not check that the dask-gateway cluster %s was shut down (%s: %s); stop it with "
                        "Gateway(%r).stop_cluster(%r)", name, type(exc).__name__, exc, gateway.address, name)
        finally:
            try:
                gateway.close()
            except Exception:  # noqa: BLE001
                pass
            _forget_gateway_loop(gateway)


def _forget_gateway_loop(gateway) -> None:
    """A closed ``dask_gateway.Gateway`` closes itself again when garbage-collected, which fails
    with distributed >= 2025 ("Accessing the loop property while the loop is not running") and
    prints an ignored exception; it has nothing left to close, so drop its stopped loop runner."""
    if hasattr(gateway, "_loop_runner"):
        try:
            del gateway._loop_runner
        except AttributeError:
            pass


@dataclass
class MonitoredDaskExecutor(processor.DaskExecutor):
    """coffea's ``DaskExecutor`` carrying the factory's worker check, which pc-run's chunk
    scheduler calls while it waits for chunks (lost batch jobs, ``worker-timeout``)."""

    worker_monitor: Callable[[], None] | None = None


# --------------------------------------------------------------------------- parsl


class ParslExecutorFactory(ExecutorFactoryABC):
    """Parsl's HighThroughputExecutor: local processes, or HTCondor/SLURM blocks per ``jobqueue-system``.

    One block is one batch job of ``cores-per-worker`` cores and ``mem-per-worker`` memory
    running that many single-core workers; ``scaleout`` blocks (``adaptive``: between 0 and
    ``scaleout``, as parsl's strategy decides). ``setup()`` returns once a worker connected,
    or stops after ``worker-timeout`` as the dask factory does.
    """

    run_option_keys = PARSL_KEYS

    dfk: Any = None
    _job_ids: set[str]

    def setup(self) -> None:
        self._job_ids = set()
        self._start()

    def _start(self) -> None:
        import parsl
        from parsl.config import Config
        from parsl.executors import HighThroughputExecutor

        options = self.run_options
        system = options.get("jobqueue-system") or "local"
        scaleout = _scaleout(options)
        executor = _executor_name(options, "parsl")
        cores = int(options.get("cores-per-worker") or 1)
        proxy = find_grid_proxy(options)
        adaptive = bool(options.get("adaptive"))
        # adaptive: parsl's strategy adds blocks for queued tasks; one block from the start (the run
        # waits for a worker before it submits anything)
        blocks = {"init_blocks": 1 if adaptive else scaleout, "min_blocks": 1 if adaptive else 0, "max_blocks": scaleout}
        warn_unused_image(options, system)
        if system == "local":
            from parsl.providers import LocalProvider

            worker_init = "\n".join(env_setup_commands(options, _proxy_on_worker(system, proxy)))
            provider = LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init)
            workers = scaleout
        elif system == "htcondor":
            from parsl.providers import CondorProvider

            directives = condor_directives(options, None)
            if options.get("disk-per-worker"):
                directives["request_disk"] = str(int(size_bytes(options["disk-per-worker"]) / 1024))  # KB
            provider = CondorProvider(
                nodes_per_block=1, cores_per_slot=cores,
                mem_per_slot=size_bytes(options["mem-per-worker"]) / 1e9 if options.get("mem-per-worker") else None,
                worker_init="\n".join(env_setup_commands(options, _proxy_on_worker(system, proxy))),
                transfer_input_files=[str(proxy)] if proxy else [],
                scheduler_options="\n".join(f"{key} = {value}" for key, value in directives.items()),
                walltime=options.get("walltime") or "01:00:00", **blocks,
            )
            workers = cores
        elif system == "slurm":
            from parsl.providers import SlurmProvider

            # a block asks for its cores and memory on a shared node (parsl's default is a whole
            # node: --exclusive); job-extra-directives may still say exclusive: true
            provider = SlurmProvider(
                partition=options.get("queue") or None, account=options.get("account") or None, nodes_per_block=1,
                cores_per_node=cores, exclusive=False,
                mem_per_node=max(1, math.ceil(size_bytes(options["mem-per-worker"]) / 1e9)) if options.get("mem-per-worker") else None,
                worker_init="\n".join(env_setup_commands(options, _proxy_on_worker(system, proxy))),
                scheduler_options="\n".join(f"#SBATCH {directive}" for directive in slurm_directives(options)),
                walltime=options.get("walltime") or "01:00:00", **blocks,
            )
            workers = cores
        else:
            raise ExecutorError(
                f"run option jobqueue-system = {system!r} is not supported by the parsl executor; "
                "accepted: local, htcondor, slurm"
            )
        htex: dict[str, Any] = {
            # parsl's scripts by path, so that neither this process nor the workers need the
            # environment's bin/ on PATH
            "interchange_launch_cmd": [sys.executable, "-m", "parsl.executors.high_throughput.interchange"],
        }
        worker_prefix = self._worker_prefix(system)
        if worker_prefix:
            from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

            script = os.path.join(worker_prefix, "bin", "process_worker_pool.py")
            htex["launch_cmd"] = DEFAULT_LAUNCH_CMD.replace("process_worker_pool.py", shlex.quote(script), 1)
        host, interface = options.get("scheduler-host"), options.get("scheduler-interface")
        if host and interface:
            scheduler_options(options)  # raises, naming both keys
        if host:
            htex["address"] = host
        elif interface:
            from parsl.addresses import address_by_interface

            htex["address"] = address_by_interface(interface)
        if options.get("scheduler-port") is not None:
            htex["worker_port"] = int(options["scheduler-port"])
        if options.get("death-timeout"):
            htex["heartbeat_threshold"] = int(options["death-timeout"])
        run_dir = None
        if self.outputdir is not None:
            run_dir = str(self.outputdir / (options.get("logs-dir") or "logs_parsl"))
        config = Config(
            executors=[HighThroughputExecutor(label="coffea_parsl", max_workers_per_node=workers, cores_per_worker=1,
                                              provider=provider, **htex)],
            retries=1,  # a lost block's tasks once more elsewhere; chunk failures are retried by the run
            strategy="simple" if adaptive else "none",
            **({"run_dir": run_dir} if run_dir else {}),
        )
        self.dfk = parsl.load(config)
        self.htex = self.dfk.executors["coffea_parsl"]
        timeout = options.get("worker-timeout")
        _wait_for_workers(
            lambda: sum(int(m.get("worker_count", 0) or 0) for m in self.htex.connected_managers()),
            float(timeout) if timeout else None, self._current_job_ids, system, executor,
            Path(run_dir) if run_dir else None,
        )

    def _worker_prefix(self, system: str) -> str | None:
        """The Python environment the workers run parsl's worker pool from: this one locally,
        the submitting virtualenv/conda env with ``local-virtualenv``/``conda-env``; None: the
        workers' PATH (the site's image or login environment)."""
        options = self.run_options
        if system == "local":
            return sys.prefix
        if options.get("local-virtualenv"):
            return os.environ.get("VIRTUAL_ENV") or sys.prefix
        if options.get("conda-env"):
            return conda_prefix()
        return None

    def _current_job_ids(self) -> list[str]:
        htex = getattr(self, "htex", None)
        if htex is not None:
            self._job_ids.update(str(j) for j in dict(htex.blocks_to_job_id).values() if j)
        return sorted(self._job_ids)

    def get(self):
        return processor.ParslExecutor(**self.customized_args())

    def close(self) -> None:
        system = self.run_options.get("jobqueue-system") or "local"
        job_ids = self._current_job_ids() if hasattr(self, "_job_ids") else []
        try:
            if self.dfk is not None:
                import parsl

                dfk, self.dfk = self.dfk, None
                try:
                    dfk.cleanup()
                finally:
                    parsl.clear()
        finally:
            _remove_batch_jobs(system, job_ids, "parsl blocks")
