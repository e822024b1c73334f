"""The one size and wall-time parser of the run options (pc_core.units)."""
from __future__ import annotations

import pytest

from pc_core.units import size_bytes, walltime_seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2GB", 2_000_000_000), ("500MB", 500_000_000), ("1.5GiB", 1_610_612_736), ("2 gb", 2_000_000_000),
     ("100kB", 100_000), (2, 2_000_000_000), (0.5, 500_000_000)],
)
def test_sizes(value, expected):
    assert size_bytes(value) == expected


@pytest.mark.parametrize(("value", "problem"), [("lots", "not a size"), (0, "not positive"), (True, "a boolean"),
                                                ([2], "neither a size string")])
def test_bad_sizes_name_the_value_and_what_is_accepted(value, problem):
    with pytest.raises(ValueError) as info:
        size_bytes(value)
    assert str(info.value).startswith(f"{value!r} is {problem}") and "; expected a size such as '2GB'" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("6:00:00", 21_600), ("30:00", 1_800), ("1-12:00:00", 129_600), ("0:00:05", 5), (3600, 3600)],
)
def test_walltimes(value, expected):
    assert walltime_seconds(value) == expected


@pytest.mark.parametrize("value", ["6h", "1:60:00", "5:61", "", 0, 1.5, None])
def test_bad_walltimes_are_refused(value):
    with pytest.raises(ValueError) as info:
        walltime_seconds(value)
    assert repr(value) in str(info.value) and "expected a time such as '6:00:00'" in str(info.value)
