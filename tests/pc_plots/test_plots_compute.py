"""The numbers behind the plots, checked against independent numpy computations on the raw fills."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import chi2

import plots_synthetic as syn
from pc_plots.compute import (blind_mask, build_plot_arrays, fold_flow, hist_to_arrays, poisson_errors,
                              quadrature_band, systematic_shifts)
from pc_plots.inputs import DatasetIndex, normalise_for_plotting
from pc_plots.style import load_style
from pc_plots.tasks import cutflow_tasks, histogram_tasks, year_selections

EDGES = {"jet_pt": np.linspace(0, 200, 21), "ht": np.array([0, 50, 100, 200, 400, 800.0])}


@pytest.fixture(scope="module")
def world():
    fills: dict = {}
    raw = syn.build_output(fills=fills)
    return raw, fills


def _tasks(raw, style, histogram="jet_pt", year=syn.YEAR):
    output = normalise_for_plotting(raw, "synthetic")
    index = DatasetIndex.from_output(output, "synthetic")
    sels = [s for s in year_selections(index, output, style, [year])]
    sub = dict(output, variables={histogram: output["variables"][histogram]})
    (task,) = list(histogram_tasks(sub, index, sels, list(syn.CATEGORIES), "synthetic"))
    return task


def _expected(fills, raw, histogram, sample, cat, variation="nominal", squared=False, year=syn.YEAR):
    """Sum over the sample's datasets of np.histogram of the raw fills, clipped into range, times xsec*lumi/genw."""
    edges = EDGES[histogram]
    total = np.zeros(len(edges) - 1)
    for (h, s, ds, c, v), (xs, w) in fills.items():
        if (h, s, c, v) != (histogram, sample, cat, variation):
            continue
        dsyear = syn.MC_DATASETS[ds][2] if ds in syn.MC_DATASETS else syn.DATA_DATASETS[ds][1]
        if dsyear != year:
            continue
        factor = syn.norm_factor(raw, ds) if ds in syn.MC_DATASETS else 1.0
        x = np.clip(xs[0], edges[0], np.nextafter(edges[-1], -np.inf))
        weights = (w * factor) ** 2 if squared else w * factor
        total += np.histogram(x, bins=edges, weights=weights)[0]
    return total


def test_fold_flow_adds_flow_bins_into_edge_bins():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 10, size=(3, 7))  # axis 1: [underflow, 5 bins, overflow]
    folded = fold_flow(a, axis=1, underflow=True, overflow=True)
    expected = a[:, 1:6].copy()
    expected[:, 0] += a[:, 0]
    expected[:, -1] += a[:, 6]
    np.testing.assert_allclose(folded, expected)
    np.testing.assert_allclose(fold_flow(a, 1, False, True)[:, -1], a[:, 5] + a[:, 6])
    assert fold_flow(a, 1, False, False).shape == (3, 7)


def test_hist_to_arrays_matches_numpy_histogram_with_flow_folded(world):
    raw, fills = world
    h = raw["variables"]["jet_pt"]["TTTo"]["TTTo_2022_postEE"]
    arrays = hist_to_arrays(h)
    xs, w = fills[("jet_pt", "TTTo", "TTTo_2022_postEE", "SR", "pileupDown")]
    assert (xs[0] < 0).any() and (xs[0] >= 200).any()  # the fixture really has flow entries
    clipped = np.clip(xs[0], 0, np.nextafter(200, 0))
    values, variances = arrays.get("SR", "pileupDown")
    np.testing.assert_allclose(values, np.histogram(clipped, bins=EDGES["jet_pt"], weights=w)[0])
    np.testing.assert_allclose(variances, np.histogram(clipped, bins=EDGES["jet_pt"], weights=w**2)[0])
    assert arrays.get("SR", "nonexistent") is None


def test_stack_totals_equal_sum_of_normalised_samples(world):
    raw, fills = world
    style = load_style()
    task = _tasks(raw, style)
    assert set(task.data_samples) == {"DATA_Mu"}
    for cat in syn.CATEGORIES:
        p = build_plot_arrays("jet_pt", cat, task.samples, task.data_samples, style)
        tt = _expected(fills, raw, "jet_pt", "TTTo", cat)
        dy = _expected(fills, raw, "jet_pt", "DY", cat)
        entries = {e.name: e.values for e in p.stack}
        np.testing.assert_allclose(entries["TTTo"], tt, rtol=1e-10)
        np.testing.assert_allclose(entries["DY"], dy, rtol=1e-10)
        np.testing.assert_allclose(p.mc_total, tt + dy, rtol=1e-10)
        stat = _expected(fills, raw, "jet_pt", "TTTo", cat, squared=True) + _expected(fills, raw, "jet_pt", "DY", cat, squared=True)
        np.testing.assert_allclose(p.mc_stat_variance, stat, rtol=1e-10)
        # data untouched by normalisation
        np.testing.assert_allclose(p.data, _expected(fills, raw, "jet_pt", "DATA_Mu", cat))
        # stack order: smallest yield at the bottom
        yields = [float(e.values.sum()) for e in p.stack]
        assert yields == sorted(yields)


def test_band_is_quadrature_of_stat_and_systematics(world):
    raw, fills = world
    style = load_style()
    task = _tasks(raw, style)
    cat = "SR"
    p = build_plot_arrays("jet_pt", cat, task.samples, task.data_samples, style)
    nom = sum(_expected(fills, raw, "jet_pt", s, cat) for s in ("TTTo", "DY"))
    up = sum(_expected(fills, raw, "jet_pt", s, cat, "pileupUp") for s in ("TTTo", "DY"))
    down = sum(_expected(fills, raw, "jet_pt", s, cat, "pileupDown") for s in ("TTTo", "DY"))
    btag = sum(_expected(fills, raw, "jet_pt", s, cat, "btagSFUp") for s in ("TTTo", "DY"))
    stat2 = sum(_expected(fills, raw, "jet_pt", s, cat, squared=True) for s in ("TTTo", "DY"))
    pu_up = np.clip(np.maximum(up - nom, down - nom), 0, None)
    pu_dn = np.clip(np.maximum(nom - up, nom - down), 0, None)
    bt = np.abs(btag - nom)  # one direction only: symmetrised
    np.testing.assert_allclose(p.band_up, np.sqrt(stat2 + pu_up**2 + bt**2), rtol=1e-9)
    np.testing.assert_allclose(p.band_down, np.sqrt(stat2 + pu_dn**2 + bt**2), rtol=1e-9)
    assert p.systematics == ["btagSF", "pileup"]
    assert np.any(p.band_up > np.sqrt(stat2) * 1.01)
    # --no-syst: statistics only; --only-syst pileup: btagSF left out
    p_stat = build_plot_arrays("jet_pt", cat, task.samples, task.data_samples, style, with_syst=False)
    np.testing.assert_allclose(p_stat.band_up, np.sqrt(stat2), rtol=1e-9)
    p_pu = build_plot_arrays("jet_pt", cat, task.samples, task.data_samples, style, only_syst=("pileup",))
    np.testing.assert_allclose(p_pu.band_up, np.sqrt(stat2 + pu_up**2), rtol=1e-9)


def test_systematic_shifts_one_sided_cases():
    nominal = np.array([10.0, 10.0, 10.0, 10.0])
    shifts = systematic_shifts(nominal, {
        "aUp": np.array([12.0, 11.0, 9.0, 10.0]),
        "aDown": np.array([9.0, 12.0, 8.0, 10.0]),  # bin 1: both up; bin 2: both down
        "bUp": np.array([10.5, 9.0, 10.0, 13.0]),   # no Down: symmetrised
    })
    np.testing.assert_allclose(shifts["a"][1], [2, 2, 0, 0])
    np.testing.assert_allclose(shifts["a"][0], [1, 0, 2, 0])
    np.testing.assert_allclose(shifts["b"][0], [0.5, 1, 0, 3])
    np.testing.assert_allclose(shifts["b"][1], [0.5, 1, 0, 3])
    down, up = quadrature_band(np.array([4.0, 0, 0, 0]), shifts)
    np.testing.assert_allclose(up, np.sqrt([4 + 4 + 0.25, 4 + 1, 0, 9]))
    np.testing.assert_allclose(down, np.sqrt([4 + 1 + 0.25, 1, 4, 9]))


def test_blinded_ranges_hide_data(world):
    raw, fills = world
    style = dataclasses.replace(load_style(), blinding=load_style().blinding)
    base = load_style()
    from pc_plots.style import BlindingRule
    style = dataclasses.replace(base, blinding=(BlindingRule(categories=("SR",), histograms=("jet_.*",), ranges=((55.0, 100.0),)),))
    task = _tasks(raw, style)
    p = build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, style)
    data = _expected(fills, raw, "jet_pt", "DATA_Mu", "SR")
    hidden = np.zeros(20, dtype=bool)
    hidden[5:10] = True  # bins [50,60) ... [90,100) overlap [55, 100)
    np.testing.assert_array_equal(p.blinded, hidden)
    assert np.all(np.isnan(p.data[hidden])) and np.all(np.isnan(p.ratio[hidden]))
    np.testing.assert_allclose(p.data[~hidden], data[~hidden])
    # other category untouched
    p_base = build_plot_arrays("jet_pt", "baseline", task.samples, task.data_samples, style)
    assert not p_base.blinded.any()
    # a rule without ranges blinds everything
    full = dataclasses.replace(base, blinding=(BlindingRule(categories=("SR",)),))
    assert np.all(np.isnan(build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, full).data))
    np.testing.assert_array_equal(blind_mask(np.array([0, 1, 2, 3.0]), [(1.0, 2.0)]), [False, True, False])


def test_rescale_groups_and_signal(world):
    raw, fills = world
    base = load_style()
    task = _tasks(raw, base)
    tt = _expected(fills, raw, "jet_pt", "TTTo", "SR")
    dy = _expected(fills, raw, "jet_pt", "DY", "SR")
    rescaled = dataclasses.replace(base, rescale={"DY": 2.5})
    p = build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, rescaled)
    np.testing.assert_allclose({e.name: e.values for e in p.stack}["DY"], 2.5 * dy, rtol=1e-10)
    np.testing.assert_allclose(p.mc_total, tt + 2.5 * dy, rtol=1e-10)
    grouped = dataclasses.replace(base, groups={"bkg": ("TTTo", "DY")}, rescale={"bkg": 0.5, "TTTo": 2.0},
                                  labels={"bkg": "All background"}, colors={"bkg": "#123456"})
    p = build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, grouped)
    assert [(e.name, e.label, e.color) for e in p.stack] == [("bkg", "All background", "#123456")]
    np.testing.assert_allclose(p.stack[0].values, 0.5 * (2.0 * tt + dy), rtol=1e-10)
    signal = dataclasses.replace(base, signal={"TTTo": 10.0}, order=("DY",))
    p = build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, signal)
    assert [e.name for e in p.stack] == ["DY"] and [e.name for e in p.signals] == ["TTTo"]
    np.testing.assert_allclose(p.signals[0].values, 10 * tt, rtol=1e-10)
    np.testing.assert_allclose(p.mc_total, dy, rtol=1e-10)
    excluded = dataclasses.replace(base, exclude_samples=("DY",))
    p = build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, excluded)
    np.testing.assert_allclose(p.mc_total, tt, rtol=1e-10)


def test_density_normalises_to_unit_area(world):
    raw, _ = world
    style = load_style()
    task = _tasks(raw, style, "ht")
    p = build_plot_arrays("ht", "SR", task.samples, task.data_samples, style, density=True)
    widths = np.diff(EDGES["ht"])
    assert np.sum(p.mc_total * widths) == pytest.approx(1.0)
    assert np.sum(p.data * widths) == pytest.approx(1.0)
    assert np.sum(sum(e.values for e in p.stack) * widths) == pytest.approx(1.0)


def test_year_combination_sums_years_and_lumi(world):
    raw, fills = world
    style = dataclasses.replace(load_style(), year_combinations={"Run3": (syn.YEAR, syn.YEAR2)})
    output = normalise_for_plotting(raw, "synthetic")
    index = DatasetIndex.from_output(output, "synthetic")
    sels = {s.name: s for s in year_selections(index, output, style, [])}
    assert set(sels) == {syn.YEAR, syn.YEAR2, "Run3"}
    assert sels["Run3"].lumi_fb == pytest.approx((syn.LUMI_PB[syn.YEAR] + syn.LUMI_PB[syn.YEAR2]) / 1000)
    assert sels[syn.YEAR].com == 13.6
    sub = dict(output, variables={"jet_pt": output["variables"]["jet_pt"]})
    (task,) = [t for t in histogram_tasks(sub, index, [sels["Run3"]], ["SR"], "x")]
    p = build_plot_arrays("jet_pt", "SR", task.samples, task.data_samples, style)
    expected_tt = _expected(fills, raw, "jet_pt", "TTTo", "SR") + _expected(fills, raw, "jet_pt", "TTTo", "SR", year=syn.YEAR2)
    np.testing.assert_allclose({e.name: e.values for e in p.stack}["TTTo"], expected_tt, rtol=1e-10)


def test_poisson_errors_are_garwood_intervals():
    n = np.array([0.0, 1.0, 4.0, 37.0])
    alpha = 1 - 0.682689492137
    lo = np.nan_to_num(chi2.ppf(alpha / 2, 2 * n) / 2)
    hi = chi2.ppf(1 - alpha / 2, 2 * (n + 1)) / 2
    down, up = poisson_errors(n)
    np.testing.assert_allclose(down, n - lo, rtol=1e-6)
    np.testing.assert_allclose(up, hi - n, rtol=1e-6)


def test_cutflow_table_sums_datasets_and_normalised_yields(world):
    raw, _ = world
    style = load_style()
    output = normalise_for_plotting(raw, "synthetic")
    index = DatasetIndex.from_output(output, "synthetic")
    sels = year_selections(index, output, style, [syn.YEAR])
    tasks = {t.category: t for t in cutflow_tasks(output, index, sels, list(syn.CATEGORIES))}
    rows = {r.sample: r for r in tasks["SR"].rows}
    dy_sets = ["DY_M50_2022_postEE", "DY_M10_2022_postEE"]
    assert rows["DY"].counts["initial"] == sum(raw["cutflow"]["initial"][d] for d in dy_sets)
    assert rows["DY"].counts["SR"] == sum(raw["cutflow"]["SR"][d]["DY"] for d in dy_sets)
    assert rows["DY"].sumw == pytest.approx(sum(raw["sumw"]["SR"][d]["DY"] * syn.norm_factor(raw, d) for d in dy_sets))
    assert rows["DY"].sumw_err == pytest.approx(np.sqrt(sum(raw["sumw2"]["SR"][d]["DY"] * syn.norm_factor(raw, d) ** 2
                                                            for d in dy_sets)))
    assert rows["DATA_Mu"].is_data and rows["DATA_Mu"].sumw == pytest.approx(raw["sumw"]["SR"]["DATA_Mu_2022_postEE_F"]["DATA_Mu"])
    assert tasks["SR"].steps == ["initial", "skim", "presel", "SR"]


def test_normalisation_leaves_input_untouched_and_refuses_nothing_twice(world):
    raw, _ = world
    before = raw["variables"]["jet_pt"]["TTTo"]["TTTo_2022_postEE"].values().copy()
    out = normalise_for_plotting(raw, "synthetic")
    assert out["processing_metadata"]["normalised"] is True
    np.testing.assert_array_equal(raw["variables"]["jet_pt"]["TTTo"]["TTTo_2022_postEE"].values(), before)
    assert normalise_for_plotting(out, "synthetic") is out  # already normalised: used as is


def test_ratio_left_out_where_the_prediction_is_not_positive():
    """Negative-weight MC can sum to <= 0 in a bin: no ratio there, and no negative error bars."""
    from pc_plots.compute import PlotArrays

    data = np.array([4.0, 2.0, 3.0])
    down, up = poisson_errors(data)
    arrays = PlotArrays(
        histogram="h", category="c", edges=np.array([0.0, 1.0, 2.0, 3.0]), xlabel="x", stack=[], signals=[],
        mc_total=np.array([2.0, -0.5, 0.0]), mc_stat_variance=np.zeros(3), band_down=np.zeros(3),
        band_up=np.zeros(3), systematics=[], data=data, data_err_down=down, data_err_up=up,
    )
    assert arrays.ratio[0] == pytest.approx(2.0)
    assert np.isnan(arrays.ratio[1]) and np.isnan(arrays.ratio[2])
    lo, hi = arrays.ratio_err
    assert lo[0] == pytest.approx(down[0] / 2.0) and hi[0] == pytest.approx(up[0] / 2.0)
    assert not np.any(lo < 0) and not np.any(hi < 0)
