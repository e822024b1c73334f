"""pc-core must work where coffea, dask, htcondor, rucio, uproot, awkward and parsl are absent.

A fresh interpreter gets an import hook that refuses those packages, then imports every
module of pc_core (found by walking the package, so new modules are covered automatically)
and round-trips a real output with a histogram through save/load/accumulate/normalise.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

FORBIDDEN = ("coffea", "dask", "distributed", "dask_jobqueue", "htcondor", "htcondor2", "rucio",
             "uproot", "awkward", "parsl")

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys, tempfile, os

    FORBIDDEN = set({forbidden!r})

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"pc-core must not import {{name}}")
            return None

    for name in list(sys.modules):
        if name.split(".")[0] in FORBIDDEN:
            raise SystemExit(f"{{name}} already imported before the test started")
    sys.meta_path.insert(0, Refuse())

    import pc_core
    imported = []
    for info in pkgutil.walk_packages(pc_core.__path__, prefix="pc_core."):
        importlib.import_module(info.name)
        imported.append(info.name)

    import hist
    import numpy as np
    from pc_core.output import accumulate, load_output, normalise, save_output

    h = hist.Hist.new.Reg(4, 0, 4, name="x").Weight()
    h.fill(x=[0.5, 1.5, 1.5, 3.5], weight=[1.0, 2.0, 3.0, 4.0])
    output = {{
        "sum_genweights": {{"ds": 10.0}},
        "sumw": {{"cat": {{"ds": {{"s": 10.0}}}}}},
        "sumw2": {{"cat": {{"ds": {{"s": 30.0}}}}}},
        "cutflow": {{"initial": {{"ds": 4}}}},
        "variables": {{"x": {{"s": {{"ds": h}}}}}},
        "columns": {{"s": {{"ds": {{"cat": {{"x": np.array([0.5, 1.5, 1.5, 3.5])}}}}}}}},
        "datasets_metadata": {{"by_datataking_period": {{"2018": {{"s": ["ds"]}}}},
                               "by_dataset": {{"ds": {{"sample": "s", "year": "2018", "isMC": True, "xsec": 2.0}}}}}},
        "processing_metadata": {{"lumi_pb": {{"2018": 5.0}}}},
    }}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.coffea")
        save_output(output, path)
        total = accumulate([load_output(path), load_output(path)])
    assert list(total["variables"]["x"]["s"]["ds"].values()) == [2.0, 10.0, 0.0, 8.0], total["variables"]
    assert total["cutflow"]["initial"]["ds"] == 8
    assert len(total["columns"]["s"]["ds"]["cat"]["x"]) == 8
    scaled = normalise(total)
    # factor = xsec * lumi / sum_genweights = 2 * 5 / 20
    assert list(scaled["variables"]["x"]["s"]["ds"].values()) == [1.0, 5.0, 0.0, 4.0]

    leaked = sorted(name for name in sys.modules if name.split(".")[0] in FORBIDDEN)
    assert not leaked, leaked
    print("IMPORTED", " ".join(imported))
    """
)


def test_pc_core_imports_without_heavy_dependencies():
    script = SCRIPT.format(forbidden=FORBIDDEN)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    imported = result.stdout.split("IMPORTED", 1)[1].split()
    # the walk really visited the package (not an empty loop)
    assert "pc_core.output" in imported and "pc_core.fileset" in imported and "pc_core.errors" in imported


def test_the_hook_really_blocks(tmp_path):
    """The same hook makes an import of coffea fail, so the test above can fail."""
    script = SCRIPT.format(forbidden=FORBIDDEN).replace("import pc_core\n", "import pc_core\nimport coffea\n", 1)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "pc-core must not import coffea" in result.stderr
