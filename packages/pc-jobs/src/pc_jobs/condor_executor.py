"""The HTCondor manual-job executor (``condor``, ``condor@lxplus``, ``condor@rubin``, ...).

One generic factory; a site is a ``condor@site`` section of the packaged run-options
defaults (queue, image, memory, retries, extra directives). ``pocket-coffea run`` hands
the loaded configurator to ``submit(cfg)``, which splits the fileset into jobs
(``pc_core.splitting``), writes the jobs folder (``jobs_dir``) and submits ``jobs_all.sub``
through the ``htcondor2`` bindings, unless ``dry-run: true``. With ``--recreate-jobs`` it
resubmits jobs of an existing folder instead (``recreate``).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle
from pc_core.errors import ExecutorError
from pc_core.executors import ManualJobFactory, find_grid_proxy
from pc_core.splitting import Job, resolve_job_chunksize, split_fileset
from rich.console import Console
from rich.table import Table

from .job_script import JobEnvironment, render_job_script
from .job_config import dump_job_data, job_data
from .jobs_dir import JobsDir, JobsDirError, write_job_file
from .submission import Submitted, submit_file
from .submit_file import (
    SubmitSpec,
    quote_value,
    render_all,
    render_job,
    size_in_mb,
    warn_unknown_flavour,
)

log = logging.getLogger(__name__)

RECREATE_OPTIONS = ("recreate_jobs", "recreate_queue", "blocklist_sites", "use_redirector")


def jobs_dir_of(run_options: Mapping[str, Any], outputdir: Path) -> JobsDir:
    """``<jobs-dir or outputdir>/<job-name>``."""
    root = Path(run_options.get("jobs-dir") or outputdir).expanduser().absolute()
    return JobsDir(root / (run_options.get("job-name") or "job"))


def output_target(run_options: Mapping[str, Any], outputdir: Path) -> str:
    """Where jobs copy their outputs: ``outputdir``, through ``eos-prefix`` (xrdcp) when it is on /eos."""
    prefix = run_options.get("eos-prefix")
    text = str(outputdir)
    if prefix and text.startswith("/eos/"):
        return prefix.rstrip("/") + "/" + text
    return text


def site_directives(run_options: Mapping[str, Any]) -> dict[str, str]:
    """Submit commands from the run options of the executor's section (the site as data)."""
    directives: dict[str, str] = {"request_cpus": str(int(run_options.get("cores-per-worker") or 1))}
    if run_options.get("mem-per-worker") is not None:
        directives["request_memory"] = str(size_in_mb(run_options["mem-per-worker"], "mem-per-worker"))
    if run_options.get("disk-per-worker") is not None:
        directives["request_disk"] = str(size_in_mb(run_options["disk-per-worker"], "disk-per-worker") * 1024)
    if run_options.get("queue"):
        warn_unknown_flavour(run_options["queue"], "run option queue")
        directives["+JobFlavour"] = quote_value(run_options["queue"])
    if run_options.get("worker-image"):
        directives["MY.SingularityImage"] = quote_value(run_options["worker-image"])
    if run_options.get("max-retries") is not None:
        directives["max_retries"] = str(run_options["max-retries"])
    if run_options.get("max-run-time") is not None:
        directives["+MaxRuntime"] = str(run_options["max-run-time"])
    if run_options.get("notify-user"):
        directives["notify_user"] = run_options["notify-user"]
        directives["notification"] = "Error"
    for key, value in (run_options.get("job-extra-directives") or {}).items():
        if key.startswith("+") or key.upper().startswith("MY."):
            directives[key] = quote_value(value)
        else:
            directives[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return directives


def submit_spec(run_options: Mapping[str, Any], jobs_dir: JobsDir, outputdir: Path, proxy: Path | None) -> SubmitSpec:
    return SubmitSpec(
        jobs_dir=jobs_dir.path,
        output_target=output_target(run_options, outputdir),
        directives=site_directives(run_options),
        extra_inputs=(str(proxy),) if proxy else (),
    )


JOBS_TABLE_ROWS = 40
"""Jobs listed one per row when preparing; more are summarised (10,000 rows help nobody)."""


def jobs_table(jobs: list[Job], chunksizes: list[int], max_rows: int = JOBS_TABLE_ROWS) -> Table:
    table = Table(title="Manual jobs")
    for name, justify in (("job", "right"), ("dataset", "left"), ("files", "right"), ("events", "right"),
                          ("chunksize", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    shown = len(jobs) if len(jobs) <= max_rows else max_rows // 2
    for job, chunksize in zip(jobs[:shown], chunksizes[:shown]):
        for n, (dataset, entry) in enumerate(job.fileset.items()):
            nevents = entry.get("metadata", {}).get("nevents")
            table.add_row(str(job.index) if n == 0 else "", dataset, str(len(entry["files"])),
                          f"{int(nevents):_}" if nevents is not None else "?", str(chunksize) if n == 0 else "")
    if shown < len(jobs):
        rest = jobs[shown:]
        datasets = {name for job in rest for name in job.fileset}
        table.add_row("...", f"{len(rest)} more jobs, {len(datasets)} datasets", str(sum(j.nfiles for j in rest)),
                      f"{sum(j.nevents for j in rest):_}", "")
    table.add_section()
    table.add_row("", f"{len(jobs)} jobs", str(sum(j.nfiles for j in jobs)), f"{sum(j.nevents for j in jobs):_}", "")
    return table


class CondorExecutorFactory(ManualJobFactory):
    """Writes and submits self-contained HTCondor jobs; coffea's Runner never sees an executor."""

    def setup(self) -> None:
        unknown = sorted(set(self.kwargs) - set(RECREATE_OPTIONS))
        if unknown:
            raise ExecutorError(f"condor executor: unexpected options {unknown}; accepted: {list(RECREATE_OPTIONS)}")
        if self.outputdir is None:
            raise ExecutorError("the condor executor needs an output directory (-o/--outputdir)")

    @property
    def jobs_dir(self) -> JobsDir:
        assert self.outputdir is not None
        return jobs_dir_of(self.run_options, self.outputdir)

    def submit(self, cfg: Any, console: Console | None = None) -> list[Submitted]:
        """Prepare the jobs folder for ``cfg`` and submit it; or recreate jobs (``--recreate-jobs``)."""
        if self.kwargs.get("recreate_jobs") is not None:
            from .recreate import RecreateRequest, recreate_jobs

            request = RecreateRequest(
                selection=str(self.kwargs["recreate_jobs"]),
                queue=self.kwargs.get("recreate_queue"),
                blocklist_sites=tuple(s.strip() for s in (self.kwargs.get("blocklist_sites") or "").split(",") if s.strip()),
                use_redirector=bool(self.kwargs.get("use_redirector")),
            )
            return recreate_jobs(self.jobs_dir, request, self.run_options, console=console).submitted
        given = [f"--{k.replace('_', '-')}" for k in RECREATE_OPTIONS[1:] if self.kwargs.get(k)]
        if given:
            raise ExecutorError(f"{', '.join(given)} only apply together with --recreate-jobs")
        return self.prepare_and_submit(cfg, console)

    def prepare_and_submit(self, cfg: Any, console: Console | None = None) -> list[Submitted]:
        console = console or Console(stderr=True)
        assert self.outputdir is not None
        run_options = self.run_options
        jobs_dir = self.jobs_dir
        if jobs_dir.jobs_config.exists():
            raise JobsDirError(
                f"{jobs_dir.path} already holds jobs ({jobs_dir.jobs_config.name}); resubmit them with "
                "--recreate-jobs, or choose another --outputdir / job-name / jobs-dir (nothing was overwritten)"
            )
        jobs = split_fileset(cfg.fileset, run_options.get("scaleout"), run_options.get("max-events-per-job"))
        chunksizes = [resolve_job_chunksize(job, run_options["chunksize"]) for job in jobs]
        proxy = find_grid_proxy(run_options)  # the same lookup as for dask/parsl workers
        spec = submit_spec(run_options, jobs_dir, self.outputdir, proxy)

        jobs_dir.logs.mkdir(parents=True, exist_ok=True)
        # ONE cloudpickle of the configurator; each job's config_job_{i}.pkl is plain data naming it
        write_job_file(jobs_dir.shared_configurator, cloudpickle.dumps(cfg))
        records: dict[int, dict[str, Any]] = {}
        for job, chunksize in zip(jobs, chunksizes):
            write_job_file(jobs_dir.config(job.index), dump_job_data(job_data(job.fileset, job.index)))
            write_job_file(jobs_dir.sub(job.index), render_job(spec, job.index, chunksize))
            records[job.index] = {
                "fileset": job.fileset,
                "config": jobs_dir.config(job.index).name,
                "output": str(self.outputdir / f"output_job_{job.index}.coffea"),
                "chunksize": chunksize,
            }
        environment = JobEnvironment.from_run_options(run_options, proxy.name if proxy else None)
        write_job_file(jobs_dir.script, render_job_script(environment, int(run_options.get("cores-per-worker") or 1)), 0o755)
        jobs_dir.write_inner_options(run_options)
        write_job_file(jobs_dir.all_sub, render_all(spec, chunksizes))
        jobs_dir.write_jobs_config(records, {
            "executor": getattr(run_options, "executor", "condor"),
            "outputdir": str(self.outputdir),
            "output_target": spec.output_target,
        })
        for job in jobs:
            jobs_dir.set_flag(job.index, "idle")
        console.print(jobs_table(jobs, chunksizes))

        if run_options.get("dry-run"):
            console.print(f"dry-run: {len(jobs)} jobs prepared in {jobs_dir.path}; submit with "
                          f"condor_submit {jobs_dir.all_sub}")
            return []
        submitted = submit_file(jobs_dir.all_sub, len(jobs))
        console.print(f"Submitted {len(jobs)} jobs (cluster {submitted.cluster}); jobs folder {jobs_dir.path}. "
                      f"Follow them with check-jobs -j {jobs_dir.path}, then merge-outputs -jc {jobs_dir.path}")
        return [submitted]
