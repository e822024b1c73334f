"""Run options: packaged defaults, layering, schema validation and messages."""
from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
import yaml

from pc_core.errors import ExecutorError, RunOptionsError
from pc_core.run_options import (
    SCHEMA,
    RunOptions,
    available_executors,
    chunksize_for_sample,
    defaults_path,
    load_defaults,
    load_run_options,
    parse_executor,
    read_options_file,
)

REQUIRED_EXECUTORS = [
    "iterative", "futures", "dask", "parsl", "dask@lxplus", "dask@swan", "dask@T3_CH_PSI", "parsl@DESY",
    "parsl@RWTH", "dask@RWTH", "parsl@CLAIX", "dask@CLAIX", "dask@purdue-af", "dask@infn-af", "dask@brux",
    "dask@oscar", "dask@rubin", "condor@lxplus", "condor@rubin",
]
GENERAL_KEYS = {
    "scaleout", "chunksize", "limit-files", "limit-chunks", "retries", "retry-delay", "tree-reduction", "skip-bad-files",
    "checkpoint-interval", "pipelined-reading",
    "voms-proxy", "ignore-grid-certificate", "group-samples", "max-events-per-job",
}


def write(tmp_path: Path, text: str, name: str = "my_run_options.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- packaged defaults


def test_every_required_executor_has_a_section():
    assert set(REQUIRED_EXECUTORS) <= set(available_executors())
    assert "general" not in available_executors()


def test_defaults_file_is_plain_yaml_with_underscored_ints():
    raw = yaml.safe_load(Path(defaults_path()).read_text())
    assert set(raw["general"]) == GENERAL_KEYS
    # `150_000` in the YAML is an int for PyYAML (YAML 1.1), not a string
    assert raw["general"]["chunksize"] == 150000 and type(raw["general"]["chunksize"]) is int
    assert raw["dask@rubin"]["chunksize"] == 80000


@pytest.mark.parametrize("engine", ["dask", "parsl", "condor"])
def test_all_sites_of_an_engine_carry_the_same_keys(engine):
    defaults = load_defaults()
    template = set(defaults[engine])
    sites = [name for name in defaults if name.startswith(engine + "@")]
    assert sites
    for site in sites:
        extra = set(defaults[site]) - template - GENERAL_KEYS
        missing = template - set(defaults[site])
        assert not extra and not missing, (site, extra, missing)


def test_site_values_come_from_their_section():
    lxplus = load_run_options("dask@lxplus")
    assert lxplus["queue"] == "microcentury"
    assert lxplus["jobqueue-system"] == "htcondor"
    assert lxplus["scaleout"] == 10 and lxplus.origin("scaleout") == "dask@lxplus"
    assert lxplus["retries"] == 20 and lxplus.origin("retries") == "general"
    assert load_run_options("dask@T3_CH_PSI")["jobqueue-system"] == "slurm"
    assert load_run_options("dask@purdue-af")["gateway-address"].startswith("http://")
    assert load_run_options("dask")["jobqueue-system"] == "local"
    condor = load_run_options("condor@lxplus")
    assert condor["scaleout"] is None and condor["job-name"] == "job" and condor["dry-run"] is False


# ---------------------------------------------------------------- layering


def test_layering_general_then_site_then_custom_then_cli(tmp_path):
    # chunksize is set at all four levels for dask@brux
    assert load_defaults()["general"]["chunksize"] == 150000
    site = load_run_options("dask@brux")
    assert site["chunksize"] == 100000 and site.origin("chunksize") == "dask@brux"
    custom_file = write(tmp_path, "chunksize: 50_000\nqueue: long\n")
    custom = load_run_options("dask@brux", custom_file)
    assert custom["chunksize"] == 50000 and custom.origin("chunksize") == str(custom_file)
    cli = load_run_options("dask@brux", custom_file, {"chunksize": 20000, "queue": None})
    assert cli["chunksize"] == 20000 and cli.origin("chunksize") == "command line"
    # a None CLI value means "flag not given": the custom file still wins for queue
    assert cli["queue"] == "long" and cli.origin("queue") == str(custom_file)
    # keys nobody overrides keep the general value
    assert cli["tree-reduction"] == 20 and cli.origin("tree-reduction") == "general"


def test_cli_accepts_click_snake_case_names():
    options = load_run_options("futures", None, {"limit_files": 2, "limit_chunks": None, "skip_bad_files": True})
    assert options["limit-files"] == 2 and options["skip-bad-files"] is True and options["limit-chunks"] is None


def test_custom_dict_replaces_the_int_chunksize_entirely(tmp_path):
    path = write(tmp_path, "chunksize:\n  default: 150_000\n  TTToSemiLeptonic: 50_000\n")
    options = load_run_options("condor@lxplus", path)
    assert options["chunksize"] == {"default": 150000, "TTToSemiLeptonic": 50000}
    # and an int on the command line replaces the dict again
    assert load_run_options("condor@lxplus", path, {"chunksize": 1000})["chunksize"] == 1000


def test_inputs_are_not_modified_and_options_are_read_only():
    custom = {"group-samples": {"signal": ["ttH"]}, "scaleout": 3}
    cli = {"queue": "espresso", "limit-files": None}
    before = copy.deepcopy((custom, cli))
    options = load_run_options("dask@lxplus", custom, cli)
    assert (custom, cli) == before
    with pytest.raises(TypeError):
        options["scaleout"] = 5  # type: ignore[index]
    options["group-samples"]["signal"].append("other")
    assert options["group-samples"] == {"signal": ["ttH"]}
    custom["group-samples"]["signal"].append("later")
    assert options["group-samples"] == {"signal": ["ttH"]}


def test_run_options_properties_pickle_and_overrides():
    options = load_run_options("dask@lxplus")
    assert (options.executor, options.engine, options.site) == ("dask@lxplus", "dask", "lxplus")
    local = load_run_options("iterative")
    assert (local.engine, local.site) == ("iterative", None)
    clone = pickle.loads(pickle.dumps(options))
    assert clone == options and clone.executor == "dask@lxplus" and clone.origin("queue") == "dask@lxplus"
    changed = options.with_overrides({"limit-files": 1, "queue": None})
    assert changed["limit-files"] == 1 and changed.origin("limit-files") == "command line"
    assert changed["queue"] == "microcentury" and options["limit-files"] is None
    assert isinstance(options.to_dict(), dict) and options.to_dict() == dict(options)


# ---------------------------------------------------------------- validation messages


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "scaleout: 4\nmem_per_worker: 4GB\n")
    with pytest.raises(RunOptionsError) as info:
        load_run_options("dask@lxplus", path)
    message = str(info.value)
    assert str(path) in message
    assert "'mem_per_worker'" in message
    assert "Did you mean 'mem-per-worker'?" in message


def test_unknown_key_typo_suggestion_and_command_line_source():
    with pytest.raises(RunOptionsError) as info:
        load_run_options("futures", None, {"chunksise": 10})
    assert str(info.value) == "command line: unknown run option 'chunksise'. Did you mean 'chunksize'?"


def test_unknown_key_without_close_match_lists_known_keys(tmp_path):
    path = write(tmp_path, "banana: 1\n")
    with pytest.raises(RunOptionsError) as info:
        read_options_file(path)
    message = str(info.value)
    assert "'banana'" in message and "Did you mean" not in message
    assert "Known options:" in message and "max-events-per-job" in message


def test_wrong_type_names_file_key_value_and_expected_type(tmp_path):
    path = write(tmp_path, "scaleout: ten\n")
    with pytest.raises(RunOptionsError) as info:
        load_run_options("dask@lxplus", path)
    message = str(info.value)
    assert message.startswith(f"{path}: run option 'scaleout' has invalid value 'ten'")
    assert "expected an integer > 0 or null" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("retries: true\n", "expected an integer >= 0"),  # bool is not an int
        ("retry-delay: -1\n", "'retry-delay' has invalid value -1 (int, smaller than 0); expected a number >= 0 (seconds)"),
        ("retry-delay: soon\n", "expected a number >= 0 (seconds)"),
        ("retry-delay: .nan\n", "expected a number >= 0 (seconds)"),
        ("chunksize: 0\n", "expected an integer > 0 or a mapping"),
        ("adaptive: 'yes please'\n", "expected a boolean"),
        ("mem-per-worker: lots\n", "'lots' (str, not a size); expected a size such as '2GB'"),
        ("walltime: 6h\n", "'6h' (str, not a time); expected a time such as '6:00:00' (HH:MM:SS)"),
        ("walltime: '1:75:00'\n", "minutes or seconds of 60 or more"),
        ("custom-setup-commands: source env.sh\n", "expected a list of strings or null"),
        ("jobqueue-system: pbs\n", "expected one of local, htcondor, slurm, gateway, external"),
        ("scheduler-port: 70000\n", "expected an integer 0-65535 or null"),
        ("job-name: a/b\n", "expected a folder name"),
    ],
)
def test_wrong_values_are_rejected(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(RunOptionsError) as info:
        read_options_file(path)
    assert str(path) in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize("value", [0, 2, 0.5])
def test_retry_delays_accepted(value):
    assert load_run_options("iterative", {"retry-delay": value})["retry-delay"] == value


@pytest.mark.parametrize("value", ["2GB", "7.5GB", "500MB", "2 GiB", 4, 2.5, None])
def test_memory_sizes_accepted(value):
    assert load_run_options("dask", {"mem-per-worker": value})["mem-per-worker"] == value


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "scaleout: 4\nqueue: espresso\n  mem-per-worker: 2GB\n")
    with pytest.raises(RunOptionsError) as info:
        load_run_options("dask@lxplus", path)
    message = str(info.value)
    assert message.startswith(f"{path}: malformed YAML at line 3")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = write(tmp_path, "- scaleout\n- 4\n")
    with pytest.raises(RunOptionsError, match="must be a mapping of option: value, got list"):
        read_options_file(path)


def test_empty_custom_file_changes_nothing(tmp_path):
    path = write(tmp_path, "# nothing yet\n")
    assert load_run_options("dask@lxplus", path) == load_run_options("dask@lxplus")


def test_missing_custom_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RunOptionsError, match="nope.yaml.*does not exist"):
        load_run_options("futures", missing)


def test_unknown_executor_lists_available():
    with pytest.raises(ExecutorError) as info:
        load_run_options("dask@nowhere")
    message = str(info.value)
    assert "unknown executor 'dask@nowhere'" in message
    for executor in ("dask@lxplus", "condor@rubin", "iterative", "parsl@DESY"):
        assert executor in message
    with pytest.raises(ExecutorError, match="unknown executor 'general'"):
        load_run_options("general")


@pytest.mark.parametrize("bad", ["", "dask@@lxplus", "dask@lx plus", "a@b@c"])
def test_malformed_executor_strings(bad):
    with pytest.raises(ExecutorError):
        parse_executor(bad)


def test_parse_executor():
    assert parse_executor("dask@T3_CH_PSI") == ("dask", "T3_CH_PSI")
    assert parse_executor("futures") == ("futures", None)


# ---------------------------------------------------------------- dict forms


def test_per_sample_max_events_per_job_from_yaml(tmp_path):
    path = write(
        tmp_path,
        "max-events-per-job:\n  default: 2_000_000\n  TTToSemiLeptonic: 500_000\n  DATA_SingleMuon: 5_000_000\n",
    )
    options = load_run_options("condor@lxplus", path)
    assert options["max-events-per-job"] == {
        "default": 2000000, "TTToSemiLeptonic": 500000, "DATA_SingleMuon": 5000000,
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"default": 0}, "entry 'default': 0 is not an integer > 0"),
        ({"ttH": "big"}, "entry 'ttH': 'big' is not an integer > 0"),
        ({}, "an empty mapping"),
        ([1, 2], "neither an integer nor a mapping"),
    ],
)
def test_per_sample_dict_errors(value, problem):
    with pytest.raises(RunOptionsError) as info:
        load_run_options("condor@lxplus", {"chunksize": value})
    assert "custom run options: run option 'chunksize'" in str(info.value) and problem in str(info.value)


def test_chunksize_for_sample():
    per_sample = {"default": 150000, "TTToSemiLeptonic": 50000}
    assert chunksize_for_sample(per_sample, "TTToSemiLeptonic") == 50000
    assert chunksize_for_sample(per_sample, "ttHTobb") == 150000
    assert chunksize_for_sample(1234, "anything") == 1234
    options = load_run_options("condor@lxplus", {"chunksize": per_sample})
    assert chunksize_for_sample(options, "TTToSemiLeptonic") == 50000
    assert chunksize_for_sample(options.to_dict(), "other") == 150000
    # a plain run-options dict whose values all happen to be integers is still run options
    assert chunksize_for_sample({"chunksize": 15, "retries": 3}, "any") == 15
    with pytest.raises(RunOptionsError) as info:
        chunksize_for_sample({"TTToSemiLeptonic": 50000, "ttH": 10}, "DATA_SingleMuon")
    message = str(info.value)
    assert "'DATA_SingleMuon'" in message and "no 'default'" in message and "TTToSemiLeptonic, ttH" in message


def test_group_samples_valid(tmp_path):
    path = write(tmp_path, "group-samples:\n  signal: [ttHTobb, ttHTobb_ttToSemiLep]\n  DATA:\n    - DATA_SingleEle\n")
    assert load_run_options("futures", path)["group-samples"] == {
        "signal": ["ttHTobb", "ttHTobb_ttToSemiLep"], "DATA": ["DATA_SingleEle"],
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"signal": "ttH"}, "group 'signal': 'ttH' is not a non-empty list"),
        ({"signal": []}, "group 'signal': [] is not a non-empty list"),
        ({"a": ["x"], "b": ["y", "x"]}, "sample 'x' is in two groups ('a' and 'b')"),
        ({"a": [1]}, "group 'a': sample 1 is not a string"),
        (["ttH"], "not a mapping {group: [sample, ...]}"),
    ],
)
def test_group_samples_errors(value, problem):
    with pytest.raises(RunOptionsError) as info:
        load_run_options("futures", {"group-samples": value})
    assert problem in str(info.value) and "'group-samples'" in str(info.value)


def test_every_schema_key_is_documented(repo_root):
    doc = (repo_root / "docs" / "run-options.md").read_text()
    missing = [key for key in SCHEMA if f"`{key}`" not in doc]
    assert not missing


def test_constructing_run_options_directly_validates():
    with pytest.raises(RunOptionsError, match="unknown run option 'scale-out'. Did you mean 'scaleout'"):
        RunOptions({"scale-out": 1}, "futures")


def test_a_per_sample_typo_is_named(caplog):
    from pc_core.run_options import warn_unknown_samples

    with caplog.at_level("WARNING"):
        unknown = warn_unknown_samples({"default": 10, "TTTo2L2Nu": 5, "DYJetsToLL_typo": 3}, "chunksize",
                                       ["DYJetsToLL", "TTTo2L2Nu"])
    assert unknown == ["DYJetsToLL_typo"]
    assert ("chunksize has keys matching no sample in the fileset: DYJetsToLL_typo; samples present: "
            "DYJetsToLL, TTTo2L2Nu") in caplog.text
    assert warn_unknown_samples(150_000, "chunksize", ["DYJetsToLL"]) == []


def test_defaults_are_read_once_and_handed_out_as_copies():
    from pc_core import run_options

    first = load_defaults()
    first["general"]["chunksize"] = 1  # the caller's copy only
    assert load_defaults()["general"]["chunksize"] == 150000
    run_options._packaged_defaults.cache_clear()
    load_run_options("dask@lxplus")
    load_run_options("iterative")
    assert run_options._packaged_defaults.cache_info().misses == 1
