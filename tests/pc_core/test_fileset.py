"""Fileset JSONs: loading, validation messages, filters, limit_files, summaries."""
from __future__ import annotations

import copy
import json
import os

import pytest

from pc_core.errors import DatasetError
from pc_core.fileset import (
    FilesetFilter,
    datasets_by_year_and_sample,
    filter_fileset,
    limit_files,
    load_fileset_json,
    load_fileset_jsons,
    save_fileset_json,
)


def pocketcoffea_style(nanoaod_dir) -> dict:
    """A fileset written the PocketCoffea way: every metadata value a string."""
    return {
        "DYJetsToLL_2018": {
            "metadata": {
                "das_names": "['/DYJetsToLL/NANOAODSIM']",
                "sample": "DYJetsToLL",
                "year": "2018",
                "isMC": "True",
                "xsec": "6077.22",
                "nevents": "40",
                "size": "123",
            },
            "files": [str(nanoaod_dir / "nano_dy.root"), str(nanoaod_dir / "nano_dy_empty.root")],
        },
        "DATA_DoubleMuon_2018": {
            "metadata": {"sample": "DATA_DoubleMuon", "year": 2018, "isMC": "False", "nevents": 40},
            "files": [str(nanoaod_dir / "nano_dimuon.root")],
        },
        "TTTo2L2Nu_2022": {
            "metadata": {"sample": "TTTo2L2Nu", "year": "2022", "isMC": True, "xsec": 88.29,
                         "nevents": 200, "file_nevents": [200]},
            "files": [str(nanoaod_dir / "nano_tt_v12.root")],
        },
    }


def write(tmp_path, name, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return str(path)


def test_load_normalises_strings_and_keeps_other_keys(tmp_path, nanoaod_dir):
    path = write(tmp_path, "ds.json", pocketcoffea_style(nanoaod_dir))
    fileset = load_fileset_json(path)
    dy = fileset["DYJetsToLL_2018"]["metadata"]
    assert dy["isMC"] is True and dy["xsec"] == 6077.22 and dy["nevents"] == 40 and dy["year"] == "2018"
    assert dy["das_names"] == "['/DYJetsToLL/NANOAODSIM']" and dy["size"] == "123"
    data = fileset["DATA_DoubleMuon_2018"]["metadata"]
    assert data["isMC"] is False and data["year"] == "2018"
    assert fileset["TTTo2L2Nu_2022"]["files"] == [str(nanoaod_dir / "nano_tt_v12.root")]
    for files in (entry["files"] for entry in fileset.values()):
        assert all(os.path.exists(f) for f in files)


def test_missing_file_named(tmp_path):
    with pytest.raises(DatasetError, match="does_not_exist.json does not exist"):
        load_fileset_json(tmp_path / "does_not_exist.json")


def test_malformed_json_reports_line_and_column(tmp_path):
    text = '{\n  "ds": {\n    "files": ["a.root"],\n    "metadata": {"sample": "s" "year": "2018"}\n  }\n}\n'
    path = write(tmp_path, "bad.json", text)
    with pytest.raises(DatasetError) as err:
        load_fileset_json(path)
    message = str(err.value)
    # the missing comma is on line 4, right before "year"
    col = text.splitlines()[3].index('"year"') + 1
    assert path in message and "line 4" in message and f"column {col}" in message


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"metadata": {"sample": "s", "year": "2018", "isMC": "False"}}, "'files' must be a list"),
        ({"files": "a.root", "metadata": {"sample": "s", "year": "2018", "isMC": "False"}}, "'files' must be a list"),
        ({"files": ["a.root"]}, "'metadata' must be an object"),
        ({"files": ["a.root"], "metadata": {"year": "2018", "isMC": "False"}}, "required key 'sample'"),
        ({"files": ["a.root"], "metadata": {"sample": "s", "isMC": "False"}}, "required key 'year'"),
        ({"files": ["a.root"], "metadata": {"sample": "s", "year": "2018"}}, "required key 'isMC'"),
        ({"files": ["a.root"], "metadata": {"sample": "s", "year": "2018", "isMC": "True"}}, "key 'xsec'"),
        ({"files": ["a.root"], "metadata": {"sample": "s", "year": "2018", "isMC": "yes"}}, "isMC = 'yes'"),
        ({"files": ["a.root"], "metadata": {"sample": "s", "year": "2018", "isMC": True, "xsec": "abc"}},
         "xsec = 'abc' is not a number"),
        ({"files": ["a.root"], "metadata": {"sample": "s", "year": "2018", "isMC": False,
                                            "file_nevents": [1, 2]}}, "one count per file"),
    ],
)
def test_structure_errors_name_file_dataset_and_key(tmp_path, entry, expected):
    path = write(tmp_path, "ds.json", {"my_dataset": entry})
    with pytest.raises(DatasetError) as err:
        load_fileset_json(path)
    message = str(err.value)
    assert path in message and "'my_dataset'" in message and expected in message


def test_duplicate_dataset_across_files_names_both(tmp_path, nanoaod_dir):
    content = pocketcoffea_style(nanoaod_dir)
    first = write(tmp_path, "a.json", {"DYJetsToLL_2018": content["DYJetsToLL_2018"]})
    second = write(tmp_path, "b.json", content)
    with pytest.raises(DatasetError) as err:
        load_fileset_jsons([first, second])
    assert first in str(err.value) and second in str(err.value) and "DYJetsToLL_2018" in str(err.value)


def test_duplicate_dataset_within_one_file(tmp_path):
    entry = '{"files": ["a.root"], "metadata": {"sample": "s", "year": "2018", "isMC": "False"}}'
    path = write(tmp_path, "dup.json", '{"ds": %s, "ds": %s}' % (entry, entry))
    with pytest.raises(DatasetError, match="'ds' appears twice"):
        load_fileset_json(path)


def test_load_several_jsons_unites(tmp_path, nanoaod_dir):
    content = pocketcoffea_style(nanoaod_dir)
    first = write(tmp_path, "a.json", {"DYJetsToLL_2018": content["DYJetsToLL_2018"]})
    second = write(tmp_path, "b.json", {k: v for k, v in content.items() if k != "DYJetsToLL_2018"})
    fileset = load_fileset_jsons([first, second])
    assert sorted(fileset) == sorted(content)


def test_filters_and_no_mutation(tmp_path, nanoaod_dir):
    fileset = load_fileset_json(write(tmp_path, "ds.json", pocketcoffea_style(nanoaod_dir)))
    before = copy.deepcopy(fileset)
    assert sorted(filter_fileset(fileset, years=["2018"])) == ["DATA_DoubleMuon_2018", "DYJetsToLL_2018"]
    assert sorted(filter_fileset(fileset, samples="DYJetsToLL,TTTo2L2Nu")) == ["DYJetsToLL_2018", "TTTo2L2Nu_2022"]
    assert sorted(filter_fileset(fileset, samples_exclude=["DYJetsToLL"])) == ["DATA_DoubleMuon_2018", "TTTo2L2Nu_2022"]
    assert list(filter_fileset(fileset, datasets=["TTTo2L2Nu_2022"], years="2022")) == ["TTTo2L2Nu_2022"]
    result = filter_fileset(fileset, years=["2018"])
    result["DYJetsToLL_2018"]["files"].append("x.root")
    assert fileset == before


def test_filter_that_empties_names_itself(tmp_path, nanoaod_dir):
    fileset = load_fileset_json(write(tmp_path, "ds.json", pocketcoffea_style(nanoaod_dir)))
    only_2018 = filter_fileset(fileset, years=["2018"])
    with pytest.raises(DatasetError) as err:
        filter_fileset(only_2018, years=["2017"])
    assert "empty after filtering: filter years=['2017'] matched none of the years present ['2018']" in str(err.value)
    with pytest.raises(DatasetError, match=r"filter samples=\['QCD'\] matched none of the samples present"):
        filter_fileset(fileset, samples=["QCD"], years=["2018"])
    with pytest.raises(DatasetError, match=r"filter samples_exclude=.*excluded all"):
        filter_fileset(only_2018, samples_exclude=["DYJetsToLL", "DATA_DoubleMuon"])


def test_filter_from_config_mapping(tmp_path, nanoaod_dir):
    fileset = load_fileset_json(write(tmp_path, "ds.json", pocketcoffea_style(nanoaod_dir)))
    filt = FilesetFilter.from_mapping({"samples": ["DYJetsToLL", "DATA_DoubleMuon"], "year": ["2018"]})
    assert filt.years == ("2018",)
    assert sorted(filt.apply(fileset)) == ["DATA_DoubleMuon_2018", "DYJetsToLL_2018"]
    with pytest.raises(DatasetError, match="unknown filter key 'sample'"):
        FilesetFilter.from_mapping({"sample": ["x"]})


def test_limit_files_exact_and_estimated(tmp_path, nanoaod_dir):
    fileset = {
        "exact": {"files": ["a.root", "b.root", "c.root"],
                  "metadata": {"sample": "s", "year": "2018", "isMC": False, "nevents": 60,
                               "file_nevents": [10, 20, 30]}},
        "estimated": {"files": ["a.root", "b.root", "c.root", "d.root"],
                      "metadata": {"sample": "t", "year": "2018", "isMC": False, "nevents": 1000}},
        "short": {"files": ["a.root"], "metadata": {"sample": "u", "year": "2018", "isMC": False, "nevents": 7}},
    }
    before = copy.deepcopy(fileset)
    limited = limit_files(fileset, 2)
    assert limited["exact"]["files"] == ["a.root", "b.root"]
    assert limited["exact"]["metadata"]["nevents"] == 30
    assert limited["exact"]["metadata"]["file_nevents"] == [10, 20]
    assert "nevents_estimated" not in limited["exact"]["metadata"]
    assert limited["estimated"]["metadata"]["nevents"] == 500
    assert limited["estimated"]["metadata"]["nevents_estimated"] is True
    assert limited["short"] == fileset["short"]
    assert fileset == before
    with pytest.raises(DatasetError, match="positive integer"):
        limit_files(fileset, 0)


def test_datasets_by_year_and_sample(tmp_path, nanoaod_dir):
    fileset = load_fileset_json(write(tmp_path, "ds.json", pocketcoffea_style(nanoaod_dir)))
    summary = datasets_by_year_and_sample(fileset)
    assert summary["by_datataking_period"] == {
        "2018": {"DYJetsToLL": ["DYJetsToLL_2018"], "DATA_DoubleMuon": ["DATA_DoubleMuon_2018"]},
        "2022": {"TTTo2L2Nu": ["TTTo2L2Nu_2022"]},
    }
    assert summary["by_dataset"]["TTTo2L2Nu_2022"]["xsec"] == 88.29
    summary["by_dataset"]["TTTo2L2Nu_2022"]["xsec"] = 0
    assert fileset["TTTo2L2Nu_2022"]["metadata"]["xsec"] == 88.29


def test_save_roundtrip_atomic(tmp_path, nanoaod_dir):
    fileset = load_fileset_json(write(tmp_path, "ds.json", pocketcoffea_style(nanoaod_dir)))
    out = tmp_path / "sub" / "saved.json"
    save_fileset_json(fileset, out)
    assert load_fileset_json(out) == fileset
    assert [p.name for p in out.parent.iterdir()] == ["saved.json"]  # no temporary left behind
