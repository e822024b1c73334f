"""The same analysis gives the same output with every local executor and chunk size."""
from __future__ import annotations

import pytest

from analysis_testlib import DATA, DY, TT, invoke_run
from outputs_compare import assert_outputs_equal, drop_keys
from pc_core.output import load_output

# chunk bookkeeping legitimately differs with the chunk size
CHUNK_KEYS = ("chunks",)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-e", "futures", "-s", "2", "-c", "15"], id="futures-s2-chunk15"),
        pytest.param(["-e", "dask", "-s", "2", "-c", "25"], id="dask-s2-chunk25"),
        pytest.param(["-e", "parsl", "-s", "2", "-c", "25"], id="parsl-s2-chunk25"),
    ],
)
def test_outputs_identical_across_executors_and_chunk_sizes(args, analysis_config, iterative_run, tmp_path):
    # the 2018 datasets only (DY with its empty file, and data): fewer chunks, same coverage
    result = invoke_run(["--cfg", analysis_config, "-o", tmp_path, "-ll", "WARNING", "--filter-years", "2018", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    output = load_output(tmp_path / "output_all.coffea")
    reference = drop_keys(load_output(iterative_run / "output_all.coffea"), {TT, "TTTo2L2Nu", "2022_postEE"})
    assert_outputs_equal(reference, output, skip=(*CHUNK_KEYS, "ledger"))
    # the same entries of the same files, whatever the chunking (the ledger joins touching ranges)
    reference_files = {k: v for k, v in reference["processing_metadata"]["ledger"]["files"].items() if v["dataset"] != TT}
    assert output["processing_metadata"]["ledger"]["files"] == reference_files
    chunksize = int(args[args.index("-c") + 1])
    expected = max(round(40 / chunksize), 1)  # coffea splits a file into round(N / chunksize) chunks
    assert output["processing_metadata"]["chunks"] == {DY: expected + 1, DATA: expected}
    assert expected > 1
