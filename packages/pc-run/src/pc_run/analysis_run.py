"""What ``pocket-coffea run`` does, without the command-line parsing.

Load the configuration, narrow the fileset (filters, file limit), take the output folder
(``output_folder``: one run at a time, never two runs' files, resume what was checkpointed),
save the configuration, build the executor, then process the whole fileset at once or group
by group (``--process-separately``), save each output atomically, record failures in
``failed_jobs.json`` and write the processing report. SIGTERM and Ctrl-C stop the run
cleanly: workers end, the finished chunks stay checkpointed, the report is written.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from pc_core.atomic import atomic_write_text
from pc_core.config_loading import load_configurator
from pc_core.config_summary import plain
from pc_core.configurator import Configurator
from pc_core.errors import PocketCoffeaError, RunInterrupted, RunOptionsError
from pc_core.executors import ManualJobFactory, get_executor_factory, load_factory_class
from pc_core.fileset import limit_files
from pc_core.output import save_output
from pc_core.run_options import RunOptions, chunksize_for_sample, parse_executor

from .output_folder import OutputFolder, OutputFolderError, digest
from .report import GroupOutcome, build_report, load_report, print_summary, save_report
from .chunk_work import INPUT_FILE
from .read_ahead import ReadAheadProcess
from .run_request import LOG_FILE, RunRequest, resolve_run_options
from .runner import RunResult, run_fileset

log = logging.getLogger(__name__)

FAILED_JOBS_FILE = "failed_jobs.json"
RUN_OPTIONS_FILE = "run_options.yaml"
ALL_GROUP = "all"


class RunFailedError(PocketCoffeaError):
    """Some datasets/groups failed (their names are in failed_jobs.json)."""


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
            "(it is written by a previous run when some dataset/group failed)"
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


def append_traceback(logfile: Path, title: str, text: str | None = None) -> None:
    """Add a traceback (the current exception's unless ``text``) to the run's log file; the
    console stays short."""
    try:
        with open(logfile, "a", encoding="utf-8") as stream:
            stream.write(f"--- {title}\n{text or traceback.format_exc()}\n")
    except OSError:
        pass


def output_name(group: str) -> str:
    return f"output_{group}.coffea"


def _is_manual_job_executor(executor: str, custom_setup) -> bool:
    """Manual-job executors (``condor@site``, pc-jobs) write and submit jobs instead of processing."""
    if custom_setup is not None:
        return False
    try:
        factory_class = load_factory_class(parse_executor(executor)[0])
    except PocketCoffeaError:
        return False  # get_executor_factory names the problem
    return issubclass(factory_class, ManualJobFactory)


def _source_digest(path) -> str | None:
    try:
        return digest(Path(path).read_bytes())
    except (OSError, TypeError):
        return None


def configuration_fingerprint(cfg: Configurator, cfg_path) -> dict[str, str]:
    """Digests of what decides the content of the outputs, part by part (so a refusal can say
    which part changed): the configuration, its parameters, and the code of the config file,
    the workflow and the Python files next to the config file."""
    summary = cfg.summary()
    summary.pop("datasets", None)  # the fileset is part of each group's fingerprint
    parts = {"configuration": digest(summary), "parameters": digest(plain(cfg.parameters))}
    workflow_file = getattr(sys.modules.get(getattr(cfg.workflow, "__module__", "")), "__file__", None)
    if workflow_file:
        parts["workflow code"] = _source_digest(workflow_file) or ""
    if cfg_path is not None:
        # the config's own modules (cuts, workflow, ...) are its siblings; the loader takes them
        # out of sys.modules again, so they are read from the folder
        folder = Path(cfg_path).resolve().parent
        parts["config file"] = _source_digest(cfg_path) or ""
        parts["modules beside the config"] = digest({p.name: _source_digest(p) for p in sorted(folder.glob("*.py"))})
    return parts


def group_fingerprint(cfg: Configurator, datasets: list[str], run_options: RunOptions) -> str:
    fileset = {d: cfg.fileset[d] for d in datasets}
    return digest({
        "fileset": fileset,
        "chunksize": {d: chunksize_for_sample(run_options, cfg.fileset[d]["metadata"]["sample"]) for d in datasets},
        "limit-chunks": run_options.get("limit-chunks"),
    })


@contextmanager
def signals_stop_the_run():
    """SIGTERM and SIGINT (Ctrl-C) stop the run, once: raised as ``KeyboardInterrupt`` (which no
    ``except Exception`` of the user's code or ours swallows), the run stops its workers,
    checkpoints what finished, writes its report and ends here in ``RunInterrupted`` with
    exit code 128 + the signal. A second signal kills the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in caught}
    received: list[int] = []

    def interrupt(signum, frame):
        for other in caught:
            signal.signal(other, signal.SIG_DFL)
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in caught:
        signal.signal(signum, interrupt)
    try:
        yield
    except KeyboardInterrupt:
        signum = received[0] if received else signal.SIGINT
        raise RunInterrupted(f"stopped by {signal.Signals(signum).name}", exit_code=128 + signum) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_analysis(request: RunRequest, console: Console | None = None, *, run_options: RunOptions | None = None,
                 read_ahead: ReadAheadProcess | None = None) -> dict[str, Any]:
    """Run the analysis as the ``run`` command does; returns the processing report.

    ``run_options``: ``resolve_run_options(request)``, when the caller already has them.
    ``read_ahead``: a read-ahead helper the caller started early (``run_command``), used by
    this process's chunks; it ends with the run."""
    if read_ahead is None:
        return _run_analysis(request, console, run_options)
    INPUT_FILE.adopt_read_ahead(read_ahead)
    try:
        return _run_analysis(request, console, run_options)
    finally:
        INPUT_FILE.forget()


def _run_analysis(request: RunRequest, console: Console | None, run_options: RunOptions | None) -> dict[str, Any]:
    console = console or Console(width=None if Console().is_terminal else 160)
    outputdir = Path(request.outputdir).expanduser().absolute()
    run_options = run_options or resolve_run_options(request)
    executor = run_options.executor
    if isinstance(request.cfg, Configurator):
        cfg, cfg_path = (request.cfg if request.cfg.loaded else request.cfg.load()), None
    else:
        cfg, cfg_path = load_configurator(request.cfg), request.cfg
    if request.filter_years or request.filter_samples or request.filter_datasets:
        cfg = cfg.filter(years=request.filter_years, samples=request.filter_samples, datasets=request.filter_datasets)
    if run_options.get("limit-files") is not None:
        cfg = cfg.with_fileset(limit_files(cfg.fileset, run_options["limit-files"]))

    executor_options = {key: value for key, value in request.executor_options.items() if value not in (None, False)}
    if _is_manual_job_executor(executor, request.executor_custom_setup):
        # condor@site (pc-jobs) writes and submits jobs; their outputs are checked by merge-outputs
        outputdir.mkdir(parents=True, exist_ok=True)
        _save_run_description(cfg, outputdir, executor, run_options)
        factory = get_executor_factory(
            executor, run_options, outputdir=outputdir, custom_setup=request.executor_custom_setup, **executor_options
        )
        try:
            factory.submit(cfg)
        finally:
            factory.close()
        return {"executor": executor, "submitted": True}
    if executor_options:
        given = ", ".join("--" + key.replace("_", "-") for key in executor_options)
        raise PocketCoffeaError(
            f"{given}: only the manual-job executors (condor, condor@site) accept these options, "
            f"not executor {executor!r}"
        )

    groups = build_groups(cfg.fileset, request.process_separately, run_options.get("group-samples"))
    folder = OutputFolder(outputdir)
    with folder:
        return _run_groups(request, cfg, cfg_path, groups, run_options, folder, console)


def _save_run_description(cfg: Configurator, outputdir: Path, executor: str, run_options: RunOptions) -> None:
    cfg.save_config(outputdir)
    atomic_write_text(
        outputdir / RUN_OPTIONS_FILE, yaml.safe_dump({"executor": executor, **run_options.to_dict()}, sort_keys=False)
    )
    log.info("Run options of %s: %s", executor, run_options.to_dict())


def _run_groups(request, cfg, cfg_path, groups, run_options, folder: OutputFolder, console) -> dict[str, Any]:
    outputdir = folder.path
    executor = run_options.executor
    if request.resubmit_failed:
        failed_before = read_failed_jobs(outputdir)
        unknown = [name for name in failed_before if name not in groups]
        if unknown:
            log.warning("failed jobs %s are not datasets/groups of this run (filters?); not resubmitted", unknown)
        groups = {name: datasets for name, datasets in groups.items() if name in failed_before}
        if not groups:
            hint = ("; they were written by a run with --process-separately (-ps): add -ps"
                    if not request.process_separately and ALL_GROUP not in failed_before else "")
            raise PocketCoffeaError(
                f"--resubmit-failed: none of the failed jobs {failed_before} in {outputdir / FAILED_JOBS_FILE} "
                f"is a dataset/group of this run (available: {sorted(build_groups(cfg.fileset, request.process_separately, run_options.get('group-samples')))}){hint}"
            )
        log.info("Resubmitting %d failed jobs: %s", len(groups), list(groups))
    fingerprints = {name: group_fingerprint(cfg, datasets, run_options) for name, datasets in groups.items()}
    state, plans = folder.plan(configuration_fingerprint(cfg, cfg_path), fingerprints, request.overwrite)
    folder.check_writable()
    _save_run_description(cfg, outputdir, executor, run_options)
    previous_report = load_report(outputdir)
    todo = [plan for plan in plans if plan.action != "done"]
    if not todo:
        console.print(f"Nothing to do: every output in [bold]{outputdir}[/bold] is complete "
                      "(rerun with --overwrite to process again)")
        return previous_report or {}
    for plan in plans:
        if plan.action == "done":
            log.info("%s: its output is complete, not processed again", plan.name)

    factory = get_executor_factory(executor, run_options, outputdir=outputdir, custom_setup=request.executor_custom_setup)
    outcomes: list[GroupOutcome] = []
    stop: BaseException | None = None
    try:
        with signals_stop_the_run():
            for plan in todo:
                name, datasets = plan.name, groups[plan.name]
                target = outputdir / output_name(name)
                group_cfg = cfg if name == ALL_GROUP else cfg.with_fileset({d: cfg.fileset[d] for d in datasets})
                checkpoints = folder.checkpoints(name, plan.fingerprint)
                state["groups"][name] = {"fingerprint": plan.fingerprint, "status": "running", "output": str(target)}
                folder.save_state(state)
                title = f"[bold]{name}[/bold]: {len(datasets)} dataset(s)" if request.process_separately else "Processing"
                console.rule(title + (" (resuming)" if plan.action == "resume" else ""))
                try:
                    result = run_fileset(group_cfg, group_cfg.fileset, factory.get(), run_options, checkpoints=checkpoints)
                    _save_group_output(result, target, checkpoints)
                except (KeyboardInterrupt, OutputFolderError):
                    state["groups"][name]["status"] = "interrupted"
                    raise
                except Exception as exc:  # noqa: BLE001 - with -ps one failure must not stop the others
                    state["groups"][name]["status"] = "failed"
                    failure = getattr(exc, "failure", None)
                    append_traceback(outputdir / LOG_FILE, f"traceback of {name!r}", getattr(failure, "traceback", None))
                    if not isinstance(exc, PocketCoffeaError):
                        exc = PocketCoffeaError(f"{type(exc).__name__}: {exc}")
                    log.error("%s failed: %s", name, exc)
                    outcomes.append(GroupOutcome(name, datasets, "failed", error=str(exc)))
                    if not request.process_separately:
                        stop, kept = exc, checkpoints.exists()
                        break
                    continue
                finally:
                    folder.save_state(state)
                state["groups"][name]["status"] = "done"
                folder.save_state(state)
                log.info("Saved %s", target)
                outcomes.append(GroupOutcome(name, datasets, "done", output_file=str(target), result=result))
    except RunInterrupted as exc:
        stop = exc
        outcomes += [GroupOutcome(p.name, groups[p.name], "interrupted", error=str(exc)) for p in todo
                     if p.name not in {o.name for o in outcomes}][:1]
    finally:
        factory.close()

    report = build_report(outcomes, cfg.fileset, executor, previous=previous_report)
    report_path = save_report(report, outputdir)
    print_summary(report, console)
    console.print(f"Outputs in [bold]{outputdir}[/bold]; report: {report_path.name}; log: {LOG_FILE}")
    failed = [o.name for o in outcomes if o.status == "failed"]
    # earlier failures of groups this run did not touch stay listed
    earlier = read_failed_jobs(outputdir) if (outputdir / FAILED_JOBS_FILE).exists() else []
    write_failed_jobs(outputdir, failed + [n for n in earlier if n not in groups and n not in failed])
    if isinstance(stop, RunInterrupted):
        raise RunInterrupted(
            f"run {stop}: the finished chunks are checkpointed in {folder.state_dir / 'checkpoints'}; "
            "rerun the same command to process only what is missing", exit_code=stop.exit_code,
        )
    if stop is not None:
        raise RunFailedError(
            f"{stop}. " + ("The finished chunks are checkpointed; " if kept else "")
            + f"fix the cause (traceback in {outputdir / LOG_FILE}) and rerun the same command to finish the run"
        )
    if failed:
        message = f"{len(failed)} job(s) failed. Failed jobs saved to {outputdir / FAILED_JOBS_FILE}"
        log.warning(message)
        raise RunFailedError(
            f"{message}: {failed}. Fix the cause (see {outputdir / LOG_FILE}) and rerun with "
            "--process-separately --resubmit-failed (or the same command)"
        )
    return report


def _save_group_output(result: RunResult, target: Path, checkpoints) -> None:
    """Write the group's output; if that fails (a full disk), the checkpoint keeps the result."""
    try:
        save_output(result.output, target)
    except OSError as exc:
        raise OutputFolderError(
            f"could not write {target}: {exc.strerror or exc}. Every processed chunk is kept in {checkpoints.path}: "
            "free some space and rerun the same command to write the output without processing again"
        ) from None
    checkpoints.clear()


__all__ = ["RunRequest", "RunFailedError", "build_groups", "run_analysis", "resolve_run_options", "RunOptionsError"]
