"""The SLURM site presets on the real one-node SLURM cluster of services/start_slurm.sh.

- ``dask@T3_CH_PSI`` (dask-jobqueue ``SLURMCluster``) runs the whole test analysis on 2
  worker jobs in partition ``standard``: output equal to ``iterative`` bin for bin;
- ``dask@CLAIX``, ``dask@brux``, ``dask@oscar`` and ``parsl@CLAIX`` (parsl ``SlurmProvider``)
  run one dataset on 1 worker job each, in the partition their preset names (brux names
  none: the cluster's default), equal to ``iterative`` on the same dataset;
- worker jobs that can never start (a DOWN partition) stop the run within ``worker-timeout``
  with each job's SLURM state and reason (``squeue``), and are cancelled.

After every run no job of ours is pending or running (``squeue`` is empty in CI), and the jobs ran
in the expected partition (slurmctld's log says where it allocated each job id).

The code path is the preset's; the test layers only what the real site has and this machine
has not (a ``-ro`` YAML over the preset):
  - ``scheduler-host: 127.0.0.1``: the test cluster is loopback only (the sites let the
    scheduler listen on the node's address);
  - ``scaleout`` 2 (the full run) or 1 (the others) instead of 10-336 workers;
  - ``worker-timeout: 60``: fail fast instead of waiting 5 minutes;
  - ``conda-env: false`` + ``local-virtualenv: true`` for the presets with ``conda-env: true``
    (CLAIX, brux, oscar): CI runs in a virtualenv, not in a conda environment.
Everything else (partition, memory 2-7.5 GB, walltime, cores) is the preset's: the test node
claims 8 cores and 32 GB (start_slurm.sh) so that the presets' requests fit on a 2-core machine.

Jobs run on this host as the submitting user (root in CI), so paths are shared as on a real
SLURM site's shared file system.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from condor_testlib import TT, assert_outputs_equal, invoke_run, make_analysis, standard_fileset

pytestmark = pytest.mark.integration

SKIP = ("processing_metadata",)  # the run's own bookkeeping differs between executors

# preset -> (partition its jobs must run in, local override beyond the common one)
PRESETS = {
    "dask@T3_CH_PSI": ("standard", ""),
    "dask@CLAIX": ("c23ms", "conda-env: false\nlocal-virtualenv: true\n"),
    "dask@brux": ("standard", "conda-env: false\nlocal-virtualenv: true\n"),  # no queue: the default partition
    "dask@oscar": ("batch", "conda-env: false\nlocal-virtualenv: true\n"),
    "parsl@CLAIX": ("c23ms", "conda-env: false\nlocal-virtualenv: true\n"),
}
COMMON_OVERRIDE = "scheduler-host: 127.0.0.1\nworker-timeout: 60\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-sites")


@pytest.fixture(scope="module")
def analysis(workdir, nanoaod_dir) -> Path:
    return make_analysis(workdir / "analysis", standard_fileset(nanoaod_dir))


def _iterative(analysis: Path, outdir: Path, *extra: str):
    from pc_core.output import load_output

    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "iterative", "-ll", "WARNING", *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return load_output(outdir / "output_all.coffea")


@pytest.fixture(scope="module")
def reference(analysis, workdir):
    return _iterative(analysis, workdir / "reference")


@pytest.fixture(scope="module")
def reference_tt(analysis, workdir):
    return _iterative(analysis, workdir / "reference_tt", "--filter-datasets", TT)


def _squeue_all() -> list[str]:
    """Every job slurmctld has pending, running or completing (squeue's default states)."""
    res = subprocess.run(["squeue", "-h", "-o", "%i %T %r %P"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


@pytest.fixture()
def empty_queue(slurm_cluster):
    """Nothing left in ``squeue`` after the test: in CI the cluster is ours and the queue is
    empty; a developer's machine may run other jobs, which are left out of the check."""
    before = {line.split()[0] for line in _squeue_all()}
    yield slurm_cluster
    assert [line for line in _squeue_all() if line.split()[0] not in before] == []


def _job_ids(outdir: Path) -> set[str]:
    """The SLURM job ids of a run: dask-jobqueue names its logs dask-worker-<id>.err; parsl logs
    'Launched block N ... with job ID <id>'."""
    ids = {m for p in (outdir / "dask_logs").glob("*.err") for m in re.findall(r"-(\d+)\.err$", p.name)} \
        if (outdir / "dask_logs").is_dir() else set()
    for log in outdir.glob("logs_parsl/*/parsl.log"):
        ids |= set(re.findall(r"Launched block \d+ with job ID (\d+)", log.read_text()))
    return ids


def _partitions(slurm_cluster: dict, job_ids: set[str]) -> dict[str, str]:
    """{job id: partition} from slurmctld's log (the controller's own record of the allocation)."""
    text = (Path(slurm_cluster["logs"]) / "slurmctld.log").read_text(errors="replace")
    found = {}
    for job, partition in re.findall(r"Allocate JobId=(\d+) .*Partition=(\S+)", text):
        found[job] = partition
    for job, partition in re.findall(r"Started JobId=(\d+) in (\S+) on", text):
        found[job] = partition
    return {job: found.get(job, "?") for job in job_ids}


def _run_preset(analysis: Path, workdir: Path, preset: str, scaleout: int, *extra: str) -> Path:
    partition, override = PRESETS[preset]
    name = preset.replace("@", "_")
    options = workdir / f"{name}.yaml"
    options.write_text(COMMON_OVERRIDE + f"scaleout: {scaleout}\n" + override)
    outdir = workdir / f"out_{name}"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", preset, "-ro", options, "-ll", "WARNING", *extra])
    assert result.exit_code == 0, (result.output, result.exception)
    return outdir


def test_dask_T3_CH_PSI_on_slurm_equals_iterative(empty_queue, analysis, workdir, reference):
    from pc_core.output import load_output

    outdir = _run_preset(analysis, workdir, "dask@T3_CH_PSI", 2)
    output = load_output(outdir / "output_all.coffea")
    assert_outputs_equal(reference, output, skip=SKIP)
    assert output["processing_metadata"]["ledger"]["files"] == reference["processing_metadata"]["ledger"]["files"]
    jobs = _job_ids(outdir)
    assert len(jobs) == 2, list((outdir / "dask_logs").iterdir())
    assert set(_partitions(empty_queue, jobs).values()) == {"standard"}


@pytest.mark.parametrize("preset", ["dask@CLAIX", "dask@brux", "dask@oscar", "parsl@CLAIX"])
def test_slurm_preset_one_worker_equals_iterative(empty_queue, analysis, workdir, reference_tt, preset):
    from pc_core.output import load_output

    outdir = _run_preset(analysis, workdir, preset, 1, "--filter-datasets", TT)
    assert_outputs_equal(reference_tt, load_output(outdir / "output_all.coffea"), skip=SKIP)
    jobs = _job_ids(outdir)
    assert jobs, sorted(str(p) for p in outdir.rglob("*"))
    assert set(_partitions(empty_queue, jobs).values()) == {PRESETS[preset][0]}


@pytest.mark.parametrize("preset", ["dask@T3_CH_PSI", "parsl@CLAIX"])
def test_workers_that_never_start_on_slurm_stop_the_run(empty_queue, analysis, workdir, preset):
    """Worker jobs in a DOWN partition are accepted by sbatch but never start."""
    options = workdir / f"never_{preset.replace('@', '_')}.yaml"
    options.write_text(COMMON_OVERRIDE.replace("worker-timeout: 60", "worker-timeout: 6") + "scaleout: 2\n"
                       f"queue: {empty_queue['down_partition']}\nconda-env: false\n")
    outdir = workdir / f"out_never_{preset.replace('@', '_')}"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", preset, "-ro", options, "-ll", "WARNING"])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "WorkersNeverCame", (result.output, result.exception)
    message = str(result.exception)
    assert f"executor {preset!r}: no worker connected within 6 s (worker-timeout)" in message, message
    assert "SLURM worker jobs:" in message and "The worker jobs were removed" in message, message
    jobs = re.findall(r"\b(\d+) pending \(PartitionDown\) in partition offline", message)
    assert len(jobs) == 2, message
    assert not (outdir / "output_all.coffea").exists()
    # cancelled, not just forgotten: slurmctld still knows them as CANCELLED (MinJobAge) or not at all
    res = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(jobs), "-o", "%i %T"],
                         capture_output=True, text=True, timeout=30)
    assert all(line.split()[1] == "CANCELLED" for line in res.stdout.splitlines()), res.stdout
