"""Executor factories of pc-run: ``iterative``, ``futures``, ``dask`` / ``dask@site``, ``parsl`` / ``parsl@site``.

One generic class per engine; a site is data (a section of pc-core's packaged run-options
defaults, e.g. ``dask@lxplus``) that the class reads: ``jobqueue-system`` says which kind of
cluster to start (``local``, ``htcondor``, ``slurm``, ``gateway``, ``external``), the other
keys size and place the workers. The factories are found by engine name through the
``pocket_coffea.executors`` entry points (see packages/pc-run/pyproject.toml).
"""
from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any

from coffea import processor

from pc_core.errors import ExecutorError
from pc_core.executors import ExecutorFactoryABC

log = logging.getLogger(__name__)


def _scaleout(run_options: Mapping[str, Any], default: int = 1) -> int:
    value = run_options.get("scaleout")
    return int(value) if value else default


def _env_setup_commands(run_options: Mapping[str, Any]) -> list[str]:
    """Shell commands run on a batch worker before the Dask/Parsl worker starts."""
    commands: list[str] = []
    if run_options.get("local-virtualenv"):
        venv = os.environ.get("VIRTUAL_ENV") or sys.prefix
        commands.append(f"source {shlex.quote(venv)}/bin/activate")
    if run_options.get("conda-env"):
        prefix = os.environ.get("CONDA_PREFIX")
        if not prefix:
            raise ExecutorError("run option conda-env is true but no conda environment is active (CONDA_PREFIX unset)")
        commands.append(f"conda activate {shlex.quote(prefix)}")
    commands += list(run_options.get("custom-setup-commands") or [])
    return commands


class IterativeExecutorFactory(ExecutorFactoryABC):
    """One chunk after the other in this process: for debugging and small tests."""

    def get(self):
        return processor.IterativeExecutor(**self.customized_args())


class FuturesExecutorFactory(ExecutorFactoryABC):
    """``scaleout`` local worker processes forked from this one, results merged in this process."""

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


class DaskExecutorFactory(ExecutorFactoryABC):
    """A Dask cluster chosen by the run option ``jobqueue-system``.

    ``local``: a ``distributed.LocalCluster`` of ``scaleout`` single-threaded worker
    processes on 127.0.0.1 (dashboard on a free port). ``htcondor``/``slurm``: a
    dask-jobqueue cluster sized by ``cores-per-worker``, ``mem-per-worker``, ... and scaled to
    ``scaleout`` jobs (or adaptive up to it). ``external``: connect to ``scheduler-address``.
    ``gateway``: a Dask Gateway cluster (needs ``dask-gateway``).
    """

    cluster: Any = None
    client: Any = None

    def setup(self) -> None:
        from distributed import Client

        options = self.run_options
        system = options.get("jobqueue-system") or "local"
        scaleout = _scaleout(options)
        if system == "external":
            address = options.get("scheduler-address")
            if not address:
                raise ExecutorError(
                    f"executor {getattr(options, 'executor', 'dask')!r}: jobqueue-system is 'external' but run option "
                    "scheduler-address is empty; set it (e.g. tcp://host:8786) in --custom-run-options"
                )
            self.client = Client(address)
            return
        if system == "local":
            from distributed import LocalCluster

            dashboard = options.get("dashboard-address") or "127.0.0.1:0"
            self.cluster = LocalCluster(
                n_workers=0 if options.get("adaptive") else scaleout,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=dashboard,
                memory_limit=options.get("mem-per-worker") or "auto",
                silence_logs=logging.WARNING,
            )
        elif system in ("htcondor", "slurm"):
            self.cluster = self._jobqueue_cluster(system)
        elif system == "gateway":
            self.cluster = self._gateway_cluster()
        else:
            raise ExecutorError(
                f"run option jobqueue-system = {system!r} is not supported by the dask executor; "
                "accepted: local, htcondor, slurm, gateway, external"
            )
        if options.get("adaptive"):
            self.cluster.adapt(minimum=1, maximum=scaleout)
        elif system != "local":
            self.cluster.scale(scaleout)
        self.client = Client(self.cluster)
        log.info("Dask cluster %s started; dashboard: %s", type(self.cluster).__name__, self.client.dashboard_link)

    def _jobqueue_cluster(self, system: str):
        import dask_jobqueue

        options = self.run_options
        kwargs: dict[str, Any] = {
            "cores": int(options.get("cores-per-worker") or 1),
            "memory": options.get("mem-per-worker") or "2GB",
            "job_script_prologue": _env_setup_commands(options),
        }
        if options.get("death-timeout"):
            kwargs["death_timeout"] = int(options["death-timeout"])
        if options.get("worker-extra-args"):
            kwargs["worker_extra_args"] = list(options["worker-extra-args"])
        scheduler_options: dict[str, Any] = {}
        if options.get("scheduler-port"):
            scheduler_options["port"] = int(options["scheduler-port"])
        if options.get("dashboard-address"):
            scheduler_options["dashboard_address"] = options["dashboard-address"]
        if scheduler_options:
            kwargs["scheduler_options"] = scheduler_options
        if self.outputdir is not None:
            kwargs["log_directory"] = str(self.outputdir / "dask_logs")
        directives = options.get("job-extra-directives") or {}
        if system == "htcondor":
            directives = dict(directives) if isinstance(directives, Mapping) else {}
            if options.get("queue"):
                directives.setdefault("+JobFlavour", f'"{options["queue"]}"')
            if options.get("worker-image"):
                directives.setdefault("MY.SingularityImage", f'"{options["worker-image"]}"')
            if options.get("walltime"):
                directives.setdefault("+MaxRuntime", str(_seconds(options["walltime"])))
            if options.get("disk-per-worker"):
                kwargs["disk"] = options["disk-per-worker"]
            else:
                kwargs["disk"] = "1GB"
            kwargs["job_extra_directives"] = directives
            return dask_jobqueue.HTCondorCluster(**kwargs)
        if isinstance(directives, Mapping):
            directives = [f"--{key}={value}" for key, value in directives.items()]
        kwargs["job_extra_directives"] = list(directives)
        for option, argument in (("queue", "queue"), ("walltime", "walltime"), ("account", "account")):
            if options.get(option):
                kwargs[argument] = options[option]
        return dask_jobqueue.SLURMCluster(**kwargs)

    def _gateway_cluster(self):
        try:
            from dask_gateway import Gateway
        except ImportError:
            raise ExecutorError(
                "jobqueue-system 'gateway' needs the dask-gateway package, which is not installed"
            ) from None
        options = self.run_options
        gateway = Gateway(address=options.get("gateway-address"), proxy_address=options.get("gateway-proxy-address"))
        return gateway.new_cluster()

    def customized_args(self) -> dict[str, Any]:
        args = super().customized_args()
        args["client"] = self.client
        if self.run_options.get("tree-reduction"):
            args["treereduction"] = int(self.run_options["tree-reduction"])
        return args

    def get(self):
        return processor.DaskExecutor(**self.customized_args())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def _seconds(walltime: str | int) -> int:
    if isinstance(walltime, int):
        return walltime
    parts = [int(p) for p in str(walltime).split(":")]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


class ParslExecutorFactory(ExecutorFactoryABC):
    """Parsl's HighThroughputExecutor: local processes, or HTCondor/SLURM blocks per ``jobqueue-system``."""

    dfk: Any = None

    def setup(self) -> None:
        try:
            import parsl
            from parsl.config import Config
            from parsl.executors import HighThroughputExecutor
        except ImportError:
            raise ExecutorError(
                "the parsl executor needs the parsl package, which is not installed; "
                "install it with `pip install 'pc-run[parsl]'`"
            ) from None
        options = self.run_options
        system = options.get("jobqueue-system") or "local"
        scaleout = _scaleout(options)
        worker_init = "; ".join(_env_setup_commands(options))
        if system == "local":
            from parsl.providers import LocalProvider

            provider = LocalProvider(init_blocks=1, max_blocks=1, worker_init=worker_init)
            workers = scaleout
        elif system == "htcondor":
            from parsl.providers import CondorProvider

            provider = CondorProvider(
                nodes_per_block=1, init_blocks=scaleout, max_blocks=scaleout, worker_init=worker_init,
                walltime=options.get("walltime") or "01:00:00",
            )
            workers = int(options.get("cores-per-worker") or 1)
        elif system == "slurm":
            from parsl.providers import SlurmProvider

            provider = SlurmProvider(
                partition=options.get("queue") or "", account=options.get("account"), nodes_per_block=1,
                init_blocks=scaleout, max_blocks=scaleout, worker_init=worker_init,
                walltime=options.get("walltime") or "01:00:00",
            )
            workers = int(options.get("cores-per-worker") or 1)
        else:
            raise ExecutorError(
                f"run option jobqueue-system = {system!r} is not supported by the parsl executor; "
                "accepted: local, htcondor, slurm"
            )
        run_dir = None
        if self.outputdir is not None:
            run_dir = str(self.outputdir / (options.get("logs-dir") or "logs_parsl"))
        config = Config(
            executors=[HighThroughputExecutor(label="coffea_parsl", max_workers_per_node=workers, provider=provider)],
            retries=int(options.get("retries") or 0),
            **({"run_dir": run_dir} if run_dir else {}),
        )
        self.dfk = parsl.load(config)

    def get(self):
        return processor.ParslExecutor(**self.customized_args())

    def close(self) -> None:
        if self.dfk is not None:
            import parsl

            self.dfk.cleanup()
            parsl.clear()
            self.dfk = None
