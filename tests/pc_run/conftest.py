"""Fixtures of the pc-run tests: the test analysis copied next to a generated fileset JSON."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis_testlib import invoke_run, make_analysis, standard_fileset

@pytest.fixture(scope="session")
def analysis_config(tmp_path_factory, nanoaod_dir) -> Path:
    return make_analysis(tmp_path_factory.mktemp("analysis"), standard_fileset(nanoaod_dir))


@pytest.fixture(scope="session")
def iterative_run(analysis_config, tmp_path_factory) -> Path:
    """One reference run with the iterative executor (one chunk per file)."""
    outdir = tmp_path_factory.mktemp("run_iterative")
    result = invoke_run(["--cfg", analysis_config, "-o", outdir, "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    return outdir
