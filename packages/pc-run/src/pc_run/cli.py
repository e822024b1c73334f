"""``pocket-coffea run``: the click command (options exactly as the user documentation lists them)."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import click

from pc_core.cli_support import imports_without_gc, loglevel_option, run_cli, setup_logging

from .output_folder import OutputFolderError
from .read_ahead import ReadAheadProcess, read_ahead_from
from .run_request import LOG_FILE, RunRequest, resolve_run_options

log = logging.getLogger(__name__)


def _quiet_known_warnings() -> None:
    """Warnings that say nothing to a user go to the log file only (captured as py.warnings)."""
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message=r".*Missing cross-reference.*")
    warnings.filterwarnings("ignore", message=r".*Found duplicate branch.*")
    warnings.filterwarnings("ignore", message=r".*already exists but its values will be replaced.*")


@click.command("run", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--cfg", required=True, type=click.Path(dir_okay=False),
              help="Config file (.py exposing `cfg`, or a pickled configurator .pkl)")
@click.option("-ro", "--custom-run-options", type=click.Path(dir_okay=False), default=None,
              help="User provided run options .yaml file")
@click.option("-o", "--outputdir", required=True, type=click.Path(file_okay=False), help="Output folder")
@click.option("-t", "--test", is_flag=True, default=False,
              help="Test run: 1 file per dataset, 2 chunks, iterative executor unless -e is given")
@click.option("-lf", "--limit-files", type=click.IntRange(min=1), default=None, help="Limit number of files")
@click.option("-lc", "--limit-chunks", type=click.IntRange(min=1), default=None, help="Limit number of chunks")
@click.option("-e", "--executor", default=None,
              help="Executor: iterative (default), futures, dask, dask@site, parsl@site, condor@site")
@click.option("-s", "--scaleout", type=click.IntRange(min=1), default=None, help="Overwrite scaleout config")
@click.option("-c", "--chunksize", type=click.IntRange(min=1), default=None, help="Overwrite chunksize config")
@click.option("-q", "--queue", default=None, help="Overwrite queue config")
@loglevel_option()
@click.option("-ps", "--process-separately", is_flag=True, default=False, help="Process each dataset separately")
@click.option("--filter-years", default=None,
              help="Filter the data taking period of the datasets to be processed (comma separated list)")
@click.option("--filter-samples", default=None, help="Filter the samples to be processed (comma separated list)")
@click.option("--filter-datasets", default=None, help="Filter the datasets to be processed (comma separated list)")
@click.option("--resubmit-failed", is_flag=True, default=False,
              help="Resubmit only failed jobs from previous run (requires failed_jobs.json)")
@click.option("--overwrite", is_flag=True, default=False,
              help="Replace the results of an earlier run in the output folder (default: resume it, or refuse "
                   "if it was another configuration)")
@click.option("--executor-custom-setup", type=click.Path(dir_okay=False), default=None,
              help="Python module to be loaded as custom executor setup")
@click.option("--skip-bad-files/--no-skip-bad-files", default=None,
              help="Skip (and report) unreadable input files instead of failing; default from the run options")
@click.option("--recreate-jobs", default=None,
              help="Manual-job executors: resubmit jobs of the jobs folder, 'auto' (failed/idle/running) or e.g. 0,1,3")
@click.option("--recreate-queue", default=None, help="With --recreate-jobs: HTCondor JobFlavour of the resubmitted jobs")
@click.option("--blocklist-sites", default=None,
              help="With --recreate-jobs: move files served by these sites (comma separated) to other replicas")
@click.option("--use-redirector", is_flag=True, default=False,
              help="With --recreate-jobs: read every file through the global xrootd redirector")
def run_command(
    cfg, custom_run_options, outputdir, test, limit_files, limit_chunks, executor, scaleout, chunksize, queue,
    loglevel, process_separately, filter_years, filter_samples, filter_datasets, resubmit_failed, overwrite,
    executor_custom_setup, skip_bad_files, recreate_jobs, recreate_queue, blocklist_sites, use_redirector,
):
    """Run an analysis on NanoAOD files using PocketCoffea processors"""
    outdir = Path(outputdir).expanduser()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        setup_logging(loglevel, outdir / LOG_FILE)
    except OSError as exc:
        raise OutputFolderError(f"output folder {outdir.absolute()} is not writable: {exc.strerror or exc}") from None
    _quiet_known_warnings()
    request = RunRequest(
        cfg=cfg,
        outputdir=outdir,
        executor=executor,
        custom_run_options=custom_run_options,
        test=test,
        limit_files=limit_files,
        limit_chunks=limit_chunks,
        scaleout=scaleout,
        chunksize=chunksize,
        queue=queue,
        skip_bad_files=skip_bad_files,
        process_separately=process_separately,
        filter_years=filter_years,
        filter_samples=filter_samples,
        filter_datasets=filter_datasets,
        resubmit_failed=resubmit_failed,
        overwrite=overwrite,
        executor_custom_setup=executor_custom_setup,
        executor_options={
            "recreate_jobs": recreate_jobs,
            "recreate_queue": recreate_queue,
            "blocklist_sites": blocklist_sites,
            "use_redirector": use_redirector,
        },
    )
    try:
        run_options = resolve_run_options(request)
        read_ahead = None
        if (run_options.executor == "iterative" and not executor_custom_setup
                and read_ahead_from(run_options.get("pipelined-reading"), 1) is not None):
            read_ahead = ReadAheadProcess()
            read_ahead.start()  # its imports overlap this process's (coffea, the configuration)
        with imports_without_gc():  # coffea, awkward: imported once the helper is on its way
            from .analysis_run import run_analysis

        run_analysis(request, run_options=run_options, read_ahead=read_ahead)
    except Exception:
        from .analysis_run import append_traceback

        # the log file keeps the whole traceback, also for errors the console shows in one line
        append_traceback(outdir / LOG_FILE, "run failed")
        raise


def main() -> None:
    """Console-script entry point (``pocket-coffea-run``)."""
    run_cli(run_command, prog_name="pocket-coffea run")
