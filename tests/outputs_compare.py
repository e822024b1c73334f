"""Deep comparison of two .coffea outputs (histograms bin by bin, sums to a relative tolerance)."""
from __future__ import annotations

import numpy as np


def assert_outputs_equal(a, b, rtol: float = 1e-12, path: str = "", skip: tuple[str, ...] = ()) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        keys_a = set(a) - set(skip)
        keys_b = set(b) - set(skip)
        assert keys_a == keys_b, f"{path}: keys differ {sorted(keys_a ^ keys_b)}"
        for key in keys_a:
            assert_outputs_equal(a[key], b[key], rtol, f"{path}[{key!r}]", skip)
    elif hasattr(a, "axes") and hasattr(a, "view"):
        assert a.axes == b.axes, path
        np.testing.assert_allclose(a.values(flow=True), b.values(flow=True), rtol=rtol, atol=0, err_msg=path)
        np.testing.assert_allclose(a.variances(flow=True), b.variances(flow=True), rtol=rtol, atol=0, err_msg=path)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float) or isinstance(b, float):
        assert a == b or abs(a - b) <= rtol * max(abs(a), abs(b)), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def drop_keys(obj, names: set[str]):
    """A copy of nested dicts without the keys in ``names`` (to compare a filtered run)."""
    if isinstance(obj, dict):
        return {k: drop_keys(v, names) for k, v in obj.items() if k not in names}
    return obj
