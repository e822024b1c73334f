"""Helpers of the condor manual-job tests (tests/pc_jobs/test_condor_*.py, tests/integration/test_condor_*.py).

The test analysis is tests/pc_run/configs (copied next to a generated fileset.json); the
fileset carries ``nevents`` (read with uproot) because splitting into jobs needs it.
"""
from __future__ import annotations

import os
from pathlib import Path

import uproot

from analysis_testlib import DATA, DY, TT, copy_for_jobs, invoke_run, make_analysis, standard_fileset  # noqa: F401 (re-exported)
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


def local_reference(folder: Path, fileset: dict):
    """A local iterative run of the test analysis over ``fileset``: what merging its condor jobs must give."""
    from pc_core.output import load_output

    analysis = make_analysis(folder / "analysis", fileset)
    result = invoke_run(["--cfg", analysis, "-o", folder / "out", "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    return load_output(folder / "out" / "output_all.coffea")


def assert_merged_equals(jobs_dir: Path, reference, fileset: dict) -> dict:
    """``merge-outputs -jc`` of a jobs folder equals ``reference`` (a local run of the same config).

    The event counts are checked against the files themselves (uproot), then every histogram
    bin by bin, the sums of gen-weights and the cutflow; the per-job bookkeeping
    (``processing_metadata``: chunks, timing, which job read what) legitimately differs.
    """
    from click.testing import CliRunner
    from pc_core.output import load_output
    from pc_jobs.merge import merge_outputs_command

    merge = CliRunner().invoke(merge_outputs_command, ["-jc", str(jobs_dir), "-ll", "WARNING"])
    assert merge.exit_code == 0, (merge.output, merge.exception)
    merged = load_output(jobs_dir.parent / "output_merged.coffea")
    expected = {name: sum(n_events(Path(f)) for f in entry["files"]) for name, entry in fileset.items()}
    assert merged["cutflow"]["initial"] == expected
    assert_outputs_equal(reference, merged, skip=("processing_metadata",))
    return merged


def logs_tail(jobs_dir: Path, chars: int = 1500) -> dict[str, str]:
    """The end of every log of a jobs folder (for assertion messages)."""
    return {p.name: p.read_text(errors="replace")[-chars:] for p in sorted((jobs_dir / "logs").glob("job_*"))
            if p.is_file()}
