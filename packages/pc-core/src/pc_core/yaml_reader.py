"""The one YAML reader of every command: a malformed file is an error naming file, line and column.

Each caller keeps its own error type (run options, plotting style, jobs config), so the
message reaches the user through that command's usual path.
"""
from __future__ import annotations

import os
from typing import Any

import yaml

from .errors import PocketCoffeaError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster on big files


def parse_yaml(text: str, source: str, error: type[Exception] = PocketCoffeaError) -> Any:
    """``yaml.safe_load`` of ``text``; a syntax error raises ``error("<source>: malformed YAML at line L, column C: ...")``."""
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{source}: malformed YAML{where}: {problem}") from None


def read_yaml(path: str | os.PathLike, what: str, error: type[Exception] = PocketCoffeaError) -> Any:
    """Read and parse the YAML file ``path`` (``what`` names it in messages: "plotting style", ...)."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise error(f"{what} {os.fspath(path)}: cannot read it ({reason})") from None
    return parse_yaml(text, f"{what} {os.fspath(path)}", error)
