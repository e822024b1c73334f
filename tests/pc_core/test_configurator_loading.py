"""load_configurator (config files loaded by path), pickling in a fresh process, save_config."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import uproot
import yaml

from pc_core import Configurator, load_configurator
from pc_core.errors import ConfigError

CONFIG = '''
import numpy as np

from pc_core import Axis, ColOut, Configurator, HistConf, WeightLambda, passthrough

import {cuts_module}
from analysis_lib.workflow import MyWorkflow

def _sf(params, metadata, events, size, shape_variation):
    n = np.asarray(events["nMuon"], dtype=np.float64)
    value = params["sf"]
    return value ** n, (value + 0.05) ** n, (value - 0.05) ** n

sf_muon = WeightLambda.wrap_func("sf_muon", _sf, has_variations=True)

cfg = Configurator(
    workflow=MyWorkflow,
    parameters={{"sf": 0.9}},
    datasets={{"jsons": ["datasets/fileset.json"], "filter": {{"samples": ["DY", "DATA"]}}}},
    skim=[{cuts_module}.muons],
    preselections=[],
    categories={{"inclusive": [passthrough], "electrons": [{cuts_module}.electrons]}},
    weights={{"common": {{"inclusive": ["genWeight", "sf_muon"]}}}},
    weights_classes=[sf_muon],
    variations={{"weights": {{"common": {{"inclusive": ["sf_muon"]}}}}}},
    variables={{"nmu": HistConf([Axis(field="nMuon", label="n muons", bins=4, start=0, stop=4, type="integer")])}},
    columns={{"common": {{"bycategory": {{"electrons": [ColOut("Electron", ["pt"])]}}}}}},
    workflow_options={{"label": "test"}},
)
'''

CUTS = '''
import numpy as np
from pc_core import Cut

THRESHOLD = {threshold}

def at_least(events, params, **context):
    return np.asarray(events[params["branch"]]) >= params["n"]

muons = Cut("muons", at_least, {{"branch": "nMuon", "n": THRESHOLD}})
electrons = Cut("electrons", at_least, {{"branch": "nElectron", "n": 1}})
'''

WORKFLOW = '''
class MyWorkflow:
    """A stand-in processor defined in a package next to the config."""

    def __init__(self, cfg):
        self.cfg = cfg

    def describe(self):
        return f"{type(self).__name__}:{sorted(self.cfg.categories)}"
'''


def write_analysis(folder: Path, nanoaod_dir: Path, threshold: int = 1, cuts_module: str = "my_cuts") -> Path:
    """A config folder: config.py, a sibling cuts module, a sibling package, a dataset JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.py").write_text(CONFIG.format(cuts_module=cuts_module))
    (folder / f"{cuts_module}.py").write_text(CUTS.format(threshold=threshold))
    (folder / "analysis_lib").mkdir(exist_ok=True)
    (folder / "analysis_lib" / "__init__.py").write_text("")
    (folder / "analysis_lib" / "workflow.py").write_text(WORKFLOW)
    (folder / "datasets").mkdir(exist_ok=True)
    fileset = {
        "DY_2018": {
            "files": [str(nanoaod_dir / "nano_dy.root")],
            "metadata": {"sample": "DY", "year": "2018", "isMC": True, "xsec": 6077.22},
        },
        "DATA_2018": {
            "files": [str(nanoaod_dir / "nano_dimuon.root")],
            "metadata": {"sample": "DATA", "year": "2018", "isMC": False},
        },
    }
    (folder / "datasets" / "fileset.json").write_text(json.dumps(fileset))
    return folder / "config.py"


@pytest.fixture
def dy_events(nanoaod_dir, tmp_path):
    """The branches the checks need, read from the real file; also saved as .npz so that the
    fresh processes need only numpy (importing uproot there would only slow the tests)."""
    arrays = uproot.open(nanoaod_dir / "nano_dy.root")["Events"].arrays(["nMuon", "nElectron"], library="np")
    np.savez(tmp_path / "dy_events.npz", **arrays)
    return arrays


def test_load_configurator_from_a_python_file(tmp_path, nanoaod_dir):
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    path_before, cwd_before = list(sys.path), os.getcwd()
    modules_before = set(sys.modules)

    cfg = load_configurator(config)

    assert cfg.loaded and isinstance(cfg, Configurator)
    # the dataset JSON path is relative to the config file, not to the current directory
    assert Path(os.getcwd()) != config.parent
    assert cfg.datasets_jsons == [config.parent / "datasets" / "fileset.json"]
    assert cfg.datasets_names == ["DY_2018", "DATA_2018"]
    assert cfg.workflow.__name__ == "MyWorkflow"
    assert cfg.workflow(cfg).describe() == "MyWorkflow:['electrons', 'inclusive']"
    assert cfg.weights_config["DY"]["inclusive"] == ["genWeight", "sf_muon"]
    assert cfg.weights_config["DATA"]["inclusive"] == []
    assert cfg.variations_config["DY"]["weights"] == {"inclusive": ["sf_muon"], "electrons": ["sf_muon"]}
    # nothing global is left behind: sys.path, cwd, the sibling modules
    assert sys.path == path_before and os.getcwd() == cwd_before
    new_modules = set(sys.modules) - modules_before
    assert not any(name.startswith(("my_cuts", "analysis_lib", "_pocket_coffea_config")) for name in new_modules)


def test_explicit_base_dir_wins(tmp_path, nanoaod_dir):
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    text = config.read_text().replace('workflow_options={"label": "test"},', 'workflow_options={}, base_dir="/nonexistent"')
    config.write_text(text)
    with pytest.raises(Exception) as info:
        load_configurator(config)
    assert "Fileset JSON /nonexistent/datasets/fileset.json does not exist" in str(info.value)


def test_without_config_file_paths_resolve_relative_to_the_current_directory(tmp_path, nanoaod_dir):
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    script = textwrap.dedent(
        """
        from pc_core import Configurator, HistConf, Axis, passthrough
        class W: pass
        cfg = Configurator(W, {}, {"jsons": ["datasets/fileset.json"]}, [], [], {"all": [passthrough]},
                           {}, {}, {"n": HistConf([Axis(field="nMuon", label="n", bins=2, start=0, stop=2)])}).load()
        print(cfg.datasets_jsons[0])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=config.parent, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(config.parent / "datasets" / "fileset.json")


def test_two_configs_with_same_sibling_module_names(tmp_path, nanoaod_dir):
    one = load_configurator(write_analysis(tmp_path / "one", nanoaod_dir, threshold=1))
    two = load_configurator(write_analysis(tmp_path / "two", nanoaod_dir, threshold=2))
    assert one.skim[0].params["n"] == 1
    assert two.skim[0].params["n"] == 2


def test_a_sibling_module_shadowing_an_installed_one(tmp_path, nanoaod_dir):
    """A config folder with its own ``yaml.py``: the config gets its sibling, everyone else keeps PyYAML."""
    import yaml as real_yaml

    config = write_analysis(tmp_path / "analysis", nanoaod_dir, cuts_module="yaml")
    cfg = load_configurator(config)
    assert cfg.skim[0].name == "muons"
    assert sys.modules["yaml"] is real_yaml


def _fresh_process(script: str, cwd: Path) -> dict:
    """Run ``script`` in a new interpreter (without the config folder on sys.path); return its JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=cwd, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


FRESH_CHECK = """
    import json, sys
    import cloudpickle, numpy as np
    cfg = cloudpickle.load(open({pickle!r}, "rb"))
    events = dict(np.load({dy!r}))  # the real nano_dy.root branches, extracted by the test
    size = len(events["nMuon"])
    meta = cfg.fileset["DY_2018"]["metadata"]
    ctx = dict(year="2018", sample="DY", dataset="DY_2018", isMC=True, metadata=meta)
    sf = cfg.weights_classes["sf_muon"](cfg.parameters, meta).compute(events, size)
    print(json.dumps({{
        "skim": int(np.sum(cfg.skim[0].get_mask(events, **ctx))),
        "electrons": int(np.sum(cfg.categories["electrons"][0].get_mask(events, **ctx))),
        "sf_sum": float(np.sum(sf.nominal)), "sf_up_sum": float(np.sum(sf.up)),
        "workflow": cfg.workflow(cfg).describe(),
        "loaded": cfg.loaded, "samples": cfg.samples,
        "config_dir_on_path": any("analysis" in p for p in sys.path),
    }}))
"""


def _expected(dy_events) -> dict:
    n_mu = np.asarray(dy_events["nMuon"], dtype=np.float64)
    return {
        "skim": int(np.sum(n_mu >= 1)),
        "electrons": int(np.sum(np.asarray(dy_events["nElectron"]) >= 1)),
        "sf_sum": pytest.approx(float(np.sum(0.9**n_mu))),
        "sf_up_sum": pytest.approx(float(np.sum(0.95**n_mu))),
        "workflow": "MyWorkflow:['electrons', 'inclusive']",
        "loaded": True,
        "samples": ["DY", "DATA"],
        "config_dir_on_path": False,
    }


def test_loaded_configurator_unpickles_in_a_fresh_process(tmp_path, nanoaod_dir, dy_events):
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    cfg = load_configurator(config)
    pickle_path = tmp_path / "cfg.pkl"
    pickle_path.write_bytes(cloudpickle.dumps(cfg))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    got = _fresh_process(FRESH_CHECK.format(pickle=str(pickle_path), dy=str(tmp_path / "dy_events.npz")), elsewhere)
    assert got == _expected(dy_events)
    assert got["skim"] > 0 and got["electrons"] > 0


def test_save_config_outputs(tmp_path, nanoaod_dir, dy_events):
    cfg = load_configurator(write_analysis(tmp_path / "analysis", nanoaod_dir))
    out = tmp_path / "output"
    paths = cfg.save_config(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "configurator.pkl", "parameters_dump.yaml"]
    assert paths["config"] == out / "config.json"

    summary = json.loads((out / "config.json").read_text())
    assert summary["workflow"].endswith(".MyWorkflow")
    assert summary["workflow_options"] == {"label": "test"}
    assert summary["datasets"]["jsons"] == [str(tmp_path / "analysis" / "datasets" / "fileset.json")]
    assert summary["datasets"]["fileset"]["DATA_2018"] == {
        "nfiles": 1,
        "metadata": {"sample": "DATA", "year": "2018", "isMC": False},
    }
    assert summary["skim"][0]["name"] == "muons" and summary["skim"][0]["params"] == {"branch": "nMuon", "n": 1}
    assert list(summary["categories"]) == ["inclusive", "electrons"]
    assert summary["weights"]["DY"]["inclusive"] == ["genWeight", "sf_muon"]
    assert summary["variations"]["DY"]["weights"]["electrons"] == ["sf_muon"]
    assert summary["weights_classes"]["sf_muon"]["has_variations"] is True
    assert summary["variables"]["nmu"]["axes"][0] == {
        "field": "nMuon", "label": "n muons", "bins": 4, "start": 0, "stop": 4, "coll": "events",
        "name": "nMuon", "pos": None, "type": "integer", "underflow": True, "overflow": True,
    }
    assert summary["columns"]["DY"] == {
        "electrons": [{"collection": "Electron", "columns": ["pt"], "flatten": True, "store_size": True,
                       "pos_start": None, "pos_end": None}]
    }
    assert yaml.safe_load((out / "parameters_dump.yaml").read_text()) == cfg.parameters

    # configurator.pkl is usable on its own, in a fresh process and through load_configurator
    got = _fresh_process(
        FRESH_CHECK.format(pickle=str(out / "configurator.pkl"), dy=str(tmp_path / "dy_events.npz")), out
    )
    assert got == _expected(dy_events)
    again = load_configurator(out / "configurator.pkl")
    assert again.samples == cfg.samples and again.weights_config == cfg.weights_config

    # overwriting keeps a complete file (atomic rename) and leaves no temporary file
    cfg.filter(samples="DY").save_config(out)
    assert json.loads((out / "config.json").read_text())["datasets"]["samples"] == ["DY"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "configurator.pkl", "parameters_dump.yaml"]


def test_save_config_requires_a_loaded_configurator(tmp_path):
    cfg = Configurator(object, {}, {"jsons": ["x.json"]}, [], [], {}, {}, {}, {})
    with pytest.raises(ConfigError, match=r"save_config\(\) needs a loaded configurator"):
        cfg.save_config(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("x = 1\n", "the config defines no variable 'cfg'; it must set cfg = Configurator(...)"),
        ("cfg = {}\n", "'cfg' is a dict, expected a pc_core Configurator"),
        ("cfg = (\n", "executing the config failed: SyntaxError"),
        ("import my_missing_module\n", "executing the config failed: ModuleNotFoundError: No module named 'my_missing_module'"),
    ],
)
def test_bad_config_files(tmp_path, content, expected):
    config = tmp_path / "config.py"
    config.write_text(content)
    path_before = list(sys.path)
    with pytest.raises(ConfigError) as info:
        load_configurator(config)
    assert str(info.value).startswith(f"{config}: ")
    assert expected in str(info.value)
    assert sys.path == path_before


def test_load_configurator_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=f"Config file {tmp_path / 'nope.py'} does not exist"):
        load_configurator(tmp_path / "nope.py")
    (tmp_path / "config.yaml").write_text("a: 1")
    with pytest.raises(ConfigError, match=r"unknown type '.yaml'; accepted: .py, .pkl, .pickle"):
        load_configurator(tmp_path / "config.yaml")
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="cannot unpickle the configurator"):
        load_configurator(tmp_path / "bad.pkl")
    (tmp_path / "other.pkl").write_bytes(cloudpickle.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="the pickle holds a dict, not a Configurator"):
        load_configurator(tmp_path / "other.pkl")


def test_validation_error_from_a_config_file_is_not_wrapped(tmp_path, nanoaod_dir):
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    config.write_text(config.read_text().replace('"genWeight", "sf_muon"', '"genWeight", "sf_muonn"'))
    with pytest.raises(ConfigError) as info:
        load_configurator(config)
    assert str(info.value).startswith("Unknown weight 'sf_muonn' in weights[\"common\"][\"inclusive\"][1]")


def test_libraries_installed_inside_the_config_folder_stay_imported(tmp_path, nanoaod_dir, monkeypatch):
    """A virtualenv inside the analysis folder: its libraries are not the config's own modules."""
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    site = tmp_path / "analysis" / ".venv" / "site-packages"
    site.mkdir(parents=True)
    (site / "h6_fake_library.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(site))
    config.write_text("import h6_fake_library\n" + config.read_text())
    try:
        load_configurator(config)
        assert sys.modules["h6_fake_library"].VALUE == 42
        assert "my_cuts" not in sys.modules
    finally:
        sys.modules.pop("h6_fake_library", None)


def test_load_and_save_without_coffea_dask_uproot_awkward(tmp_path, nanoaod_dir):
    """A submit node has pc-core only: loading, filtering and saving a configurator needs none of them."""
    config = write_analysis(tmp_path / "analysis", nanoaod_dir)
    script = f"""
        import json, sys
        FORBIDDEN = {{"coffea", "dask", "distributed", "htcondor", "htcondor2", "rucio", "uproot", "awkward", "parsl"}}
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in FORBIDDEN:
                    raise ImportError("refused " + name)
        sys.meta_path.insert(0, Refuse())
        from pc_core import load_configurator
        cfg = load_configurator({str(config)!r}).filter(samples="DY")
        cfg.save_config({str(tmp_path / "out")!r})
        print(json.dumps({{"samples": cfg.samples, "weights": cfg.weights_config["DY"]["inclusive"]}}))
    """
    got = _fresh_process(script, tmp_path)
    assert got == {"samples": ["DY"], "weights": ["genWeight", "sf_muon"]}
    assert json.loads((tmp_path / "out" / "config.json").read_text())["datasets"]["samples"] == ["DY"]


# --------------------------------------------------------------------------- manual-job data files

JOB_FORMAT = "pocket-coffea-job/1"


def _job_folder(tmp_path, nanoaod_dir):
    """A jobs folder as pc_jobs writes it: one shared configurator.pkl and a plain-data job file."""
    import pickle

    cfg = load_configurator(write_analysis(tmp_path / "analysis", nanoaod_dir))
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "configurator.pkl").write_bytes(cloudpickle.dumps(cfg))
    fileset = {"DY_2018": cfg.fileset["DY_2018"]}
    data = {"format": JOB_FORMAT, "configurator": "configurator.pkl", "job": 3,
            "fileset": json.loads(json.dumps(fileset))}
    (folder / "config_job_3.pkl").write_bytes(pickle.dumps(data, protocol=4))
    return cfg, folder


def test_job_data_file_loads_the_shared_configurator_with_the_job_fileset(tmp_path, nanoaod_dir):
    cfg, folder = _job_folder(tmp_path, nanoaod_dir)
    job_cfg = load_configurator(folder / "config_job_3.pkl")
    assert isinstance(job_cfg, Configurator) and job_cfg.loaded
    assert list(job_cfg.fileset) == ["DY_2018"]
    assert job_cfg.fileset["DY_2018"]["files"] == cfg.fileset["DY_2018"]["files"]
    assert job_cfg.samples == ["DY"]
    assert job_cfg.workflow.__name__ == "MyWorkflow"


def test_job_data_file_resolves_the_configurator_next_to_it_from_anywhere(tmp_path, nanoaod_dir, monkeypatch):
    """HTCondor's scratch dir holds both transferred files; the current directory does not matter."""
    _, folder = _job_folder(tmp_path, nanoaod_dir)
    monkeypatch.chdir(tmp_path)
    assert list(load_configurator(Path("jobs") / "config_job_3.pkl").fileset) == ["DY_2018"]


def test_job_data_file_without_its_shared_configurator(tmp_path, nanoaod_dir):
    _, folder = _job_folder(tmp_path, nanoaod_dir)
    (folder / "configurator.pkl").unlink()
    with pytest.raises(ConfigError, match="shared configurator .*configurator.pkl.* does not exist"):
        load_configurator(folder / "config_job_3.pkl")


def test_job_data_file_of_an_unknown_format_version(tmp_path, nanoaod_dir):
    import pickle

    _, folder = _job_folder(tmp_path, nanoaod_dir)
    (folder / "config_job_4.pkl").write_bytes(pickle.dumps({"format": "pocket-coffea-job/9", "fileset": {}}))
    with pytest.raises(ConfigError, match="job data format 'pocket-coffea-job/9' is not supported"):
        load_configurator(folder / "config_job_4.pkl")


def test_legacy_job_pickle_of_a_whole_configurator_still_loads(tmp_path, nanoaod_dir):
    """Jobs folders prepared before the job data format pickled one Configurator per job."""
    cfg = load_configurator(write_analysis(tmp_path / "analysis", nanoaod_dir))
    legacy = tmp_path / "config_job_0.pkl"
    legacy.write_bytes(cloudpickle.dumps(cfg.with_fileset({"DATA_2018": cfg.fileset["DATA_2018"]})))
    assert list(load_configurator(legacy).fileset) == ["DATA_2018"]
