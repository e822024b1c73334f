"""The .coffea output: coffea-compatible save/load, accumulate and normalise on real NanoAOD values."""
from __future__ import annotations

import copy
import os
import threading

import hist
import lz4.frame
import numpy as np
import pytest
import uproot

from pc_core.errors import OutputError
from pc_core.output import (
    REQUIRED_KEYS,
    accumulate,
    check_output_keys,
    load_output,
    normalisation_factors,
    normalise,
    save_output,
)

BINS = np.array([0.0, 10.0, 20.0, 40.0, 80.0, 200.0])
XSEC_DY = 6077.22
LUMI_2018 = 59740.0


@pytest.fixture(scope="module")
def dy_events(nanoaod_dir):
    tree = uproot.open(nanoaod_dir / "nano_dy.root")["Events"]
    arrays = tree.arrays(["genWeight", "Muon_pt"], library="np")
    # one value per event: the sum of the muon pts (0 for events without muons)
    sum_pt = np.array([float(np.sum(pts)) for pts in arrays["Muon_pt"]])
    return arrays["genWeight"].astype(float), sum_pt


@pytest.fixture(scope="module")
def data_events(nanoaod_dir):
    tree = uproot.open(nanoaod_dir / "nano_dimuon.root")["Events"]
    pts = tree["Muon_pt"].array(library="np")
    return np.array([float(np.sum(p)) for p in pts])


def make_hist() -> hist.Hist:
    return (
        hist.Hist.new.StrCat([], name="cat", growth=True)
        .StrCat([], name="variation", growth=True)
        .Var(BINS, name="sum_pt")
        .Weight()
    )


def make_output(dy, data, sl: slice, *, lumi=LUMI_2018, weights_applied=None) -> dict:
    """An output as the processor writes it, for the events in ``sl`` of both files."""
    genw, pt = dy[0][sl], dy[1][sl]
    data_pt = data[sl]
    h_mc = make_hist()
    h_mc.fill(cat="baseline", variation="nominal", sum_pt=pt, weight=genw)
    h_data = make_hist()
    h_data.fill(cat="baseline", variation="nominal", sum_pt=data_pt)
    return {
        "sum_genweights": {"DY_2018": float(genw.sum())},
        "sum_signOf_genweights": {"DY_2018": float(np.sign(genw).sum())},
        "cutflow": {
            "initial": {"DY_2018": len(genw), "DATA_2018": len(data_pt)},
            "skim": {"DY_2018": len(genw), "DATA_2018": len(data_pt)},
            "baseline": {"DY_2018": {"DY": len(genw)}, "DATA_2018": {"DATA": len(data_pt)}},
        },
        "sumw": {"baseline": {"DY_2018": {"DY": float(genw.sum())}, "DATA_2018": {"DATA": float(len(data_pt))}}},
        "sumw2": {"baseline": {"DY_2018": {"DY": float((genw**2).sum())}, "DATA_2018": {"DATA": float(len(data_pt))}}},
        "variables": {"sum_pt": {"DY": {"DY_2018": h_mc}, "DATA": {"DATA_2018": h_data}}},
        "columns": {"DY": {"DY_2018": {"baseline": {"sum_pt": pt.copy(), "weight": genw.copy()}}}},
        "datasets_metadata": {
            "by_datataking_period": {"2018": {"DY": ["DY_2018"], "DATA": ["DATA_2018"]}},
            "by_dataset": {
                "DY_2018": {"sample": "DY", "year": "2018", "isMC": True, "xsec": XSEC_DY, "nevents": len(genw)},
                "DATA_2018": {"sample": "DATA", "year": "2018", "isMC": False, "nevents": len(data_pt)},
            },
        },
        "processing_metadata": {
            "events": {"DY_2018": len(genw), "DATA_2018": len(data_pt)},
            "chunks": {"DY_2018": 1, "DATA_2018": 1},
            "skipped_files": [],
            "lumi_pb": {"2018": lumi},
            "weights_applied": weights_applied or {"DY_2018": ["genWeight"], "DATA_2018": []},
            "tags": {f"chunk-{sl.start}"},
        },
    }


@pytest.fixture()
def halves(dy_events, data_events):
    return make_output(dy_events, data_events, slice(0, 17)), make_output(dy_events, data_events, slice(17, 40))


def snapshot(output) -> dict:
    """A deep copy that compares by value (hists by their bin contents)."""
    return copy.deepcopy(output)


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, hist.Hist):
        assert a.axes == b.axes
        np.testing.assert_array_equal(a.values(), b.values())
        np.testing.assert_array_equal(a.variances(), b.variances())
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


# --------------------------------------------------------------------------- save / load


def test_coffea_reads_what_we_write_and_we_read_coffea(tmp_path, halves):
    coffea_util = pytest.importorskip("coffea.util")
    ours = tmp_path / "ours.coffea"
    save_output(halves[0], ours)
    assert_same(coffea_util.load(str(ours)), halves[0])
    theirs = tmp_path / "theirs.coffea"
    coffea_util.save(halves[1], str(theirs))
    assert_same(load_output(theirs), halves[1])
    # same bytes format: an lz4 frame holding a pickle
    with lz4.frame.open(ours, "rb") as stream:
        assert stream.read(1) == b"\x80"


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, halves):
    path = tmp_path / "out.coffea"
    save_output(halves[0], path)
    with pytest.raises(TypeError):
        save_output({"lock": threading.Lock()}, path)  # cannot be pickled
    assert_same(load_output(path), halves[0])
    assert sorted(os.listdir(tmp_path)) == ["out.coffea"]


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(OutputError, match="nope.coffea does not exist"):
        load_output(tmp_path / "nope.coffea")
    garbage = tmp_path / "garbage.coffea"
    garbage.write_bytes(b"this is not lz4")
    with pytest.raises(OutputError, match="garbage.coffea is corrupt"):
        load_output(garbage)
    good = tmp_path / "good.coffea"
    save_output({"a": list(range(10000))}, good)
    truncated = tmp_path / "truncated.coffea"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(OutputError, match="truncated.coffea is corrupt"):
        load_output(truncated)


def test_load_keys_subset(tmp_path, halves):
    path = tmp_path / "out.coffea"
    save_output(halves[0], path)
    subset = load_output(path, keys=["cutflow", "sum_genweights"])
    assert sorted(subset) == ["cutflow", "sum_genweights"]
    assert subset["cutflow"]["initial"]["DY_2018"] == 17
    with pytest.raises(OutputError, match=r"lacks the keys \['nothere'\]") as err:
        load_output(path, keys=["cutflow", "nothere"])
    assert str(path) in str(err.value)


def test_check_output_keys(halves):
    check_output_keys(halves[0], REQUIRED_KEYS, "x.coffea")
    broken = {k: v for k, v in halves[0].items() if k not in ("sumw", "cutflow")}
    with pytest.raises(OutputError, match=r"Output x.coffea lacks the keys \['sumw', 'cutflow'\]"):
        check_output_keys(broken, REQUIRED_KEYS, "x.coffea")


# --------------------------------------------------------------------------- accumulate


def test_accumulate_matches_numpy_on_all_events(halves, dy_events, data_events):
    genw, pt = dy_events
    before = [snapshot(h) for h in halves]
    total = accumulate(iter(halves))
    for original, now in zip(before, halves, strict=True):
        assert_same(original, now)  # inputs untouched

    h = total["variables"]["sum_pt"]["DY"]["DY_2018"][{"cat": "baseline", "variation": "nominal"}]
    expected, _ = np.histogram(pt, bins=BINS, weights=genw)
    expected_var, _ = np.histogram(pt, bins=BINS, weights=genw**2)
    np.testing.assert_allclose(h.values(), expected, rtol=1e-12)
    np.testing.assert_allclose(h.variances(), expected_var, rtol=1e-12)
    hd = total["variables"]["sum_pt"]["DATA"]["DATA_2018"][{"cat": "baseline", "variation": "nominal"}]
    np.testing.assert_array_equal(hd.values(), np.histogram(data_events, bins=BINS)[0])

    assert total["cutflow"]["initial"] == {"DY_2018": 40, "DATA_2018": 40}
    assert total["cutflow"]["baseline"]["DY_2018"]["DY"] == 40
    assert total["sum_genweights"]["DY_2018"] == pytest.approx(genw.sum(), rel=1e-12)
    assert total["sumw2"]["baseline"]["DY_2018"]["DY"] == pytest.approx((genw**2).sum(), rel=1e-12)
    np.testing.assert_array_equal(total["columns"]["DY"]["DY_2018"]["baseline"]["sum_pt"], pt)
    np.testing.assert_array_equal(total["columns"]["DY"]["DY_2018"]["baseline"]["weight"], genw)
    # run descriptions are united, not summed; counts are summed; lists concatenated; sets united
    assert total["processing_metadata"]["lumi_pb"] == {"2018": LUMI_2018}
    assert total["processing_metadata"]["weights_applied"]["DY_2018"] == ["genWeight"]
    assert total["processing_metadata"]["chunks"] == {"DY_2018": 2, "DATA_2018": 2}
    assert total["processing_metadata"]["tags"] == {"chunk-0", "chunk-17"}
    # each output describes the slice it processed: nevents add up to the whole files
    assert total["datasets_metadata"]["by_dataset"] == {
        "DY_2018": {"sample": "DY", "year": "2018", "isMC": True, "xsec": XSEC_DY, "nevents": 40},
        "DATA_2018": {"sample": "DATA", "year": "2018", "isMC": False, "nevents": 40},
    }
    assert total["datasets_metadata"]["by_datataking_period"] == halves[0]["datasets_metadata"]["by_datataking_period"]

    # the result does not alias the inputs
    total["variables"]["sum_pt"]["DY"]["DY_2018"].fill(cat="baseline", variation="nominal", sum_pt=[5.0])
    total["cutflow"]["initial"]["DY_2018"] = 0
    assert_same(before[0], halves[0])


def test_accumulate_lists_and_new_datasets(halves, dy_events, data_events):
    a, b = halves
    b = copy.deepcopy(b)
    b["processing_metadata"]["skipped_files"] = [{"dataset": "DY_2018", "file": "x.root", "reason": "OSError"}]
    b["datasets_metadata"]["by_datataking_period"]["2018"]["DY"] = ["DY_2018", "DY_ext_2018"]
    b["datasets_metadata"]["by_dataset"]["DY_ext_2018"] = {"sample": "DY", "year": "2018", "isMC": True, "xsec": 1.0}
    total = accumulate([a, b])
    assert total["processing_metadata"]["skipped_files"] == b["processing_metadata"]["skipped_files"]
    assert total["datasets_metadata"]["by_datataking_period"]["2018"]["DY"] == ["DY_2018", "DY_ext_2018"]
    assert "DY_ext_2018" in total["datasets_metadata"]["by_dataset"]


def test_accumulate_refuses_conflicts(halves, dy_events, data_events):
    normalised = normalise(halves[0])
    with pytest.raises(OutputError, match="normalised with unnormalised"):
        accumulate([halves[1], normalised])
    other_lumi = make_output(dy_events, data_events, slice(17, 40), lumi=41480.0)
    with pytest.raises(OutputError, match=r"\['lumi_pb'\]\['2018'\] differs"):
        accumulate([halves[0], other_lumi])
    other_meta = copy.deepcopy(halves[1])
    other_meta["datasets_metadata"]["by_dataset"]["DY_2018"]["xsec"] = 1.0
    with pytest.raises(OutputError, match="metadata of dataset 'DY_2018' differs in key 'xsec'"):
        accumulate([halves[0], other_meta])
    wrong_type = copy.deepcopy(halves[1])
    wrong_type["sumw"]["baseline"]["DY_2018"]["DY"] = [1.0]
    with pytest.raises(OutputError, match=r"\['sumw'\]\['baseline'\]\['DY_2018'\]\['DY'\]"):
        accumulate([halves[0], wrong_type])
    with pytest.raises(OutputError, match="no outputs"):
        accumulate([])


def test_accumulate_slice_keys(halves):
    a, b = copy.deepcopy(halves[0]), copy.deepcopy(halves[1])
    a["datasets_metadata"]["by_dataset"]["DY_2018"]["file_nevents"] = [17]
    b["datasets_metadata"]["by_dataset"]["DY_2018"]["file_nevents"] = [23]
    b["datasets_metadata"]["by_dataset"]["DY_2018"]["nevents"] = "23"  # PocketCoffea-style string
    b["datasets_metadata"]["by_dataset"]["DY_2018"]["nevents_estimated"] = True
    total = accumulate([a, b])
    meta = total["datasets_metadata"]["by_dataset"]["DY_2018"]
    assert "file_nevents" not in meta
    assert meta["nevents"] == 40 and meta["nevents_estimated"] is True
    # equal slices still add up (two jobs of 17 events each)
    total = accumulate([halves[0], halves[0]])
    assert total["datasets_metadata"]["by_dataset"]["DY_2018"]["nevents"] == 34


# --------------------------------------------------------------------------- normalise


def test_normalise_by_hand(halves, dy_events, data_events):
    genw, pt = dy_events
    output = accumulate(halves)
    before = snapshot(output)
    result = normalise(output)
    assert_same(before, output)  # input untouched

    factor = XSEC_DY * LUMI_2018 / genw.sum()
    assert result["processing_metadata"]["normalisation_factors"]["DY_2018"] == pytest.approx(factor, rel=1e-12)
    h = result["variables"]["sum_pt"]["DY"]["DY_2018"][{"cat": "baseline", "variation": "nominal"}]
    expected, _ = np.histogram(pt, bins=BINS, weights=genw * factor)
    np.testing.assert_allclose(h.values(), expected, rtol=1e-10)
    expected_var, _ = np.histogram(pt, bins=BINS, weights=(genw * factor) ** 2)
    np.testing.assert_allclose(h.variances(), expected_var, rtol=1e-10)
    # the total normalised MC yield is xsec * lumi (no selection in this output)
    assert result["sumw"]["baseline"]["DY_2018"]["DY"] == pytest.approx(XSEC_DY * LUMI_2018, rel=1e-10)
    assert result["sumw2"]["baseline"]["DY_2018"]["DY"] == pytest.approx((genw**2).sum() * factor**2, rel=1e-10)
    # data untouched, counts untouched
    assert_same(result["variables"]["sum_pt"]["DATA"], output["variables"]["sum_pt"]["DATA"])
    assert result["sumw"]["baseline"]["DATA_2018"]["DATA"] == 40.0
    assert result["cutflow"] == output["cutflow"]
    assert result["processing_metadata"]["normalised"] is True
    with pytest.raises(OutputError, match="already normalised"):
        normalise(result)


def test_normalise_skips_weights_already_applied(dy_events, data_events):
    genw, _ = dy_events
    applied = {"DY_2018": ["genWeight", "XS", "lumi"], "DATA_2018": []}
    output = make_output(dy_events, data_events, slice(0, 40), weights_applied=applied)
    assert normalisation_factors(output)["DY_2018"] == pytest.approx(1.0 / genw.sum(), rel=1e-12)
    applied = {"DY_2018": ["genWeight", "XS"], "DATA_2018": []}
    output = make_output(dy_events, data_events, slice(0, 40), weights_applied=applied)
    assert normalisation_factors(output)["DY_2018"] == pytest.approx(LUMI_2018 / genw.sum(), rel=1e-12)
    # explicit luminosity overrides the processing metadata
    factors = normalisation_factors(output, lumi_pb={"2018": 1000.0})
    assert factors["DY_2018"] == pytest.approx(1000.0 / genw.sum(), rel=1e-12)


def test_normalise_errors_name_the_dataset(halves):
    output = copy.deepcopy(halves[0])
    del output["sum_genweights"]["DY_2018"]
    with pytest.raises(OutputError, match="MC dataset 'DY_2018': sum_genweights has no entry"):
        normalise(output)
    output = copy.deepcopy(halves[0])
    output["processing_metadata"]["lumi_pb"] = {"2017": 41480.0}
    with pytest.raises(OutputError, match=r"no luminosity for year '2018'.*\['2017'\]"):
        normalise(output)
