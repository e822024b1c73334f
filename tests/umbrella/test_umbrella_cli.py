import subprocess
import sys

from importlib.metadata import entry_points


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-c", "from pocket_coffea.cli import main; main()", *args],
        capture_output=True, text=True,
    )


def test_banner_shows_version_and_docs():
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert "Running pocket-coffea version 0.1.0" in result.stdout
    assert "docs/index.md" in result.stdout
    assert "--help" in result.stdout


def test_version_lists_all_seven_packages():
    result = run_cli("-v")
    assert result.returncode == 0, result.stderr
    for dist in ("pocket-coffea", "pc-core", "pc-run", "pc-jobs", "pc-datasets", "pc-plots", "pc-demo"):
        assert dist in result.stdout
    assert "not installed" not in result.stdout


def test_help_lists_every_registered_command():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    names = {ep.name for ep in entry_points(group="pocket_coffea.commands")}
    assert names, "no package registered a command"
    for name in names:
        assert name in result.stdout


def test_unknown_command_fails():
    result = run_cli("no-such-command")
    assert result.returncode != 0
    assert "no-such-command" in result.stderr


def test_cli_reference_documents_every_option(repo_root):
    """docs/cli.md has a section per command naming each of its options."""
    import click

    reference = (repo_root / "docs" / "cli.md").read_text()
    for ep in entry_points(group="pocket_coffea.commands"):
        command = ep.load()
        assert f"## {ep.name}\n" in reference, f"docs/cli.md has no section for {ep.name}"
        section = reference.split(f"## {ep.name}\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option):
                longest = max(param.opts, key=len)
                assert f"{longest}" in section, f"docs/cli.md, {ep.name}: option {longest} is not documented"


def test_user_error_is_one_line_and_traceback_only_with_debug(tmp_path):
    missing = tmp_path / "no_such_config.py"
    quiet = run_cli("run", "--cfg", str(missing), "-o", str(tmp_path / "out"))
    assert quiet.returncode == 1
    assert "Error:" in quiet.stderr and str(missing) in quiet.stderr.replace("\n", "")
    assert "Traceback" not in quiet.stderr
    debug = run_cli("run", "--cfg", str(missing), "-o", str(tmp_path / "out"), "-ll", "DEBUG")
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "does not exist" in debug.stderr
