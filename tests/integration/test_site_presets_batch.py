"""The packaged HTCondor site presets on the real one-node HTCondor pool (services/start_condor.sh),
and ``dask@infn-af`` on a standalone dask scheduler started here.

- ``dask@lxplus``, ``dask@rubin``, ``dask@RWTH`` (dask-jobqueue ``HTCondorCluster``) and
  ``parsl@DESY``, ``parsl@RWTH`` (parsl ``CondorProvider``) each run the DY dataset of the test
  analysis on one worker job: output equal to one shared ``iterative`` reference bin for bin;
  the worker jobs' ads (schedd history) carry what the preset asks for (``+JobFlavour``,
  ``+MaxRuntime`` from the walltime, ``MY.SingularityImage`` from ``worker-image``, 1 cpu) and
  no worker job is left in the queue;
- ``dask@infn-af`` (``jobqueue-system: external``) on a ``dask scheduler`` + ``dask worker``
  pair of processes: equal to ``iterative``, the scheduler and its worker untouched.

The code path is the preset's; the test layers over it (a ``-ro`` YAML) only what the real site
has and this machine has not (docs/executors.md lists the same):
  - all: ``scheduler-host: 127.0.0.1`` (the pool is loopback only), ``scaleout: 1``,
    ``mem-per-worker: 1GB`` (the shared 2-slot pool has 4 GB in all; the presets ask 2-4 GB),
    ``worker-timeout: 240`` (a busy shared pool instead of failing after 5 minutes);
  - ``dask@lxplus``: ``MY.SendCredential: false`` in ``job-extra-directives`` (the other two
    directives restated: a section's mapping replaces the preset's): the pool has no Kerberos
    credd, and a job asking for its credential never starts (``SEC_CREDENTIAL_DIRECTORY_KRB not
    defined``); ``scheduler-port: null`` instead of lxplus' fixed 8786 (a free port on a machine
    other tests share). The CVMFS image stays: the pool has no apptainer, so the job ad carries
    ``MY.SingularityImage`` and the job runs on the host (a documented boundary);
  - ``conda-env: false`` + ``local-virtualenv: true`` for the presets with ``conda-env: true``
    (rubin, RWTH, parsl@RWTH), and ``local-virtualenv: true`` for ``parsl@DESY`` (whose workers
    find parsl in the site's login environment): CI runs in a virtualenv;
  - ``parsl@DESY`` also gets a ``worker-image``, which no parsl preset has, to check that it
    reaches a parsl block's job ad.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from condor_testlib import DY, assert_outputs_equal, invoke_run
from test_dask_parsl_sites import (  # noqa: F401 - fixtures
    SKIP,
    _outdir,
    _queued,
    _worker_clusters,
    analysis,
    job_user_reads_parsl_keys,
    open_umask,
    shared_dir,
)

pytestmark = pytest.mark.integration

LXPLUS_IMAGE = "/cvmfs/unpacked.cern.ch/gitlab-registry.cern.ch/cms-analysis/general/pocketcoffea:lxplus-el9-stable"
TEST_IMAGE = "/cvmfs/unpacked.cern.ch/registry.hub.docker.com/coffeateam/coffea-dask:latest"
COMMON_OVERRIDE = "scheduler-host: 127.0.0.1\nscaleout: 1\nmem-per-worker: 1GB\nworker-timeout: 240\n"
VENV_FOR_CONDA = "conda-env: false\nlocal-virtualenv: true\n"

# preset -> (local override beyond the common one, job-ad attributes the worker jobs must carry)
PRESETS = {
    "dask@lxplus": (
        "scheduler-port: null\n"
        "job-extra-directives:\n"
        "  MY.SendCredential: false\n"
        "  should_transfer_files: 'Yes'\n"
        "  when_to_transfer_output: ON_EXIT\n",
        {"SingularityImage": LXPLUS_IMAGE, "JobFlavour": "microcentury", "SendCredential": False},
    ),
    "dask@rubin": (VENV_FOR_CONDA, {"MaxRuntime": 6 * 3600, "SingularityImage": None}),
    "dask@RWTH": (VENV_FOR_CONDA, {"MaxRuntime": 6 * 3600, "SingularityImage": None}),
    "parsl@DESY": (f"local-virtualenv: true\nworker-image: {TEST_IMAGE}\n",
                   {"MaxRuntime": 12 * 3600, "SingularityImage": TEST_IMAGE}),
    "parsl@RWTH": (VENV_FOR_CONDA, {"MaxRuntime": 6 * 3600, "SingularityImage": None}),
}


@pytest.fixture(scope="module")
def reference_dy(analysis, shared_dir):
    """The one ``iterative`` reference of the module: the DY dataset (two files, one empty)."""
    from pc_core.output import load_output

    outdir = shared_dir / "reference_dy"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "iterative", "-ll", "WARNING", "--filter-datasets", DY])
    assert result.exit_code == 0, (result.output, result.exception)
    return load_output(outdir / "output_all.coffea")


def _parsl_clusters(outdir: Path) -> set[int]:
    """Cluster ids of the parsl blocks, from the HTCondor user logs of parsl's submit scripts."""
    logs = "".join(p.read_text() for p in (outdir / "logs_parsl").rglob("*.log") if "submit_scripts" in str(p))
    return {int(c) for c in re.findall(r"\((\d+)\.\d+\.\d+\)", logs)}


def _evaluated(ad, key: str):
    """The attribute's value; expressions (dask-jobqueue's ``RequestCpus = MY.DaskWorkerCores``)
    evaluated in the ad."""
    if key not in ad:
        return None
    return ad.eval(key)


def _job_ads(clusters: set[int], attributes: list[str]) -> list[dict]:
    """The worker jobs' ads from the schedd's history (they left the queue)."""
    import htcondor2

    constraint = " || ".join(f"ClusterId == {c}" for c in sorted(clusters))
    projection = ["ClusterId", "ProcId", "RequestCpus", "RequestMemory", "DaskWorkerCores", "DaskWorkerMemory",
                  *attributes]
    ads: list[dict] = []
    for _ in range(20):  # the history file is written when the job leaves the queue
        ads = [{key: _evaluated(ad, key) for key in projection}
               for ad in htcondor2.Schedd().history(constraint=constraint, projection=projection)]
        if len(ads) >= len(clusters):
            break
        time.sleep(0.5)
    return ads


@pytest.mark.parametrize("preset", list(PRESETS))
def test_htcondor_preset_equals_iterative(preset, condor_pool, shared_dir, analysis, reference_dy, open_umask, request):
    from pc_core.output import load_output

    if preset.startswith("parsl@"):
        request.getfixturevalue("job_user_reads_parsl_keys")

    override, expected_ad = PRESETS[preset]
    name = preset.replace("@", "_")
    options = shared_dir / f"preset_{name}.yaml"
    options.write_text(COMMON_OVERRIDE + override)
    outdir = _outdir(shared_dir, f"out_preset_{name}")
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", preset, "-ro", options, "-ll", "WARNING",
                         "--filter-datasets", DY])
    assert result.exit_code == 0, (result.output, result.exception)
    output = load_output(outdir / "output_all.coffea")
    assert_outputs_equal(reference_dy, output, skip=SKIP)
    assert output["processing_metadata"]["ledger"]["files"] == reference_dy["processing_metadata"]["ledger"]["files"]
    if preset == "dask@lxplus":  # the preset's performance-report: true
        assert "Dask Performance Report" in (outdir / "dask-performance-report.html").read_text()[:100_000]

    clusters = _worker_clusters(outdir / "dask_logs") if preset.startswith("dask") else _parsl_clusters(outdir)
    assert clusters, sorted(str(p) for p in outdir.rglob("*"))
    assert _queued(clusters) == []
    ads = _job_ads(clusters, list(expected_ad))
    assert ads, f"no history for the worker jobs {sorted(clusters)}"
    for ad in ads:
        assert (ad["RequestCpus"], ad["RequestMemory"]) == (1, 1024 if preset.startswith("parsl") else 953), ad  # 1 GB in MiB
        assert {key: ad[key] for key in expected_ad} == expected_ad, ad


def _wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} not written within {timeout} s"
        time.sleep(0.2)


def test_infn_af_on_a_standalone_scheduler(shared_dir, analysis, reference_dy, tmp_path):
    """``dask@infn-af``: the AF's Dask extension starts scheduler and workers; here a ``dask
    scheduler`` and one ``dask worker`` process on 127.0.0.1. The override is only the address
    (``scheduler-address``, null in the preset: the user pastes it) and ``worker-timeout``."""
    from distributed import Client
    from pc_core.output import load_output

    scheduler_file = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("scheduler", "worker")]  # noqa: SIM115
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)],
        stdout=logs[0], stderr=subprocess.STDOUT)
    worker = None
    try:
        _wait_for_file(scheduler_file, scheduler)
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
             "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"],
            stdout=logs[1], stderr=subprocess.STDOUT)
        with Client(scheduler_file=str(scheduler_file), timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            address = client.scheduler.address
        options = tmp_path / "infn_af.yaml"
        options.write_text(f"scheduler-address: {address}\nworker-timeout: 60\n")
        outdir = _outdir(shared_dir, "out_preset_dask_infn-af")
        result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "dask@infn-af", "-ro", options, "-ll", "WARNING",
                             "--filter-datasets", DY])
        assert result.exit_code == 0, (result.output, result.exception)
        # the run closed its client only: the scheduler and its worker are still there
        assert scheduler.poll() is None and worker.poll() is None
        with Client(address, timeout=30) as client:
            assert len(client.scheduler_info()["workers"]) == 1
    finally:
        for process in (worker, scheduler):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        for log in logs:
            log.close()
    assert_outputs_equal(reference_dy, load_output(outdir / "output_all.coffea"), skip=SKIP)
