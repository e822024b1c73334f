"""Every read failure of an input file gets a precise kind; the analysis' own failures are never read failures.

The broken files are real broken copies of the real NanoAOD samples (``faults``), read by
uproot and NanoEvents as a chunk reads them; the exceptions they raise go through
``classify_chunk_failure`` (per phase: open, build, process) and ``check_file``.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import awkward as ak
import pytest
import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from faults import (
    FileServer,
    corrupt_basket_copy,
    reads_blocked,
    rewritten_copy,
    truncated_copy,
    uncompressed_copy,
    unreadable_copy,
)
from pc_core.read_errors import (
    CORRUPT_FILE,
    DEAD_SERVER,
    DNS,
    MISSING_FILE,
    OTHER,
    OTHER_IO,
    PERMISSION,
    READ_ERROR_KINDS,
    classify_read_error,
    read_error_hint,
)
from pc_run.failures import ANALYSIS, READ, ChunkFailure, classify_chunk_failure
from pc_run.file_check import check_file

THIS_FILE = "tests/reliability/test_read_failure_classes.py"
DY_BYTES = 352599  # nano_dy.root, as its ROOT header says


def _raised(fn, *args):
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the exception is what the test looks at
        return exc
    raise AssertionError(f"{fn.__name__} raised nothing")


def _events(path: str):
    """NanoEvents of the whole file, read lazily (branches are read when first touched), as a chunk builds them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=NanoAODSchema, mode="virtual").events()


def process_muons(events):
    """An analysis' process: touches the muons' pt (NanoEvents reads the branch now)."""
    return float(ak.sum(events.Muon.pt))


def build_with_preload(path, branches=("nMuon", "Muon_pt")):
    """What building a chunk's events reads eagerly: the preloaded branches."""
    with uproot.open(path) as opened:
        return opened["Events"].arrays(list(branches), entry_start=0, entry_stop=40, how=dict)


def _assert_well_formed(failure: ChunkFailure) -> None:
    assert "\n" not in failure.message and failure.message
    assert failure.traceback.startswith("Traceback") and failure.traceback.count("\n") > 2
    assert pickle.loads(pickle.dumps(failure)) == failure
    assert ChunkFailure.from_dict(json.loads(json.dumps(failure.to_dict()))) == failure
    if failure.category == READ:
        assert failure.kind in READ_ERROR_KINDS and failure.kind != OTHER
        assert failure.message.startswith(f"{failure.kind}: ")
    else:
        assert failure.category == ANALYSIS and failure.hint == ""


# --- corrupt files ---------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.6, 0.05, 0.9])
def test_a_truncated_file_is_corrupt_with_both_sizes(tmp_path, nanoaod_dir, fraction):
    path = truncated_copy(nanoaod_dir / "nano_dy.root", tmp_path / "dy.root", fraction)
    size = path.stat().st_size
    check = check_file("DY", str(path))
    assert (check.ok, check.kind, check.entries) == (False, CORRUPT_FILE, None)
    assert check.error.startswith(f"truncated: the file has {size} bytes, its ROOT header says {DY_BYTES} (OSError: ")
    failure = classify_chunk_failure(_raised(uproot.open, str(path)), str(path), "open")
    _assert_well_formed(failure)
    assert (failure.category, failure.kind) == (READ, CORRUPT_FILE)
    assert f"(truncated: the file has {size} bytes, its ROOT header says {DY_BYTES})" in failure.message
    assert "Hint: " not in failure.message and "another replica" in failure.hint


def test_a_file_cut_in_its_last_metadata_opens_but_is_reported_truncated(tmp_path, nanoaod_dir):
    # the last 1% of the file is streamer metadata that uproot does not need: it opens and reads
    path = truncated_copy(nanoaod_dir / "nano_dy.root", tmp_path / "dy.root", 0.99)
    assert uproot.open(path)["Events"].num_entries == 40
    check = check_file("DY", str(path))
    assert (check.kind, check.error) == (CORRUPT_FILE, f"truncated: the file has {path.stat().st_size} bytes, "
                                                       f"its ROOT header says {DY_BYTES}")


def test_an_empty_file_and_a_non_root_file_are_corrupt(tmp_path):
    empty = tmp_path / "empty.root"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"<html>503 Service Unavailable</html>" * 40)  # what a proxy may hand out
    assert check_file("D", str(empty)).kind == CORRUPT_FILE
    assert check_file("D", str(empty)).error.startswith("truncated: the file has 0 bytes, less than a ROOT header")
    check = check_file("D", str(junk))
    assert check.kind == CORRUPT_FILE and "not a ROOT file" in check.error
    failure = classify_chunk_failure(_raised(uproot.open, str(junk)), str(junk), "open")
    assert (failure.category, failure.kind) == (READ, CORRUPT_FILE)


@pytest.mark.parametrize("sample", ["nano_dy.root", "nano_tt_v12.root"])
@pytest.mark.parametrize("part, error", [("payload", "zlib.error"), ("header", "DeserializationError")])
def test_a_corrupt_basket_is_corrupt_in_build_process_and_check(tmp_path, nanoaod_dir, sample, part, error):
    path = str(corrupt_basket_copy(nanoaod_dir / sample, tmp_path / sample, branch="Muon_pt", part=part))
    entries = uproot.open(nanoaod_dir / sample)["Events"].num_entries

    # opening reads no basket: the file looks fine until the branch is read
    plain = check_file("D", path)
    assert (plain.ok, plain.entries) == (True, entries)
    check = check_file("D", path, branches=["Muon_pt"])
    assert (check.ok, check.kind) == (False, CORRUPT_FILE)
    assert check.error.startswith(f"{error}: ") and check.error.endswith("(basket 0 of branch Muon_pt)")
    assert check_file("D", path, branches=["Muon_eta"]).ok  # the other branches are intact

    failure = classify_chunk_failure(_raised(process_muons, _events(path)), path, "process")
    _assert_well_formed(failure)
    assert (failure.category, failure.kind, failure.branch) == (READ, CORRUPT_FILE, "Muon_pt")
    assert failure.message.startswith(f"corrupt-file: {error}: ")
    assert failure.message.endswith("(basket 0 of branch Muon_pt)")
    assert failure.user_frame.startswith(f"{THIS_FILE}:") and failure.user_frame.endswith(" in process_muons")

    failure = classify_chunk_failure(_raised(build_with_preload, path), path, "build")
    assert (failure.category, failure.kind, failure.branch) == (READ, CORRUPT_FILE, "Muon_pt")


@pytest.mark.parametrize("compression", [None, "LZMA", "ZSTD", "LZ4"])
def test_corrupt_baskets_of_every_compression_are_corrupt(tmp_path, nanoaod_dir, compression):
    source = rewritten_copy(nanoaod_dir / "nano_dy.root", tmp_path / "rewritten.root",
                            compression=getattr(uproot, compression)(4) if compression else None)
    parts = ["header"] if compression is None else ["header", "payload"]  # raw numbers raise nothing when damaged
    for part in parts:
        path = str(corrupt_basket_copy(source, tmp_path / f"{part}.root", part=part))
        failure = classify_chunk_failure(_raised(process_muons, _events(path)), path, "process")
        assert (failure.category, failure.kind, failure.branch) == (READ, CORRUPT_FILE, "Muon_pt"), (part, failure)
        assert classify_chunk_failure(_raised(build_with_preload, path), path, "build").category == READ
        assert check_file("D", path, branches=["Muon_pt"]).kind == CORRUPT_FILE


def test_read_failures_are_what_skip_bad_files_skips(tmp_path, nanoaod_dir):
    for part in ("payload", "header"):
        path = corrupt_basket_copy(nanoaod_dir / "nano_dy.root", tmp_path / f"{part}.root", part=part)
        exc = _raised(build_with_preload, path)
        assert not isinstance(exc, OSError)  # zlib.error, DeserializationError
        failure = classify_chunk_failure(exc, str(path), "build")
        assert (failure.category, failure.kind) == (READ, CORRUPT_FILE) and classify_read_error(exc) == CORRUPT_FILE
    assert classify_chunk_failure(KeyError("Muon_pt2"), "x.root", "process").category == ANALYSIS


# --- files that are not there, hosts that do not resolve, servers that die, refused reads ---------------


def test_a_missing_file_is_missing(tmp_path):
    path = str(tmp_path / "gone.root")
    assert check_file("D", path).kind == MISSING_FILE
    failure = classify_chunk_failure(_raised(uproot.open, path), path, "open")
    assert (failure.category, failure.kind) == (READ, MISSING_FILE)


@pytest.mark.parametrize("handler", ["xrootd", "http"])
def test_a_host_that_does_not_resolve_is_dns_not_missing(handler):
    # .invalid never resolves (RFC 6761): no network needed, and no server asked
    if handler == "xrootd":
        pytest.importorskip("XRootD")
        url, options = "root://no-such-host.invalid//store/mc/dy.root", {"handler": uproot.source.xrootd.XRootDSource}
    else:
        url, options = "http://no-such-host.invalid/store/mc/dy.root", {"handler": uproot.source.http.HTTPSource}
    check = check_file("D", url, timeout=10)
    assert check.kind == DNS, check
    failure = classify_chunk_failure(_raised(lambda: uproot.open({url: None}, timeout=10, **options)), url, "open")
    assert (failure.category, failure.kind) == (READ, DNS)
    assert "resolve" in failure.hint


def test_a_server_that_refuses_is_dead(nanoaod_dir):
    with FileServer(nanoaod_dir / "nano_dy.root") as server:
        url = server.url
    failure = classify_chunk_failure(_raised(lambda: uproot.open({url: None}, timeout=5)), url, "open")
    assert (failure.category, failure.kind) == (READ, DEAD_SERVER)


@pytest.mark.parametrize("handler", ["fsspec", "http"])
def test_a_server_dying_while_the_analysis_reads_is_a_dead_server_read_failure(nanoaod_dir, handler):
    options = {"handler": uproot.source.http.HTTPSource} if handler == "http" else {}
    with FileServer(nanoaod_dir / "nano_dy.root") as server:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            events = NanoEventsFactory.from_root({server.url: "Events"}, schemaclass=NanoAODSchema, mode="virtual",
                                                 uproot_options={"timeout": 5, **options}).events()
        assert process_muons(events) > 0  # the muons are read while the server is up
        server.stop()

        def process_jets(events):
            return float(ak.sum(events.Jet.pt))  # read lazily, from a dead server

        failure = classify_chunk_failure(_raised(process_jets, events), server.url, "process")
    _assert_well_formed(failure)
    assert (failure.category, failure.kind) == (READ, DEAD_SERVER), failure
    assert failure.branch in ("nJet", "Jet_pt") and failure.user_frame.endswith(" in process_jets")


_UNPRIVILEGED = """
import json, sys, uproot
from pc_run.failures import classify_chunk_failure
from pc_run.file_check import check_file
path = sys.argv[1]
check = check_file("D", path)
try:
    uproot.open(path)
except Exception as exc:
    failure = classify_chunk_failure(exc, path, "open")
print(json.dumps({"check": [check.kind, check.error], "failure": failure.to_dict()}))
"""


def test_an_unreadable_file_is_permission(tmp_path, nanoaod_dir):
    if os.geteuid() != 0:
        path = unreadable_copy(nanoaod_dir / "nano_dy.root", tmp_path / "dy.root")
        if not reads_blocked(path):
            pytest.skip("mode 000 does not stop this process from reading (CAP_DAC_OVERRIDE?)")
        check = check_file("D", str(path))
        failure = classify_chunk_failure(_raised(uproot.open, str(path)), str(path), "open")
        result = {"check": [check.kind, check.error], "failure": failure.to_dict()}
    else:
        # root reads a mode-000 file: read it as "nobody" instead, from a folder nobody may enter
        folder = Path(tempfile.mkdtemp(prefix="pc-unreadable-"))
        try:
            folder.chmod(0o755)
            path = unreadable_copy(nanoaod_dir / "nano_dy.root", folder / "dy.root")
            assert not reads_blocked(path)  # root
            try:
                run = subprocess.run([sys.executable, "-c", _UNPRIVILEGED, str(path)], user=65534, group=65534,
                                     capture_output=True, text=True, cwd=folder, timeout=120)
            except (PermissionError, OSError) as exc:
                pytest.skip(f"running as root, and cannot read as an unprivileged user to test mode 000: {exc}")
            if run.returncode != 0:
                pytest.skip(f"running as root, and python does not run as user nobody: {run.stderr[-500:]}")
            result = json.loads(run.stdout)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    assert result["check"][0] == PERMISSION and "Permission denied" in result["check"][1]
    failure = ChunkFailure.from_dict(result["failure"])
    assert (failure.category, failure.kind) == (READ, PERMISSION)
    assert failure.message.startswith("permission: PermissionError: [Errno 13] Permission denied")


@pytest.mark.parametrize("exc, kind", [
    (socket.gaierror(-2, "Name or service not known"), DNS),
    (socket.gaierror(-3, "Temporary failure in name resolution"), DNS),
    (OSError("Failed to submit File.open request: [FATAL] Invalid address"), DNS),
    (FileNotFoundError("file not found ([FATAL] Invalid address)"), DNS),
    (PermissionError(13, "Permission denied"), PERMISSION),
    (OSError(13, "Permission denied"), PERMISSION),
    (FileNotFoundError("file not found ([ERROR] Server responded with an error: [3010] Unable to open file "
                       "/store/x.root; Permission denied)"), PERMISSION),
    (OSError("XRootD error: [FATAL] Auth failed: No protocols left to try in file root://x//y.root"), PERMISSION),
    (OSError("[ERROR] Server responded with an error: [3011] No such file or directory"), MISSING_FILE),
    (OSError("File did not open properly: [ERROR] Operation expired"), DEAD_SERVER),
    (ConnectionRefusedError(111, "Connection refused"), DEAD_SERVER),
    (ValueError("I/O operation on closed file."), DEAD_SERVER),
    (OSError("expected Chunk of length 146,\nreceived 0 bytes from FSSpecSource\nfor file path /x.root"), CORRUPT_FILE),
    (ValueError("not a ROOT file: first four bytes are b'<htm'"), CORRUPT_FILE),
    (ValueError("bad binning"), OTHER),
])
def test_read_error_kinds(exc, kind):
    assert classify_read_error(exc) == kind
    assert (classify_chunk_failure(exc, "/x.root", "open").category == READ)  # opening is always a read
    assert kind == OTHER or read_error_hint(kind)


def test_an_unknown_failure_to_open_is_other_io():
    failure = classify_chunk_failure(RuntimeError("the handler exploded"), "/data/x.root", "open")
    assert (failure.category, failure.kind, failure.message) == (READ, OTHER_IO, "other-io: RuntimeError: the handler exploded")


# --- the analysis' own failures -----------------------------------------------------------------


def load_corrections():
    with open("corrections/missing.json") as stream:  # relative to the cwd, as a user writes it
        return json.load(stream)


def load_scale_factors():
    return uproot.open("corrections/missing_sf.root")["sf"]


def test_a_missing_correction_file_is_the_analysis_not_a_read_failure(tmp_path, monkeypatch, nanoaod_dir):
    monkeypatch.chdir(tmp_path)
    dy = str(nanoaod_dir / "nano_dy.root")
    failure = classify_chunk_failure(_raised(load_corrections), dy, "process")
    _assert_well_formed(failure)
    assert (failure.category, failure.kind) == (ANALYSIS, "FileNotFoundError")
    assert failure.message == "FileNotFoundError: [Errno 2] No such file or directory: 'corrections/missing.json'"
    user_file, rest = failure.user_frame.split(":", 1)
    assert Path(user_file).resolve() == Path(__file__).resolve() and rest.endswith(" in load_corrections")

    # the same with uproot, inside the processor: still not the input file
    failure = classify_chunk_failure(_raised(load_scale_factors), dy, "process")
    assert (failure.category, failure.kind) == (ANALYSIS, "FileNotFoundError")
    assert "missing_sf.root" in failure.message and failure.user_frame.endswith(" in load_scale_factors")
    assert classify_chunk_failure(_raised(load_scale_factors), dy, "build").category == ANALYSIS


def test_a_corrupt_correction_file_is_the_analysis_and_named(tmp_path, nanoaod_dir):
    corrections = str(corrupt_basket_copy(nanoaod_dir / "nano_dy.root", tmp_path / "sf.root"))

    def read_scale_factors():
        return uproot.open(corrections)["Events"]["Muon_pt"].array()

    failure = classify_chunk_failure(_raised(read_scale_factors), str(nanoaod_dir / "nano_dy.root"), "process")
    assert (failure.category, failure.kind) == (ANALYSIS, "zlib.error")
    assert failure.message.endswith(f"(basket 0 of branch Muon_pt in {corrections}, not the input file)")


def test_a_missing_branch_is_the_analysis_and_names_branch_and_file(nanoaod_dir):
    dy = str(nanoaod_dir / "nano_dy.root")

    def read_branch(path):
        return uproot.open(path)["Events"].arrays(["Muon_pt2"])

    failure = classify_chunk_failure(_raised(read_branch, dy), dy, "process")
    _assert_well_formed(failure)
    assert (failure.category, failure.kind, failure.branch) == (ANALYSIS, "KeyInFileError", "Muon_pt2")
    assert failure.message == f"KeyInFileError: no branch 'Muon_pt2' in tree 'Events' of the input file {dy}"
    assert failure.user_frame.endswith(" in read_branch")
    assert classify_chunk_failure(_raised(lambda: uproot.open(dy)["Evts"]), dy, "build").message == (
        f"KeyInFileError: no key 'Evts' in the input file {dy}")
    assert classify_chunk_failure(_raised(lambda: {}["Muon_pt2"]), dy, "process").message == "KeyError: 'Muon_pt2'"


@pytest.mark.parametrize("dropped, message", [
    ("Muon_phi", "ValueError: MuonArray: missing azimuthal coordinates"),
    ("Muon_charge", "ValueError: MuonArray requires the 'charge' field"),
])
def test_a_collection_without_a_needed_branch_names_it(tmp_path, nanoaod_dir, dropped, message):
    branches = [b for b in ("run", "luminosityBlock", "event", "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass",
                            "Muon_charge") if b != dropped]
    path = str(uncompressed_copy(nanoaod_dir / "nano_dy.root", tmp_path / "dropped.root", branches=branches))
    failure = classify_chunk_failure(_raised(process_muons, _events(path)), path, "process")
    _assert_well_formed(failure)
    assert (failure.category, failure.kind) == (ANALYSIS, "AttributeError")  # NanoEvents: events.Muon failed
    assert failure.message.startswith(f"AttributeError: while trying to get field 'Muon', an exception occurred: "
                                      f"<class 'ValueError'>: {message.removeprefix('ValueError: ')}")
    assert f"the input file probably lacks the branch(es) {dropped}; fields there: " in failure.message
    assert failure.user_frame.endswith(" in process_muons")


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown chunk phase 'run'"):
        classify_chunk_failure(KeyError("x"), "/x.root", "run")
