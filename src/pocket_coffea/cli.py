"""The ``pocket-coffea`` command: a banner, versions, and every command the packages register.

Commands arrive through the ``pocket_coffea.commands`` entry-point group, so a package
that is not installed simply contributes nothing and this module imports none of them.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

import click
from rich.console import Console

from pc_core.cli_support import imports_without_gc, run_cli

COMMANDS_GROUP = "pocket_coffea.commands"
DISTRIBUTIONS = ("pocket-coffea", "pc-core", "pc-run", "pc-jobs", "pc-datasets", "pc-plots", "pc-demo")
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"

BANNER = r"""
    ____             __        __  ______      ________
   / __ \____  _____/ /_____  / /_/ ____/___  / __/ __/__  ____ _
  / /_/ / __ \/ ___/ //_/ _ \/ __/ /   / __ \/ /_/ /_/ _ \/ __ `/
 / ____/ /_/ / /__/ ,< /  __/ /_/ /___/ /_/ / __/ __/  __/ /_/ /
/_/    \____/\___/_/|_|\___/\__/\____/\____/_/ /_/  \___/\__,_/
"""


def installed_versions() -> dict[str, str | None]:
    """Version of each of the six distributions, ``None`` when one is not installed."""
    versions: dict[str, str | None] = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return versions


class PluginGroup(click.Group):
    """A click group whose commands are loaded lazily from an entry-point group."""

    def _entry_points(self):
        return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._entry_points()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        ep = self._entry_points().get(name)
        if ep is None:
            return None
        try:
            with imports_without_gc():
                return ep.load()
        except ImportError as exc:  # a package half-installed must not break the whole CLI
            Console(stderr=True).print(f"[yellow]Warning:[/yellow] command {name!r} ({ep.value}) cannot be loaded: {exc}")
            return None


def print_banner(console: Console) -> None:
    console.print(BANNER, style="bold cyan", highlight=False)
    console.print(f"Running pocket-coffea version {installed_versions()['pocket-coffea']}")
    console.print(f"- Documentation:   {DOCS_DIR / 'index.md'}")
    console.print(f"- Running:         {DOCS_DIR / 'running.md'}")
    console.print(f"- CLI reference:   {DOCS_DIR / 'cli.md'}")
    console.print("\nRun with --help for the list of available commands")


@click.group(cls=PluginGroup, invoke_without_command=True)
@click.option("-v", "--version", "show_version", is_flag=True, help="Print the versions of all pocket-coffea packages.")
@click.pass_context
def cli(ctx: click.Context, show_version: bool) -> None:
    """pocket-coffea: run CMS NanoAOD columnar analyses from a laptop to thousands of jobs."""
    console = Console()
    if show_version:
        for dist, ver in installed_versions().items():
            console.print(f"{dist:15s} {ver or 'not installed'}")
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        print_banner(console)


def main() -> None:
    run_cli(cli, prog_name="pocket-coffea")


if __name__ == "__main__":
    main()
