"""check-jobs on hand-made jobs folders: counts, group table, log parsing, pickle rewrite, queue bump."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cloudpickle
import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from pc_core import Axis, Configurator, HistConf, passthrough
from pc_jobs.check_jobs import (
    JobsFailedError,
    JobsMonitor,
    bump_queue,
    check_jobs,
    check_jobs_command,
    group_progress,
    load_groups,
    progress_table,
    stacked_bar,
)
from pc_jobs.job_config import job_fileset, load_job_config
from pc_jobs.job_logs import find_read_failure, parse_user_log
from pc_jobs.submit_file import job_flavour

SITE_A = "root://127.0.0.1:1095"  # the failing server
SITE_B = "root://127.0.0.1:1094"
LFN = "/store/mc/RunIISummer20UL18NanoAODv9/DY/NANOAODSIM/{}.root"


class Workflow:
    """Stands in for a processor class (the Configurator only checks that it is a class)."""


def url(site: str, name: str) -> str:
    return f"{site}/{LFN.format(name)}"


def make_configurator(tmp_path: Path, files: list[str]) -> Configurator:
    """A real, loaded Configurator whose fileset is ``files`` (what the condor executor pickles)."""
    datasets = tmp_path / "datasets.json"
    datasets.write_text(json.dumps({"DY_2018": {
        "files": files,
        "metadata": {"sample": "DY", "year": "2018", "isMC": True, "xsec": 6077.22, "nevents": 40},
    }}))
    cfg = Configurator(
        workflow=Workflow, parameters={}, datasets={"jsons": [str(datasets)]}, skim=[], preselections=[],
        categories={"inclusive": [passthrough]},
        weights={"common": {"inclusive": ["genWeight"], "bycategory": {}}, "bysample": {}},
        variations={"weights": {"common": {"inclusive": [], "bycategory": {}}, "bysample": {}}},
        variables={"nmuon": HistConf([Axis(field="nMuon", label="N muons", bins=5, start=0, stop=5)])},
        base_dir=tmp_path,
    )
    return cfg.load()


SUB = """universe = vanilla
executable = /bin/true
+JobFlavour = "{flavour}"
queue
"""


def make_jobs(folder: Path, n: int, flavour: str = "espresso") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"job_{i}.sub").write_text(SUB.format(flavour=flavour))
    (folder / "jobs_all.sub").write_text(SUB.format(flavour=flavour))
    return folder


def flag(folder: Path, index: int, state: str, age: float = 0.0) -> None:
    path = folder / f"job_{index}.{state}"
    path.touch()
    if age:
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))


class FakeSubmitter:
    """Records submissions instead of talking to HTCondor (the real one: test_check_jobs_condor.py)."""

    def __init__(self, first_cluster: int = 500) -> None:
        self.submitted: list[Path] = []
        self.next = first_cluster

    def __call__(self, sub_file: Path) -> int:
        self.submitted.append(sub_file)
        self.next += 1
        return self.next - 1


class FakeLookup:
    """Another replica of every file on SITE_B, as Rucio would answer with a replica there."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], set[str], list[str]]] = []

    def __call__(self, urls, blocked, failed):
        self.calls.append((list(urls), set(blocked), list(failed)))
        return {u: u.replace(SITE_A, SITE_B).replace("127.0.0.1:1096", "127.0.0.1:1094") for u in urls}


# --------------------------------------------------------------------------- summary counts


def test_summary_counts_and_flag_precedence(tmp_path):
    folder = make_jobs(tmp_path / "job", 6)
    flag(folder, 0, "idle")
    flag(folder, 1, "running")
    flag(folder, 2, "done")
    flag(folder, 3, "idle", age=100)  # a stale .idle left next to the newer .done
    flag(folder, 3, "done")
    flag(folder, 4, "failed")
    # job 5 has no flag yet: it counts as idle
    result = JobsMonitor(folder).poll()
    assert result.counts() == {"idle": 2, "running": 1, "evicted": 0, "held": 0, "done": 2, "failed": 1,
                               "killed": 0, "removed": 0, "lost": 0}
    assert result.states == {0: "idle", 1: "running", 2: "done", 3: "done", 4: "failed", 5: "idle"}
    assert result.snapshot.total == 6 and not result.finished
    assert result.messages == ["job_4 failed"]
    # read-only: nothing written
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("job_")) == ["jobs_all.sub", "logs"]


def test_finished_read_only_when_done_plus_failed_is_total(tmp_path):
    folder = make_jobs(tmp_path / "job", 3)
    for i, state in enumerate(["done", "failed", "done"]):
        flag(folder, i, state)
    console = Console(record=True, width=120)
    with pytest.raises(JobsFailedError, match="1 of 3 jobs failed: job_1"):
        check_jobs(folder, once=True, console=console, group_by="none")
    text = console.export_text()
    assert "All jobs are completed" in text and f"merge-outputs -jc {folder}" in text


def test_cli_descends_into_job_folder_and_exits_zero_when_all_done(tmp_path):
    folder = make_jobs(tmp_path / "output" / "job", 2)
    flag(folder, 0, "done")
    flag(folder, 1, "done")
    (tmp_path / "output" / "output_job_0.coffea").write_bytes(b"")
    result = CliRunner().invoke(check_jobs_command, ["-j", str(tmp_path / "output"), "--once", "-d"])
    assert result.exit_code == 0, result.output
    assert "All jobs are completed" in result.output
    assert f"merge-outputs -jc {folder}" in result.output.replace("\n", "")
    assert "job_1" in result.output  # the --details table


def test_cli_rejects_a_folder_without_jobs(tmp_path):
    result = CliRunner().invoke(check_jobs_command, ["-j", str(tmp_path), "--once"])
    assert result.exit_code != 0
    assert "holds no job_<i>.sub files" in str(result.exception)


# --------------------------------------------------------------------------- group table


def write_jobs_config(folder: Path, samples: dict[int, list[tuple[str, str]]]) -> None:
    jobs = {}
    for i, pairs in samples.items():
        jobs[i] = {
            "fileset": {ds: {"files": [f"/data/{ds}_{i}.root"], "metadata": {
                "sample": sample, "year": "2018", "isMC": True, "xsec": 1.0, "nevents": 10}} for ds, sample in pairs},
            "config": f"config_job_{i}.pkl",
            "output": f"../output_job_{i}.coffea",
        }
    (folder / "jobs_config.yaml").write_text(yaml.safe_dump({"version": 1, "jobs": jobs}))


def test_group_table_numbers_sorted_slowest_first(tmp_path):
    folder = make_jobs(tmp_path / "job", 5)
    write_jobs_config(folder, {0: [("DY_2018", "DY")], 1: [("DY_2018", "DY")], 2: [("TT_2018", "TT")],
                               3: [("TT_2022", "TT")], 4: [("DATA_2018", "DATA")]})
    for i, state in enumerate(["done", "failed", "done", "done", "running"]):
        flag(folder, i, state)
    result = JobsMonitor(folder).poll()
    groups, overlap = load_groups(folder, "sample")
    assert groups == {"DY": [0, 1], "TT": [2, 3], "DATA": [4]} and not overlap
    rows = group_progress(groups, result.states)
    assert [(r.name, r.total, r.counts["done"], r.counts["failed"], r.counts["running"], r.pct_done) for r in rows] == [
        ("DATA", 1, 0, 0, 1, 0.0), ("DY", 2, 1, 1, 0, 50.0), ("TT", 2, 2, 0, 0, 100.0)]
    by_dataset, _ = load_groups(folder, "dataset")
    assert by_dataset == {"DY_2018": [0, 1], "TT_2018": [2], "TT_2022": [3], "DATA_2018": [4]}

    console = Console(record=True, width=160)
    console.print(progress_table(rows, "sample", overlap))
    lines = console.export_text().splitlines()
    dy = next(line for line in lines if line.lstrip("│ ").startswith("DY"))
    assert "50.0%" in dy and dy.count("█") == 30
    assert lines.index(next(line for line in lines if "DATA" in line)) < lines.index(dy)  # slowest first


def test_stacked_bar_lengths_add_up():
    bar = stacked_bar({"done": 1, "running": 1, "idle": 1, "failed": 0}, width=10)
    spans = {span.style: span.end - span.start for span in bar.spans}
    assert sum(spans.values()) == 10 and spans["green"] >= 3 and spans["magenta"] >= 3 and spans["blue"] >= 3
    assert "red" not in spans or spans["red"] == 0


def test_uniform_split_overlap_and_fallback(tmp_path):
    folder = make_jobs(tmp_path / "job", 2)
    assert load_groups(folder, "sample") is None  # no jobs_config.yaml: silently no table
    write_jobs_config(folder, {0: [("DY_2018", "DY"), ("TT_2018", "TT")], 1: [("TT_2018", "TT")]})
    groups, overlap = load_groups(folder, "sample")
    assert groups == {"DY": [0], "TT": [0, 1]} and overlap
    assert load_groups(folder, "none") is None
    (folder / "jobs_config.yaml").write_text("jobs: [not, a, mapping]")
    assert load_groups(folder, "sample") is None


# --------------------------------------------------------------------------- logs


XROOTD_OUT = f"""Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/uproot/source/xrootd.py", line 79, in _xrootd_error
OSError: XRootD error: [ERROR] Operation expired
in file {url(SITE_A, 'B')}
"""

NOT_FOUND_OUT = f"""  File "uproot/reading.py", line 142, in open
FileNotFoundError: file not found

    '{url(SITE_A, 'C')}'

Files may be specified as:
"""

PC_RUN_OUT = (f"Error: input file {url(SITE_A, 'D')} of dataset 'DY_2018' cannot be read (missing-file): "
              "[ERROR] Server responded with an error: [3011] No such file. Hint: ...")
# the same failure met by a chunk (files with declared counts are not opened before processing)
PC_RUN_CHUNK_OUT = (f"Error: input file {url(SITE_A, 'E')} of dataset 'DY_2018' cannot be read (dead-server) at "
                    "entries 0-40 after 21 attempt(s): OSError: Failed to submit File.open request: [FATAL] "
                    "Connection error. Hint: ...")


@pytest.mark.parametrize("text, name", [(XROOTD_OUT, "B"), (NOT_FOUND_OUT, "C"), (PC_RUN_OUT, "D"),
                                        (PC_RUN_CHUNK_OUT, "E")])
def test_read_failure_is_found_in_the_log(text, name):
    failure = find_read_failure(("some output\n" + text).splitlines())
    assert failure is not None and failure.url == url(SITE_A, name)


def test_no_read_failure_in_an_ordinary_crash():
    assert find_read_failure(["Traceback", "ZeroDivisionError: division by zero"]) is None


ABORT_LOG = """000 (123.001.000) 2024-05-01 10:00:00 Job submitted from host: <127.0.0.1:9618>
...
001 (123.001.000) 2024-05-01 10:00:05 Job executing on host: <127.0.0.1:9618>
...
009 (123.001.000) 2024-05-01 10:20:05 Job was aborted.
\tThe system macro SYSTEM_PERIODIC_REMOVE expression '(MaxRuntime < time() - EnteredCurrentStatus)' evaluated to TRUE
...
"""


def test_user_log_events():
    events = parse_user_log(ABORT_LOG)
    assert [(e.code, e.cluster, e.proc) for e in events] == [("000", 123, 1), ("001", 123, 1), ("009", 123, 1)]
    assert events[2].is_periodic_remove and not events[0].is_abort and events[2].job_id == "123.1"


# --------------------------------------------------------------------------- queue bump


def test_queue_bump_steps_and_cap(tmp_path):
    sub = tmp_path / "job_0.sub"
    sub.write_text(SUB.format(flavour="espresso"))
    assert bump_queue(sub, 2) == ("espresso", "longlunch")
    assert job_flavour(sub.read_text()) == "longlunch"
    assert sub.read_text().rstrip().endswith("queue") and "executable = /bin/true" in sub.read_text()
    assert bump_queue(sub, 10) == ("longlunch", "nextweek")
    sub.write_text("executable = /bin/true\nqueue\n")
    with pytest.raises(Exception, match="no \\+JobFlavour"):
        bump_queue(sub, 1)


def test_periodic_remove_bumps_queue_once_and_resubmits(tmp_path):
    folder = make_jobs(tmp_path / "job", 2, flavour="microcentury")
    flag(folder, 0, "done")
    flag(folder, 1, "running")
    (folder / "logs" / "job_1.log").write_text(ABORT_LOG)
    submitter = FakeSubmitter(first_cluster=900)
    monitor = JobsMonitor(folder, resubmit=True, queue_shift=1, submitter=submitter, lookup=FakeLookup())
    result = monitor.poll()
    assert job_flavour((folder / "job_1.sub").read_text()) == "longlunch"
    assert (folder / "maxtime.txt").read_text().split() == ["123.1"]
    assert submitter.submitted == [folder / "job_1.sub"]
    assert result.states == {0: "done", 1: "idle"} and (folder / "job_1.idle").exists()
    assert not (folder / "job_1.running").exists() and not (folder / "job_1.failed").exists()
    assert json.loads((folder / "check_jobs_state.json").read_text()) == {
        "resubmissions": {"1": 1}, "clusters": {"900": 1}}
    # the same abort is never acted on again, even by a new check-jobs
    again = JobsMonitor(folder, resubmit=True, submitter=submitter, lookup=FakeLookup()).poll()
    assert len(submitter.submitted) == 1 and job_flavour((folder / "job_1.sub").read_text()) == "longlunch"
    assert again.states[1] == "idle"


def test_periodic_remove_read_only_shows_removed_and_changes_nothing(tmp_path):
    folder = make_jobs(tmp_path / "job", 2, flavour="microcentury")
    flag(folder, 0, "done")
    flag(folder, 1, "running")
    (folder / "logs" / "job_1.log").write_text(ABORT_LOG)
    result = JobsMonitor(folder).poll()
    assert result.states == {0: "done", 1: "removed"} and result.finished
    assert result.jobs[1].job_id == "123.1" and "SYSTEM_PERIODIC_REMOVE" in result.jobs[1].remove_reason
    assert "SYSTEM_PERIODIC_REMOVE" in result.messages[0] and "--resubmit" in result.messages[0]
    assert (folder / "job_1.running").exists() and not (folder / "maxtime.txt").exists()
    assert job_flavour((folder / "job_1.sub").read_text()) == "microcentury"


# --------------------------------------------------------------------------- resubmission with replica rewrite


def make_failed_job(tmp_path: Path, files: list[str], log_text: str) -> Path:
    folder = make_jobs(tmp_path / "job", 2)
    cfg = make_configurator(tmp_path, files)
    (folder / "config_job_0.pkl").write_bytes(cloudpickle.dumps(cfg))
    flag(folder, 0, "failed")
    flag(folder, 1, "done")
    (folder / "logs" / "job_0.out").write_text(log_text)
    (folder / "logs" / "job_0.err").write_text("stderr of job 0\n")
    return folder


def test_xrootd_failure_rewrites_the_pickle_and_resubmits(tmp_path):
    files = [url(SITE_A, "A"), url(SITE_A, "B")]
    folder = make_failed_job(tmp_path, files, XROOTD_OUT)
    lookup, submitter = FakeLookup(), FakeSubmitter()
    result = JobsMonitor(folder, resubmit=True, lookup=lookup, submitter=submitter).poll()

    assert (folder / "xrootdfaillist.txt").read_text().split() == [url(SITE_A, "B")]
    assert lookup.calls == [([url(SITE_A, "B")], set(), [url(SITE_A, "B")])]
    cfg = load_job_config(folder / "config_job_0.pkl")
    assert isinstance(cfg, Configurator)
    assert job_fileset(cfg)["DY_2018"]["files"] == [url(SITE_A, "A"), url(SITE_B, "B")]  # order kept, only B moved
    assert job_fileset(cfg)["DY_2018"]["metadata"]["nevents"] == 40
    assert sorted(p.name for p in (folder / "logs" / "processedlogs").iterdir()) == ["job_0.err", "job_0.out"]
    assert not (folder / "logs" / "job_0.out").exists()
    assert submitter.submitted == [folder / "job_0.sub"]
    assert result.states == {0: "idle", 1: "done"} and not result.finished
    assert any(f"{url(SITE_A, 'B')} -> {url(SITE_B, 'B')}" in m for m in result.messages)


def test_failure_url_counted_once_and_next_failure_uses_new_log(tmp_path):
    files = [url(SITE_A, "A"), url(SITE_A, "B")]
    folder = make_failed_job(tmp_path, files, XROOTD_OUT)
    submitter = FakeSubmitter(first_cluster=40)
    JobsMonitor(folder, resubmit=True, lookup=FakeLookup(), submitter=submitter).poll()
    # the resubmitted job fails again with an ordinary crash (HTCondor writes a fresh job_0.out)
    (folder / "job_0.idle").unlink()
    flag(folder, 0, "failed")
    (folder / "logs" / "job_0.out").write_text("ZeroDivisionError: division by zero\n")
    lookup = FakeLookup()
    result = JobsMonitor(folder, resubmit=True, lookup=lookup, submitter=submitter).poll()
    assert (folder / "xrootdfaillist.txt").read_text().split() == [url(SITE_A, "B")]
    assert lookup.calls == []  # nothing to move: no read failure, no blacklisted server
    assert any("not a read failure" in m and "ZeroDivisionError" in m for m in result.messages)
    assert sorted(p.name for p in (folder / "logs" / "processedlogs").iterdir()) == [
        "job_0.0.out", "job_0.err", "job_0.out"]
    assert json.loads((folder / "check_jobs_state.json").read_text())["resubmissions"] == {"0": 2}


def test_blacklisted_server_moves_every_file_of_the_job(tmp_path):
    other = "root://127.0.0.1:1096"
    files = [url(SITE_A, "A"), url(other, "C"), url(SITE_A, "B"), url(SITE_A, "E")]
    folder = make_failed_job(tmp_path, files, XROOTD_OUT)
    # earlier failures at SITE_A recorded by a previous check-jobs session
    (folder / "xrootdfaillist.txt").write_text(f"{url(SITE_A, 'X')}\n{url(other, 'Y')}\n")
    lookup = FakeLookup()
    result = JobsMonitor(folder, resubmit=True, blacklist_threshold=1, lookup=lookup,
                         submitter=FakeSubmitter()).poll()
    assert lookup.calls[0][0] == [url(SITE_A, "A"), url(SITE_A, "B"), url(SITE_A, "E")]
    assert lookup.calls[0][1] == {SITE_A}
    assert job_fileset(load_job_config(folder / "config_job_0.pkl"))["DY_2018"]["files"] == [
        url(SITE_B, "A"), url(other, "C"), url(SITE_B, "B"), url(SITE_B, "E")]
    assert any(f"server {SITE_A} failed more than 1 reads: blacklisted" in m for m in result.messages)


def test_no_other_replica_keeps_the_file_and_says_so(tmp_path):
    folder = make_failed_job(tmp_path, [url(SITE_A, "B")], XROOTD_OUT)
    before = (folder / "config_job_0.pkl").read_bytes()
    result = JobsMonitor(folder, resubmit=True, lookup=lambda urls, blocked, failed: {u: u for u in urls},
                         submitter=FakeSubmitter()).poll()
    assert (folder / "config_job_0.pkl").read_bytes() == before
    assert any("no other replica for 1 file(s)" in m for m in result.messages)
    assert result.states[0] == "idle"


def test_gives_up_after_max_resubmit(tmp_path):
    folder = make_failed_job(tmp_path, [url(SITE_A, "B")], XROOTD_OUT)
    (folder / "check_jobs_state.json").write_text(json.dumps({"resubmissions": {"0": 2}, "clusters": {}}))
    submitter = FakeSubmitter()
    console = Console(record=True, width=120)
    with pytest.raises(JobsFailedError, match="job_0"):
        check_jobs(folder, resubmit=True, max_resubmit=2, once=True, console=console,
                   lookup=FakeLookup(), submitter=submitter)
    assert submitter.submitted == [] and (folder / "job_0.failed").exists()
    text = console.export_text()
    assert "All jobs are completed" in text and "job_0 failed after 2 resubmissions" in text and "giving up" in text


def test_waits_for_the_log_of_a_fresh_failure(tmp_path):
    folder = make_jobs(tmp_path / "job", 1)
    flag(folder, 0, "failed")
    submitter = FakeSubmitter()
    now = time.time()
    monitor = JobsMonitor(folder, resubmit=True, submitter=submitter, lookup=FakeLookup(), clock=lambda: now)
    assert monitor.poll().states == {0: "failed"} and submitter.submitted == []
    later = JobsMonitor(folder, resubmit=True, submitter=submitter, lookup=FakeLookup(), clock=lambda: now + 60)
    assert later.poll().states == {0: "idle"} and submitter.submitted == [folder / "job_0.sub"]


# --------------------------------------------------------------------------- replica choice (Rucio answer given)


class GatewayAnswer:
    """What RucioGateway.list_replicas returns ({lfn: {"rses": {site: [pfn]}}}), fixed in advance."""

    def __init__(self, replicas):
        self.replicas, self.asked = replicas, []

    def list_replicas(self, lfns):
        self.asked.append(list(lfns))
        return {lfn: self.replicas[lfn] for lfn in lfns if lfn in self.replicas}


def test_rucio_lookup_skips_own_server_blacklisted_and_failed_replicas():
    from pc_jobs.replica_lookup import RucioReplicaLookup

    site_c = "root://127.0.0.1:1097"
    lfn_b, lfn_e = LFN.format("B"), LFN.format("E")
    gateway = GatewayAnswer({
        lfn_b: {"rses": {"T1_DE_KIT": [url(SITE_A, "B")], "T2_CH_CERN": [url(SITE_B, "B")],
                         "T2_IT_Pisa": [url(site_c, "B")]}},
        lfn_e: {"rses": {"T1_DE_KIT": [url(SITE_A, "E")]}},
    })
    lookup = RucioReplicaLookup(gateway)
    # B: KIT is its own server, CERN failed before -> Pisa; E: only its own server -> unchanged
    answer = lookup([url(SITE_A, "B"), url(SITE_A, "E"), "/local/file.root"], set(), [url(SITE_B, "B")])
    assert answer == {url(SITE_A, "B"): url(site_c, "B"), url(SITE_A, "E"): url(SITE_A, "E"),
                      "/local/file.root": "/local/file.root"}
    assert gateway.asked == [sorted([lfn_b, lfn_e])]  # one batched Rucio call
    # with Pisa's server blacklisted and CERN healthy, CERN is chosen
    assert lookup([url(SITE_A, "B")], {site_c}, [])[url(SITE_A, "B")] == url(SITE_B, "B")


def test_progress_table_is_readable_at_80_columns():
    """COLUMNS=80: abbreviated headers, a shorter bar, long names shortened: every row on one line, no '…' numbers."""
    from io import StringIO

    from pc_jobs.check_jobs import GroupProgress, progress_table

    counts = {"idle": 2000, "running": 1500, "evicted": 3, "held": 12, "done": 6000, "failed": 500,
              "killed": 0, "removed": 0, "lost": 0}
    rows = [GroupProgress("DYJetsToLL_M-50_TuneCP5_13TeV-amcatnloFXFX-pythia8", counts), GroupProgress("TT", counts)]
    out = StringIO()
    Console(file=out, width=80, color_system=None).print(progress_table(rows, "sample", False, 80))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 2  # one line per row
    assert "10015" in body[0] and "6000" in body[0] and "1500" in body[0] and body[0].split("│")[1].strip().startswith("DYJets") and body[0].split("│")[1].strip().endswith("…")
    header = next(line for line in lines if "Sample" in line)
    assert all(h in header for h in ("Total", "Idle", "Run", "Evict", "Held", "Done", "Fail", "% Done"))
    assert "…" not in header and "…" not in "".join(body[0].split("│")[2:])  # numbers and headers never cut


def test_details_list_the_logs_folder_once_per_poll(tmp_path, monkeypatch):
    """check-jobs -d: the per-job table finds every failed job's log in the poll's one listing of logs/."""
    from pc_jobs.check_jobs import render

    folder = make_jobs(tmp_path / "job", 6)
    for i in range(6):
        flag(folder, i, "failed" if i % 2 else "done")
        (folder / "logs" / f"job_{i}.err").write_text(f"ValueError: broken job {i}\n" if i % 2 else "")
    listed: list[str] = []
    real_listdir, real_scandir = os.listdir, os.scandir

    def listdir(path="."):
        listed.append(str(path))
        return real_listdir(path)

    def scandir(path="."):
        listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os, "scandir", scandir)
    monitor = JobsMonitor(folder, schedd_query=None)
    out = Console(width=200, record=True, file=open(os.devnull, "w"))
    for _ in range(2):
        listed.clear()
        result = monitor.poll()
        out.print(render(result, monitor, None, "none", True, [], 200))
        assert [p for p in listed if Path(p) == folder / "logs"] == [str(folder / "logs")]
    text = out.export_text()
    assert sorted(result.failed_jobs()) == [1, 3, 5]
    for i in (1, 3, 5):
        assert f"broken job {i}" in text
    assert "broken job 0" not in text


def test_details_of_a_big_folder_list_the_jobs_that_are_not_idle_running_or_done(tmp_path):
    from pc_jobs.check_jobs import DETAILS_ALL_JOBS, details_table

    n = DETAILS_ALL_JOBS + 50
    folder = make_jobs(tmp_path / "job", n)
    for i in range(n):
        flag(folder, i, "failed" if i in (7, 123) else "running" if i % 3 else "done")
    (folder / "logs" / "job_123.err").write_text("ValueError: broken job 123\n")
    monitor = JobsMonitor(folder, schedd_query=None)
    result = monitor.poll()
    console = Console(width=200, record=True, file=open(os.devnull, "w"))
    console.print(details_table(result, monitor))
    text = console.export_text()
    rows = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│ job_")]
    assert rows == ["job_7", "job_123"]
    assert f"{n - 2} idle, running or done jobs not listed" in text
    assert "broken job 123" in text
