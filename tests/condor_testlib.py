"""Helpers of the condor manual-job tests (tests/pc_jobs/test_condor_*.py, tests/integration/test_condor_*.py).

The test analysis is tests/pc_run/configs (copied next to a generated fileset.json); the
fileset carries ``nevents`` (read with uproot) because splitting into jobs needs it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import uproot
from click.testing import CliRunner

CONFIGS = Path(__file__).resolve().parent / "pc_run" / "configs"
SERVICES_DIR = Path(os.environ.get("PC_SERVICES_DIR", "/tmp/pc-services"))

DY, DATA, TT = "DYJetsToLL_2018", "DATA_DoubleMuon_2018", "TTTo2L2Nu_2022"


def n_events(path: Path) -> int:
    with uproot.open(path) as handle:
        return int(handle["Events"].num_entries)


def fileset_for(data_dir: Path) -> dict:
    """DY MC (with the empty file), data and ttbar, with ``nevents`` from the files themselves."""
    layout = {
        DY: (["nano_dy.root", "nano_dy_empty.root"], {"sample": "DYJetsToLL", "year": "2018", "isMC": True, "xsec": 6077.22}),
        DATA: (["nano_dimuon.root"], {"sample": "DATA_DoubleMuon", "year": "2018", "isMC": False}),
        TT: (["nano_tt_v12.root"], {"sample": "TTTo2L2Nu", "year": "2022_postEE", "isMC": True, "xsec": 87.3}),
    }
    fileset = {}
    for dataset, (names, metadata) in layout.items():
        files = [str(data_dir / name) for name in names]
        nevents = sum(n_events(data_dir / name) for name in names)
        fileset[dataset] = {"files": files, "metadata": {**metadata, "nevents": nevents}}
    return fileset


def make_analysis(folder: Path, fileset: dict) -> Path:
    """The test config (and its sibling modules) in ``folder`` with ``fileset.json``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in CONFIGS.glob("*.py"):
        shutil.copy(source, folder / source.name)
    (folder / "fileset.json").write_text(json.dumps(fileset, indent=1))
    return folder / "config_pcrun.py"


def invoke_run(args: list) -> object:
    from pc_run.cli import run_command

    return CliRunner().invoke(run_command, [str(a) for a in args], catch_exceptions=True)


def write_options(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def sub_commands(path: Path) -> dict[str, str]:
    from pc_jobs.submit_file import read_commands

    return read_commands(path.read_text())


def queue_items(path: Path) -> list[str]:
    """The items of the inline ``queue chunksize from ( ... )`` statement of ``jobs_all.sub``."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("queue chunksize from ("))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == ")")
    return [line.strip() for line in lines[start + 1 : end]]


def assert_outputs_equal(a, b, **kwargs) -> None:
    """tests/pc_run/outputs_compare.py's deep comparison (loaded by path: tests/pc_run is not on sys.path here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "pc_run_outputs_compare_for_condor", Path(__file__).resolve().parent / "pc_run" / "outputs_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.assert_outputs_equal(a, b, **kwargs)
