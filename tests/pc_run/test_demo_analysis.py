"""The bundled demo analysis (examples/dilepton) on generated demo data, against a per-event
Python computation of the same selection from uproot's arrays.

The reference is written the plain way, one event at a time (objects as lists, ΔR and the
dilepton mass with ``math``), so it shares nothing with the demo's vectorised numpy/awkward
code except the selection it describes (docs/demo-data.md, examples/dilepton/config.py).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import uproot

from analysis_testlib import invoke_run
from pc_core.output import load_output
from pc_demo import generate_demo_data

CONFIG = Path(__file__).resolve().parents[2] / "examples" / "dilepton" / "config.py"
TRIGGERS = ("IsoMu24", "Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8", "Ele32_WPTight_Gsf")
Z_MASS = 91.1876
SF_MUON = 0.985
BRANCHES = [
    "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Muon_tightId", "Muon_pfRelIso04_all",
    "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge", "Electron_cutBased",
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_jetId", "Jet_btagDeepFlavB", "MET_pt",
]


def _dilepton_mass_pt(a: dict, b: dict) -> tuple[float, float]:
    def p4(lep):
        px, py = lep["pt"] * math.cos(lep["phi"]), lep["pt"] * math.sin(lep["phi"])
        pz = lep["pt"] * math.sinh(lep["eta"])
        return math.sqrt(px * px + py * py + pz * pz + lep["mass"] ** 2), px, py, pz

    e1, x1, y1, z1 = p4(a)
    e2, x2, y2, z2 = p4(b)
    e, x, y, z = e1 + e2, x1 + x2, y1 + y2, z1 + z2
    return math.sqrt(max(e * e - x * x - y * y - z * z, 0.0)), math.hypot(x, y)


def _objects(arrays: dict, prefix: str, i: int) -> list[dict]:
    names = [n for n in arrays if n.startswith(prefix + "_")]
    return [{n[len(prefix) + 1:]: float(arrays[n][i][k]) for n in names} for k in range(len(arrays[names[0]][i]))]


def reference(files: list[str], is_mc: bool, xsec: float | None, lumi: float) -> dict:
    """Cutflow, sumw per category and the mll values/weights of the mumu_Z events."""
    out = {"initial": 0, "skim": 0, "presel": 0, "cutflow": {}, "sumw": {}, "mll_mumu_Z": ([], [])}
    for path in files:
        with uproot.open(path) as f:
            tree = f["Events"]
            paths = [p for p in TRIGGERS if f"HLT_{p}" in tree]
            arrays = tree.arrays(BRANCHES + [f"HLT_{p}" for p in paths] + (["genWeight"] if is_mc else []), library="np")
        n = len(arrays["MET_pt"])
        out["initial"] += n
        for i in range(n):
            muons, electrons, jets = (_objects(arrays, c, i) for c in ("Muon", "Electron", "Jet"))
            fired = any(bool(arrays[f"HLT_{p}"][i]) for p in paths)
            if not fired or sum(m["pt"] > 10 for m in muons) + sum(e["pt"] > 10 for e in electrons) < 2:
                continue
            out["skim"] += 1
            good_mu = [m for m in muons if m["pt"] > 15 and abs(m["eta"]) < 2.4 and m["tightId"] and m["pfRelIso04_all"] < 0.15]
            good_el = [e for e in electrons if e["pt"] > 15 and abs(e["eta"]) < 2.5 and e["cutBased"] >= 3]
            leptons = sorted(good_mu + good_el, key=lambda lep: -lep["pt"])
            if len(leptons) != 2 or leptons[0]["charge"] + leptons[1]["charge"] != 0 or leptons[0]["pt"] <= 25:
                continue
            mll, _ = _dilepton_mass_pt(leptons[0], leptons[1])
            if mll <= 20:
                continue
            out["presel"] += 1

            def clean(jet):
                for lep in leptons:
                    dphi = (jet["phi"] - lep["phi"] + math.pi) % (2 * math.pi) - math.pi
                    if math.hypot(jet["eta"] - lep["eta"], dphi) <= 0.4:
                        return False
                return True

            good_jets = [j for j in jets if j["pt"] > 30 and abs(j["eta"]) < 2.4 and j["jetId"] >= 2 and clean(j)]
            n_b = sum(j["btagDeepFlavB"] > 0.2783 for j in good_jets)
            n_mu, n_el = len(good_mu), len(good_el)
            in_z = abs(mll - Z_MASS) < 15
            categories = {
                "inclusive": True,
                "mumu_Z": n_mu == 2 and in_z,
                "ee_Z": n_el == 2 and in_z,
                "mumu_offZ_2b": n_mu == 2 and not in_z and n_b >= 2 and arrays["MET_pt"][i] > 40,
                "emu_2b": n_mu == 1 and n_el == 1 and n_b >= 2,
                "emu_0b": n_mu == 1 and n_el == 1 and n_b == 0,
            }
            weight = float(arrays["genWeight"][i]) * lumi * xsec * SF_MUON**n_mu if is_mc else 1.0
            for category, selected in categories.items():
                if selected:
                    out["cutflow"][category] = out["cutflow"].get(category, 0) + 1
                    out["sumw"][category] = out["sumw"].get(category, 0.0) + weight
            if categories["mumu_Z"]:
                out["mll_mumu_Z"][0].append(mll)
                out["mll_mumu_Z"][1].append(weight)
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo-analysis")
    fileset_path = generate_demo_data(
        folder / "data", seed=5, events_per_file=1500, files_per_sample=1, data_files=1,
        compression="zstd", workers=1, progress=False,
    )
    previous = os.environ.get("POCKET_COFFEA_DEMO_FILESET")
    os.environ["POCKET_COFFEA_DEMO_FILESET"] = str(fileset_path)
    try:
        result = invoke_run(["--cfg", CONFIG, "-o", folder / "out", "-e", "iterative", "-c", "700"])
    finally:
        if previous is None:
            os.environ.pop("POCKET_COFFEA_DEMO_FILESET")
        else:
            os.environ["POCKET_COFFEA_DEMO_FILESET"] = previous
    assert result.exit_code == 0, result.output
    return json.loads(fileset_path.read_text()), load_output(folder / "out" / "output_all.coffea")


def test_demo_analysis_equals_a_per_event_computation(demo_run):
    fileset, output = demo_run
    lumi = output["processing_metadata"]["lumi_pb"]["2018"]
    checked_mumu_z = 0
    for dataset, entry in fileset.items():
        meta = entry["metadata"]
        sample = meta["sample"]
        ref = reference(entry["files"], meta["isMC"], meta.get("xsec"), lumi)
        assert output["cutflow"]["initial"][dataset] == ref["initial"]
        assert output["cutflow"]["skim"][dataset] == ref["skim"]
        assert output["cutflow"]["presel"][dataset] == ref["presel"]
        assert ref["presel"] > 50, "the sample is too small to test anything"
        for category in ("inclusive", "mumu_Z", "ee_Z", "mumu_offZ_2b", "emu_2b", "emu_0b"):
            assert output["cutflow"][category][dataset][sample] == ref["cutflow"].get(category, 0), (dataset, category)
            assert output["sumw"][category][dataset][sample] == pytest.approx(ref["sumw"].get(category, 0.0), rel=1e-9)

        histogram = output["variables"]["mll"][sample][dataset][{"cat": "mumu_Z", "variation": "nominal"}]
        edges = np.concatenate([[-np.inf], histogram.axes[0].edges, [np.inf]])
        expected, _ = np.histogram(ref["mll_mumu_Z"][0], bins=edges, weights=ref["mll_mumu_Z"][1])
        np.testing.assert_allclose(histogram.values(flow=True), expected, rtol=1e-9, atol=1e-12)
        checked_mumu_z += len(ref["mll_mumu_Z"][0])
    assert checked_mumu_z > 20
