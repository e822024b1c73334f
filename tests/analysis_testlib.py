"""The pc-run test analysis (tests/pc_run/configs) as every test folder uses it: copied into a
folder next to a ``fileset.json``, and run through the real click command."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

CONFIGS = Path(__file__).resolve().parent / "pc_run" / "configs"

DY = "DYJetsToLL_2018"
DATA = "DATA_DoubleMuon_2018"
TT = "TTTo2L2Nu_2022"


STANDARD_FILES = ("nano_dy.root", "nano_dy_empty.root", "nano_dimuon.root", "nano_tt_v12.root")


def copy_for_jobs(nanoaod_dir: Path, target: Path) -> Path:
    """The files of ``standard_fileset`` copied to ``target`` (created 0755, files 0644), where
    batch jobs running as another user, inside the pool's chroot, can read them."""
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    target.chmod(0o755)
    for name in STANDARD_FILES:
        shutil.copy(nanoaod_dir / name, target / name)
        (target / name).chmod(0o644)
    return target


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
    """Copy the test config (and its sibling modules) into ``folder`` with ``fileset.json``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in CONFIGS.glob("*.py"):
        shutil.copy(source, folder / source.name)
    (folder / "fileset.json").write_text(json.dumps(fileset, indent=1))
    return folder / "config_pcrun.py"


def invoke_run(args: list) -> object:
    """``pocket-coffea run`` in this process through click's runner."""
    from pc_run.cli import run_command

    return CliRunner().invoke(run_command, [str(a) for a in args], catch_exceptions=True)
