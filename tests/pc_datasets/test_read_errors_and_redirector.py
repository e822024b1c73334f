import copy

import pytest
import uproot

from pc_datasets import classify_read_error, rewrite_fileset_to_redirector
from pc_datasets.read_errors import CORRUPT_FILE, DEAD_SERVER, MISSING_FILE, OTHER


def _raised(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_local_missing_and_corrupt_files(tmp_path):
    assert classify_read_error(_raised(lambda: uproot.open(tmp_path / "nope.root"))) == MISSING_FILE
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"this is not a ROOT file" * 100)
    assert classify_read_error(_raised(lambda: uproot.open(junk))) == CORRUPT_FILE


def test_wrapped_and_plain_exceptions():
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("chunk failed") from inner
    except RuntimeError as exc:
        assert classify_read_error(exc) == DEAD_SERVER
    assert classify_read_error(OSError("File did not open properly: [ERROR] Operation expired")) == DEAD_SERVER
    assert classify_read_error(OSError("[ERROR] Server responded with an error: [3011] No such file or directory")) == MISSING_FILE
    assert classify_read_error(ValueError("bad binning")) == OTHER


def test_redirector_rewrite_keeps_order_and_input():
    fileset = {"DY_2018": {"files": ["root://127.0.0.1:1094//store/mc/DY/a.root", "/data/private/b.root",
                                     "root://127.0.0.1:1095//store/mc/DY/c.root"],
                           "metadata": {"sample": "DY", "year": "2018", "isMC": True, "xsec": 1.0}}}
    original = copy.deepcopy(fileset)
    result = rewrite_fileset_to_redirector(fileset)
    assert fileset == original
    assert result.fileset["DY_2018"]["files"] == ["root://xrootd-cms.infn.it//store/mc/DY/a.root", "/data/private/b.root",
                                                  "root://xrootd-cms.infn.it//store/mc/DY/c.root"]
    assert [(r.index, r.reason) for r in result.rewrites] == [(0, "global redirector"), (2, "global redirector")]
    assert result.fileset["DY_2018"]["metadata"] == original["DY_2018"]["metadata"]
