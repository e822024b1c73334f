"""How the dask/parsl factories turn run options into cluster settings, and which keys each engine reads."""
from __future__ import annotations

import logging
import os
import sys

import pytest

from pc_core.errors import ExecutorError, RunOptionsError
from pc_core.executors import check_keys_read, get_executor_factory
from pc_core.run_options import RUNNER_KEYS, load_defaults, load_run_options, unread_keys
from pc_run import executors
from pc_run.executors import (
    DASK_KEYS,
    PARSL_KEYS,
    condor_directives,
    env_setup_commands,
    scheduler_options,
)

# ---------------------------------------------------------------- scheduler placement


def test_scheduler_options_combine_and_keep_dask_jobqueue_config():
    configured = {"interface": "ib0", "protocol": "tcp://", "dashboard_address": ":9999"}
    options = {"scheduler-host": "127.0.0.1", "scheduler-port": 8786, "dashboard-address": ":8787"}
    assert scheduler_options(options, configured) == {
        "host": "127.0.0.1", "port": 8786, "dashboard_address": "127.0.0.1:8787", "protocol": "tcp://",
    }
    assert configured == {"interface": "ib0", "protocol": "tcp://", "dashboard_address": ":9999"}  # not modified
    # a port or a dashboard alone no longer drops the configured placement
    assert scheduler_options({"scheduler-port": 8786}, {"host": "10.0.0.1", "dashboard_address": ":9999"}) == {
        "host": "10.0.0.1", "port": 8786, "dashboard_address": "10.0.0.1:9999"}
    assert scheduler_options({"dashboard-address": ":1"}, {"host": "10.0.0.1"}) == {
        "host": "10.0.0.1", "dashboard_address": "10.0.0.1:1"}
    assert scheduler_options({"scheduler-interface": "lo"}, {"host": "10.0.0.1"}) == {
        "interface": "lo", "dashboard_address": "127.0.0.1:8787"}
    assert scheduler_options({}, None) == {"dashboard_address": "127.0.0.1:8787"}
    assert scheduler_options({"scheduler-port": 0}, None) == {"port": 0, "dashboard_address": "127.0.0.1:8787"}


@pytest.mark.parametrize("options, configured, expected", [
    ({}, None, "127.0.0.1:8787"),                                          # scheduler on all interfaces
    ({"scheduler-host": "127.0.0.1"}, None, "127.0.0.1:8787"),
    ({"scheduler-host": "10.1.2.3"}, {"dashboard_address": ":8787"}, "10.1.2.3:8787"),  # dask-jobqueue's default
    ({"scheduler-host": "::1", "dashboard-address": 9000}, None, "[::1]:9000"),
    ({"scheduler-interface": "lo", "dashboard-address": ":8788"}, None, "127.0.0.1:8788"),
    ({"scheduler-host": "127.0.0.1", "dashboard-address": "0.0.0.0:8787"}, None, "0.0.0.0:8787"),  # the user's word
    ({"dashboard-address": "myhost:1234"}, {"dashboard_address": ":9999"}, "myhost:1234"),
    ({"scheduler-host": "10.1.2.3"}, {"dashboard_address": "0.0.0.0:9999"}, "0.0.0.0:9999"),  # configured host
])
def test_dashboard_binds_the_scheduler_host_unless_told(options, configured, expected):
    assert scheduler_options(options, configured)["dashboard_address"] == expected


def test_dashboard_on_an_unknown_interface_is_an_error():
    with pytest.raises(ExecutorError, match="scheduler-interface = 'nosuch0': .* accepted: .*lo"):
        scheduler_options({"scheduler-interface": "nosuch0"})


def test_scheduler_host_and_interface_exclude_each_other():
    with pytest.raises(ExecutorError, match="scheduler-host .* and scheduler-interface .* are both set"):
        scheduler_options({"scheduler-host": "127.0.0.1", "scheduler-interface": "eth0"})


def test_jobqueue_cluster_reads_dask_config_scheduler_options(monkeypatch, tmp_path):
    import dask

    captured = {}

    class FakeCluster:
        def __init__(self, **kwargs):
            captured.update(kwargs)

    import dask_jobqueue

    monkeypatch.setattr(dask_jobqueue, "HTCondorCluster", FakeCluster)
    options = load_run_options("dask@lxplus", {"scheduler-host": "127.0.0.1", "custom-setup-commands": ["echo hi"]})
    factory = executors.DaskExecutorFactory.__new__(executors.DaskExecutorFactory)
    factory.run_options, factory.outputdir = options, tmp_path
    with dask.config.set({"jobqueue.htcondor.scheduler-options": {"protocol": "tcp://", "interface": "eth9"}}):
        factory._jobqueue_cluster("htcondor")
    assert captured["scheduler_options"] == {  # the preset's ":8787" on the scheduler's host, not all interfaces
        "protocol": "tcp://", "host": "127.0.0.1", "port": 8786, "dashboard_address": "127.0.0.1:8787"}
    assert captured["job_extra_directives"]["+JobFlavour"] == '"microcentury"'
    assert captured["job_extra_directives"]["MY.SendCredential"] == "true"
    assert captured["job_script_prologue"][-1] == "echo hi"
    assert captured["log_directory"] == str(tmp_path / "dask_logs")


@pytest.mark.parametrize("preset, cls", [("dask@T3_CH_PSI", "SLURMCluster"), ("dask@RWTH", "HTCondorCluster")])
def test_jobqueue_dashboard_not_on_all_interfaces(monkeypatch, tmp_path, caplog, preset, cls):
    """dask-jobqueue's default dashboard address (":8787") binds every interface; the built
    cluster gets one on the scheduler's host instead."""
    import dask
    import dask_jobqueue

    captured = {}
    monkeypatch.setattr(dask_jobqueue, cls, lambda **kwargs: captured.update(kwargs))
    factory = executors.DaskExecutorFactory.__new__(executors.DaskExecutorFactory)
    factory.run_options = load_run_options(preset, {"worker-image": "/cvmfs/img", "conda-env": False})
    factory.outputdir = tmp_path
    system = factory.run_options["jobqueue-system"]
    with dask.config.set({f"jobqueue.{system}.scheduler-options": {}}), caplog.at_level(logging.WARNING):
        factory._jobqueue_cluster(system)
    assert captured["scheduler_options"]["dashboard_address"] == "127.0.0.1:8787"
    if system == "htcondor":  # the image reaches the job ad as it does for manual condor jobs
        assert captured["job_extra_directives"]["MY.SingularityImage"] == '"/cvmfs/img"'
        assert "worker-image" not in caplog.text
    else:
        assert "run option worker-image = '/cvmfs/img' is not used with jobqueue-system slurm" in caplog.text


def test_parsl_condor_block_carries_the_image():
    from pc_run.executors import condor_directives

    options = load_run_options("parsl@DESY", {"worker-image": "/cvmfs/img"})
    assert condor_directives(options, None)["MY.SingularityImage"] == '"/cvmfs/img"'


# ---------------------------------------------------------------- worker environment


def test_virtualenv_prologue_is_plain_sh(monkeypatch):
    monkeypatch.setenv("VIRTUAL_ENV", "/opt/my venv")
    commands = env_setup_commands({"local-virtualenv": True, "custom-setup-commands": ["export A=1"]})
    assert commands == ["export VIRTUAL_ENV='/opt/my venv'", "export PATH='/opt/my venv/bin':\"$PATH\"",
                        "export A=1"]
    assert not any(c.startswith(("source", "conda")) for c in commands)


def test_conda_env_uses_the_prefix_without_conda_activate(monkeypatch, tmp_path):
    monkeypatch.setenv("CONDA_PREFIX", "/opt/micromamba/envs/ana")
    commands = env_setup_commands({"conda-env": True}, proxy='"$PWD"/x509up')
    assert commands == [
        "export CONDA_PREFIX=/opt/micromamba/envs/ana", "export CONDA_DEFAULT_ENV=ana",
        'export PATH=/opt/micromamba/envs/ana/bin:"$PATH"', 'export X509_USER_PROXY="$PWD"/x509up',
    ]
    # without CONDA_PREFIX: this Python's prefix if it is an environment, else a clear error
    monkeypatch.delenv("CONDA_PREFIX")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(ExecutorError, match="conda-env is true but no conda/mamba environment is active"):
        env_setup_commands({"conda-env": True})
    (tmp_path / "conda-meta").mkdir()
    assert env_setup_commands({"conda-env": True})[0] == f"export CONDA_PREFIX={tmp_path}"


def test_prologue_runs_under_bin_sh(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path))
    commands = env_setup_commands({"local-virtualenv": True, "custom-setup-commands": ["export PC_PROBE=1"]})
    out = subprocess.run(["/bin/sh", "-c", "; ".join([*commands, 'echo "$VIRTUAL_ENV|$PC_PROBE|$PATH"'])],
                         capture_output=True, text=True, check=True).stdout
    venv, probe, path = out.strip().split("|", 2)
    assert (venv, probe) == (str(tmp_path), "1") and path.startswith(f"{tmp_path}/bin:")


def test_condor_directives_transfer_the_proxy(tmp_path):
    proxy = tmp_path / "x509up_u1"
    options = {"queue": "espresso", "walltime": "1:00:00",
               "job-extra-directives": {"transfer_input_files": "a.txt", "MY.Flag": True, "+Project": "cms"}}
    directives = condor_directives(options, proxy)
    assert directives == {
        "+JobFlavour": '"espresso"', "+MaxRuntime": "3600", "transfer_input_files": f"a.txt,{proxy}",
        "MY.Flag": "true", "+Project": '"cms"', "should_transfer_files": "YES",
    }
    assert "transfer_input_files" not in condor_directives({}, None)


def test_grid_proxy_lookup(tmp_path, monkeypatch):
    from pc_core.executors import find_grid_proxy

    proxy = tmp_path / "proxy"
    proxy.write_text("x")
    assert find_grid_proxy({"voms-proxy": str(proxy)}) == proxy
    assert find_grid_proxy({"voms-proxy": str(proxy), "ignore-grid-certificate": True}) is None
    with pytest.raises(ExecutorError, match="voms-proxy"):
        find_grid_proxy({"voms-proxy": str(tmp_path / "missing")})
    monkeypatch.setenv("X509_USER_PROXY", str(proxy))
    assert find_grid_proxy({}) == proxy


# ---------------------------------------------------------------- which engine reads which key


def test_declared_keys_match_the_template_sections():
    defaults = load_defaults()
    assert DASK_KEYS == frozenset(defaults["dask"]) | RUNNER_KEYS
    assert PARSL_KEYS == frozenset(defaults["parsl"]) | RUNNER_KEYS
    assert executors.IterativeExecutorFactory.run_option_keys == RUNNER_KEYS
    assert executors.FuturesExecutorFactory.run_option_keys == RUNNER_KEYS


def test_key_of_one_other_engine_is_an_error(tmp_path):
    path = tmp_path / "ro.yaml"
    path.write_text("performance-report: true\n")
    options = load_run_options("futures", path)
    with pytest.raises(ExecutorError) as info:
        check_keys_read(options, executors.FuturesExecutorFactory.run_option_keys)
    assert f"run option 'performance-report' (set in {path}) is not read by executor 'futures'" in str(info.value)
    assert "only dask reads it" in str(info.value)
    with pytest.raises(ExecutorError, match="'job-name' .* not read by executor 'dask@lxplus' \\(only condor reads it\\)"):
        get_executor_factory("dask@lxplus", load_run_options("dask@lxplus", {"job-name": "x"}))
    with pytest.raises(ExecutorError, match="'logs-dir' .* not read by executor 'dask'"):
        check_keys_read(load_run_options("dask", {"logs-dir": "x"}), DASK_KEYS)


def test_shared_key_is_a_warning(caplog):
    options = load_run_options("futures", None, {"queue": "espresso", "scaleout": 2})
    with caplog.at_level(logging.WARNING):
        check_keys_read(options, executors.FuturesExecutorFactory.run_option_keys)
    assert "run option 'queue' (set in command line) is not read by executor 'futures'; it is read by condor, " \
           "dask, parsl; ignored" in caplog.text
    # null means not set; the packaged sections are consistent by construction
    assert unread_keys(load_run_options("futures", {"queue": None})) == ([], [])
    for executor in ("dask@lxplus", "parsl@DESY", "condor@rubin", "iterative"):
        assert unread_keys(load_run_options(executor)) == ([], [])


def test_split_by_category_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "ro.yaml"
    path.write_text("split-by-category: true\n")
    with pytest.raises(RunOptionsError, match="'split-by-category' is not supported: it was never implemented"):
        load_run_options("condor", path)


# ---------------------------------------------------------------- user-defined sites


def test_user_defined_site(tmp_path):
    path = tmp_path / "ro.yaml"
    path.write_text(
        "chunksize: 1000\n"
        "dask@mysite:\n  jobqueue-system: htcondor\n  scheduler-host: 127.0.0.1\n  scaleout: 3\n  queue: long\n"
        "parsl@other:\n  jobqueue-system: slurm\n"
        "dask@lxplus:\n  queue: espresso\n"
    )
    options = load_run_options("dask@mysite", path, {"scaleout": 5})
    assert (options.engine, options.site) == ("dask", "mysite")
    assert options["jobqueue-system"] == "htcondor" and options["queue"] == "long"
    assert options.origin("queue") == f"{path} [dask@mysite]"
    assert options["scaleout"] == 5 and options["chunksize"] == 1000
    assert options["mem-per-worker"] == "2GB" and options.origin("mem-per-worker") == "dask"  # the template
    assert load_run_options("dask@lxplus", path)["queue"] == "espresso"  # amends a packaged site
    assert load_run_options("parsl@other", path)["jobqueue-system"] == "slurm"
    with pytest.raises(ExecutorError, match="unknown executor 'dask@nosuch'.*add a section 'dask@nosuch:'"):
        load_run_options("dask@nosuch", path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("dask@mysite: 3\n", "section 'dask@mysite' must be a mapping"),
        ("spark@mysite: {scaleout: 1}\n", "section 'spark@mysite' names engine 'spark', which has no template"),
        ("dask@mysite: {scalout: 1}\n", "[dask@mysite]: unknown run option 'scalout'. Did you mean 'scaleout'?"),
    ],
)
def test_user_site_errors(tmp_path, text, message):
    path = tmp_path / "ro.yaml"
    path.write_text(text)
    with pytest.raises((RunOptionsError, ExecutorError)) as info:
        load_run_options("dask@mysite", path)
    assert message in str(info.value)


def test_user_site_key_of_another_engine_is_refused(tmp_path):
    path = tmp_path / "ro.yaml"
    path.write_text("dask@mysite:\n  max-retries: 3\n")
    with pytest.raises(ExecutorError, match="'max-retries' \\(set in .*\\[dask@mysite\\]\\) is not read by executor"):
        get_executor_factory("dask@mysite", load_run_options("dask@mysite", path))


# ---------------------------------------------------------------- local clusters with the new options


def test_local_dask_cluster_on_the_requested_host_and_port(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = load_run_options("dask", {"scaleout": 1, "scheduler-host": "127.0.0.1", "scheduler-port": port,
                                        "performance-report": True, "worker-timeout": 30})
    with get_executor_factory("dask", options, outputdir=tmp_path) as factory:
        assert factory.client.scheduler.address == f"tcp://127.0.0.1:{port}"
        assert factory.client.dashboard_link.startswith("http://127.0.0.1:")
        assert factory.client.submit(os.getpid).result() != os.getpid()
    assert "Dask Performance Report" in (tmp_path / "dask-performance-report.html").read_text()[:100_000]
    assert not list(tmp_path.glob(".*.part*"))


def test_external_scheduler_without_workers_times_out(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as cluster:
        options = load_run_options("dask@swan", {"scheduler-address": cluster.scheduler_address, "worker-timeout": 2})
        with pytest.raises(executors.WorkersNeverCame, match="no worker connected within 2 s .*jobqueue-system external"):
            get_executor_factory("dask@swan", options, outputdir=tmp_path)
