"""What every pocket-coffea command shares: the --loglevel option, logging set-up, the progress
bar of long steps and user-error handling."""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import PocketCoffeaError

DEBUG_ENV = "POCKET_COFFEA_DEBUG"
LOGLEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _UpperCaseChoice(click.Choice):
    """Choices matched whatever their case and shown in upper case, as logging names its levels
    (click's case-insensitive choices are shown casefolded: ``[debug|info|...]``)."""

    def normalize_choice(self, choice, ctx) -> str:
        return super().normalize_choice(choice, ctx).upper()


def loglevel_option(default: str = "INFO") -> Callable:
    """The ``-ll/--loglevel`` option of every command (the value is passed on as ``loglevel``)."""
    return click.option(
        "-ll", "--loglevel", type=_UpperCaseChoice(LOGLEVELS), default=default,
        show_default=True, help="Console logging level (DEBUG also shows the traceback of an error).",
    )


def progress_bar(*, enabled: bool = True, transient: bool = False, unit: str | None = None, eta: bool = False,
                 console: Console | None = None) -> Progress:
    """The progress bar of every long step, on stderr: description, bar, done/total [unit], elapsed [, eta]."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    if eta:
        columns += [TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*columns, console=console or Console(stderr=True), transient=transient, disable=not enabled)


def setup_logging(level: str = "INFO", logfile: str | os.PathLike | None = None) -> None:
    """Send logs to the console through rich and, if given, to a plain log file."""
    level = level.upper()
    if level not in LOGLEVELS:
        raise PocketCoffeaError(f"Unknown log level {level!r}; accepted: {', '.join(LOGLEVELS)}")
    handlers: list[logging.Handler] = [
        RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=level == "DEBUG")
    ]
    if logfile is not None:
        file_handler = logging.FileHandler(logfile)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    logging.basicConfig(level=level, handlers=handlers, format="%(message)s", force=True)


def _debug_requested(argv: Sequence[str]) -> bool:
    if os.environ.get(DEBUG_ENV):
        return True
    for flag in ("-ll", "--loglevel"):
        for i, arg in enumerate(argv):
            if arg == flag and i + 1 < len(argv) and argv[i + 1].upper() == "DEBUG":
                return True
            if arg.startswith(flag + "=") and arg.split("=", 1)[1].upper() == "DEBUG":
                return True
    return False


@contextlib.contextmanager
def imports_without_gc():
    """Import heavy modules (coffea, awkward, uproot, matplotlib) with garbage collection paused.
    Imports create ~10^6 objects and next to no garbage, yet the collector walks them ~300 times
    meanwhile: ~0.1 s of a command's start-up. Nothing is frozen (``gc.freeze``): a frozen module
    keeps what it holds from being finalized at exit, such as a file's unwritten buffer."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_cli(command: click.Command | Callable, argv: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Invoke a click command; user errors become one red line and exit code 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        Console(stderr=True).print("[red]Aborted.[/red]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PocketCoffeaError as exc:
        if _debug_requested(argv):
            raise
        Console(stderr=True).print(f"[bold red]Error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 1))
    sys.exit(0)
