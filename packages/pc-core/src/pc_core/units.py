"""Sizes and wall times as users write them in run options: one parser each, one wording.

Sizes follow the batch systems: ``"2GB"`` is 2·10⁹ bytes, ``"2GiB"`` 2·2³⁰, a bare number
is GB. Wall times are SLURM's and HTCondor's ``[D-]HH:MM:SS`` (or ``MM:SS``) or seconds.
"""
from __future__ import annotations

import re
from typing import Any

SIZE_EXPECTED = "a size such as '2GB', '500MB' or '1.5GiB', or a number of GB"
WALLTIME_EXPECTED = "a time such as '6:00:00' (HH:MM:SS), '30:00' (MM:SS) or '1-12:00:00' (D-HH:MM:SS)"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(i?)[bB]\s*$")
_UNIT_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_WALLTIME_RE = re.compile(r"^\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d{1,2})\s*$")


def size_problem(value: Any) -> str | None:
    """Why ``value`` is not a size, or None."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return None if value > 0 else "not positive"
    if isinstance(value, str):
        return None if _SIZE_RE.match(value) else "not a size"
    return "neither a size string nor a number of GB"


def size_bytes(value: Any) -> int:
    """``"2GB"`` / ``"500MiB"`` / a number of GB -> bytes; ValueError names what is accepted."""
    problem = size_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} is {problem}; expected {SIZE_EXPECTED}")
    if not isinstance(value, str):
        return round(float(value) * 1e9)
    number, unit, binary = _SIZE_RE.match(value).groups()
    return round(float(number) * (1024 if binary else 1000) ** _UNIT_POWER[unit.lower()])


def walltime_problem(value: Any) -> str | None:
    """Why ``value`` is not a wall time, or None."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return None if value > 0 else "not positive"
    if isinstance(value, str):
        match = _WALLTIME_RE.match(value)
        if match is None:
            return "not a time"
        if int(match.group(4)) >= 60 or (match.group(2) is not None and int(match.group(3)) >= 60):
            return "a time with minutes or seconds of 60 or more"
        return None
    return "neither a number of seconds nor a time string"


def walltime_seconds(value: Any) -> int:
    """``"6:00:00"`` / ``"1-12:00:00"`` / ``"30:00"`` / seconds -> seconds."""
    problem = walltime_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} is {problem}; expected {WALLTIME_EXPECTED} or a number of seconds")
    if isinstance(value, int):
        return value
    days, hours, minutes, seconds = (int(part or 0) for part in _WALLTIME_RE.match(value).groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
