#!/usr/bin/env python3
"""Set-up and entry point for the two README commands.

    python3 dev.py demo   # create .venv, install everything, run the demo analysis end to end
    python3 dev.py test   # create .venv, install everything, run the whole test suite

Needs only Python 3.11; everything else comes from PyPI into ``.venv`` next to this file.
Extra arguments after ``test`` go to pytest; after ``demo`` to the demo script.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PACKAGES = ["pc-core", "pc-datasets", "pc-run", "pc-jobs", "pc-plots", "pc-demo"]
STAMP = VENV / ".pocket-coffea-installed"
# Bytecode compiled at install time (pip's default, not uv's): without it every command
# compiles coffea, awkward, ... from source whenever .pyc files cannot be written
# (PYTHONDONTWRITEBYTECODE, read-only installs), ~1.5 s per command and per new process.
UV_INSTALL_FLAGS = ["--compile-bytecode"]


def venv_bin(name: str) -> Path:
    return VENV / "bin" / name


def requirements_digest() -> str:
    digest = hashlib.sha256(" ".join(UV_INSTALL_FLAGS).encode())
    for pyproject in [ROOT / "pyproject.toml", *(ROOT / "packages" / p / "pyproject.toml" for p in PACKAGES)]:
        digest.update(pyproject.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create the venv and install the seven distributions (editable) when anything changed."""
    if not venv_bin("python").exists():
        print(f"Creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = requirements_digest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    python = str(venv_bin("python"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "uv"], check=True)
    editables = []
    for package in PACKAGES:
        editables += ["-e", str(ROOT / "packages" / package)]
    extras = os.environ.get("POCKET_COFFEA_EXTRAS", "test")
    subprocess.run(
        [str(venv_bin("uv")), "pip", "install", *UV_INSTALL_FLAGS, "--python", python, *editables, "-e", f"{ROOT}[{extras}]"],
        check=True,
    )
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    env = dict(os.environ, PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if command == "setup":
        return 0
    if command == "test":
        return subprocess.run([str(venv_bin("python")), "-m", "pytest", *rest], cwd=ROOT, env=env).returncode
    return subprocess.run([str(venv_bin("python")), str(ROOT / "examples" / "run_demo.py"), *rest], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
