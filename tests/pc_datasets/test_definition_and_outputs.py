import json

import pytest

from pc_core.fileset import load_fileset_json
from pc_datasets.build import BuiltDataset
from pc_datasets.definition import load_definition, parse_definition, select_keys
from pc_datasets.errors import DefinitionError
from pc_datasets.outputs import OutputOptions, plan_outputs, write_outputs

DEFINITION = {
    "TTbar": {
        "sample": "TTTo2L2Nu",
        "json_output": "datasets/TTbar.json",
        "files": [
            {"das_names": ["/TT/A/NANOAODSIM"], "metadata": {"year": "2018", "isMC": True, "xsec": 88.3, "part": "p1"}},
            {"das_names": ["/TT/B/NANOAODSIM"], "metadata": {"year": "2017", "isMC": "True", "xsec": 88.3}},
        ],
    },
    "DATA_SingleMuon": {
        "sample": "DATA_SingleMuon",
        "json_output": "datasets/data.json",
        "files": [{"das_names": ["/SingleMuon/Run2018A/NANOAOD"], "metadata": {"year": "2018", "isMC": False, "era": "A"}}],
    },
}


def test_dataset_names_are_key_part_year_and_era_for_data():
    requests = parse_definition(DEFINITION, "def.json")
    assert [r.name for r in requests] == ["TTbar_p1_2018", "TTbar_2017", "DATA_SingleMuon_2018_EraA"]
    assert requests[1].metadata["isMC"] is True and requests[2].metadata["sample"] == "DATA_SingleMuon"
    assert [r.key for r in select_keys(requests, ("DATA_SingleMuon",), "def.json")] == ["DATA_SingleMuon"]
    with pytest.raises(DefinitionError, match="--keys Nope: not in def.json; available keys: TTbar, DATA_SingleMuon"):
        select_keys(requests, ("Nope",), "def.json")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["TTbar"].pop("json_output"), "key 'TTbar': missing 'json_output'"),
        (lambda d: d["TTbar"]["files"][0].update(das_names=[]), r"files\[0\]: 'das_names' must be a non-empty list"),
        (lambda d: d["TTbar"]["files"][0]["metadata"].pop("xsec"), "MC metadata needs 'xsec'"),
        (lambda d: d["DATA_SingleMuon"]["files"][0]["metadata"].pop("era"), "needs 'era'"),
        (lambda d: d["TTbar"]["files"][1]["metadata"].update(isMC="maybe"), "isMC = 'maybe'"),
        (lambda d: d["TTbar"]["files"][1]["metadata"].update(part="p1", year="2018"), "produced twice"),
    ],
)
def test_bad_definitions_are_named(mutate, message):
    data = json.loads(json.dumps(DEFINITION))
    mutate(data)
    with pytest.raises(DefinitionError, match=message):
        parse_definition(data, "def.json")


def test_malformed_json_file_names_file_and_position(tmp_path):
    path = tmp_path / "def.json"
    path.write_text('{"TTbar": {"sample": "x",,}}')
    with pytest.raises(DefinitionError, match=rf"{path} is not valid JSON: .* line 1, column"):
        load_definition(path)
    with pytest.raises(DefinitionError, match="does not exist"):
        load_definition(tmp_path / "missing.json")


def _built(request, n=2):
    lfns = [f"/store/mc/{request.key}/f{i}.root" for i in range(n)]
    return BuiltDataset(request, lfns, [f"root://127.0.0.1:1094/{l}" for l in lfns], ["T2_CH_CERN"] * n,
                        [10 * (i + 1) for i in range(n)], [100] * n)


def test_outputs_variants_split_by_year_and_extension(tmp_path):
    requests = parse_definition(DEFINITION, "def.json")
    built = [_built(r) for r in requests]
    opts = OutputOptions(outputdir=tmp_path, local_prefix="/eos/cms", split_by_year=True)
    plans = plan_outputs(built, opts)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in plans)
    assert names == sorted([
        "datasets/TTbar_2018.json", "datasets/TTbar_2018_redirector.json", "datasets/TTbar_2018_local.json",
        "datasets/TTbar_2017.json", "datasets/TTbar_2017_redirector.json", "datasets/TTbar_2017_local.json",
        "datasets/data_2018.json", "datasets/data_2018_redirector.json", "datasets/data_2018_local.json",
    ])
    write_outputs(plans)
    fileset = load_fileset_json(tmp_path / "datasets/TTbar_2018.json")
    meta = fileset["TTbar_p1_2018"]["metadata"]
    assert meta["nevents"] == 30 and meta["file_nevents"] == [10, 20] and meta["size"] == 200
    redirected = load_fileset_json(tmp_path / "datasets/TTbar_2018_redirector.json")["TTbar_p1_2018"]["files"]
    assert redirected == ["root://xrootd-cms.infn.it//store/mc/TTbar/f0.root", "root://xrootd-cms.infn.it//store/mc/TTbar/f1.root"]
    local = load_fileset_json(tmp_path / "datasets/TTbar_2018_local.json")["TTbar_p1_2018"]["files"]
    assert local[0] == "/eos/cms/store/mc/TTbar/f0.root"
    assert not list(tmp_path.rglob("*.tmp"))

    # without --overwrite: a duplicate dataset is an error and nothing is touched
    before = (tmp_path / "datasets/TTbar_2018.json").read_text()
    with pytest.raises(DefinitionError, match="already has dataset.*TTbar_p1_2018.*--overwrite"):
        plan_outputs(built, opts)
    assert (tmp_path / "datasets/TTbar_2018.json").read_text() == before
    # ... a new dataset extends the file; --overwrite replaces it
    other = parse_definition({"Other": {"sample": "O", "json_output": "datasets/TTbar.json", "files": [
        {"das_names": ["/O/X/NANOAODSIM"], "metadata": {"year": "2018", "isMC": True, "xsec": 1}}]}}, "o.json")
    write_outputs(plan_outputs([_built(other[0])], opts))
    assert sorted(load_fileset_json(tmp_path / "datasets/TTbar_2018.json")) == ["Other_2018", "TTbar_p1_2018"]
    write_outputs(plan_outputs([_built(other[0])], OutputOptions(tmp_path, overwrite=True, split_by_year=True)))
    assert sorted(load_fileset_json(tmp_path / "datasets/TTbar_2018.json")) == ["Other_2018"]
