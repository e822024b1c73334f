"""Helpers of the condor manual-job tests (tests/pc_jobs/test_condor_*.py, tests/integration/test_condor_*.py).

The test analysis is tests/pc_run/configs (copied next to a generated fileset.json); the
fileset carries ``nevents`` (read with uproot) because splitting into jobs needs it.
"""
from __future__ import annotations

import os
from pathlib import Path

import uproot

from analysis_testlib import DATA, DY, TT, invoke_run, make_analysis, standard_fileset  # noqa: F401 (re-exported)
from outputs_compare import assert_outputs_equal  # noqa: F401 (re-exported to the tests)

SERVICES_DIR = Path(os.environ.get("PC_SERVICES_DIR", "/tmp/pc-services"))


def n_events(path: Path) -> int:
    with uproot.open(path) as handle:
        return int(handle["Events"].num_entries)


def fileset_for(data_dir: Path) -> dict:
    """The standard test fileset with ``nevents`` read from the files themselves (splitting needs it)."""
    fileset = standard_fileset(data_dir)
    for entry in fileset.values():
        entry["metadata"]["nevents"] = sum(n_events(Path(f)) for f in entry["files"])
    return fileset


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
