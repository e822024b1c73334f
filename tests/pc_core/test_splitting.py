"""Splitting a fileset into jobs: invariants (property tests), modes, errors, chunksize."""
from __future__ import annotations

import copy
import itertools
import logging
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pc_core.errors import DatasetError, RunOptionsError
from pc_core.splitting import Job, file_events, resolve_job_chunksize, split_fileset


def dataset(sample, file_nevents, name_prefix="f", with_file_nevents=True, **metadata):
    files = [f"root://site//store/{sample}/{name_prefix}{i}.root" for i in range(len(file_nevents))]
    meta = {"sample": sample, "year": "2018", "isMC": "True", "xsec": 1.5, "nevents": sum(file_nevents), **metadata}
    if with_file_nevents:
        meta["file_nevents"] = list(file_nevents)
    return {"files": files, "metadata": meta}


@pytest.fixture
def fileset():
    return {
        "TTToSemiLeptonic_2018": dataset("TTToSemiLeptonic", [100, 250, 40, 300, 10]),
        "ttHTobb_2018": dataset("ttHTobb", [500, 500]),
        "DATA_SingleMuon_2018A": dataset("DATA_SingleMuon", [90, 90, 90, 90], isMC="False"),
    }


def job_files(jobs):
    return [(name, url) for job in jobs for name, entry in job.fileset.items() for url in entry["files"]]


# ---------------------------------------------------------------- property tests

file_counts = st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12)


@st.composite
def random_filesets(draw):
    n_datasets = draw(st.integers(min_value=1, max_value=5))
    samples = draw(st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=n_datasets, max_size=n_datasets))
    result = {}
    for i, sample in enumerate(samples):
        counts = draw(file_counts)
        with_file_nevents = draw(st.booleans())
        entry = dataset(sample, counts, with_file_nevents=with_file_nevents)
        if draw(st.booleans()):  # duplicated URL inside a dataset: a multiset, not a set
            entry["files"][-1] = entry["files"][0]
        if draw(st.booleans()):  # dataset JSONs often store metadata as strings
            entry["metadata"]["nevents"] = str(entry["metadata"]["nevents"])
        result[f"{sample}_{i}"] = entry
    return result


@st.composite
def split_modes(draw):
    mode = draw(st.sampled_from(["scaleout", "int", "dict"]))
    if mode == "scaleout":
        return {"scaleout": draw(st.integers(min_value=1, max_value=40))}
    if mode == "int":
        return {"max_events_per_job": draw(st.integers(min_value=1, max_value=20000))}
    budgets = {"default": draw(st.integers(min_value=1, max_value=20000))}
    for sample in draw(st.lists(st.sampled_from(["A", "B", "C"]), unique=True)):
        budgets[sample] = draw(st.integers(min_value=1, max_value=20000))
    return {"max_events_per_job": budgets}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fileset=random_filesets(), mode=split_modes())
def test_files_never_lost_or_duplicated(fileset, mode):
    original = copy.deepcopy(fileset)
    jobs = split_fileset(fileset, **mode)
    assert fileset == original, "the input fileset was modified"
    assert [job.index for job in jobs] == list(range(len(jobs)))
    for name, entry in fileset.items():
        got = Counter(url for job in jobs for url in job.fileset.get(name, {}).get("files", []))
        assert got == Counter(entry["files"]), name
    expected_events = {name: file_events(name, entry) for name, entry in fileset.items()}
    for job in jobs:
        assert job.nfiles >= 1
        for name, entry in job.fileset.items():
            original_meta = fileset[name]["metadata"]
            meta = entry["metadata"]
            # metadata preserved apart from the recomputed counts, with the input's types
            assert {k: v for k, v in meta.items() if k not in ("nevents", "file_nevents")} == {
                k: v for k, v in original_meta.items() if k not in ("nevents", "file_nevents")
            }
            assert type(meta["nevents"]) is type(original_meta["nevents"])
            assert ("file_nevents" in meta) == ("file_nevents" in original_meta)
            if "file_nevents" in meta:
                assert int(meta["nevents"]) == sum(meta["file_nevents"])
                assert len(meta["file_nevents"]) == len(entry["files"])
    for name, entry in fileset.items():
        total = sum(int(job.fileset[name]["metadata"]["nevents"]) for job in jobs if name in job.fileset)
        assert total == int(entry["metadata"]["nevents"]) == sum(expected_events[name])
    assert sum(job.nevents for job in jobs) == sum(int(e["metadata"]["nevents"]) for e in fileset.values())
    if "scaleout" in mode:
        n_files = sum(len(e["files"]) for e in fileset.values())
        assert len(jobs) == min(mode["scaleout"], n_files)
    elif isinstance(mode["max_events_per_job"], dict):
        assert all(len(job.samples) == 1 and len(job.datasets) == 1 for job in jobs)


def best_contiguous_max(weights, k):
    """Brute force: smallest possible largest group sum over all splits into k contiguous groups."""
    best = None
    for cuts in itertools.combinations(range(1, len(weights)), k - 1):
        bounds = (0, *cuts, len(weights))
        worst = max(sum(weights[a:b]) for a, b in zip(bounds, bounds[1:]))
        best = worst if best is None else min(best, worst)
    return best


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=9), k=st.integers(1, 9))
def test_scaleout_is_optimally_balanced(weights, k):
    fileset = {"D": dataset("A", weights)}
    jobs = split_fileset(fileset, scaleout=k)
    assert len(jobs) == min(k, len(weights))
    assert max(job.nevents for job in jobs) == best_contiguous_max(weights, min(k, len(weights)))


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=30),
       budget=st.integers(min_value=1, max_value=2000))
def test_max_events_jobs_stay_within_budget_and_are_full(weights, budget):
    jobs = split_fileset({"D": dataset("A", weights)}, max_events_per_job=budget)
    for job in jobs:
        assert job.nevents <= budget or job.nfiles == 1
    for job, following in zip(jobs, jobs[1:]):
        # the next job's first file did not fit into this one
        first = following.fileset["D"]["metadata"]["file_nevents"][0]
        assert job.nevents + first > budget


# ---------------------------------------------------------------- modes on a fixed fileset


def test_scaleout_balances_across_datasets(fileset):
    jobs = split_fileset(fileset, scaleout=3)
    assert len(jobs) == 3
    # 2060 events in 11 files; the best contiguous 3-way split has a largest job of 810:
    # [100 250 40 300 10 | 500] [500 90 90 90 | 90]... checked against brute force below
    weights = [100, 250, 40, 300, 10, 500, 500, 90, 90, 90, 90]
    assert max(job.nevents for job in jobs) == best_contiguous_max(weights, 3)
    assert sum(job.nevents for job in jobs) == 2060


def test_scaleout_at_most_one_job_per_file(fileset):
    jobs = split_fileset(fileset, scaleout=1000)
    assert len(jobs) == 11 and all(job.nfiles == 1 for job in jobs)


def test_max_events_int_packs_across_datasets(fileset):
    # weights in order: 100 250 40 300 10 | 500 500 | 90 90 90 90; greedy packing into <= 600
    jobs = split_fileset(fileset, max_events_per_job=600)
    assert [job.nevents for job in jobs] == [390, 310, 500, 590, 270]
    assert [[url.rsplit("/", 1)[1] for _, url in job_files([job])] for job in jobs] == [
        ["f0.root", "f1.root", "f2.root"],
        ["f3.root", "f4.root"],
        ["f0.root"],
        ["f1.root", "f0.root"],
        ["f1.root", "f2.root", "f3.root"],
    ]
    assert jobs[3].datasets == ("ttHTobb_2018", "DATA_SingleMuon_2018A")
    assert jobs[3].samples == ("DATA_SingleMuon", "ttHTobb")


def test_file_above_budget_is_its_own_job(fileset):
    jobs = split_fileset(fileset, max_events_per_job=200)
    assert [job.nevents for job in jobs] == [100, 250, 40, 300, 10, 500, 500, 180, 180]
    assert [job.nfiles for job in jobs] == [1, 1, 1, 1, 1, 1, 1, 2, 2]


def test_dict_mode_one_sample_per_job_with_own_budget(fileset, caplog):
    budgets = {"default": 1000, "TTToSemiLeptonic": 300, "DATA_SingleMuon": 100}
    with caplog.at_level(logging.WARNING, logger="pc_core.splitting"):
        jobs = split_fileset(fileset, max_events_per_job=budgets)
    assert not caplog.records
    summary = [(job.samples, job.nevents) for job in jobs]
    assert summary == [
        (("TTToSemiLeptonic",), 100), (("TTToSemiLeptonic",), 290), (("TTToSemiLeptonic",), 300),
        (("TTToSemiLeptonic",), 10),
        (("ttHTobb",), 1000),
        (("DATA_SingleMuon",), 90), (("DATA_SingleMuon",), 90), (("DATA_SingleMuon",), 90), (("DATA_SingleMuon",), 90),
    ]


def test_dict_mode_missing_sample_without_default(fileset):
    with pytest.raises(RunOptionsError) as info:
        split_fileset(fileset, max_events_per_job={"TTToSemiLeptonic": 300, "DATA_SingleMuon": 100})
    message = str(info.value)
    assert "'max-events-per-job'" in message and "'ttHTobb'" in message
    assert "TTToSemiLeptonic, DATA_SingleMuon" in message


def test_dict_mode_warns_about_keys_matching_no_sample(fileset, caplog):
    with caplog.at_level(logging.WARNING, logger="pc_core.splitting"):
        split_fileset(fileset, max_events_per_job={"default": 1000, "TTtoSemiLeptonic": 5})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "TTtoSemiLeptonic" in warnings[0]
    assert "samples present: DATA_SingleMuon, TTToSemiLeptonic, ttHTobb" in warnings[0]


def test_both_set_max_events_wins_with_warning(fileset, caplog):
    with caplog.at_level(logging.WARNING, logger="pc_core.splitting"):
        jobs = split_fileset(fileset, scaleout=2, max_events_per_job=600)
    assert [job.fileset for job in jobs] == [job.fileset for job in split_fileset(fileset, max_events_per_job=600)]
    assert any("both scaleout (2) and max-events-per-job" in r.getMessage() for r in caplog.records)


def test_neither_set_gives_one_job_with_warning(fileset, caplog):
    with caplog.at_level(logging.WARNING, logger="pc_core.splitting"):
        jobs = split_fileset(fileset)
    assert len(jobs) == 1
    assert jobs[0].fileset == fileset and jobs[0].fileset is not fileset
    assert any("neither scaleout nor max-events-per-job" in r.getMessage() for r in caplog.records)


def test_equal_share_when_file_nevents_missing():
    fileset = {"D": dataset("A", [4, 3, 3], with_file_nevents=False)}
    assert fileset["D"]["metadata"]["nevents"] == 10
    jobs = split_fileset(fileset, scaleout=3)
    assert [job.nevents for job in jobs] == [4, 3, 3]  # 10 // 3 = 3, remainder to the first file
    assert all("file_nevents" not in job.fileset["D"]["metadata"] for job in jobs)


def test_string_metadata_stays_string():
    fileset = {"D": dataset("A", [1, 2, 3], with_file_nevents=False)}
    fileset["D"]["metadata"]["nevents"] = "1003"
    jobs = split_fileset(fileset, scaleout=2)
    assert [job.fileset["D"]["metadata"]["nevents"] for job in jobs] == ["335", "668"]  # 335 334 334: best split [335] [334 334]


def test_empty_dataset_is_left_out_with_warning(caplog):
    fileset = {"D": dataset("A", [5, 5]), "E": {"files": [], "metadata": {"sample": "B", "nevents": 0}}}
    with caplog.at_level(logging.WARNING, logger="pc_core.splitting"):
        jobs = split_fileset(fileset, scaleout=2)
    assert [job.datasets for job in jobs] == [("D",), ("D",)]
    assert any("'E' has no files" in r.getMessage() for r in caplog.records)


META = {"sample": "A", "year": "2018", "isMC": False}  # what every fileset entry has (pc_core.fileset)


@pytest.mark.parametrize(
    ("fileset", "kwargs", "match"),
    [
        ({}, {"scaleout": 2}, "empty"),
        ({"D": {"files": "a.root", "metadata": META}}, {"scaleout": 2}, "'D': 'files' must be a list of file URLs"),
        ({"D": {"files": ["a", "b"], "metadata": META}}, {"scaleout": 2}, "'D'.*needs metadata 'nevents'"),
        ({"D": {"files": ["a", "b"], "metadata": {**META, "nevents": 4, "file_nevents": [4]}}}, {"scaleout": 2},
         "'D': file_nevents must be a list with one count per file"),
        ({"D": {"files": ["a"], "metadata": {**META, "nevents": "many"}}}, {"scaleout": 2},
         "'D': nevents = 'many' is not a number"),
        ({"D": {"files": ["a"], "metadata": {"year": "2018", "isMC": False, "nevents": 3}}},
         {"max_events_per_job": {"default": 3}}, "'D': metadata lacks the required key 'sample'"),
    ],
)
def test_bad_filesets(fileset, kwargs, match):
    with pytest.raises(DatasetError, match=match):
        split_fileset(fileset, **kwargs)


@pytest.mark.parametrize("kwargs", [{"scaleout": 0}, {"scaleout": True}, {"max_events_per_job": -5},
                                    {"max_events_per_job": {"default": "x"}}])
def test_bad_split_parameters(fileset, kwargs):
    with pytest.raises(RunOptionsError):
        split_fileset(fileset, **kwargs)


# ---------------------------------------------------------------- chunksize per job


def test_resolve_job_chunksize(fileset):
    jobs = split_fileset(fileset, max_events_per_job={"default": 600})
    per_sample = {"default": 150000, "TTToSemiLeptonic": 50000}
    assert {job.samples[0]: resolve_job_chunksize(job, per_sample) for job in jobs} == {
        "TTToSemiLeptonic": 50000, "ttHTobb": 150000, "DATA_SingleMuon": 150000,
    }
    assert resolve_job_chunksize(jobs[0], 1234) == 1234


def test_multiple_samples_with_dict_chunksize(fileset):
    jobs = split_fileset(fileset, max_events_per_job=600)
    mixed = jobs[3]
    assert mixed.samples == ("DATA_SingleMuon", "ttHTobb")
    with pytest.raises(RunOptionsError) as info:
        resolve_job_chunksize(mixed, {"default": 100})
    message = str(info.value)
    assert "multiple samples" in message and "job 3" in message
    assert "DATA_SingleMuon, ttHTobb" in message
    # an int chunksize is fine for the same job
    assert resolve_job_chunksize(mixed, 100) == 100


def test_job_without_sample_entry_and_no_default(fileset):
    job = split_fileset(fileset, max_events_per_job={"default": 10**6})[1]
    with pytest.raises(RunOptionsError, match="no entry for sample 'ttHTobb' and no 'default'"):
        resolve_job_chunksize(job, {"TTToSemiLeptonic": 5})


def test_job_is_frozen():
    job = Job(index=0, fileset={})
    with pytest.raises(AttributeError):
        job.index = 1  # type: ignore[misc]


# ---------------------------------------------------------------- real NanoAOD files


def test_split_real_nanoaod_files(nanoaod_dir):
    uproot = pytest.importorskip("uproot")
    paths = sorted(p for p in nanoaod_dir.glob("*.root"))
    counts = []
    for path in paths:
        with uproot.open(path) as f:
            counts.append(int(f["Events"].num_entries))
    entries = dict(zip(map(str, paths), counts))
    assert 0 in counts  # nano_dy_empty.root: a zero-event file must still land in a job
    fileset = {
        "real_2018": {
            "files": [str(p) for p in paths],
            "metadata": {"sample": "real", "year": "2018", "isMC": "True", "xsec": 1.0, "nevents": sum(counts),
                         "file_nevents": counts},
        }
    }
    for kwargs in ({"scaleout": 2}, {"max_events_per_job": max(counts)}, {"max_events_per_job": {"real": 1}}):
        jobs = split_fileset(fileset, **kwargs)
        assert sorted(job_files(jobs)) == sorted(("real_2018", str(p)) for p in paths)
        # each job's nevents equals the entries uproot counted in its files
        for job in jobs:
            assert job.nevents == sum(entries[url] for url in job.fileset["real_2018"]["files"])
    assert len(split_fileset(fileset, max_events_per_job={"real": 1})) == len(paths)
