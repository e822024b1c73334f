"""Faults injected for real into `pocket-coffea run`, each followed by exact accounting.

Every test runs the real command in its own process on the real NanoAOD samples and checks
events and sums of genWeight against an independent uproot count of the inputs: processed
plus skipped equals the input, nothing is counted twice, and a resumed run equals an
uninterrupted one. docs/reliability.md lists the results.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis_testlib import DATA, DY, TT, standard_fileset
from fault_analysis import make_fault_analysis
from outputs_compare import assert_outputs_equal
from pc_core.ledger import completeness_problems, processed_events
from pc_core.output import load_output
from service_guard import require_service

CLI = str(Path(sys.executable).parent / "pocket-coffea")
STATE = ".pocket-coffea"


def uproot_counts(fileset: dict) -> dict[str, tuple[int, float]]:
    """(events, sum of genWeight) per dataset, read with uproot alone."""
    counts = {}
    for dataset, entry in fileset.items():
        events, sumw = 0, 0.0
        for path in entry["files"]:
            tree = uproot.open(path)["Events"]
            events += tree.num_entries
            if entry["metadata"]["isMC"] and tree.num_entries:
                sumw += float(np.sum(tree["genWeight"].array(library="np").astype(np.float64)))
        counts[dataset] = (events, sumw)
    return counts


def expected_tt_events(nanoaod_dir: Path) -> int:
    return uproot.open(nanoaod_dir / "nano_tt_v12.root")["Events"].num_entries


def output_counts(output: dict) -> dict[str, tuple[int, float]]:
    return {
        dataset: (int(n), float(output["sum_genweights"].get(dataset, 0.0)))
        for dataset, n in output["cutflow"]["initial"].items()
    }


def run(args: list, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "run", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def flat(text: str) -> str:
    return " ".join(text.split())


def fault_env(**faults: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PC_FAULT_")}
    env.update(faults, COLUMNS="250")  # rich wraps log lines at the terminal width
    return env


@pytest.fixture(scope="module")
def fileset(nanoaod_dir) -> dict:
    return standard_fileset(nanoaod_dir)


@pytest.fixture(scope="module")
def config(tmp_path_factory, fileset) -> Path:
    return make_fault_analysis(tmp_path_factory.mktemp("faults"), fileset)


@pytest.fixture(scope="module")
def expected(fileset) -> dict:
    return uproot_counts(fileset)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory) -> dict:
    """An uninterrupted iterative run, 5-event chunks: what every faulty run must equal."""
    outdir = tmp_path_factory.mktemp("reference")
    result = run(["--cfg", config, "-o", outdir, "-c", 5], env=fault_env())
    assert result.returncode == 0, result.stderr
    return load_output(outdir / "output_all.coffea")


def assert_exact(output: dict, expected: dict, fileset: dict) -> None:
    counts = output_counts(output)
    assert set(counts) == set(expected)
    for dataset, (events, sumw) in expected.items():
        assert counts[dataset][0] == events, dataset
        assert counts[dataset][1] == pytest.approx(sumw, rel=1e-12, abs=1e-9), dataset
    ledger = output["processing_metadata"]["ledger"]
    assert completeness_problems(ledger, fileset) == []
    assert processed_events(ledger) == {d: n for d, (n, _) in expected.items()}


# --------------------------------------------------------------------------- worker death


@pytest.mark.parametrize("executor", ["futures", "dask"])
def test_worker_killed_once_is_rerun_exactly(executor, config, tmp_path, fileset, expected, reference):
    marker = tmp_path / "killed"
    result = run(["--cfg", config, "-o", tmp_path / "out", "-e", executor, "-s", 2, "-c", 5],
                 env=fault_env(PC_FAULT_KILL_ONCE=str(marker)))
    assert marker.exists(), "the fault did not fire"
    assert result.returncode == 0, result.stderr
    if executor == "futures":  # dask reruns the task itself, without our message
        assert "worker process died: signal 9 (SIGKILL)" in flat(result.stderr)
    output = load_output(tmp_path / "out" / "output_all.coffea")
    assert_exact(output, expected, fileset)
    assert_outputs_equal(output, reference, rtol=1e-12, skip=("ledger",))
    report = json.loads((tmp_path / "out" / "processing_report.json").read_text())
    assert report["groups"]["all"]["ledger"] == output["processing_metadata"]["ledger"]  # one ledger, twice


def test_chunk_that_always_kills_its_worker_fails_named(config, tmp_path):
    result = run(["--cfg", config, "-o", tmp_path / "out", "-e", "futures", "-s", 2, "-c", 5],
                 env=fault_env(PC_FAULT_KILL_ALWAYS="1"))
    assert result.returncode == 1
    assert ("nano_dy.root, entries 10-15 killed the worker running it (2 times while running alone; last: a worker "
            "process died: signal 9 (SIGKILL))") in flat(result.stderr)
    assert not (tmp_path / "out" / "output_all.coffea").exists()
    report = json.loads((tmp_path / "out" / "processing_report.json").read_text())
    assert report["failed"] == ["all"]
    assert json.loads((tmp_path / "out" / "failed_jobs.json").read_text()) == ["all"]


# --------------------------------------------------------------------------- the user's errors


def test_analysis_error_is_not_retried_and_named_once(config, tmp_path):
    attempts = tmp_path / "attempts"
    result = run(["--cfg", config, "-o", tmp_path / "out", "-c", 5], env=fault_env(PC_FAULT_RAISE=str(attempts)))
    assert result.returncode == 1
    assert attempts.read_text().count("attempt") == 1  # retries is 20, but a bug is not retried
    message = flat(result.stderr)
    assert f"dataset {DY!r}" in message and "nano_dy.root" in message and "entries 10-15" in message
    assert "ValueError: the analysis cannot handle this chunk" in message
    assert "fault_workflow.py:" in message  # the user's frame
    assert "Traceback" not in result.stderr
    assert "Traceback" in (tmp_path / "out" / "run.log").read_text()


def test_histogram_of_a_missing_field_fails_on_the_first_chunk_once(config, tmp_path):
    result = run(["--cfg", config, "-o", tmp_path / "out", "-c", 5, "--skip-bad-files"], env=fault_env(PC_FAULT_HIST="1"))
    assert result.returncode == 1
    message = flat(result.stderr)
    assert "nano_dy.root, entries 0-5:" in message  # the first chunk
    assert "histogram 'muon_ptt'" in message and "MuonGood.ptt" in message
    assert message.count("the analysis failed") == 2  # the log line and the error, for one chunk
    report = json.loads((tmp_path / "out" / "processing_report.json").read_text())
    assert report["failed"] == ["all"] and report["skipped_files"] == []


def test_missing_correction_file_is_an_analysis_error_not_a_bad_input(config, tmp_path):
    result = run(["--cfg", config, "-o", tmp_path / "out", "--skip-bad-files"], env=fault_env(PC_FAULT_CORRECTION="1"))
    assert result.returncode == 1
    assert "FileNotFoundError" in result.stderr and "missing_sf.json" in result.stderr
    assert "skipped" not in result.stderr.lower() or "0 skipped" in result.stderr.lower()
    assert not (tmp_path / "out" / "output_all.coffea").exists()


# --------------------------------------------------------------------------- bad input files


def test_limit_chunks_leaves_the_later_files_unplanned_not_bad(config, tmp_path, fileset):
    result = run(["--cfg", config, "-o", tmp_path / "out", "-c", 10, "-lc", 1], env=fault_env())
    assert result.returncode == 0, result.stderr
    output = load_output(tmp_path / "out" / "output_all.coffea")
    assert output["cutflow"]["initial"] == {DY: 10, DATA: 10, TT: 10}
    assert output["processing_metadata"]["skipped_files"] == []
    ledger = output["processing_metadata"]["ledger"]
    assert sorted((e["dataset"], e["processed"]) for e in ledger["files"].values()) == [
        (DATA, [[0, 10]]), (DY, [[0, 10]]), (TT, [[0, 10]])]


def test_truncated_file_is_skipped_as_corrupt_with_exact_accounting(config, tmp_path, fileset, nanoaod_dir):
    broken = tmp_path / "nano_tt_truncated.root"
    data = (nanoaod_dir / "nano_tt_v12.root").read_bytes()
    broken.write_bytes(data[: int(len(data) * 0.6)])
    faulty = json.loads(json.dumps(fileset))
    faulty[TT]["files"] = [str(broken)]
    config_dir = config.parent
    (config_dir / "fileset.json").write_text(json.dumps(faulty))
    try:
        failed = run(["--cfg", config, "-o", tmp_path / "strict", "-c", 50], env=fault_env())
        skipped = run(["--cfg", config, "-o", tmp_path / "skip", "-c", 50, "--skip-bad-files"], env=fault_env())
    finally:
        (config_dir / "fileset.json").write_text(json.dumps(fileset))
    assert failed.returncode == 1
    assert "nano_tt_truncated.root" in failed.stderr and "corrupt-file" in failed.stderr
    assert skipped.returncode == 0, skipped.stderr
    output = load_output(tmp_path / "skip" / "output_all.coffea")
    good = {d: e for d, e in fileset.items() if d != TT}
    counts = output_counts(output)
    for dataset, (events, sumw) in uproot_counts(good).items():
        assert counts[dataset] == (events, pytest.approx(sumw, rel=1e-12, abs=1e-9))
    ledger = output["processing_metadata"]["ledger"]
    tt_rows = [e for e in ledger["files"].values() if e["dataset"] == TT]
    assert len(tt_rows) == 1 and tt_rows[0]["processed"] == []
    skipped_ranges = tt_rows[0]["skipped"]
    assert {s["kind"] for s in skipped_ranges} == {"corrupt-file"}
    assert sum(s["stop"] - s["start"] for s in skipped_ranges) == expected_tt_events(nanoaod_dir)
    report = json.loads((tmp_path / "skip" / "processing_report.json").read_text())
    assert [(s["file"], s["kind"], s["events"]) for s in report["skipped_files"]] == [
        (str(broken), "corrupt-file", expected_tt_events(nanoaod_dir))]


# --------------------------------------------------------------------------- interruption and resume


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _start(args: list, env: dict) -> subprocess.Popen:
    return subprocess.Popen([CLI, "run", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


@pytest.mark.parametrize("killed", ["process tree", "run reading ahead"])
def test_sigkill_then_rerun_resumes_identically(killed, config, tmp_path, fileset, expected, reference):
    """kill -9 of the whole process tree, as a node failure would; or of the run itself while its
    read-ahead helper works: the helper ends with it and leaves no hand-over file. Either way the
    rerun resumes to the identical output."""
    reading_ahead = killed == "run reading ahead"
    outdir = tmp_path / "out"
    args = ["--cfg", config, "-o", outdir, "-c", 5]
    options = tmp_path / "options.yaml"
    options.write_text("checkpoint-interval: 1\n" + ("pipelined-reading: true\n" if reading_ahead else ""))
    process = _start([*args, "-ro", options], fault_env(PC_FAULT_SLEEP="0.1"))
    _wait_for(outdir / STATE / "checkpoints" / "all" / "snapshot.coffea", process)
    if reading_ahead:
        helpers = subprocess.run(["pgrep", "-g", str(process.pid), "-f", "read_ahead.py"], capture_output=True,
                                 text=True).stdout.split()
        assert len(helpers) == 1, helpers
        process.kill()
    else:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    if reading_ahead:
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{helpers[0]}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{helpers[0]}"), "the read-ahead helper outlived the run"
        assert not [p for p in os.listdir("/dev/shm") if p.startswith(f"pocket-coffea-read-ahead-{helpers[0]}-")]
    assert not (outdir / "output_all.coffea").exists()
    resumed = run([*args, "-ro", options], env=fault_env())
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stderr
    output = load_output(outdir / "output_all.coffea")
    assert_exact(output, expected, fileset)
    assert_outputs_equal(output, reference, rtol=0)  # iterative: identical to the last bit
    assert not (outdir / STATE / "checkpoints" / "all").exists()


def test_sigterm_stops_workers_writes_report_and_resumes(config, tmp_path, fileset, expected, reference):
    outdir = tmp_path / "out"
    args = ["--cfg", config, "-o", outdir, "-e", "futures", "-s", 2, "-c", 5]
    options = tmp_path / "options.yaml"
    options.write_text("checkpoint-interval: 1\n")
    process = _start([*args, "-ro", options], fault_env(PC_FAULT_SLEEP="0.1"))
    _wait_for(outdir / STATE / "checkpoints" / "all" / "snapshot.coffea", process)
    children = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 3  # the main process and two workers
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "rerun the same command" in flat(stderr)
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert left == [], "worker processes outlived the run"
    report = json.loads((outdir / "processing_report.json").read_text())
    assert report["interrupted"] == ["all"]
    resumed = run(args, env=fault_env())
    assert resumed.returncode == 0, resumed.stderr
    output = load_output(outdir / "output_all.coffea")
    assert_exact(output, expected, fileset)
    assert_outputs_equal(output, reference, rtol=1e-12, skip=("ledger",))


def test_changed_config_refuses_to_resume_and_says_why(config, tmp_path, fileset):
    outdir = tmp_path / "out"
    options = tmp_path / "options.yaml"
    options.write_text("checkpoint-interval: 1\n")
    attempts = tmp_path / "attempts"
    failed = run(["--cfg", config, "-o", outdir, "-c", 5, "-ro", options], env=fault_env(PC_FAULT_RAISE=str(attempts)))
    assert failed.returncode == 1, failed.stderr[-3000:]
    workflow = config.parent / "fault_workflow.py"
    original = workflow.read_text()
    workflow.write_text(original + "\n# fixed\n")
    try:
        refused = run(["--cfg", config, "-o", outdir, "-c", 5, "-ro", options], env=fault_env())
    finally:
        workflow.write_text(original)
    assert refused.returncode == 1
    assert "different configuration (changed: modules beside the config)" in flat(refused.stderr)


def test_failed_run_without_ps_is_finished_by_rerunning(config, tmp_path, fileset, expected, reference):
    outdir = tmp_path / "out"
    options = tmp_path / "options.yaml"
    options.write_text("checkpoint-interval: 1\n")
    # an analysis error on one chunk, then the same command without the fault
    attempts = tmp_path / "attempts"
    failed = run(["--cfg", config, "-o", outdir, "-c", 5, "-ro", options], env=fault_env(PC_FAULT_RAISE=str(attempts)))
    assert failed.returncode == 1
    assert json.loads((outdir / "failed_jobs.json").read_text()) == ["all"]
    snapshot = outdir / STATE / "checkpoints" / "all" / "snapshot.coffea"
    assert snapshot.exists()  # the chunks before the failing one are kept
    finished = run(["--cfg", config, "-o", outdir, "-c", 5, "-ro", options, "--resubmit-failed"], env=fault_env())
    assert finished.returncode == 0, finished.stderr
    assert_exact(load_output(outdir / "output_all.coffea"), expected, fileset)
    assert not (outdir / "failed_jobs.json").exists()


# --------------------------------------------------------------------------- the output folder


def test_output_folder_is_owned(config, tmp_path, fileset, expected):
    outdir = tmp_path / "out"
    first = run(["--cfg", config, "-o", outdir, "-c", 20], env=fault_env())
    assert first.returncode == 0, first.stderr
    again = run(["--cfg", config, "-o", outdir, "-c", 20], env=fault_env())
    assert again.returncode == 0 and "Nothing to do" in again.stdout
    other = run(["--cfg", config, "-o", outdir, "-c", 10], env=fault_env())
    assert other.returncode == 1
    assert "different fileset or chunking" in flat(other.stderr)
    assert "--overwrite" in other.stderr
    replaced = run(["--cfg", config, "-o", outdir, "-c", 10, "--overwrite"], env=fault_env())
    assert replaced.returncode == 0, replaced.stderr
    assert_exact(load_output(outdir / "output_all.coffea"), expected, fileset)

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "output_all.coffea").write_bytes(b"an earlier run")
    refused = run(["--cfg", config, "-o", legacy], env=fault_env())
    assert refused.returncode == 1 and "holds the results of an earlier run" in flat(refused.stderr)
    assert (legacy / "output_all.coffea").read_bytes() == b"an earlier run"


def test_two_runs_into_one_folder_the_second_is_refused(config, tmp_path):
    outdir = tmp_path / "out"
    process = _start(["--cfg", config, "-o", outdir, "-c", 5], fault_env(PC_FAULT_SLEEP="0.2"))
    _wait_for(outdir / STATE / "run_state.json", process)
    second = run(["--cfg", config, "-o", outdir, "-c", 5], env=fault_env())
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert second.returncode == 1
    assert f"is in use by another run (pid {process.pid}" in flat(second.stderr)


def test_full_disk_keeps_the_processed_chunks_and_rerun_finishes(config, tmp_path, fileset, expected):
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mount)], capture_output=True)
    require_service("a 80 MB tmpfs (mount -t tmpfs, needs root)", mounted.returncode == 0, mounted.stderr.decode())
    try:
        outdir = mount / "out"
        full = run(["--cfg", config, "-o", outdir, "-c", 5], env=fault_env(PC_FAULT_FILL=str(mount)))
        assert full.returncode == 1
        message = flat(full.stderr)
        assert "No space left on device" in message and "pocket-coffea-rescue" in message, message
        assert not (outdir / "output_all.coffea").exists()
        (mount / "filler").unlink()
        finished = run(["--cfg", config, "-o", outdir, "-c", 5], env=fault_env())
        assert finished.returncode == 0, finished.stderr
        assert_exact(load_output(outdir / "output_all.coffea"), expected, fileset)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_too_little_free_space_is_refused_before_processing(config, tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    require_service("a 8 MB tmpfs (mount -t tmpfs, needs root)", mounted.returncode == 0, mounted.stderr.decode())
    try:
        result = run(["--cfg", config, "-o", mount / "out"], env=fault_env())
        assert result.returncode == 1
        assert "MB free; at least 67 MB are needed" in flat(result.stderr)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# --------------------------------------------------------------------------- merging


def test_merge_refuses_output_all_with_the_ps_outputs_of_the_same_inputs(config, tmp_path, fileset, expected):
    whole = run(["--cfg", config, "-o", tmp_path / "all"], env=fault_env())
    separate = run(["--cfg", config, "-o", tmp_path / "ps", "-ps"], env=fault_env())
    assert whole.returncode == 0 and separate.returncode == 0, (whole.stderr, separate.stderr)
    pieces = sorted((tmp_path / "ps").glob("output_*.coffea"))
    assert len(pieces) == 3
    merged = subprocess.run(
        [CLI, "merge-outputs", str(tmp_path / "all" / "output_all.coffea"),
         *map(str, pieces), "-o", str(tmp_path / "merged.coffea")], capture_output=True, text=True, env=fault_env())
    assert merged.returncode != 0
    message = flat(merged.stderr)
    # the first overlap found: output_all.coffea against the first -ps output (sorted: the data)
    assert (f"all/output_all.coffea and {tmp_path / 'ps' / f'output_{DATA}.coffea'} both hold entries 0-40 of input "
            f"file {fileset[DATA]['files'][0]}") in message, message
    assert not (tmp_path / "merged.coffea").exists()
    good = subprocess.run([CLI, "merge-outputs", *map(str, pieces), "-o", str(tmp_path / "ok.coffea")],
                          capture_output=True, text=True, env=fault_env())
    assert good.returncode == 0, good.stderr
    counts = output_counts(load_output(tmp_path / "ok.coffea"))
    assert {d: n for d, (n, _) in counts.items()} == {d: n for d, (n, _) in expected.items()}
    assert DATA in counts


# --------------------------------------------------------------------------- more faults of the inputs


def _ledger_ranges(output: dict, dataset: str, status: str) -> list[tuple[int, int]]:
    rows = [e for e in output["processing_metadata"]["ledger"]["files"].values() if e["dataset"] == dataset]
    if status == "processed":
        return [tuple(r) for e in rows for r in e["processed"]]
    return [(r["start"], r["stop"]) for e in rows for r in e[status]]


def _genweight_sum(path, ranges) -> float:
    weights = uproot.open(path)["Events"]["genWeight"].array(library="np").astype(np.float64)
    return float(sum(weights[a:b].sum() for a, b in ranges))


def test_corrupt_basket_is_a_corrupt_file_and_accounting_stays_exact(config, tmp_path, fileset, nanoaod_dir):
    from faults import corrupt_basket_copy

    broken = corrupt_basket_copy(nanoaod_dir / "nano_tt_v12.root", tmp_path / "nano_tt_corrupt.root", branch="Muon_pt")
    faulty = json.loads(json.dumps(fileset))
    faulty[TT]["files"] = [str(broken)]
    (config.parent / "fileset.json").write_text(json.dumps(faulty))
    try:
        strict = run(["--cfg", config, "-o", tmp_path / "strict", "-c", 50], env=fault_env())
        skipping = run(["--cfg", config, "-o", tmp_path / "skip", "-c", 50, "--skip-bad-files"], env=fault_env())
    finally:
        (config.parent / "fileset.json").write_text(json.dumps(fileset))
    assert strict.returncode == 1
    assert "(corrupt-file)" in flat(strict.stderr) and "branch Muon_pt" in flat(strict.stderr)
    assert skipping.returncode == 0, skipping.stderr
    output = load_output(tmp_path / "skip" / "output_all.coffea")
    processed, skipped = _ledger_ranges(output, TT, "processed"), _ledger_ranges(output, TT, "skipped")
    assert skipped, "the corrupt basket was never read"
    total = expected_tt_events(nanoaod_dir)
    assert sum(b - a for a, b in processed) + sum(b - a for a, b in skipped) == total
    assert output["cutflow"]["initial"].get(TT, 0) == sum(b - a for a, b in processed)
    assert output["sum_genweights"].get(TT, 0.0) == pytest.approx(_genweight_sum(broken, processed), rel=1e-12, abs=1e-9)


@contextlib.contextmanager
def _ttbar_served_until_stopped(config, fileset, nanoaod_dir, tmp_path, options: str, *flags: str):
    """A run whose ttbar file (read last) is served by a real HTTP server, stopped once the run has
    checkpointed its first chunks (DY and data are being processed): yields (run, server)."""
    from faults import FileServer

    server = FileServer(nanoaod_dir / "nano_tt_v12.root")
    remote = json.loads(json.dumps(fileset))
    remote[TT]["files"] = [server.url]
    (config.parent / "fileset.json").write_text(json.dumps(remote))
    path = tmp_path / "options.yaml"
    path.write_text(options)
    process = None
    try:
        process = _start(["--cfg", config, "-o", tmp_path / "out", "-c", 50, "-ro", path, *flags],
                         fault_env(PC_FAULT_SLEEP="0.3", COLUMNS="250"))
        _wait_for(tmp_path / "out" / STATE / "checkpoints" / "all" / "snapshot.coffea", process)
        server.stop()
        yield process, server
    finally:
        if process is not None and process.poll() is None:  # the test failed before the run ended
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        server.stop()
        (config.parent / "fileset.json").write_text(json.dumps(fileset))


def test_server_dying_mid_run_is_retried_then_skipped_exactly(config, tmp_path, fileset, nanoaod_dir):
    with _ttbar_served_until_stopped(config, fileset, nanoaod_dir, tmp_path, "checkpoint-interval: 1\nretries: 2\n",
                                     "--skip-bad-files") as (process, _):
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    output = load_output(tmp_path / "out" / "output_all.coffea")
    skipped = [r for e in output["processing_metadata"]["ledger"]["files"].values() for r in e["skipped"]]
    assert {r["kind"] for r in skipped} == {"dead-server"}
    assert sum(r["stop"] - r["start"] for r in skipped) + output["cutflow"]["initial"].get(TT, 0) == expected_tt_events(nanoaod_dir)
    assert "attempt 2 of 3" in flat(stderr) and "after 3 attempt(s)" in flat(stderr)  # retried (retries: 2)
    for dataset in (DY, DATA):
        assert output_counts(output)[dataset] == pytest.approx(uproot_counts({dataset: fileset[dataset]})[dataset])


def _wait_for_log(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        assert process.poll() is None and time.monotonic() < deadline, f"{text!r} was never logged"
        time.sleep(0.05)


def _assert_nothing_skipped_and_exact(output, fileset, nanoaod_dir) -> None:
    ledger = output["processing_metadata"]["ledger"]["files"].values()
    assert [r for e in ledger for r in e["skipped"]] == [] and output["processing_metadata"]["skipped_files"] == []
    assert output["cutflow"]["initial"][TT] == expected_tt_events(nanoaod_dir)
    for dataset in (DY, DATA):
        assert output_counts(output)[dataset] == pytest.approx(uproot_counts({dataset: fileset[dataset]})[dataset])


def test_server_back_after_a_restart_is_read_on_retry_exactly(config, tmp_path, fileset, nanoaod_dir):
    """The server of the last file dies mid-run and comes back as soon as the run logs the first
    failed read: the retry, a second later (retry-delay), reads it, and nothing is skipped."""
    options = "checkpoint-interval: 1\nretries: 3\nretry-delay: 1\n"
    with _ttbar_served_until_stopped(config, fileset, nanoaod_dir, tmp_path, options) as (process, server):
        _wait_for_log(tmp_path / "out" / "run.log", "failed (dead-server), attempt 1 of 4", process)
        server.restart()
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert "tried again in 1 s" in flat(stderr)
    _assert_nothing_skipped_and_exact(load_output(tmp_path / "out" / "output_all.coffea"), fileset, nanoaod_dir)


def test_sigterm_while_a_retry_waits_stops_at_once_and_the_rerun_is_exact(config, tmp_path, fileset, nanoaod_dir):
    """A retry waits two minutes for a dead server; SIGTERM (a batch slot's wall-time limit) stops
    the run at once, not after the wait. With the server back, the same command resumes: every
    event exactly once, nothing skipped."""
    options = "checkpoint-interval: 1\nretries: 5\nretry-delay: 120\n"
    with _ttbar_served_until_stopped(config, fileset, nanoaod_dir, tmp_path, options) as (process, server):
        _wait_for_log(tmp_path / "out" / "run.log", "tried again in 120 s", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)  # half the wait: the stop did not wait it out
        assert process.returncode == 143 and "stopped by SIGTERM" in flat(stderr), stderr
        server.restart()
        resumed = run(["--cfg", config, "-o", tmp_path / "out", "-c", 50, "-ro", tmp_path / "options.yaml"],
                      env=fault_env())
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in flat(resumed.stderr)
    _assert_nothing_skipped_and_exact(load_output(tmp_path / "out" / "output_all.coffea"), fileset, nanoaod_dir)


# --------------------------------------------------------------------------- signals


def test_ctrl_c_stops_with_exit_130_and_resumes(config, tmp_path, fileset, expected, reference):
    outdir = tmp_path / "out"
    options = tmp_path / "options.yaml"
    options.write_text("checkpoint-interval: 1\n")
    args = ["--cfg", config, "-o", outdir, "-c", 5, "-ro", options]
    process = _start(args, fault_env(PC_FAULT_SLEEP="0.1"))
    _wait_for(outdir / STATE / "checkpoints" / "all" / "snapshot.coffea", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopped by SIGINT" in flat(stderr)
    resumed = run(args, env=fault_env())
    assert resumed.returncode == 0, resumed.stderr
    output = load_output(outdir / "output_all.coffea")
    assert_exact(output, expected, fileset)
    assert_outputs_equal(output, reference, rtol=0)


def test_read_only_output_folder_is_refused_before_processing(config, tmp_path):
    mount = tmp_path / "readonly"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m,ro", "tmpfs", str(mount)], capture_output=True)
    require_service("a read-only tmpfs (mount -t tmpfs, needs root)", mounted.returncode == 0, mounted.stderr.decode())
    try:
        result = run(["--cfg", config, "-o", mount], env=fault_env())
        assert result.returncode == 1
        assert f"output folder {mount}" in flat(result.stderr) and "Read-only file system" in flat(result.stderr)
        assert "Traceback" not in result.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=False)
