"""Executor-factory interface, entry-point registry and custom executor modules."""
from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest

from pc_core import executors
from pc_core.errors import ExecutorError
from pc_core.executors import (
    ENTRY_POINT_GROUP,
    ExecutorFactoryABC,
    get_executor_factory,
    load_custom_setup,
    registered_engines,
)
from pc_core.run_options import load_run_options


class RecordingFactory(ExecutorFactoryABC):
    """A minimal factory: records its life cycle so tests can check the calls."""

    def setup(self):
        self.events = ["setup"]

    def get(self):
        return ("executor", self.customized_args())

    def close(self):
        self.events.append("close")


def test_interface_stores_options_and_calls_setup(tmp_path):
    options = load_run_options("dask@lxplus")
    factory = RecordingFactory(options, tmp_path / "out", extra=1)
    assert factory.run_options is options
    assert factory.outputdir == tmp_path / "out"
    assert factory.kwargs == {"extra": 1}
    assert factory.events == ["setup"]
    assert factory.get() == ("executor", {"retries": 20})


def test_context_manager_closes_even_on_error():
    with pytest.raises(RuntimeError):
        with RecordingFactory({"retries": 3}) as factory:
            assert factory.outputdir is None
            raise RuntimeError("boom")
    assert factory.events == ["setup", "close"]


def test_abstract_get_is_required():
    class NoGet(ExecutorFactoryABC):
        pass

    with pytest.raises(TypeError):
        NoGet({})  # type: ignore[abstract]


def test_customized_args_without_retries():
    assert RecordingFactory({}).customized_args() == {}


def test_the_installed_packages_register_the_local_engines():
    # pc-run (installed editable in the venv) registers these four engine names
    assert {"iterative", "futures", "dask", "parsl"} <= set(registered_engines())
    assert all(ep.group == ENTRY_POINT_GROUP for ep in registered_engines().values())


# ---------------------------------------------------------------- registry with real entry points


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    """A real importable plugin module and entry points pointing at it (and at broken targets)."""
    package = tmp_path / "plugin"
    package.mkdir()
    (package / "fake_engine_plugin.py").write_text(
        textwrap.dedent(
            """
            from pc_core.executors import ExecutorFactoryABC

            class FakeFactory(ExecutorFactoryABC):
                def setup(self):
                    self.started = True

                def get(self):
                    return {"engine": "fake", **self.customized_args()}

            class NotAFactory:
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(package))
    entries = [
        importlib.metadata.EntryPoint("dask", "fake_engine_plugin:FakeFactory", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("condor", "fake_engine_plugin:NotAFactory", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("parsl", "module_that_does_not_exist:Factory", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("dask", "fake_engine_plugin:NotAFactory", ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(executors, "_entry_points", lambda: entries)
    yield
    sys.modules.pop("fake_engine_plugin", None)


def test_registry_finds_the_engine_and_passes_site_options(fake_plugin, tmp_path, caplog):
    options = load_run_options("dask@lxplus", None, {"retries": 2})
    factory = get_executor_factory("dask@lxplus", options, outputdir=tmp_path)
    assert type(factory).__name__ == "FakeFactory" and factory.started
    assert factory.run_options["queue"] == "microcentury"  # the site section travelled with the options
    assert factory.outputdir == tmp_path
    assert factory.get() == {"engine": "fake", "retries": 2}
    # the engine was registered twice: the first one wins, with a warning
    assert any("registered twice" in r.getMessage() for r in caplog.records)


def test_unknown_engine_lists_registered_engines_and_executors(fake_plugin):
    with pytest.raises(ExecutorError) as info:
        get_executor_factory("iterative", load_run_options("iterative"))
    message = str(info.value)
    assert "no executor factory is registered for engine 'iterative'" in message
    assert "registered engines: condor, dask, parsl" in message
    assert "dask@lxplus" in message and "condor@rubin" in message


def test_unknown_site_is_refused_before_loading(fake_plugin):
    with pytest.raises(ExecutorError) as info:
        get_executor_factory("dask@nowhere", {"retries": 1})
    assert "unknown executor 'dask@nowhere'" in str(info.value) and "dask@swan" in str(info.value)


def test_registered_target_that_is_not_a_factory(fake_plugin):
    with pytest.raises(ExecutorError, match="'fake_engine_plugin:NotAFactory', which is not a subclass"):
        get_executor_factory("condor@lxplus", load_run_options("condor@lxplus"))


def test_registered_target_that_cannot_be_imported(fake_plugin):
    with pytest.raises(ExecutorError, match="'parsl' is registered as 'module_that_does_not_exist:Factory' but "
                                            "cannot be loaded: ModuleNotFoundError"):
        get_executor_factory("parsl", load_run_options("parsl"))


def test_run_options_for_another_executor_are_refused(fake_plugin):
    with pytest.raises(ExecutorError, match="loaded for executor 'dask@swan' but executor 'dask@lxplus'"):
        get_executor_factory("dask@lxplus", load_run_options("dask@swan"))


# ---------------------------------------------------------------- custom setup modules

CUSTOM_MODULE = """
from dataclasses import dataclass

from pc_core.executors import ExecutorFactoryABC
from custom_helpers import LABEL


@dataclass
class Settings:
    workers: int


class CustomFactory(ExecutorFactoryABC):
    def setup(self):
        self.settings = Settings(workers=self.run_options["scaleout"])

    def get(self):
        return (LABEL, self.settings.workers, self.customized_args())

    def customized_args(self):
        args = super().customized_args()
        args["custom-arg"] = self.kwargs.get("note")
        return args


def get_executor_factory(executor_name, **kwargs):
    if executor_name in ("dask", "my-engine@my-site"):
        return CustomFactory(**kwargs)
    return None
"""


@pytest.fixture
def custom_module(tmp_path):
    (tmp_path / "custom_helpers.py").write_text('LABEL = "from-helper"\n')
    path = tmp_path / "my_custom_executor.py"
    path.write_text(CUSTOM_MODULE)
    yield path
    sys.modules.pop("custom_helpers", None)


def test_custom_setup_module_builds_the_factory(custom_module, tmp_path):
    path_before = list(sys.path)
    options = load_run_options("dask", None, {"scaleout": 3, "retries": 1})
    factory = get_executor_factory("dask", options, outputdir=tmp_path / "out", custom_setup=custom_module, note="hi")
    assert factory.get() == ("from-helper", 3, {"retries": 1, "custom-arg": "hi"})
    assert factory.outputdir == tmp_path / "out"
    assert sys.path == path_before  # the module's folder was on sys.path only while importing it
    assert type(factory).__module__.startswith("pc_custom_executor_my_custom_executor_")


def test_custom_setup_accepts_executor_names_without_a_section(custom_module):
    factory = get_executor_factory("my-engine@my-site", {"scaleout": 2}, custom_setup=custom_module)
    assert factory.get()[1] == 2


def test_custom_setup_returning_none(custom_module):
    with pytest.raises(ExecutorError) as info:
        get_executor_factory("futures", load_run_options("futures"), custom_setup=custom_module)
    message = str(info.value)
    assert str(custom_module) in message and "returned None for executor 'futures'" in message
    assert "expected an instance of pc_core.executors.ExecutorFactoryABC" in message


def test_custom_setup_returning_something_else(tmp_path):
    path = tmp_path / "wrong.py"
    path.write_text("def get_executor_factory(name, **kwargs):\n    return 'dask'\n")
    with pytest.raises(ExecutorError, match="returned a str for executor 'dask'; expected an instance"):
        get_executor_factory("dask", {}, custom_setup=path)


def test_custom_setup_missing_file(tmp_path):
    missing = tmp_path / "absent.py"
    with pytest.raises(ExecutorError) as info:
        get_executor_factory("dask", {}, custom_setup=missing)
    assert str(missing) in str(info.value) and "does not exist" in str(info.value)
    assert "get_executor_factory(executor_name, **kwargs)" in str(info.value)


def test_custom_setup_without_the_function(tmp_path):
    path = tmp_path / "empty_module.py"
    path.write_text("X = 1\n")
    with pytest.raises(ExecutorError, match="empty_module.py' defines no function get_executor_factory"):
        get_executor_factory("dask", {}, custom_setup=path)


def test_custom_setup_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import module_that_does_not_exist_either\n")
    with pytest.raises(ExecutorError, match="broken.py' failed to import: ModuleNotFoundError"):
        load_custom_setup(path)
    assert not any(name.startswith("pc_custom_executor_broken_") for name in sys.modules)


SPEC_SIGNATURE_MODULE = """
from pc_core.executors import ExecutorFactoryABC


class SpecFactory(ExecutorFactoryABC):
    def get(self):
        return ("spec", self.run_options["scaleout"], self.outputdir)


def get_executor_factory(executor_name, run_options):  # the spec's signature, no outputdir
    return SpecFactory(run_options)
"""


def test_custom_setup_with_the_spec_signature(tmp_path):
    path = tmp_path / "spec_executor.py"
    path.write_text(SPEC_SIGNATURE_MODULE)
    factory = get_executor_factory("dask", {"scaleout": 4}, outputdir=tmp_path / "out", custom_setup=path)
    assert factory.get() == ("spec", 4, None)


def test_manual_job_engines_are_declared_by_class_not_by_a_submit_attribute():
    from pc_core.errors import ExecutorError
    from pc_core.executors import ExecutorFactoryABC, ManualJobFactory, load_factory_class

    assert issubclass(load_factory_class("condor"), ManualJobFactory)
    assert not issubclass(load_factory_class("dask"), ManualJobFactory)
    with pytest.raises(TypeError, match="submit"):
        type("NoSubmit", (ManualJobFactory,), {})({})  # submit is abstract

    class Jobs(ManualJobFactory):
        def submit(self, cfg, console=None):
            return [cfg]

    with pytest.raises(ExecutorError, match="Jobs is a manual-job executor"):
        Jobs({}).get()
    assert Jobs({}).submit("cfg") == ["cfg"] and isinstance(Jobs({}), ExecutorFactoryABC)


def test_a_failing_setup_releases_what_it_acquired():
    released = []

    class HalfStarted(ExecutorFactoryABC):
        def setup(self):
            self.cluster = "started"
            raise RuntimeError("scheduler port taken")

        def get(self):
            return None

        def close(self):
            released.append(getattr(self, "cluster", None))

    with pytest.raises(RuntimeError, match="scheduler port taken"):
        HalfStarted({})
    assert released == ["started"]
