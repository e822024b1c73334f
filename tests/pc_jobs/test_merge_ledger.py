"""merge-outputs with processing ledgers: overlaps refused, completeness by entry ranges, job flags.

Synthetic outputs: every input file has fixed per-entry values, an output over some entry
ranges fills its histogram with exactly those entries and records them in its ledger, so
the merged histogram and event counts can be compared with the entries they must contain.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import hist
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pc_core import ledger as L
from pc_core.output import REQUIRED_KEYS, load_output, save_output
from pc_jobs.merge import IncompleteOutputError, merge_outputs, merge_outputs_command

BINS = np.linspace(0.0, 200.0, 11)
BIN_PY = Path(sys.executable).parent
F1 = "root://eos.example//store/mc/DY/f1.root"
F2 = "root://eos.example//store/mc/DY/f2.root"
D1 = "root://eos.example//store/data/DoubleMuon/d1.root"
ENTRIES = {F1: 1000, F2: 1000, D1: 600}
DATASET_OF = {F1: "DY_2018", F2: "DY_2018", D1: "DATA_2018"}
META = {
    "DY_2018": {"sample": "DY", "year": "2018", "isMC": True, "xsec": 6077.22},
    "DATA_2018": {"sample": "DATA", "year": "2018", "isMC": False},
}


def values(url: str) -> np.ndarray:
    """The fixed per-entry value (a 'muon pt') of every entry of an input file."""
    return np.random.default_rng(zlib.crc32(url.encode())).uniform(0.0, 200.0, ENTRIES[url])


def pt_hist(pt: np.ndarray) -> hist.Hist:
    h = hist.Hist.new.StrCat(["baseline"], name="cat").Var(BINS, name="pt").Weight()
    h.fill(cat="baseline", pt=pt)
    return h


def make_output(processed=(), *, skipped=(), failed=(), ledger=True, nevents=None) -> dict:
    """An output over ``processed`` = [(url, start, stop)], with ``skipped``/``failed`` =
    [(url, start, stop, kind, reason)]; ``nevents`` {dataset: n} defaults to the entries of
    the files the output touches (a job slice's metadata)."""
    pts: dict[str, list[np.ndarray]] = {}
    files: dict[str, set[str]] = {}
    book = L.new_ledger()
    for url, start, stop in processed:
        dataset = DATASET_OF[url]
        pts.setdefault(dataset, []).append(values(url)[start:stop])
        files.setdefault(dataset, set()).add(url)
        L.record(book, identity=L.file_identity(url), dataset=dataset, url=url, entries=ENTRIES[url],
                 start=start, stop=stop)
    for status, items in ((L.SKIPPED, skipped), (L.FAILED, failed)):
        for url, start, stop, kind, reason in items:
            files.setdefault(DATASET_OF[url], set()).add(url)
            L.record(book, identity=L.file_identity(url), dataset=DATASET_OF[url], url=url,
                     entries=None if stop is None else ENTRIES[url], start=start, stop=stop,
                     status=status, kind=kind, reason=reason)
    counts = {ds: int(sum(len(p) for p in parts)) for ds, parts in pts.items()}
    nevents = nevents or {ds: sum(ENTRIES[u] for u in urls) for ds, urls in files.items()}
    by_dataset = {ds: {**META[ds], "nevents": n} for ds, n in nevents.items() if ds in counts}
    output = {
        "sum_genweights": {ds: float(n) for ds, n in counts.items() if META[ds]["isMC"]},
        "sumw": {"baseline": {ds: {META[ds]["sample"]: float(n)} for ds, n in counts.items()}},
        "sumw2": {"baseline": {ds: {META[ds]["sample"]: float(n)} for ds, n in counts.items()}},
        "cutflow": {"initial": dict(counts)},
        "variables": {"pt": {META[ds]["sample"]: {ds: pt_hist(np.concatenate(p))} for ds, p in pts.items()}},
        "columns": {},
        "datasets_metadata": {
            "by_datataking_period": {"2018": {META[ds]["sample"]: [ds] for ds in counts}},
            "by_dataset": by_dataset,
        },
        "processing_metadata": {"lumi_pb": {"2018": 59740.0}, "normalised": False},
    }
    if ledger:
        output["processing_metadata"]["ledger"] = book
    assert set(REQUIRED_KEYS) <= set(output)
    return output


def write(path: Path, output: dict) -> Path:
    save_output(output, path)
    return path


JOBS = {0: [F1], 1: [F2], 2: [D1]}


def make_jobs_dir(tmp_path: Path, outputs: dict, flags: dict | None = None) -> Path:
    """A condor jobs folder: jobs_config.yaml (job i over JOBS[i]), job_i.sub, flags (default
    done) and the given ``{i: output}`` as output/output_job_i.coffea."""
    output_dir = tmp_path / "output"
    jobs_dir = output_dir / "job"
    jobs_dir.mkdir(parents=True)
    jobs = {}
    for i, urls in JOBS.items():
        dataset = DATASET_OF[urls[0]]
        out = output_dir / f"output_job_{i}.coffea"
        jobs[i] = {
            "fileset": {dataset: {"files": urls, "metadata": {**META[dataset], "nevents": sum(ENTRIES[u] for u in urls),
                                                              "file_nevents": [ENTRIES[u] for u in urls]}}},
            "config": f"config_job_{i}.pkl",
            "output": str(out),
        }
        (jobs_dir / f"job_{i}.sub").write_text("queue\n")
        flag = (flags or {}).get(i, "done")
        if flag is not None:
            (jobs_dir / f"job_{i}.{flag}").touch()
        if i in outputs:
            save_output(outputs[i], out)
    (jobs_dir / "jobs_config.yaml").write_text(yaml.safe_dump({"version": 1, "jobs": jobs}))
    return jobs_dir


def complete_jobs() -> dict:
    return {0: make_output([(F1, 0, 400), (F1, 400, 1000)]), 1: make_output([(F2, 0, 1000)]),
            2: make_output([(D1, 0, 600)])}


def invoke(*args):
    return CliRunner().invoke(merge_outputs_command, [str(a) for a in args], env={"COLUMNS": "250"})


def digest(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def expected_hist(pieces) -> np.ndarray:
    return np.histogram(np.concatenate([values(u)[a:b] for u, a, b in pieces]), bins=BINS)[0]


def dy_values(merged) -> np.ndarray:
    return merged["variables"]["pt"]["DY"]["DY_2018"][{"cat": "baseline"}].values()


# --------------------------------------------------------------------------- overlaps


def test_output_all_plus_per_dataset_outputs_is_refused(tmp_path):
    """The issue: output_all.coffea plus the -ps outputs of the same inputs used to give DY 4000 events."""
    everything = write(tmp_path / "output_all.coffea", make_output([(F1, 0, 1000), (F2, 0, 1000), (D1, 0, 600)]))
    dy = write(tmp_path / "output_DY_2018.coffea", make_output([(F1, 0, 1000), (F2, 0, 1000)]))
    merged_path = tmp_path / "merged.coffea"
    result = invoke(everything, dy, "-o", merged_path)
    assert result.exit_code == 1
    assert isinstance(result.exception, L.LedgerOverlapError)
    assert str(result.exception) == (
        f"{everything} and {dy} both hold entries 0-1000 of input file {F1} (dataset 'DY_2018', url:{F1}): "
        "adding them would count those events twice. Merge only outputs of disjoint inputs "
        "(e.g. either output_all.coffea or the per-dataset outputs of -ps, not both)\nNothing was written."
    )
    assert not merged_path.exists()
    # the console script: exit code 1, the message, no traceback
    script = subprocess.run([str(BIN_PY / "merge-outputs"), str(everything), str(dy), "-o", str(merged_path)],
                            capture_output=True, text=True)
    assert script.returncode == 1
    flat = " ".join(script.stderr.split())
    assert f"{everything} and {dy} both hold entries 0-1000 of input file {F1}" in flat
    assert "Traceback" not in script.stderr and not merged_path.exists()


def test_partial_overlap_names_the_overlapping_range(tmp_path):
    a = write(tmp_path / "a.coffea", make_output([(F1, 0, 600)]))
    b = write(tmp_path / "b.coffea", make_output([(F1, 500, 1000)]))
    with pytest.raises(L.LedgerOverlapError) as info:
        merge_outputs([str(a), str(b)], tmp_path / "m.coffea")
    assert str(info.value).startswith(f"{a} and {b} both hold entries 500-600 of input file {F1} (dataset 'DY_2018'")
    assert not (tmp_path / "m.coffea").exists()


def test_overlap_among_ledger_outputs_is_refused_even_next_to_an_old_output(tmp_path):
    a = write(tmp_path / "a.coffea", make_output([(F1, 0, 1000)]))
    b = write(tmp_path / "b.coffea", make_output([(F1, 0, 1000)]))
    old = write(tmp_path / "old.coffea", make_output([(D1, 0, 600)], ledger=False))
    with pytest.raises(L.LedgerOverlapError, match=f"{a} and {b} both hold entries 0-1000 of input file {F1}"):
        merge_outputs([str(a), str(old), str(b)], tmp_path / "m.coffea")
    assert not (tmp_path / "m.coffea").exists()


# --------------------------------------------------------------------------- complete merges


def test_disjoint_job_outputs_merge_and_the_ledger_is_their_union(tmp_path):
    jobs_dir = make_jobs_dir(tmp_path, complete_jobs())
    inputs = sorted((tmp_path / "output").glob("output_job_*.coffea"))
    before = digest(inputs)
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 0, result.output + repr(result.exception)
    merged = load_output(tmp_path / "output" / "output_merged.coffea")
    assert merged["processing_metadata"]["ledger"] == {"version": 1, "files": {
        f"url:{url}": {"dataset": DATASET_OF[url], "url": url, "entries": ENTRIES[url],
                       "processed": [[0, ENTRIES[url]]], "skipped": [], "failed": []}
        for url in (F1, F2, D1)
    }}
    assert L.processed_events(merged["processing_metadata"]["ledger"]) == {"DY_2018": 2000, "DATA_2018": 600}
    assert merged["cutflow"]["initial"] == {"DY_2018": 2000, "DATA_2018": 600}
    np.testing.assert_array_equal(dy_values(merged), expected_hist([(F1, 0, 1000), (F2, 0, 1000)]))
    assert dy_values(merged).sum() == 2000
    assert digest(inputs) == before
    text = " ".join(result.output.split())
    assert "ledger" in text and "Not processed" not in text and "event counts only" not in text


def test_files_without_fileset_are_checked_against_their_own_ledgers(tmp_path):
    outputs = complete_jobs()
    paths = [write(tmp_path / f"job_{i}.coffea", out) for i, out in outputs.items()]
    result = merge_outputs([str(p) for p in paths], tmp_path / "m.coffea")
    checks = {c.dataset: (c.method, c.found, c.expected, c.not_processed, c.status) for c in result.checks}
    assert checks == {"DY_2018": ("ledger", 2000, 2000, 0, "ok"), "DATA_2018": ("ledger", 600, 600, 0, "ok")}
    assert result.not_processed == [] and result.fallback_note is None


def test_a_file_read_from_another_replica_is_the_same_file(tmp_path):
    """check-jobs --resubmit moves reads to another replica; jobs_config.yaml keeps the submitted URL."""
    outputs = complete_jobs()
    moved = "root://other-site.example:1094//store/mc/DY/f2.root"
    book = L.new_ledger()
    L.record(book, identity=L.file_identity(moved), dataset="DY_2018", url=moved, entries=1000, start=0, stop=1000)
    outputs[1]["processing_metadata"]["ledger"] = book
    jobs_dir = make_jobs_dir(tmp_path, outputs)
    result = merge_outputs(jobs_config=jobs_dir)
    assert {c.dataset: c.status for c in result.checks} == {"DY_2018": "ok", "DATA_2018": "ok"}


# --------------------------------------------------------------------------- skipped and failed ranges


def test_skipped_and_failed_ranges_are_reported_not_errors(tmp_path):
    outputs = complete_jobs()
    outputs[1] = make_output([(F2, 0, 500)], failed=[(F2, 500, 1000, "dead-server", "[FATAL] Socket error")])
    outputs[2] = make_output(skipped=[(D1, 0, None, "missing-file", "[ERROR] No such file or directory")])
    jobs_dir = make_jobs_dir(tmp_path, outputs)
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = " ".join(result.output.split())
    assert ("Not processed (skipped, failed or not merged): 2 entry range(s), 500 events "
            "+ 1 range(s) of unknown length") in text
    for cell in ("DY_2018", F2, "500-1000", "failed", "dead-server", "[FATAL] Socket error",
                 "DATA_2018", D1, "0-end", "skipped", "missing-file", "No such file or directory", "partial"):
        assert cell in text, cell
    api = merge_outputs(jobs_config=jobs_dir, overwrite=True)
    rows = [(r.dataset, r.file, r.entries, r.events, r.status, r.kind, r.reason) for r in api.not_processed]
    assert rows == [
        ("DY_2018", F2, "500-1000", 500, "failed", "dead-server", "[FATAL] Socket error"),
        ("DATA_2018", D1, "0-end", None, "skipped", "missing-file", "[ERROR] No such file or directory"),
    ]
    checks = {c.dataset: (c.found, c.not_processed, c.unknown_ranges, c.status) for c in api.checks}
    assert checks == {"DY_2018": (1500, 500, 0, "partial"), "DATA_2018": (0, 0, 1, "partial")}
    merged = load_output(tmp_path / "output" / "output_merged.coffea")
    assert merged["cutflow"]["initial"] == {"DY_2018": 1500}
    np.testing.assert_array_equal(dy_values(merged), expected_hist([(F1, 0, 1000), (F2, 0, 500)]))


# --------------------------------------------------------------------------- missing entries


def test_a_missing_range_is_an_error(tmp_path):
    outputs = complete_jobs()
    outputs[1] = make_output([(F2, 0, 500)])  # entries 500-1000 were lost without a word
    jobs_dir = make_jobs_dir(tmp_path, outputs)
    merged_path = tmp_path / "output" / "output_merged.coffea"
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 1 and isinstance(result.exception, IncompleteOutputError)
    assert str(result.exception) == (
        f"The outputs do not hold every entry of the inputs (processing ledgers checked against the jobs' filesets "
        f"in {jobs_dir / 'jobs_config.yaml'}); 1 problem(s):\n"
        f"  entries 500-1000 of file {F2} (dataset 'DY_2018') are in no output\n"
        "Nothing was written. Merge the outputs that processed those entries too, or process them again; "
        "if the loss is intended, pass --skip-initial-events-check DATASET for each dataset."
    )
    assert not merged_path.exists()
    # an intended loss: the dataset named is only warned about
    result = invoke("-jc", jobs_dir, "--skip-initial-events-check", "DY_2018")
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert load_output(merged_path)["cutflow"]["initial"] == {"DY_2018": 1500, "DATA_2018": 600}


def test_files_missing_altogether_are_listed_and_capped(tmp_path):
    paths = [write(tmp_path / f"job_{i}.coffea", out) for i, out in complete_jobs().items()]
    extra = [f"root://eos.example//store/mc/DY/g{i:02d}.root" for i in range(25)]
    fileset = {
        "DY_2018": {"files": [F1, F2, *extra], "metadata": {**META["DY_2018"], "nevents": 27000}},
        "DATA_2018": {"files": [D1], "metadata": {**META["DATA_2018"], "nevents": 600}},
    }
    fileset_path = tmp_path / "fileset.json"
    fileset_path.write_text(json.dumps(fileset))
    result = invoke(*paths, "-o", tmp_path / "m.coffea", "--fileset", fileset_path)
    assert result.exit_code == 1
    lines = str(result.exception).splitlines()
    assert lines[0] == (f"The outputs do not hold every entry of the inputs (processing ledgers checked against "
                        f"--fileset {fileset_path}); 25 problem(s):")
    assert lines[1:21] == [f"  file {url} of dataset 'DY_2018' is in no output" for url in extra[:20]]
    assert lines[21] == "  ... and 5 more"
    assert not (tmp_path / "m.coffea").exists()


def test_without_fileset_a_missing_file_shows_in_the_nevents(tmp_path):
    """Only f1 and the data were merged; the DY outputs' metadata say the dataset has 2000 events."""
    a = write(tmp_path / "a.coffea", make_output([(F1, 0, 1000)], nevents={"DY_2018": 2000}))
    d = write(tmp_path / "d.coffea", make_output([(D1, 0, 600)]))
    with pytest.raises(IncompleteOutputError) as info:
        merge_outputs([str(a), str(d)], tmp_path / "m.coffea")
    assert "checked against the files the outputs' ledgers name); 1 problem(s)" in str(info.value)
    assert (
        "dataset 'DY_2018': the 1 input file(s) of it in the outputs' ledgers hold 1000 entries, but its nevents "
        "metadata is 2000: files of it are in no output (or nevents is wrong); pass --fileset FILESET.json "
        "(or -jc) to name the files"
    ) in str(info.value)
    assert not (tmp_path / "m.coffea").exists()


# --------------------------------------------------------------------------- job flags


def test_a_job_flagged_failed_is_refused_even_with_an_output(tmp_path):
    jobs_dir = make_jobs_dir(tmp_path, complete_jobs(), flags={1: "done"})
    # the job was resubmitted and failed: its output is the stale one of an earlier attempt
    (jobs_dir / "job_1.failed").touch()
    done_time = (jobs_dir / "job_1.done").stat().st_mtime
    os.utime(jobs_dir / "job_1.failed", (done_time + 10, done_time + 10))
    merged_path = tmp_path / "output" / "output_merged.coffea"
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 1 and isinstance(result.exception, IncompleteOutputError)
    output_1 = tmp_path / "output" / "output_job_1.coffea"
    assert str(result.exception) == (
        f"1 of 3 jobs listed in {jobs_dir / 'jobs_config.yaml'} are not done, their outputs cannot be merged:\n"
        f"  job 1 is flagged failed ({jobs_dir / 'job_1.failed'}, newer than job_1.done): its output {output_1} "
        "is stale or partial\n"
        "Nothing was written. Wait for/resubmit those jobs (check-jobs --resubmit, or run --recreate-jobs), "
        "or pass --allow-missing to merge the done jobs only."
    )
    assert not merged_path.exists()

    # --allow-missing merges the done jobs; the failed job's file is shown as not merged
    result = merge_outputs(jobs_config=jobs_dir, allow_missing=True)
    assert [str(p) for p in result.inputs] == [str(tmp_path / "output" / f"output_job_{i}.coffea") for i in (0, 2)]
    assert result.missing_jobs == [f"job 1 is flagged failed ({jobs_dir / 'job_1.failed'}, newer than job_1.done)"]
    rows = [(r.dataset, r.file, r.entries, r.events, r.status, r.kind) for r in result.not_processed]
    assert rows == [("DY_2018", F2, "0-end", 1000, "not merged", "job-not-merged")]
    assert result.not_processed[0].reason == f"{result.missing_jobs[0]} (--allow-missing)"
    merged = load_output(merged_path)
    assert L.processed_events(merged["processing_metadata"]["ledger"]) == {"DY_2018": 1000, "DATA_2018": 600}
    np.testing.assert_array_equal(dy_values(merged), expected_hist([(F1, 0, 1000)]))

    # done newer than failed: the job was done after all
    os.utime(jobs_dir / "job_1.done", (done_time + 20, done_time + 20))
    assert invoke("-jc", jobs_dir, "--overwrite").exit_code == 0
    assert load_output(merged_path)["cutflow"]["initial"] == {"DY_2018": 2000, "DATA_2018": 600}


@pytest.mark.parametrize("flag", ["running", "idle", None])
def test_a_job_not_done_is_refused(tmp_path, flag):
    jobs_dir = make_jobs_dir(tmp_path, complete_jobs(), flags={2: flag})
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 1
    output_2 = tmp_path / "output" / "output_job_2.coffea"
    described = (f"has no state flag (no {jobs_dir / 'job_2'}.{{idle,running,done,failed}})" if flag is None
                 else f"is flagged {flag} ({jobs_dir / f'job_2.{flag}'})")
    assert (f"  job 2 {described}: its output {output_2} is not final (an earlier attempt's, or still being written)"
            in str(result.exception))
    assert not (tmp_path / "output" / "output_merged.coffea").exists()


def test_a_failed_job_without_output_is_missing(tmp_path):
    outputs = complete_jobs()
    del outputs[0]
    jobs_dir = make_jobs_dir(tmp_path, outputs, flags={0: "failed"})
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 1
    assert str(result.exception).splitlines()[:2] == [
        f"1 of 3 job outputs listed in {jobs_dir / 'jobs_config.yaml'} are missing:",
        f"  job 0: {tmp_path / 'output' / 'output_job_0.coffea'} "
        f"(the job is flagged failed ({jobs_dir / 'job_0.failed'}))",
    ]


# --------------------------------------------------------------------------- outputs without ledger


NO_LEDGER_NOTE = (
    "No output carries a processing ledger (written before ledgers existed): the completeness check is by event "
    "counts only (cutflow['initial'] summed over the outputs against the nevents metadata); it cannot tell every "
    "event once from some events twice, nor name a missing file."
)


def test_outputs_without_ledger_fall_back_to_event_counts(tmp_path):
    outputs = {i: make_output(pieces, ledger=False) for i, pieces in
               {0: [(F1, 0, 1000)], 1: [(F2, 0, 1000)], 2: [(D1, 0, 600)]}.items()}
    jobs_dir = make_jobs_dir(tmp_path, outputs)
    result = invoke("-jc", jobs_dir)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert NO_LEDGER_NOTE in " ".join(result.output.split())
    api = merge_outputs(jobs_config=jobs_dir, overwrite=True)
    assert api.fallback_note == NO_LEDGER_NOTE
    assert {c.dataset: (c.method, c.found, c.expected, c.status) for c in api.checks} == {
        "DY_2018": ("event counts", 2000, 2000, "ok"), "DATA_2018": ("event counts", 600, 600, "ok")}
    merged = load_output(tmp_path / "output" / "output_merged.coffea")
    assert "ledger" not in merged["processing_metadata"]
    np.testing.assert_array_equal(dy_values(merged), expected_hist([(F1, 0, 1000), (F2, 0, 1000)]))
    # the event-count check still catches lost events
    outputs[1] = make_output([(F2, 0, 700)], ledger=False)
    save_output(outputs[1], tmp_path / "output" / "output_job_1.coffea")
    with pytest.raises(IncompleteOutputError, match=r"'DY_2018': metadata nevents = 2000, .* = 1700"):
        merge_outputs(jobs_config=jobs_dir, overwrite=True)


def test_mixed_outputs_check_old_ones_by_event_counts_only(tmp_path):
    dy = write(tmp_path / "dy.coffea", make_output([(F1, 0, 1000), (F2, 0, 1000)]))
    old = write(tmp_path / "old.coffea", make_output([(D1, 0, 600)], ledger=False))
    result = merge_outputs([str(dy), str(old)], tmp_path / "m.coffea")
    assert result.fallback_note == (
        f"1 of 2 outputs carry no processing ledger (written before ledgers existed): {old}. Datasets DATA_2018 are "
        "checked by event counts only (cutflow['initial'] against the nevents metadata), which cannot tell every "
        "event once from some events twice; the merged output has no ledger."
    )
    assert {c.dataset: (c.method, c.found, c.status) for c in result.checks} == {
        "DY_2018": ("ledger", 2000, "ok"), "DATA_2018": ("event counts", 600, "ok")}
    assert "ledger" not in load_output(tmp_path / "m.coffea")["processing_metadata"]
