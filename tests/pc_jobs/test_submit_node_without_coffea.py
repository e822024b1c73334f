"""Recovery on a submit node where only pc-core, pc-datasets and pc-jobs are installed.

A jobs folder prepared by ``pocket-coffea run -e condor@lxplus`` (dry-run) is recovered in a
separate virtualenv holding pc-core/pc-datasets/pc-jobs (``--no-deps``) plus their light
dependencies only (pyyaml, rich, click, numpy, cloudpickle, lz4, htcondor): no coffea, no
pc-run, no awkward/uproot, not the analysis' workflow. There, ``check-jobs --resubmit``
moves a failed read to another replica and ``--recreate-jobs`` (dry-run, ``--use-redirector``)
routes a job through the redirector: both rewrite ``config_job_{i}.pkl`` (plain data) and
never touch the shared ``configurator.pkl`` (it is moved away while they run). Back in the
full environment the rewritten job files load as the job's inner run would load them.

The venv is built once (``uv``, from the local package cache: ~2 s here; allow ~30 s when uv
has to download the wheels) and cached under /tmp, keyed by the packages' pyproject.toml
digests and the Python version; with the cache the test takes a few seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from condor_testlib import fileset_for, invoke_run, make_analysis, write_options
from pc_core.config_loading import load_configurator
from pc_jobs.job_config import JOB_FORMAT, read_job_data
from service_guard import require_service

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pc-core", "pc-datasets", "pc-jobs")
LIGHT_DEPENDENCIES = ("pyyaml", "rich", "click", "numpy", "cloudpickle", "lz4", "htcondor")
SITE = "root://127.0.0.1:1094/"
OTHER = "root://127.0.0.1:1096/"


def _uv() -> str | None:
    candidate = Path(sys.executable).parent / "uv"
    return str(candidate) if candidate.exists() else shutil.which("uv")


@pytest.fixture(scope="session")
def light_venv() -> Path:
    """A venv with pc-core, pc-datasets, pc-jobs and their light dependencies only (cached under /tmp)."""
    digest = hashlib.sha256(sys.version.encode())
    for package in PACKAGES:
        digest.update((REPO / "packages" / package / "pyproject.toml").read_bytes())
    digest.update(" ".join(LIGHT_DEPENDENCIES).encode())
    venv = Path("/tmp") / f"pc-jobs-submit-node-{digest.hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".complete").exists():
        return venv
    uv = _uv()
    require_service("uv", uv is not None, "it builds the submit-node venv (dev.py setup installs it into .venv)")
    building = venv.with_name(venv.name + f".build{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    steps = [
        [uv, "venv", "-q", "--python", sys.executable, str(building)],
        [uv, "pip", "install", "-q", "--python", str(building / "bin" / "python"), "--no-deps",
         *[arg for package in PACKAGES for arg in ("-e", str(REPO / "packages" / package))]],
        [uv, "pip", "install", "-q", "--python", str(building / "bin" / "python"), *LIGHT_DEPENDENCIES],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            pytest.fail(f"cannot build the submit-node venv ({' '.join(step[:3])}): {result.stderr[-2000:]}")
    (building / ".complete").touch()
    try:
        building.rename(venv)
    except OSError:  # built meanwhile by another session: use that one
        shutil.rmtree(building, ignore_errors=True)
    return venv  # only bin/python is used (console-script shebangs still name the build folder)


SCRIPT = r'''
import json, sys
from pathlib import Path

for name in ("coffea", "pc_run", "awkward", "uproot", "dask"):
    try:
        __import__(name)
    except ImportError:
        continue
    print(json.dumps({"error": f"{name} is importable in the submit-node venv"}))
    sys.exit(3)

from pc_jobs.check_jobs import JobsMonitor
from pc_jobs.jobs_dir import JobsDir
from pc_jobs.recreate import RecreateRequest, recreate_jobs

folder = Path(sys.argv[1])
site, other = sys.argv[2], sys.argv[3]
submitted = []

def submitter(sub):
    submitted.append(sub.name)
    return 900 + len(submitted)

lookup = lambda urls, blocked, failed: {u: u.replace(site, other) for u in urls}
monitor = JobsMonitor(folder, resubmit=True, lookup=lookup, submitter=submitter, schedd_query=None)
result = monitor.poll()
recreated = recreate_jobs(JobsDir(folder), RecreateRequest("2", use_redirector=True), {"dry-run": True},
                          submitter=submitter)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"coffea", "pc_run", "awkward", "uproot", "dask"})
print(json.dumps({"states": {str(k): v for k, v in result.states.items()}, "messages": result.messages,
                  "submitted": submitted, "recreated": [c.rewrites for c in recreated.changes], "heavy": heavy}))
'''


def _files(path: Path) -> list[str]:
    data = read_job_data(path)
    assert data is not None and data["format"] == JOB_FORMAT
    return [f for entry in data["fileset"].values() for f in entry["files"]]


def test_check_jobs_resubmit_and_recreate_on_a_submit_node_without_coffea(tmp_path, nanoaod_dir, light_venv,
                                                                          monkeypatch):
    python = light_venv / "bin" / "python"
    probe = subprocess.run([python, "-c", "import coffea"], capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'coffea'" in probe.stderr

    monkeypatch.setenv("RUCIO_CONFIG", str(tmp_path / "no-rucio.cfg"))
    fileset = fileset_for(nanoaod_dir)
    for entry in fileset.values():
        entry["files"] = [f"{SITE}/store/mc/Run3/{Path(f).name}" for f in entry["files"]]
    analysis = make_analysis(tmp_path / "analysis", fileset)
    outdir = tmp_path / "out"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "condor@lxplus", "-s", "3",
                         "-ro", write_options(tmp_path / "ro.yaml", "dry-run: true\n"), "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    folder = outdir / "job"
    shared = folder / "configurator.pkl"
    assert shared.is_file()
    for index in range(3):  # small plain data, not a Configurator
        assert (folder / f"config_job_{index}.pkl").stat().st_size < shared.stat().st_size

    failing = _files(folder / "config_job_1.pkl")[0]
    (folder / "job_1.idle").unlink()
    (folder / "job_1.failed").touch()
    (folder / "logs" / "job_1.err").write_text(
        f"OSError: XRootD error: [ERROR] Server responded with an error: [3011] no such file {failing}\n")
    before_2 = _files(folder / "config_job_2.pkl")

    os.umask(0o077)  # what a strict umask would do to files written without an explicit mode
    hidden = tmp_path / "configurator.pkl.away"
    shared.rename(hidden)  # recovery must not need the Configurator at all
    try:
        run = subprocess.run([python, "-c", SCRIPT, str(folder), SITE.rstrip("/"), OTHER.rstrip("/")],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    finally:
        os.umask(0o022)
        hidden.rename(shared)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["submitted"] == ["job_1.sub"], report["messages"]
    assert report["states"]["1"] == "idle"
    assert report["recreated"] and report["recreated"][0] > 0

    moved = _files(folder / "config_job_1.pkl")
    assert moved[0] == failing.replace(SITE.rstrip("/"), OTHER.rstrip("/"))
    assert all("xrootd-cms.infn.it" in f for f in _files(folder / "config_job_2.pkl")) and before_2
    for index in (1, 2):
        assert (folder / f"config_job_{index}.pkl").stat().st_mode & 0o777 == 0o644

    # what the job's inner ``pocket-coffea run --cfg config_job_1.pkl`` loads, in the full environment
    cfg = load_configurator(folder / "config_job_1.pkl")
    assert [f for entry in cfg.fileset.values() for f in entry["files"]] == moved
