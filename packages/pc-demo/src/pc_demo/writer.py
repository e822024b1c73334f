"""Writing NanoAOD-like ROOT files with uproot: LZMA as production, uint32 counters, Runs tree."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from pc_core.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

BASKET_EVENTS = 10_000
FILE_MODE = 0o644  # every file written is world-readable (a job user reads it), whatever the umask


class NanoLZMA(uproot.LZMA):
    """LZMA at a given level, with the dictionary trimmed to the basket being compressed.

    ROOT and uproot compress every basket with the full preset (64 MiB dictionary at level
    9); setting up that dictionary costs ~60 ms per basket, a minute for the demo files.
    A dictionary larger than the input is never used, so trimming it to the basket size
    gives the same compression ratio and an ordinary xz stream that ROOT and uproot read.
    """

    @property
    def code_pair(self) -> tuple[int, int]:
        return uproot.LZMA(self.level).code_pair  # written to the file as plain LZMA

    def compress(self, data: bytes) -> bytes:
        import lzma

        dict_size = 1 << max(12, (max(len(data), 1) - 1).bit_length())
        filters = [{"id": lzma.FILTER_LZMA2, "preset": self.level, "dict_size": min(dict_size, 1 << 26)}]
        return lzma.compress(bytes(data), format=lzma.FORMAT_XZ, filters=filters)


COMPRESSIONS: dict[str, tuple[Callable[[int], Any] | None, int]] = {
    "lzma": (NanoLZMA, 9),
    "zstd": (uproot.ZSTD, 5),
    "zlib": (uproot.ZLIB, 4),
    "lz4": (uproot.LZ4, 4),
    "none": (None, 0),
}


# --------------------------------------------------------------------------- writing


def _branch_types(branches: Mapping[str, Any]) -> dict[str, Any]:
    types: dict[str, Any] = {}
    for name, values in branches.items():
        if isinstance(values, ak.Array):
            types[name] = ak.type(values).content  # an awkward type: uproot need not parse a datashape
        else:
            types[name] = np.asarray(values).dtype
    return types


def _unsigned_counters(tree: uproot.WritableTree) -> None:
    """Make the ``n<Collection>`` counters uint32 as in NanoAOD (uproot always creates int32 counters).

    uproot has no option for the counter type. Its counter is an ordinary leaf whose type
    comes from the branch's dtype and title, so we change those before any basket is
    written and ask uproot to rewrite the tree header on the first ``extend``. Checked by
    tests/pc_run/test_demo_data.py against a real NanoAOD file.
    """
    cascading = getattr(tree, "_cascading", None)
    data = getattr(cascading, "_branch_data", None)
    if data is None or not hasattr(cascading, "_needs_relocation_before_extend"):
        log.warning("this uproot version is not supported for uint32 counters; nMuon etc. are written as int32")
        return
    for datum in data:
        if datum.get("kind") == "counter" and datum["fTitle"].endswith("/I"):
            datum["dtype"] = np.dtype(">u4")
            datum["fTitle"] = datum["fTitle"][:-1] + "i"
    cascading._needs_relocation_before_extend = True


def _counter_name(branch: str) -> str:
    return "n" + branch.split("_", 1)[0]


def write_nanoaod(
    target: Path,
    events: Mapping[str, Any],
    runs: Mapping[str, np.ndarray],
    compression: Any,
    on_basket: Callable[[int], None] | None = None,
) -> int:
    """Write an Events tree (in baskets of BASKET_EVENTS) and a Runs tree atomically; returns the entries."""
    n = len(next(iter(events.values())))
    with atomic_path(target) as tmp:
        with uproot.recreate(tmp, compression=compression) as file:
            tree = file.mktree("Events", _branch_types(events), title="Events", counter_name=_counter_name)
            _unsigned_counters(tree)
            for start in range(0, max(n, 1), BASKET_EVENTS):
                stop = min(start + BASKET_EVENTS, n)
                tree.extend({name: values[start:stop] for name, values in events.items()})
                if on_basket is not None:
                    on_basket(stop - start)
            lumis = np.unique(
                np.stack([np.asarray(events["run"], np.uint64), np.asarray(events["luminosityBlock"], np.uint64)]), axis=1
            )
            for name, content in (
                ("LuminosityBlocks", {"run": lumis[0].astype(np.uint32), "luminosityBlock": lumis[1].astype(np.uint32)}),
                ("Runs", dict(runs)),
            ):  # mktree + extend, as for Events, so the leaf types read like NanoAOD's (uint32_t, not std::uint32_t)
                file.mktree(name, {key: values.dtype for key, values in content.items()}, title=name).extend(content)
        tmp.chmod(FILE_MODE)  # readable by a job user whatever the umask (mkstemp creates 0600)
    return n


def write_json(path: Path, content: Any) -> None:
    atomic_write_text(path, json.dumps(content, indent=4) + "\n")
    path.chmod(FILE_MODE)
