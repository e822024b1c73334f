"""Generator-level events: a Breit-Wigner Z -> ll and a ttbar cascade t -> W b -> l nu b, in numpy."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .samples import B_MASS, DY, ELE_MASS, MU_MASS, TOP_MASS, TOP_WIDTH, TTBAR, W_MASS, W_WIDTH, Z_MASS, Z_WIDTH

# --------------------------------------------------------------------------- kinematics


def _p4(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """(E, px, py, pz) rows from pt, eta, phi, mass."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return np.stack([energy, px, py, pz])


def pt_eta_phi(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p4[1], p4[2])
    eta = np.arcsinh(p4[3] / np.maximum(pt, 1e-9))
    return pt, eta, np.arctan2(p4[2], p4[1])


def _boost(p4: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Boost four-vectors given in the parent's rest frame into the frame where the parent is ``parent``."""
    beta = parent[1:] / parent[0]
    beta2 = np.sum(beta**2, axis=0)
    gamma = 1.0 / np.sqrt(np.maximum(1.0 - beta2, 1e-12))
    bp = np.sum(beta * p4[1:], axis=0)
    coef = np.where(beta2 > 0, (gamma - 1.0) / np.where(beta2 > 0, beta2, 1.0), 0.0)
    energy = gamma * (p4[0] + bp)
    momentum = p4[1:] + (coef * bp + gamma * p4[0]) * beta
    return np.vstack([energy, momentum])


def _cos_theta(rng: np.random.Generator, n: int, one_plus_cos2: bool) -> np.ndarray:
    """Polar-angle cosines, flat or distributed as 1 + cos^2 (spin-1 to two fermions)."""
    if not one_plus_cos2:
        return rng.uniform(-1.0, 1.0, n)
    # inverse CDF of (3/8)(1+c^2): solve c^3 + 3c = 8u - 4 (Cardano, one real root)
    q = 4.0 - 8.0 * rng.random(n)
    root = np.sqrt(q**2 / 4.0 + 1.0)
    return np.cbrt(-q / 2.0 + root) + np.cbrt(-q / 2.0 - root)


def _two_body(
    rng: np.random.Generator, parent: np.ndarray, m1: np.ndarray, m2: np.ndarray, one_plus_cos2: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Decay ``parent`` to two daughters of masses m1, m2; returns their lab four-vectors."""
    n = parent.shape[1]
    mass = np.sqrt(np.maximum(parent[0] ** 2 - np.sum(parent[1:] ** 2, axis=0), 0.0))
    pstar2 = (mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)
    pstar = np.sqrt(np.maximum(pstar2, 0.0)) / (2.0 * np.maximum(mass, 1e-9))
    cos = _cos_theta(rng, n, one_plus_cos2)
    sin = np.sqrt(1.0 - cos**2)
    phi = rng.uniform(-np.pi, np.pi, n)
    direction = np.stack([sin * np.cos(phi), sin * np.sin(phi), cos])
    d1 = np.vstack([np.sqrt(pstar**2 + m1**2), pstar * direction])
    d2 = np.vstack([np.sqrt(pstar**2 + m2**2), -pstar * direction])
    return _boost(d1, parent), _boost(d2, parent)


def _breit_wigner(rng: np.random.Generator, n: int, m0: float, width: float, lo: float, hi: float) -> np.ndarray:
    """Masses from a Breit-Wigner (Cauchy) truncated to [lo, hi], by inverse CDF."""
    cdf = lambda m: 0.5 + np.arctan(2.0 * (m - m0) / width) / np.pi  # noqa: E731
    u = rng.uniform(cdf(lo), cdf(hi), n)
    return m0 + 0.5 * width * np.tan(np.pi * (u - 0.5))


def _system(rng: np.random.Generator, mass: np.ndarray, pt: np.ndarray, rapidity: np.ndarray) -> np.ndarray:
    """A resonance four-vector from its mass, transverse momentum and rapidity (phi uniform)."""
    phi = rng.uniform(-np.pi, np.pi, mass.size)
    mt = np.sqrt(mass**2 + pt**2)
    return np.stack([mt * np.cosh(rapidity), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(rapidity)])


# --------------------------------------------------------------------------- generator-level events


@dataclass
class Truth:
    """Generator-level content of ``n`` events, objects as flat arrays with their event index."""

    n: int
    lep_evt: np.ndarray
    lep_p4: np.ndarray
    lep_pdg: np.ndarray  # signed: 13 = mu-, -13 = mu+, 11 = e-, -11 = e+
    jet_evt: np.ndarray
    jet_p4: np.ndarray
    jet_flavour: np.ndarray  # hadron flavour 0, 4, 5
    nu_px: np.ndarray
    nu_py: np.ndarray

    @staticmethod
    def concatenate(parts: list[Truth]) -> Truth:
        offsets = np.cumsum([0] + [p.n for p in parts[:-1]])
        return Truth(
            n=sum(p.n for p in parts),
            lep_evt=np.concatenate([p.lep_evt + o for p, o in zip(parts, offsets)]),
            lep_p4=np.concatenate([p.lep_p4 for p in parts], axis=1),
            lep_pdg=np.concatenate([p.lep_pdg for p in parts]),
            jet_evt=np.concatenate([p.jet_evt + o for p, o in zip(parts, offsets)]),
            jet_p4=np.concatenate([p.jet_p4 for p in parts], axis=1),
            jet_flavour=np.concatenate([p.jet_flavour for p in parts]),
            nu_px=np.concatenate([p.nu_px for p in parts]),
            nu_py=np.concatenate([p.nu_py for p in parts]),
        )

    def permuted(self, order: np.ndarray) -> Truth:
        """The same events in the order ``order`` (new event i is old event order[i])."""
        new_index = np.empty_like(order)
        new_index[order] = np.arange(order.size)
        return Truth(
            self.n, new_index[self.lep_evt], self.lep_p4, self.lep_pdg, new_index[self.jet_evt],
            self.jet_p4, self.jet_flavour, self.nu_px[order], self.nu_py[order],
        )


def _extra_jets(
    rng: np.random.Generator, counts: np.ndarray, scale: float, flavour_probs: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Initial/final-state radiation jets: a falling pt spectrum, wide in eta, mostly light flavour."""
    evt = np.repeat(np.arange(counts.size), counts)
    n = evt.size
    pt = 12.0 + rng.exponential(scale, n)
    eta = np.clip(rng.normal(0.0, 2.0, n), -4.9, 4.9)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = pt * rng.lognormal(np.log(0.12), 0.35, n)
    flavour = rng.choice(np.array([0, 4, 5]), size=n, p=flavour_probs)
    return evt, _p4(pt, eta, phi, mass), flavour


def _lepton_pdg(rng: np.random.Generator, n: int, charge: np.ndarray, p_muon: float = 0.5) -> np.ndarray:
    flavour = np.where(rng.random(n) < p_muon, 13, 11)
    return -charge * flavour  # a negative lepton has a positive pdgId


def generate_drell_yan(rng: np.random.Generator, n: int) -> Truth:
    """Z/gamma* -> ee/mumu with m > 50 GeV: a Breit-Wigner peak on a 1/m^2 continuum, plus recoiling jets."""
    continuum = rng.random(n) < 0.06
    u = rng.random(n)
    mass = np.where(
        continuum,
        1.0 / (1.0 / 50.0 - u * (1.0 / 50.0 - 1.0 / 500.0)),
        _breit_wigner(rng, n, Z_MASS, Z_WIDTH, 50.0, 500.0),
    )
    z_pt = rng.gamma(1.4, 9.0, n)
    z = _system(rng, mass, z_pt, np.clip(rng.normal(0.0, 1.7, n), -5.0, 5.0))
    charge = rng.choice(np.array([-1, 1]), n)
    pdg1 = _lepton_pdg(rng, n, charge)
    lep_mass = np.where(np.abs(pdg1) == 13, MU_MASS, ELE_MASS)
    l1, l2 = _two_body(rng, z, lep_mass, lep_mass, one_plus_cos2=True)

    n_jets = rng.poisson(0.5 + z_pt / 25.0)
    jet_evt, jet_p4, flavour = _extra_jets(rng, n_jets, 16.0, (0.88, 0.08, 0.04))
    # the leading jet balances the Z transverse momentum
    first = np.zeros(jet_evt.size, dtype=bool)
    first[np.cumsum(n_jets)[n_jets > 0] - n_jets[n_jets > 0]] = True
    zpt, zeta, zphi = pt_eta_phi(z)
    rec_pt = np.maximum(zpt[jet_evt[first]] * rng.normal(1.0, 0.2, first.sum()), 12.0)
    rec_phi = zphi[jet_evt[first]] + np.pi + rng.normal(0.0, 0.25, first.sum())
    _, eta_first, _ = pt_eta_phi(jet_p4[:, first])
    jet_p4[:, first] = _p4(rec_pt, eta_first, rec_phi, rec_pt * rng.lognormal(np.log(0.12), 0.35, first.sum()))
    return Truth(
        n=n,
        lep_evt=np.concatenate([np.arange(n), np.arange(n)]),
        lep_p4=np.concatenate([l1, l2], axis=1),
        lep_pdg=np.concatenate([pdg1, -pdg1]),
        jet_evt=jet_evt, jet_p4=jet_p4, jet_flavour=flavour,
        nu_px=np.zeros(n), nu_py=np.zeros(n),
    )


def generate_ttbar_dilepton(rng: np.random.Generator, n: int) -> Truth:
    """ttbar -> (W+ b)(W- bbar) -> l+ nu b l- nubar bbar with e/mu leptons, plus radiation jets."""
    m_t1 = _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH, TOP_MASS - 15, TOP_MASS + 15)
    m_t2 = _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH, TOP_MASS - 15, TOP_MASS + 15)
    m_tt = m_t1 + m_t2 + 1.0 + rng.gamma(1.6, 90.0, n)
    tt = _system(rng, m_tt, rng.gamma(1.3, 25.0, n), np.clip(rng.normal(0.0, 1.0, n), -4.0, 4.0))
    top, antitop = _two_body(rng, tt, m_t1, m_t2)
    leptons, neutrinos, bquarks, pdgs = [], [], [], []
    for parent, charge in ((top, 1), (antitop, -1)):
        m_w = _breit_wigner(rng, n, W_MASS, W_WIDTH, 60.0, 100.0)
        w, b = _two_body(rng, parent, m_w, np.full(n, B_MASS))
        pdg = _lepton_pdg(rng, n, np.full(n, charge))
        lep, nu = _two_body(rng, w, np.where(np.abs(pdg) == 13, MU_MASS, ELE_MASS), np.zeros(n))
        leptons.append(lep)
        neutrinos.append(nu)
        bquarks.append(b)
        pdgs.append(pdg)
    isr_evt, isr_p4, isr_flavour = _extra_jets(rng, rng.poisson(1.3, n), 25.0, (0.80, 0.12, 0.08))
    b_p4 = np.concatenate(bquarks, axis=1)
    b_pt, b_eta, b_phi = pt_eta_phi(b_p4)
    # a b jet loses some energy to neutrinos and out-of-cone radiation and has a jet mass
    b_jet = _p4(b_pt * rng.normal(0.95, 0.08, 2 * n), b_eta, b_phi, rng.lognormal(np.log(10.0), 0.3, 2 * n))
    return Truth(
        n=n,
        lep_evt=np.concatenate([np.arange(n), np.arange(n)]),
        lep_p4=np.concatenate(leptons, axis=1),
        lep_pdg=np.concatenate(pdgs),
        jet_evt=np.concatenate([np.arange(n), np.arange(n), isr_evt]),
        jet_p4=np.concatenate([b_jet, isr_p4], axis=1),
        jet_flavour=np.concatenate([np.full(2 * n, 5), isr_flavour]),
        nu_px=neutrinos[0][1] + neutrinos[1][1],
        nu_py=neutrinos[0][2] + neutrinos[1][2],
    )


GENERATORS: dict[str, Callable[[np.random.Generator, int], Truth]] = {
    DY.sample: generate_drell_yan,
    TTBAR.sample: generate_ttbar_dilepton,
}
