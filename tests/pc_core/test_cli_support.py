import gc

import pytest

from pc_core.cli_support import imports_without_gc


@pytest.fixture
def gc_restored():
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


def test_imports_run_without_collection_and_collection_resumes(gc_restored):
    gc.enable()
    with imports_without_gc():
        assert not gc.isenabled()
        import colorsys  # noqa: F401 - any import
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # nothing frozen: frozen modules would keep files unflushed at exit


def test_collection_resumes_after_a_failed_import(gc_restored):
    gc.enable()
    with pytest.raises(ModuleNotFoundError), imports_without_gc():
        import no_such_module_anywhere  # noqa: F401
    assert gc.isenabled()


def test_collection_disabled_by_the_caller_stays_disabled(gc_restored):
    gc.disable()
    with imports_without_gc():
        pass
    assert not gc.isenabled()


def test_loglevels_are_accepted_in_any_case_and_shown_as_logging_names_them():
    import click
    from click.testing import CliRunner

    from pc_core.cli_support import loglevel_option

    @click.command()
    @loglevel_option()
    def command(loglevel):
        click.echo(f"level={loglevel}")

    runner = CliRunner()
    assert "[DEBUG|INFO|WARNING|ERROR|CRITICAL]" in runner.invoke(command, ["--help"]).output
    assert runner.invoke(command, ["-ll", "debug"]).output == "level=DEBUG\n"
    assert runner.invoke(command, []).output == "level=INFO\n"
    refused = runner.invoke(command, ["-ll", "verbose"])
    assert refused.exit_code == 2 and "'verbose' is not one of 'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'" in refused.output
