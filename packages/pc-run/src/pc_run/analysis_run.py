"""What ``pocket-coffea run`` does, without the command-line parsing.

Load the configuration, narrow the fileset (filters, file limit), save the configuration,
build the executor, then process the whole fileset at once or group by group
(``--process-separately``), save each output atomically, record failures in
``failed_jobs.json`` and write the processing report.
"""
from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from pc_core.atomic import atomic_write_text
from pc_core.configurator import Configurator
from pc_core.config_loading import load_configurator
from pc_core.errors import PocketCoffeaError, RunOptionsError
from pc_core.executors import get_executor_factory
from pc_core.fileset import limit_files
from pc_core.output import save_output
from pc_core.run_options import RunOptions, load_run_options

from .report import GroupOutcome, build_report, load_report, print_summary, save_report
from .runner import run_fileset

log = logging.getLogger(__name__)

FAILED_JOBS_FILE = "failed_jobs.json"
RUN_OPTIONS_FILE = "run_options.yaml"
LOG_FILE = "run.log"
ALL_GROUP = "all"
TEST_LIMIT_FILES = 1
TEST_LIMIT_CHUNKS = 2


class RunFailedError(PocketCoffeaError):
    """Some datasets/groups failed (their names are in failed_jobs.json)."""


@dataclass
class RunRequest:
    """Everything the run command was asked to do (CLI options, already parsed)."""

    cfg: str | os.PathLike | Configurator
    outputdir: str | os.PathLike
    executor: str | None = None
    custom_run_options: str | os.PathLike | Mapping[str, Any] | None = None
    test: bool = False
    limit_files: int | None = None
    limit_chunks: int | None = None
    scaleout: int | None = None
    chunksize: int | None = None
    queue: str | None = None
    skip_bad_files: bool | None = None
    process_separately: bool = False
    filter_years: str | None = None
    filter_samples: str | None = None
    filter_datasets: str | None = None
    resubmit_failed: bool = False
    executor_custom_setup: str | None = None
    extra_overrides: dict[str, Any] = field(default_factory=dict)
    # handed to the executor factory as keyword arguments (e.g. recreate_jobs for condor);
    # only manual-job executors (factories with submit(cfg)) accept any
    executor_options: dict[str, Any] = field(default_factory=dict)


def resolve_run_options(request: RunRequest) -> RunOptions:
    """Packaged defaults -> executor section -> custom YAML -> CLI flags (and --test limits)."""
    executor = request.executor or "iterative"
    overrides: dict[str, Any] = {
        "scaleout": request.scaleout,
        "chunksize": request.chunksize,
        "queue": request.queue,
        "limit-files": request.limit_files,
        "limit-chunks": request.limit_chunks,
        "skip-bad-files": request.skip_bad_files,
        **request.extra_overrides,
    }
    if request.test:
        if overrides["limit-files"] is None:
            overrides["limit-files"] = TEST_LIMIT_FILES
        if overrides["limit-chunks"] is None:
            overrides["limit-chunks"] = TEST_LIMIT_CHUNKS
    return load_run_options(executor, custom_options=request.custom_run_options, cli_overrides=overrides)


def build_groups(
    fileset: Mapping[str, Any], process_separately: bool, group_samples: Mapping[str, list[str]] | None
) -> dict[str, list[str]]:
    """``{group name: [datasets]}``: one group ``all``; or one per dataset; or per ``group-samples`` group.

    With ``group-samples``, datasets whose sample is in no group are processed on their own
    (named after the dataset) rather than dropped, with a warning.
    """
    if not process_separately:
        return {ALL_GROUP: list(fileset)}
    if not group_samples:
        return {dataset: [dataset] for dataset in fileset}
    groups: dict[str, list[str]] = {}
    grouped: set[str] = set()
    for group, samples in group_samples.items():
        members = [d for d, entry in fileset.items() if entry["metadata"]["sample"] in samples]
        if not members:
            log.info("group-samples group %r has no dataset in the fileset; skipped", group)
            continue
        groups[str(group)] = members
        grouped.update(members)
    for dataset in fileset:
        if dataset not in grouped:
            log.warning("dataset %r (sample %r) is in no group-samples group; processed on its own",
                        dataset, fileset[dataset]["metadata"]["sample"])
            groups[dataset] = [dataset]
    return groups


def read_failed_jobs(outputdir: Path) -> list[str]:
    path = outputdir / FAILED_JOBS_FILE
    if not path.exists():
        raise PocketCoffeaError(
            f"--resubmit-failed: {path} does not exist, so there is nothing to resubmit "
            "(it is written by a previous run with --process-separately when some job failed)"
        )
    try:
        names = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PocketCoffeaError(f"--resubmit-failed: {path} is not a JSON list of job names: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PocketCoffeaError(f"--resubmit-failed: {path} must hold a JSON list of dataset/group names, got {names!r}")
    return names


def write_failed_jobs(outputdir: Path, failed: list[str]) -> Path | None:
    path = outputdir / FAILED_JOBS_FILE
    if failed:
        atomic_write_text(path, json.dumps(failed, indent=2) + "\n")
        return path
    if path.exists():
        path.unlink()
    return None


def append_traceback(logfile: Path, title: str) -> None:
    """Add the current exception's traceback to the run's log file (the console stays short)."""
    try:
        with open(logfile, "a", encoding="utf-8") as stream:
            stream.write(f"--- {title}\n{traceback.format_exc()}\n")
    except OSError:
        pass


def output_name(group: str) -> str:
    return f"output_{group}.coffea"


def run_analysis(request: RunRequest, console: Console | None = None) -> dict[str, Any]:
    """Run the analysis as the ``run`` command does; returns the processing report."""
    console = console or Console(width=None if Console().is_terminal else 160)
    outputdir = Path(request.outputdir).expanduser().absolute()
    if request.resubmit_failed and not request.process_separately:
        raise PocketCoffeaError(
            "--resubmit-failed requires --process-separately (-ps): failures are tracked per dataset/group "
            "only when datasets are processed separately"
        )
    failed_before = read_failed_jobs(outputdir) if request.resubmit_failed else None

    run_options = resolve_run_options(request)
    executor = run_options.executor
    if isinstance(request.cfg, Configurator):
        cfg = request.cfg if request.cfg.loaded else request.cfg.load()
    else:
        cfg = load_configurator(request.cfg)
    if request.filter_years or request.filter_samples or request.filter_datasets:
        cfg = cfg.filter(years=request.filter_years, samples=request.filter_samples, datasets=request.filter_datasets)
    if run_options.get("limit-files") is not None:
        cfg = cfg.with_fileset(limit_files(cfg.fileset, run_options["limit-files"]))

    outputdir.mkdir(parents=True, exist_ok=True)
    cfg.save_config(outputdir)
    atomic_write_text(
        outputdir / RUN_OPTIONS_FILE, yaml.safe_dump({"executor": executor, **run_options.to_dict()}, sort_keys=False)
    )
    log.info("Run options of %s: %s", executor, run_options.to_dict())

    groups = build_groups(cfg.fileset, request.process_separately, run_options.get("group-samples"))
    previous_report = None
    not_attempted: list[str] = []
    if failed_before is not None:
        unknown = [name for name in failed_before if name not in groups]
        if unknown:
            log.warning("failed jobs %s are not datasets/groups of this run (filters?); not resubmitted", unknown)
            not_attempted = unknown
        groups = {name: datasets for name, datasets in groups.items() if name in failed_before}
        if not groups:
            raise PocketCoffeaError(
                f"--resubmit-failed: none of the failed jobs {failed_before} in {outputdir / FAILED_JOBS_FILE} "
                f"is a dataset/group of this run (available: {sorted(build_groups(cfg.fileset, True, run_options.get('group-samples')))})"
            )
        log.info("Resubmitting %d failed jobs: %s", len(groups), list(groups))
        previous_report = load_report(outputdir)

    executor_options = {key: value for key, value in request.executor_options.items() if value not in (None, False)}
    factory = get_executor_factory(
        executor, run_options, outputdir=outputdir, custom_setup=request.executor_custom_setup, **executor_options
    )
    outcomes: list[GroupOutcome] = []
    try:
        submit = getattr(factory, "submit", None)
        if executor_options and not callable(submit):
            given = ", ".join("--" + key.replace("_", "-") for key in executor_options)
            raise PocketCoffeaError(
                f"{given}: only the manual-job executors (condor, condor@site) accept these options, "
                f"not executor {executor!r}"
            )
        if callable(submit):
            # manual-job executors (condor@site, from pc-jobs) take over: they write and submit jobs
            submit(cfg)
            return {"executor": executor, "submitted": True}
        for name, datasets in groups.items():
            target = outputdir / output_name(name)
            group_cfg = cfg if name == ALL_GROUP else cfg.with_fileset({d: cfg.fileset[d] for d in datasets})
            console.rule(f"[bold]{name}[/bold]: {len(datasets)} dataset(s)" if request.process_separately else "Processing")
            try:
                result = run_fileset(group_cfg, group_cfg.fileset, factory.get(), run_options)
                save_output(result.output, target)
            except Exception as exc:  # noqa: BLE001 - with -ps one failure must not stop the others
                if not request.process_separately:
                    raise
                log.error("Job %r failed: %s: %s", name, type(exc).__name__, exc)
                append_traceback(outputdir / LOG_FILE, f"traceback of job {name!r}")
                outcomes.append(GroupOutcome(name, datasets, "failed", error=f"{type(exc).__name__}: {exc}"))
                continue
            log.info("Saved %s", target)
            outcomes.append(GroupOutcome(name, datasets, "done", output_file=str(target), result=result))
    finally:
        factory.close()

    report = build_report(outcomes, cfg.fileset, executor, previous=previous_report)
    report_path = save_report(report, outputdir)
    print_summary(report, console)
    console.print(f"Outputs in [bold]{outputdir}[/bold]; report: {report_path.name}; log: {LOG_FILE}")
    if request.process_separately:
        failed = [o.name for o in outcomes if o.status == "failed"] + not_attempted
        path = write_failed_jobs(outputdir, failed)
        if failed:
            message = f"{len(failed)} job(s) failed. Failed jobs saved to {path}"
            log.warning(message)
            raise RunFailedError(
                f"{message}: {failed}. Fix the cause (see {outputdir / LOG_FILE}) and rerun with "
                "--process-separately --resubmit-failed"
            )
    return report


__all__ = ["RunRequest", "RunFailedError", "build_groups", "run_analysis", "resolve_run_options", "RunOptionsError"]
