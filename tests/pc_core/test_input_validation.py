"""Inputs checked before processing: a file listed twice, metadata of the wrong type and
category names reserved for the cutflow are refused before any event is read."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

from analysis_testlib import DATA, DY, invoke_run, make_analysis, standard_fileset
from pc_core import Configurator, passthrough
from pc_core.config_loading import load_configurator
from pc_core.errors import ConfigError, DatasetError
from pc_core.fileset import check_unique_files, normalise_dataset
from pc_core.selections import RESERVED_CATEGORY_NAMES, StandardSelection, check_category_names

YEAR_ACCEPTED = 'year must be a non-empty string such as "2018" or "2022_postEE" (an integer such as 2018 is read as "2018")'


def _entry(files=("/x/a.root",), **metadata) -> dict:
    meta = {"sample": "DY", "year": "2018", "isMC": True, "xsec": 6077.22, **metadata}
    return {"files": list(files), "metadata": meta}


class Workflow:
    """Stands in for a processor class."""


# ---------------------------------------------------------------- the same file twice


def test_same_path_twice_in_one_dataset():
    with pytest.raises(DatasetError) as info:
        check_unique_files({"DY_2018": _entry(["/x/a.root", "/x/b.root", "/x/a.root"])})
    assert str(info.value) == (
        "file /x/a.root is listed twice: dataset 'DY_2018' file 0 (/x/a.root) and dataset 'DY_2018' file 2 "
        "(/x/a.root); each input file may appear once in a fileset"
    )


def test_relative_dot_and_absolute_spellings_in_two_datasets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "nano_dy.root")
    with pytest.raises(DatasetError) as info:
        check_unique_files({"DY_2018": _entry(["other.root", "./nano_dy.root"]), "DY_2018b": _entry([absolute])})
    assert str(info.value) == (
        f"file {os.path.realpath(absolute)} is listed twice: dataset 'DY_2018' file 1 (./nano_dy.root) and "
        f"dataset 'DY_2018b' file 0 ({absolute}); each input file may appear once in a fileset"
    )
    with pytest.raises(DatasetError, match=r"dataset 'A' file 0 \(nano_dy.root\) and dataset 'B' file 0 \(\./nano_dy.root\)"):
        check_unique_files({"A": _entry(["nano_dy.root"]), "B": _entry(["./nano_dy.root"])})


def test_symlink_to_the_same_file(tmp_path):
    target = tmp_path / "nano_dy.root"
    target.write_bytes(b"")
    link = tmp_path / "link.root"
    link.symlink_to(target)
    with pytest.raises(DatasetError, match=r"is listed twice: dataset 'DY' file 0 \(.*nano_dy.root\) and dataset 'DY' file 1 \(.*link.root\)"):
        check_unique_files({"DY": _entry([str(target), str(link)])})


def test_xrootd_default_port_and_double_slash_are_one_file():
    fileset = {"A": _entry(["root://host:1094//store/x.root"]), "B": _entry(["root://HOST/store/x.root"])}
    with pytest.raises(DatasetError) as info:
        check_unique_files(fileset)
    assert str(info.value).startswith(
        "file root://host//store/x.root is listed twice: dataset 'A' file 0 (root://host:1094//store/x.root) and "
        "dataset 'B' file 0 (root://HOST/store/x.root)"
    )


def test_distinct_files_pass_and_further_duplicates_are_counted():
    check_unique_files({"A": _entry(["/x/a.root", "root://h//store/a.root"]), "B": _entry(["/x/b.root", "root://h:1095//store/a.root"])})
    with pytest.raises(DatasetError, match=r"once in a fileset \(1 more file is listed more than once\)$"):
        check_unique_files({"A": _entry(["/x/a.root", "/x/b.root"]), "B": _entry(["/x/a.root", "/x/b.root"])})


# ---------------------------------------------------------------- metadata types


@pytest.mark.parametrize("year", ["2018", 2018, np.int64(2018)])
def test_year_string_or_integer_is_read_as_a_string(year):
    assert normalise_dataset("DY_2018", _entry(year=year), "f.json")["metadata"]["year"] == "2018"


@pytest.mark.parametrize(
    "year, shown",
    [(2018.0, "2018.0 (float)"), (True, "true (bool)"), (["2018"], '["2018"] (list)'), (None, "null"), ("", '"" (str)')],
)
def test_year_of_another_type_is_an_error(year, shown):
    with pytest.raises(DatasetError) as info:
        normalise_dataset("DY_2018", _entry(year=year), "f.json")
    assert str(info.value) == f"f.json: dataset 'DY_2018': year = {shown} is not accepted; {YEAR_ACCEPTED}"


def test_missing_year_is_an_error():
    entry = _entry()
    del entry["metadata"]["year"]
    with pytest.raises(DatasetError, match=r"f.json: dataset 'DY_2018': metadata lacks the required key 'year'"):
        normalise_dataset("DY_2018", entry, "f.json")


@pytest.mark.parametrize("xsec, shown", [(0, "0"), (-1.5, "-1.5"), ("-3", "'-3'")])
def test_xsec_must_be_positive(xsec, shown):
    with pytest.raises(DatasetError) as info:
        normalise_dataset("DY_2018", _entry(xsec=xsec), "f.json")
    assert str(info.value) == (
        f"f.json: dataset 'DY_2018': xsec = {shown} is not a positive number; give the cross-section in pb (> 0)"
    )


@pytest.mark.parametrize("xsec", [float("inf"), float("nan"), "abc", True])
def test_xsec_must_be_a_finite_number(xsec):
    with pytest.raises(DatasetError, match=r"f.json: dataset 'DY_2018': xsec = .* is not a (finite )?number"):
        normalise_dataset("DY_2018", _entry(xsec=xsec), "f.json")


def test_xsec_as_pocketcoffea_string_and_required_for_mc_only():
    assert normalise_dataset("DY", _entry(xsec="6077.22"))["metadata"]["xsec"] == 6077.22
    data = {"files": ["/x/d.root"], "metadata": {"sample": "DATA", "year": "2018", "isMC": False}}
    assert "xsec" not in normalise_dataset("DATA", data)["metadata"]
    mc = _entry()
    del mc["metadata"]["xsec"]
    with pytest.raises(DatasetError, match="lacks the key 'xsec', required for MC datasets"):
        normalise_dataset("DY", mc)


def test_file_nevents_must_match_files_and_sum_to_nevents():
    two = ["/x/a.root", "/x/b.root"]
    meta = normalise_dataset("DY", _entry(two, nevents="30", file_nevents=["10", 20]))["metadata"]
    assert meta["nevents"] == 30 and meta["file_nevents"] == [10, 20]
    with pytest.raises(DatasetError) as info:
        normalise_dataset("DY", _entry(two, nevents=31, file_nevents=[10, 20]), "f.json")
    assert str(info.value) == (
        "f.json: dataset 'DY': nevents = 31 but the file_nevents sum to 30; nevents must equal the sum of the "
        "per-file counts (or leave one of them out)"
    )
    with pytest.raises(DatasetError, match=r"f.json: dataset 'DY': file_nevents must be a list with one count per file \(2 files\)"):
        normalise_dataset("DY", _entry(two, file_nevents=[10]), "f.json")
    with pytest.raises(DatasetError, match=r"f.json: dataset 'DY': file_nevents\[1\] = -2 is not a non-negative integer"):
        normalise_dataset("DY", _entry(two, file_nevents=[10, -2]), "f.json")
    with pytest.raises(DatasetError, match=r"f.json: dataset 'DY': file_nevents\[0\] = 1.5 is not a non-negative integer"):
        normalise_dataset("DY", _entry(two, file_nevents=[1.5, 2]), "f.json")


# ---------------------------------------------------------------- reserved category names


def test_reserved_names_are_the_processor_cutflow_steps():
    assert RESERVED_CATEGORY_NAMES == ("initial", "skim", "presel")
    check_category_names(["inclusive", "Skim", "presel2"])
    with pytest.raises(ConfigError) as info:
        check_category_names(["inclusive", "skim"])
    assert str(info.value) == (
        "categories: category name 'skim' is reserved: the output's cutflow uses 'initial', 'skim', 'presel' "
        "for the events before the skim, after the skim and after the preselection; rename the category"
    )


# ---------------------------------------------------------------- through the Configurator


@pytest.fixture
def make(tmp_path, nanoaod_dir):
    def build(fileset=None, categories=None, filter=None) -> Configurator:
        fileset = standard_fileset(nanoaod_dir) if fileset is None else fileset
        (tmp_path / "fileset.json").write_text(json.dumps(fileset))
        datasets = {"jsons": ["fileset.json"]}
        if filter is not None:
            datasets["filter"] = filter
        return Configurator(
            workflow=Workflow, parameters=None, datasets=datasets, skim=[], preselections=[],
            categories=categories or {"inclusive": [passthrough]}, weights=None, variations=None, variables={},
            base_dir=tmp_path,
        )

    return build


@pytest.mark.parametrize("name", RESERVED_CATEGORY_NAMES)
def test_configurator_refuses_a_reserved_category(make, name):
    with pytest.raises(ConfigError, match=rf"categories: category name '{name}' is reserved"):
        make(categories={"inclusive": [passthrough], name: [passthrough]}).load()
    with pytest.raises(ConfigError, match=rf"category name '{name}' is reserved"):
        make(categories=StandardSelection({name: [passthrough]})).load()


def test_configurator_refuses_a_file_listed_twice_and_with_fileset_too(make, nanoaod_dir):
    fileset = standard_fileset(nanoaod_dir)
    fileset["DY_2018b"] = copy.deepcopy(fileset[DY])
    fileset["DY_2018b"]["files"] = [str(nanoaod_dir / "." / "nano_dy.root")]
    with pytest.raises(DatasetError, match=rf"dataset '{DY}' file 0 \(.*nano_dy.root\) and dataset 'DY_2018b' file 0"):
        make(fileset).load()
    # filtered down to one of the two datasets, the run processes the file once
    cfg = make(fileset, filter={"datasets": [DY, DATA]}).load()
    doubled = copy.deepcopy(cfg.fileset)
    doubled[DATA]["files"].append(doubled[DY]["files"][0])
    with pytest.raises(DatasetError, match=rf"dataset '{DY}' file 0 .* and dataset '{DATA}' file 1 .*; each input file"):
        cfg.with_fileset(doubled)
    assert cfg.filter(datasets=DY).datasets_names == [DY]


def test_configurator_int_year_equals_string_year(make, nanoaod_dir):
    fileset = standard_fileset(nanoaod_dir)
    fileset[DY]["metadata"]["year"] = 2018
    cfg = make(fileset, filter={"year": ["2018"]}).load()
    assert cfg.fileset[DY]["metadata"]["year"] == "2018" and cfg.datasets_names == [DY, DATA]
    fileset[DY]["metadata"]["year"] = 2018.0
    with pytest.raises(DatasetError, match=rf"dataset '{DY}': year = 2018.0 \(float\) is not accepted"):
        make(fileset).load()


def test_pickled_configurator_is_checked_again(make, tmp_path):
    cfg = make().load()
    cfg.fileset[DATA]["files"].append(cfg.fileset[DY]["files"][0])  # bypasses load(), as an old pickle could
    paths = cfg.save_config(tmp_path / "saved")
    with pytest.raises(DatasetError, match="is listed twice"):
        load_configurator(paths["pickle"])


# ---------------------------------------------------------------- end to end: pocket-coffea run


def _small_fileset(nanoaod_dir: Path) -> dict:
    full = standard_fileset(nanoaod_dir)
    fileset = {DY: full[DY], DATA: full[DATA]}
    fileset[DY]["files"] = fileset[DY]["files"][:1]
    return fileset


def _run(tmp_path: Path, name: str, fileset: dict, edit_config=None):
    config = make_analysis(tmp_path / name, fileset)
    if edit_config is not None:
        config.write_text(edit_config(config.read_text()))
    out = tmp_path / f"{name}_out"
    result = invoke_run(["--cfg", config, "-o", out, "-e", "iterative", "-ll", "WARNING"])
    return result, out


def _message(result) -> str:
    return f"{result.output}\n{result.exception}"


def _no_output(out: Path) -> bool:
    return not out.exists() or not list(out.glob("*.coffea"))


def test_run_refuses_a_duplicated_file(nanoaod_dir, tmp_path):
    fileset = _small_fileset(nanoaod_dir)
    fileset["DY_2018b"] = copy.deepcopy(fileset[DY])
    fileset["DY_2018b"]["files"] = [f"{nanoaod_dir}//nano_dy.root"]
    result, out = _run(tmp_path, "dup", fileset)
    assert result.exit_code != 0
    expected = (
        f"file {os.path.realpath(nanoaod_dir / 'nano_dy.root')} is listed twice: dataset '{DY}' file 0 "
        f"({nanoaod_dir / 'nano_dy.root'}) and dataset 'DY_2018b' file 0 ({nanoaod_dir}//nano_dy.root); "
        "each input file may appear once in a fileset"
    )
    assert expected in _message(result)
    assert _no_output(out)


@pytest.mark.parametrize("year, shown", [(2018.0, "2018.0 (float)"), (["2018"], '["2018"] (list)')])
def test_run_refuses_a_year_of_the_wrong_type(nanoaod_dir, tmp_path, year, shown):
    fileset = _small_fileset(nanoaod_dir)
    fileset[DY]["metadata"]["year"] = year
    result, out = _run(tmp_path, "year", fileset)
    assert result.exit_code != 0
    assert f"dataset '{DY}': year = {shown} is not accepted; {YEAR_ACCEPTED}" in _message(result)
    assert _no_output(out)


def test_run_refuses_a_reserved_category(nanoaod_dir, tmp_path):
    def rename(text: str) -> str:
        assert '"one_mu": [cuts.one_mu]' in text
        return text.replace('"one_mu": [cuts.one_mu]', '"presel": [cuts.one_mu]')

    result, out = _run(tmp_path, "reserved", _small_fileset(nanoaod_dir), rename)
    assert result.exit_code != 0
    assert "categories: category name 'presel' is reserved" in _message(result)
    assert _no_output(out)


def test_run_with_an_integer_year_gives_the_same_events(nanoaod_dir, tmp_path):
    from pc_core.output import load_output

    as_string = _small_fileset(nanoaod_dir)
    as_int = copy.deepcopy(as_string)
    for entry in as_int.values():
        entry["metadata"]["year"] = 2018
    outputs = {}
    for name, fileset in (("string", as_string), ("int", as_int)):
        result, out = _run(tmp_path, name, fileset)
        assert result.exit_code == 0, (result.output, result.exception)
        outputs[name] = load_output(out / "output_all.coffea")
    a, b = outputs["string"], outputs["int"]
    assert a["cutflow"] == b["cutflow"] and a["cutflow"]["initial"][DY] > 0
    assert a["sumw"] == b["sumw"] and a["sum_genweights"] == b["sum_genweights"]
    assert a["datasets_metadata"] == b["datasets_metadata"]
    assert b["datasets_metadata"]["by_dataset"][DY]["year"] == "2018"
    assert set(a["variables"]) == set(b["variables"])
    for name in a["variables"]:
        for sample in a["variables"][name]:
            for dataset, histogram in a["variables"][name][sample].items():
                assert histogram == b["variables"][name][sample][dataset], (name, sample, dataset)
