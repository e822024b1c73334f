"""The numbers of a real run equal an independent uproot + numpy computation on the same files."""
from __future__ import annotations

import numpy as np
import pytest

from analysis_testlib import DATA, DY, TT, standard_fileset
from pcrun_reference import CATEGORIES, compute, flow_edges
from pc_core.output import load_output, normalise

RTOL = 1e-9

SAMPLES = {DY: "DYJetsToLL", DATA: "DATA_DoubleMuon", TT: "TTTo2L2Nu"}


@pytest.fixture(scope="module")
def output(iterative_run):
    return load_output(iterative_run / "output_all.coffea")


@pytest.fixture(scope="module")
def reference(nanoaod_dir):
    fileset = standard_fileset(nanoaod_dir)
    result = {}
    for dataset, entry in fileset.items():
        meta = entry["metadata"]
        result[dataset] = compute(entry["files"], meta["isMC"], meta["year"], meta.get("xsec"), dataset == DY)
    return result


def _samples(dataset, ref):
    if ref.samples is not None:
        return ref.samples
    return {SAMPLES[dataset]: np.ones(len(ref.n_good), dtype=bool)}


def test_cutflow_counts_are_exact(output, reference):
    cutflow = output["cutflow"]
    for dataset, ref in reference.items():
        assert cutflow["initial"][dataset] == ref.n_initial
        assert cutflow["skim"][dataset] == ref.n_skim
        assert cutflow["presel"][dataset] == ref.n_presel
        for cat in CATEGORIES:
            for sample, smask in _samples(dataset, ref).items():
                assert cutflow[cat][dataset][sample] == int((ref.masks[cat] & smask).sum()), (cat, dataset, sample)
    # the selection is not trivial: something is cut at each step
    assert cutflow["skim"][DY] < cutflow["initial"][DY]
    assert cutflow["presel"][TT] < cutflow["skim"][TT]
    assert output["processing_metadata"]["events"] == {d: r.n_initial for d, r in reference.items()}


def test_sum_genweights(output, reference):
    for dataset in (DY, TT):
        assert output["sum_genweights"][dataset] == pytest.approx(reference[dataset].sum_genweights, rel=RTOL)
        assert output["sum_signOf_genweights"][dataset] == reference[dataset].sum_sign
    assert DATA not in output["sum_genweights"]
    # nano_dy.root has negative weights: the sign sum differs from the event count
    assert reference[DY].sum_sign < reference[DY].n_initial


def test_sumw_and_sumw2(output, reference):
    for dataset, ref in reference.items():
        for cat in CATEGORIES:
            w = ref.weights[cat]["nominal"]
            for sample, smask in _samples(dataset, ref).items():
                mask = ref.masks[cat] & smask
                assert output["sumw"][cat][dataset][sample] == pytest.approx(w[mask].sum(), rel=RTOL, abs=1e-300)
                assert output["sumw2"][cat][dataset][sample] == pytest.approx((w[mask] ** 2).sum(), rel=RTOL)


def _check_hist(h, cat, variation, expected_values, expected_variances):
    view = h[{"cat": cat, "variation": variation}]
    np.testing.assert_allclose(view.values(flow=True), expected_values, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(view.variances(flow=True), expected_variances, rtol=RTOL, atol=1e-6)


def test_histograms_event_collection_positional_and_2d(output, reference):
    variables = output["variables"]
    checked = 0
    for dataset, ref in reference.items():
        is_mc = dataset != DATA
        variations = ["nominal", "sf_muUp", "sf_muDown", "sf_dimuUp", "sf_dimuDown"] if is_mc else ["nominal"]
        muon_event = ref.muon.event_index
        lead_first = np.concatenate([[0], np.cumsum(ref.muon.counts)[:-1]])
        for sample, smask in _samples(dataset, ref).items():
            h_nmu = variables["nmuon"][sample][dataset]
            assert list(h_nmu.axes["variation"]) == variations
            for cat in CATEGORIES:
                mask = ref.masks[cat] & smask
                for variation in variations:
                    w = ref.weights[cat][variation]
                    # event field, integer axis
                    edges = flow_edges(np.arange(0, 7))
                    vals = np.histogram(ref.n_good[mask], edges, weights=w[mask])[0]
                    var = np.histogram(ref.n_good[mask], edges, weights=w[mask] ** 2)[0]
                    _check_hist(h_nmu, cat, variation, vals, var)
                    # collection field, every object
                    objmask = mask[muon_event]
                    edges = flow_edges(np.linspace(0, 100, 21))
                    ow = w[muon_event][objmask]
                    pts = ref.muon.fields["pt"][objmask]
                    _check_hist(variables["muon_pt"][sample][dataset], cat, variation,
                                np.histogram(pts, edges, weights=ow)[0], np.histogram(pts, edges, weights=ow**2)[0])
                    # positional: the leading good muon (every preselected event has one)
                    lead = ref.muon.fields["pt"][lead_first[mask]]
                    _check_hist(variables["muon_pt_0"][sample][dataset], cat, variation,
                                np.histogram(lead, edges, weights=w[mask])[0],
                                np.histogram(lead, edges, weights=w[mask] ** 2)[0])
                    # 2D eta x pt (variable pt bins)
                    ex, ey = flow_edges(np.linspace(-2.4, 2.4, 7)), flow_edges([10, 20, 40, 80])
                    etas = ref.muon.fields["eta"][objmask]
                    v2 = np.histogram2d(etas, pts, [ex, ey], weights=ow)[0]
                    s2 = np.histogram2d(etas, pts, [ex, ey], weights=ow**2)[0]
                    _check_hist(variables["muon_eta_pt"][sample][dataset], cat, variation, v2, s2)
                    # a record field (MET.pt)
                    edges = flow_edges(np.linspace(0, 200, 11))
                    _check_hist(variables["met"][sample][dataset], cat, variation,
                                np.histogram(ref.met[mask], edges, weights=w[mask])[0],
                                np.histogram(ref.met[mask], edges, weights=w[mask] ** 2)[0])
                    checked += 1
            # only_categories: ht exists only in "inclusive"
            h_ht = variables["ht"][sample][dataset]
            assert list(h_ht.axes["cat"]) == ["inclusive"]
            mask = ref.masks["inclusive"] & smask
            w = ref.weights["inclusive"]["nominal"]
            edges = flow_edges([0, 50, 100, 200, 400])
            _check_hist(h_ht, "inclusive", "nominal", np.histogram(ref.ht[mask], edges, weights=w[mask])[0],
                        np.histogram(ref.ht[mask], edges, weights=w[mask] ** 2)[0])
    assert checked > 30
    # variations really differ from the nominal where they apply
    h = variables["nmuon"]["TTTo2L2Nu"][TT]
    assert h[{"cat": "two_mu", "variation": "sf_dimuUp"}].values().sum() > h[{"cat": "two_mu", "variation": "nominal"}].values().sum()


def test_columns(output, reference):
    ref = reference[TT]
    mask = ref.masks["two_mu"]
    cols = output["columns"]["TTTo2L2Nu"][TT]["two_mu"]
    np.testing.assert_array_equal(cols["MuonGood_N"], ref.muon.counts[mask])
    objmask = mask[ref.muon.event_index]
    np.testing.assert_allclose(cols["MuonGood_pt"], ref.muon.fields["pt"][objmask], rtol=0)
    np.testing.assert_allclose(cols["MuonGood_eta"], ref.muon.fields["eta"][objmask], rtol=0)
    # columns are configured only for two_mu
    assert set(output["columns"]["TTTo2L2Nu"][TT]) == {"two_mu"}


def test_metadata_and_normalisation(output, reference, nanoaod_dir):
    processing = output["processing_metadata"]
    assert processing["lumi_pb"] == {"2018": 59830.0, "2022_postEE": 26671.7}
    assert processing["weights_applied"][DY] == ["genWeight", "lumi", "XS", "sf_mu"]
    assert processing["weights_applied"][DATA] == []
    assert processing["normalised"] is False
    assert processing["skipped_files"] == []
    by_period = output["datasets_metadata"]["by_datataking_period"]
    assert by_period["2018"]["DYJetsToLL__highMET"] == [DY]
    assert output["datasets_metadata"]["by_dataset"][TT]["xsec"] == 87.3
    # the empty file of the DY dataset was processed as one (empty) chunk
    assert processing["files"][DY] == {str(nanoaod_dir / "nano_dy.root"): 40, str(nanoaod_dir / "nano_dy_empty.root"): 0}
    assert processing["chunks"][DY] == 2

    # XS and lumi are applied per event: normalisation divides MC by sum_genweights only
    normalised = normalise(output)
    for dataset in (DY, TT):
        factor = 1.0 / reference[dataset].sum_genweights
        for sample in output["variables"]["met"]:
            if dataset in output["variables"]["met"][sample]:
                before = output["variables"]["met"][sample][dataset].values(flow=True)
                after = normalised["variables"]["met"][sample][dataset].values(flow=True)
                np.testing.assert_allclose(after, before * factor, rtol=RTOL)
    np.testing.assert_array_equal(
        normalised["variables"]["met"]["DATA_DoubleMuon"][DATA].values(flow=True),
        output["variables"]["met"]["DATA_DoubleMuon"][DATA].values(flow=True),
    )

