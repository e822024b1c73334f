"""Fixtures of the pc-run tests: the test analysis copied next to a generated fileset JSON."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

CONFIGS = Path(__file__).resolve().parent / "configs"

DY = "DYJetsToLL_2018"
DATA = "DATA_DoubleMuon_2018"
TT = "TTTo2L2Nu_2022"


def standard_fileset(nanoaod_dir: Path) -> dict:
    """DY MC (with the empty file), data, and the NanoAOD v12 ttbar sample."""
    return {
        DY: {
            "files": [str(nanoaod_dir / "nano_dy.root"), str(nanoaod_dir / "nano_dy_empty.root")],
            "metadata": {"sample": "DYJetsToLL", "year": "2018", "isMC": True, "xsec": 6077.22},
        },
        DATA: {
            "files": [str(nanoaod_dir / "nano_dimuon.root")],
            "metadata": {"sample": "DATA_DoubleMuon", "year": "2018", "isMC": False},
        },
        TT: {
            "files": [str(nanoaod_dir / "nano_tt_v12.root")],
            "metadata": {"sample": "TTTo2L2Nu", "year": "2022_postEE", "isMC": True, "xsec": 87.3},
        },
    }


def make_analysis(folder: Path, fileset: dict) -> Path:
    """Copy the test config (and its sibling modules) into ``folder`` with ``fileset.json``; returns config path."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in CONFIGS.glob("*.py"):
        shutil.copy(source, folder / source.name)
    (folder / "fileset.json").write_text(json.dumps(fileset, indent=1))
    return folder / "config_pcrun.py"


@pytest.fixture(scope="session")
def analysis_config(tmp_path_factory, nanoaod_dir) -> Path:
    return make_analysis(tmp_path_factory.mktemp("analysis"), standard_fileset(nanoaod_dir))


def invoke_run(args: list[str]):
    """``pocket-coffea run`` in this process through click's runner."""
    from pc_run.cli import run_command

    return CliRunner().invoke(run_command, [str(a) for a in args], catch_exceptions=True)


@pytest.fixture(scope="session")
def iterative_run(analysis_config, tmp_path_factory) -> Path:
    """One reference run with the iterative executor (one chunk per file)."""
    outdir = tmp_path_factory.mktemp("run_iterative")
    result = invoke_run(["--cfg", analysis_config, "-o", outdir, "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    return outdir
