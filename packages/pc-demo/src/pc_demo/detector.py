"""Detector simulation: resolutions, identification, isolation, b-tagging, trigger turn-ons, NanoAOD branches."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from .physics import Truth, pt_eta_phi
from .samples import ELE_MASS, MU_MASS

# --------------------------------------------------------------------------- detector simulation


def _f32(values: np.ndarray, bits: int | None = None) -> np.ndarray:
    """float32 values, with the mantissa rounded to ``bits`` bits as NanoAOD stores many floats."""
    out = np.asarray(values, dtype=np.float32)
    if bits is None or bits >= 23:
        return out
    shift = 23 - bits
    raw = out.view(np.uint32)
    mask = np.uint32((0xFFFFFFFF >> shift) << shift)
    rounded = (raw + np.uint32(1 << (shift - 1))) & mask
    finite = np.isfinite(out)
    return np.where(finite, rounded.view(np.float32), out)


def _collection(evt: np.ndarray, pt: np.ndarray, n_events: int, columns: Mapping[str, np.ndarray]) -> dict[str, ak.Array]:
    """Jagged branches ``{field: array}`` with objects sorted by decreasing pt inside each event."""
    order = np.lexsort((-pt, evt))
    counts = np.bincount(evt, minlength=n_events)
    return {name: ak.unflatten(values[order], counts) for name, values in columns.items()}


def _turn_on(pt: np.ndarray, threshold: float, plateau: float) -> np.ndarray:
    """Trigger efficiency versus offline pt: an error-function turn-on reaching ``plateau``."""
    x = (pt - threshold * 1.04) / (0.06 * threshold * math.sqrt(2.0))
    return plateau * 0.5 * (1.0 + _erf(x).astype(np.float64))


_erf = np.frompyfunc(math.erf, 1, 1)


def _btag_score(rng: np.random.Generator, flavour: np.ndarray) -> np.ndarray:
    """DeepJet b-tag discriminant: high for b jets (~75% above the 2018 tight WP 0.7264), low for light."""
    n = flavour.size
    light = rng.beta(0.45, 14.0, n)
    charm = rng.beta(1.1, 5.5, n)
    bottom = np.where(rng.random(n) < 0.85, rng.beta(9.0, 0.35, n), rng.beta(1.2, 2.0, n))
    score = np.select([flavour == 5, flavour == 4], [bottom, charm], light)
    return np.clip(score, 0.0, 1.0)


def _leading_two(evt: np.ndarray, pt: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the highest and second-highest pt among the given objects (0 if absent)."""
    order = np.lexsort((-pt, evt))
    evt_sorted, pt_sorted = evt[order], pt[order]
    first_index = np.searchsorted(evt_sorted, np.arange(n_events))
    counts = np.bincount(evt, minlength=n_events)
    lead = np.zeros(n_events)
    sub = np.zeros(n_events)
    has1, has2 = counts >= 1, counts >= 2
    lead[has1] = pt_sorted[first_index[has1]]
    sub[has2] = pt_sorted[first_index[has2] + 1]
    return lead, sub


def simulate_detector(
    rng: np.random.Generator, truth: Truth, is_mc: bool, pileup_mean: float
) -> dict[str, Any]:
    """Reconstructed NanoAOD-like branches (without event ids); pileup, generator-level truth only for MC."""
    n = truth.n
    out: dict[str, Any] = {}
    lep_pt, lep_eta, lep_phi = pt_eta_phi(truth.lep_p4)
    is_mu = np.abs(truth.lep_pdg) == 13

    # pileup: MC is generated with a broader profile than the data, as in real life
    true_int = rng.gamma(pileup_mean**2 / 150.0, 150.0 / pileup_mean, n)
    n_pu = rng.poisson(true_int)
    npvs = np.maximum(rng.poisson(0.72 * true_int) + 1, 1)
    npvs_good = np.maximum(rng.binomial(npvs, 0.96), np.minimum(npvs, 1))
    rho = np.maximum(0.52 * npvs + rng.normal(1.0, 1.5, n), 0.0)

    # ---------------- muons: prompt ones from the hard process plus non-prompt ones from hadron decays
    mu = is_mu
    res = np.where(np.abs(lep_eta[mu]) < 1.2, 0.01, 0.018) + 8e-5 * lep_pt[mu]
    prompt_pt = lep_pt[mu] * (1.0 + rng.normal(0.0, 1.0, mu.sum()) * res)
    n_fake = rng.poisson(0.12, n)
    fake_evt = np.repeat(np.arange(n), n_fake)
    m_evt = np.concatenate([truth.lep_evt[mu], fake_evt])
    m_pt = np.concatenate([prompt_pt, 3.0 + rng.exponential(4.0, fake_evt.size)])
    m_eta = np.concatenate([lep_eta[mu] + rng.normal(0, 5e-4, mu.sum()), rng.uniform(-2.4, 2.4, fake_evt.size)])
    m_phi = np.concatenate([lep_phi[mu] + rng.normal(0, 5e-4, mu.sum()), rng.uniform(-np.pi, np.pi, fake_evt.size)])
    m_charge = np.concatenate([-np.sign(truth.lep_pdg[mu]), rng.choice(np.array([-1, 1]), fake_evt.size)])
    prompt = np.concatenate([np.ones(mu.sum(), bool), np.zeros(fake_evt.size, bool)])
    m_phi = (m_phi + np.pi) % (2 * np.pi) - np.pi
    sel = (m_pt > 3.0) & (np.abs(m_eta) < 2.4) & (rng.random(m_pt.size) < np.where(prompt, 0.985, 1.0))
    u = rng.random(m_pt.size)
    iso = np.where(prompt, rng.exponential(0.025, m_pt.size) * (rng.random(m_pt.size) < 0.6), 0.1 + rng.exponential(0.6, m_pt.size))
    k = int(sel.sum())
    out.update({
        f"Muon_{name}": values for name, values in _collection(m_evt[sel], m_pt[sel], n, {
            "pt": m_pt[sel].astype(np.float32),
            "eta": _f32(m_eta[sel], 12),
            "phi": _f32(m_phi[sel], 12),
            "mass": _f32(np.full(k, MU_MASS), 8),
            "charge": m_charge[sel].astype(np.int32),
            "pdgId": (-13 * m_charge[sel]).astype(np.int32),
            "dxy": _f32(np.where(prompt, rng.normal(0, 0.0015, m_pt.size), rng.normal(0, 0.03, m_pt.size))[sel], 10),
            "dz": _f32(np.where(prompt, rng.normal(0, 0.004, m_pt.size), rng.normal(0, 0.05, m_pt.size))[sel], 10),
            "pfRelIso04_all": iso[sel].astype(np.float32),
            "looseId": (u < np.where(prompt, 0.997, 0.90))[sel],
            "mediumId": (u < np.where(prompt, 0.985, 0.50))[sel],
            "tightId": (u < np.where(prompt, 0.965, 0.30))[sel],
        }).items()
    })
    mu_evt, mu_pt, mu_iso = m_evt[sel], m_pt[sel], iso[sel]

    # ---------------- electrons
    el = ~is_mu
    res_e = np.sqrt((0.12 / np.sqrt(np.maximum(lep_pt[el], 1.0))) ** 2 + 0.012**2)
    e_prompt_pt = lep_pt[el] * (1.0 + rng.normal(0.0, 1.0, el.sum()) * res_e)
    n_fake_e = rng.poisson(0.10, n)
    fake_evt = np.repeat(np.arange(n), n_fake_e)
    nf = fake_evt.size
    e_evt = np.concatenate([truth.lep_evt[el], fake_evt])
    e_pt = np.concatenate([e_prompt_pt, 5.0 + rng.exponential(6.0, nf)])
    e_eta = np.concatenate([lep_eta[el] + rng.normal(0, 1e-3, el.sum()), rng.uniform(-2.5, 2.5, nf)])
    e_phi = np.concatenate([lep_phi[el] + rng.normal(0, 1e-3, el.sum()), rng.uniform(-np.pi, np.pi, nf)])
    e_phi = (e_phi + np.pi) % (2 * np.pi) - np.pi
    e_charge = np.concatenate([-np.sign(truth.lep_pdg[el]), rng.choice(np.array([-1, 1]), nf)])
    prompt = np.concatenate([np.ones(el.sum(), bool), np.zeros(nf, bool)])
    crack = (np.abs(e_eta) > 1.444) & (np.abs(e_eta) < 1.566)
    sel = (e_pt > 5.0) & (np.abs(e_eta) < 2.5) & (rng.random(e_pt.size) < np.where(prompt, np.where(crack, 0.7, 0.95), 1.0))
    cut_based = np.where(
        prompt,
        rng.choice(np.arange(5), e_pt.size, p=[0.03, 0.03, 0.06, 0.13, 0.75]),
        rng.choice(np.arange(5), e_pt.size, p=[0.50, 0.25, 0.15, 0.07, 0.03]),
    )
    e_iso = np.where(prompt, rng.exponential(0.035, e_pt.size), 0.05 + rng.exponential(0.4, e_pt.size))
    k = int(sel.sum())
    out.update({
        f"Electron_{name}": values for name, values in _collection(e_evt[sel], e_pt[sel], n, {
            "pt": e_pt[sel].astype(np.float32),
            "eta": _f32(e_eta[sel], 12),
            "phi": _f32(e_phi[sel], 12),
            "mass": _f32(np.abs(rng.normal(ELE_MASS, 0.004, k)), 10),
            "charge": e_charge[sel].astype(np.int32),
            "pdgId": (-11 * e_charge[sel]).astype(np.int32),
            "cutBased": cut_based[sel].astype(np.int32),
            "pfRelIso03_all": e_iso[sel].astype(np.float32),
            "deltaEtaSC": _f32(rng.normal(0.0, 0.015, k), 10),
            "dxy": _f32(rng.normal(0, 0.003, k), 10),
            "dz": _f32(rng.normal(0, 0.006, k), 10),
        }).items()
    })
    ele_evt, ele_pt, ele_tight = e_evt[sel], e_pt[sel], cut_based[sel] >= 3

    # ---------------- jets: hard-process and radiation jets smeared, plus soft pileup jets
    j_pt, j_eta, j_phi = pt_eta_phi(truth.jet_p4)
    j_mass_true = np.sqrt(np.maximum(truth.jet_p4[0] ** 2 - np.sum(truth.jet_p4[1:] ** 2, axis=0), 0.0))
    j_res = np.sqrt((1.0 / np.sqrt(np.maximum(j_pt, 1.0))) ** 2 + 0.05**2)
    j_reco = j_pt * np.maximum(1.0 + rng.normal(0.0, 1.0, j_pt.size) * j_res, 0.05)
    n_pu_jets = rng.poisson(0.012 * n_pu)
    pu_evt = np.repeat(np.arange(n), n_pu_jets)
    npu = pu_evt.size
    pu_pt = 15.0 + rng.exponential(5.0, npu)
    all_evt = np.concatenate([truth.jet_evt, pu_evt])
    all_pt = np.concatenate([j_reco, pu_pt])
    all_eta = np.concatenate([j_eta + rng.normal(0, 0.01, j_pt.size), rng.uniform(-4.7, 4.7, npu)])
    all_phi = np.concatenate([j_phi + rng.normal(0, 0.01, j_pt.size), rng.uniform(-np.pi, np.pi, npu)])
    all_phi = (all_phi + np.pi) % (2 * np.pi) - np.pi
    all_mass = np.concatenate([j_mass_true * j_reco / np.maximum(j_pt, 1e-9), pu_pt * rng.lognormal(np.log(0.15), 0.3, npu)])
    all_flav = np.concatenate([truth.jet_flavour, np.zeros(npu, dtype=np.int64)])
    is_pu = np.concatenate([np.zeros(j_pt.size, bool), np.ones(npu, bool)])
    sel = (all_pt > 15.0) & (np.abs(all_eta) < 4.7)
    jet_id = rng.choice(np.array([6, 2, 0]), all_pt.size, p=[0.93, 0.05, 0.02])
    pu_id = np.where(
        all_pt >= 50.0, 7,
        np.where(is_pu, rng.choice(np.array([0, 4, 6, 7]), all_pt.size, p=[0.75, 0.15, 0.06, 0.04]),
                 rng.choice(np.array([0, 4, 6, 7]), all_pt.size, p=[0.04, 0.06, 0.10, 0.80])),
    )
    k = int(sel.sum())
    columns = {
        "pt": _f32(all_pt[sel], 10),
        "eta": _f32(all_eta[sel], 12),
        "phi": _f32(all_phi[sel], 12),
        "mass": _f32(all_mass[sel], 10),
        "btagDeepFlavB": _f32(_btag_score(rng, all_flav[sel]), 10),
        "jetId": jet_id[sel].astype(np.int32),
        "puId": pu_id[sel].astype(np.int32),
        "area": _f32(rng.normal(0.50, 0.03, k), 10),
        "rawFactor": _f32(np.clip(rng.normal(0.06, 0.04, k), -0.2, 0.6), 6),
    }
    if is_mc:
        columns["hadronFlavour"] = all_flav[sel].astype(np.int32)
    out.update({f"Jet_{name}": values for name, values in _collection(all_evt[sel], all_pt[sel], n, columns).items()})

    # ---------------- missing transverse momentum: neutrinos plus the mismeasurement of visible objects
    dpx = np.zeros(n)
    dpy = np.zeros(n)
    jet_lost = j_pt - j_reco  # the part of the true jet momentum the detector did not see
    np.add.at(dpx, truth.jet_evt, jet_lost * np.cos(j_phi))
    np.add.at(dpy, truth.jet_evt, jet_lost * np.sin(j_phi))
    sum_et = 60.0 + 4.0 * npvs + rng.gamma(4.0, 30.0, n)
    np.add.at(sum_et, all_evt[sel], all_pt[sel])
    sigma_pf = 0.55 * np.sqrt(sum_et)
    met_px = truth.nu_px + dpx + rng.normal(0, 1, n) * sigma_pf
    met_py = truth.nu_py + dpy + rng.normal(0, 1, n) * sigma_pf
    puppi_px = truth.nu_px + 0.9 * dpx + rng.normal(0, 1, n) * (0.8 * sigma_pf / np.sqrt(1.0 + 0.01 * npvs))
    puppi_py = truth.nu_py + 0.9 * dpy + rng.normal(0, 1, n) * (0.8 * sigma_pf / np.sqrt(1.0 + 0.01 * npvs))
    out["MET_pt"] = np.hypot(met_px, met_py).astype(np.float32)
    out["MET_phi"] = _f32(np.arctan2(met_py, met_px), 12)
    out["MET_sumEt"] = _f32(sum_et, 10)
    out["PuppiMET_pt"] = np.hypot(puppi_px, puppi_py).astype(np.float32)
    out["PuppiMET_phi"] = _f32(np.arctan2(puppi_py, puppi_px), 12)

    # ---------------- triggers, emulated on the offline objects with turn-ons and plateau efficiencies
    iso_mu = mu_iso < 0.2
    lead_mu, sub_mu = _leading_two(mu_evt[iso_mu], mu_pt[iso_mu], n)
    lead_e, sub_e = _leading_two(ele_evt[ele_tight], ele_pt[ele_tight], n)
    u_single, u_double, u_ele, u_double_e = (rng.random(n) for _ in range(4))
    out["HLT_IsoMu24"] = u_single < _turn_on(lead_mu, 24.0, 0.93)
    out["HLT_IsoMu27"] = u_single < _turn_on(lead_mu, 27.0, 0.93)
    out["HLT_Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8"] = u_double < 0.92 * _turn_on(lead_mu, 17.0, 1.0) * _turn_on(sub_mu, 8.0, 1.0)
    out["HLT_Ele32_WPTight_Gsf"] = u_ele < _turn_on(lead_e, 32.0, 0.88)
    out["HLT_Ele23_Ele12_CaloIdL_TrackIdL_IsoVL"] = u_double_e < 0.93 * _turn_on(lead_e, 23.0, 1.0) * _turn_on(sub_e, 12.0, 1.0)

    # ---------------- vertices, pileup, rho, MET filters
    out["PV_npvs"] = npvs.astype(np.int32)
    out["PV_npvsGood"] = npvs_good.astype(np.int32)
    out["PV_ndof"] = _f32(np.maximum(rng.normal(80.0, 30.0, n) + 1.5 * npvs, 4.0), 8)
    out["PV_x"] = _f32(rng.normal(0.0107, 0.0012, n), 10)  # the 2018 beam spot
    out["PV_y"] = _f32(rng.normal(0.0417, 0.0012, n), 10)
    out["PV_z"] = _f32(rng.normal(0.36, 3.5, n), 10)
    if is_mc:
        out["Pileup_nTrueInt"] = _f32(true_int, 5)
        out["Pileup_nPU"] = n_pu.astype(np.int32)
    out["fixedGridRhoFastjetAll"] = rho.astype(np.float32)
    out["fixedGridRhoFastjetCentral"] = np.maximum(rho * rng.normal(0.95, 0.05, n), 0.0).astype(np.float32)
    filters = {
        "Flag_goodVertices": 0.9995, "Flag_globalSuperTightHalo2016Filter": 0.999, "Flag_HBHENoiseFilter": 0.999,
        "Flag_HBHENoiseIsoFilter": 0.999, "Flag_EcalDeadCellTriggerPrimitiveFilter": 0.9995,
        "Flag_BadPFMuonFilter": 0.9995, "Flag_eeBadScFilter": 0.9999, "Flag_ecalBadCalibFilter": 0.9995,
    }
    all_pass = np.ones(n, dtype=bool)
    for name, efficiency in filters.items():
        out[name] = rng.random(n) < efficiency
        all_pass &= out[name]
    out["Flag_ecalBadCalibFilterV2"] = out["Flag_ecalBadCalibFilter"].copy()
    out["Flag_METFilters"] = all_pass
    return out
