"""Built-in weights and the custom-weight API, computed on real NanoAOD events."""
from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from pc_core import WeightData, WeightLambda, WeightWrapper
from pc_core.errors import ConfigError
from pc_core.parameters import default_parameters, merge_parameters
from pc_core.weights import BUILTIN_WEIGHTS


@pytest.fixture(scope="module")
def dy(nanoaod_dir):
    return uproot.open(nanoaod_dir / "nano_dy.root")["Events"].arrays(["genWeight", "nMuon", "Muon_pt"])


META = {"sample": "DY", "year": "2018", "isMC": True, "xsec": 6077.22}


def compute(name, events, params=None, metadata=META):
    weight = BUILTIN_WEIGHTS[name](params or default_parameters(), metadata)
    return weight.compute(events, len(events))


def test_builtin_names():
    assert sorted(BUILTIN_WEIGHTS) == ["XS", "genWeight", "lumi", "signOf_genWeight"]
    assert all(cls.isMC_only for cls in BUILTIN_WEIGHTS.values())
    assert not any(cls.has_variations for cls in BUILTIN_WEIGHTS.values())


def test_gen_weight_and_its_sign(dy, nanoaod_dir):
    expected = uproot.open(nanoaod_dir / "nano_dy.root")["Events"]["genWeight"].array(library="np").astype(np.float64)
    assert (expected < 0).sum() == 9  # the file has negative weights: the sign matters
    gen = compute("genWeight", dy)
    assert isinstance(gen, WeightData) and gen.name == "genWeight" and gen.up is None
    np.testing.assert_array_equal(gen.nominal, expected)
    sign = compute("signOf_genWeight", dy)
    np.testing.assert_array_equal(sign.nominal, np.sign(expected))
    assert sign.nominal.sum() == 40 - 2 * 9


def test_lumi_and_cross_section(dy):
    lumi = compute("lumi", dy)
    np.testing.assert_array_equal(lumi.nominal, np.full(40, 59830.0))
    custom = merge_parameters(default_parameters(), {"lumi": {"picobarn": {"2018": {"tot": 123.0}}}})
    assert compute("lumi", dy, params=custom).nominal.tolist() == [123.0] * 40
    xs = compute("XS", dy)
    np.testing.assert_array_equal(xs.nominal, np.full(40, 6077.22))


def test_lumi_unknown_year(dy):
    with pytest.raises(ConfigError, match="no luminosity for year '1999' in parameters lumi.picobarn; known years: "):
        compute("lumi", dy, metadata={**META, "year": "1999"})


def _per_muon_sf(params, metadata, events, size, shape_variation):
    """0.98 per muon, +-0.01 per muon (the product over the muons of each event)."""
    n = np.asarray(events["nMuon"], dtype=np.float64)
    return params["sf"] ** n, (params["sf"] + 0.01) ** n, (params["sf"] - 0.01) ** n


def test_weight_lambda_with_variations(dy):
    sf = WeightLambda.wrap_func("sf_muon", _per_muon_sf, has_variations=True)
    assert issubclass(sf, WeightWrapper) and sf.name == "sf_muon" and sf.isMC_only
    assert sf.variation_names() == ("sf_muonUp", "sf_muonDown")
    data = sf({"sf": 0.98}, META).compute(dy, len(dy))
    n = ak.to_numpy(dy["nMuon"]).astype(np.float64)
    np.testing.assert_allclose(data.nominal, 0.98**n)
    np.testing.assert_allclose(data.up, 0.99**n)
    np.testing.assert_allclose(data.down, 0.97**n)
    # events with muons are really weighted, events without keep weight 1
    assert np.sum(data.nominal < 1.0) == np.sum(n > 0) > 0


def test_weight_lambda_without_variations_and_for_data(dy):
    prescale = WeightLambda.wrap_func("prescale", lambda p, m, e, size, v: np.full(size, 0.5), isMC_only=False)
    assert prescale.variation_names() == () and not prescale.isMC_only
    data = prescale({}, {"year": "2018"}).compute(dy, len(dy))
    assert data.nominal.tolist() == [0.5] * 40 and data.up is None and data.down is None


def test_weight_lambda_errors(dy):
    with pytest.raises(ConfigError, match="weight 'w': function must be callable"):
        WeightLambda.wrap_func("w", 3)
    broken = WeightLambda.wrap_func("broken", lambda p, m, e, size, v: np.ones(size), has_variations=True)
    with pytest.raises(ConfigError, match=r"weight 'broken' has variations: its function must return \(nominal, up, down\)"):
        broken({}, META).compute(dy, len(dy))


class LeadingMuonPtWeight(WeightWrapper):
    """A custom weight class: reweights on the leading muon pT, with a shape-dependent up/down."""

    name = "mu_pt_reweight"
    has_variations = True

    def compute(self, events, size, shape_variation="nominal"):
        leading = ak.to_numpy(ak.fill_none(ak.firsts(events["Muon_pt"]), 0.0)).astype(np.float64)
        slope = self.params["slope"]
        nominal = 1.0 + slope * leading
        return WeightData(self.name, nominal, nominal * 1.1, nominal * 0.9)


def test_custom_weight_class(dy):
    weight = LeadingMuonPtWeight({"slope": 0.001}, META)
    assert weight.metadata["xsec"] == 6077.22
    data = weight.compute(dy, len(dy))
    leading = np.array([pts[0] if len(pts) else 0.0 for pts in ak.to_list(dy["Muon_pt"])])
    np.testing.assert_allclose(data.nominal, 1.0 + 0.001 * leading, rtol=1e-6)
    np.testing.assert_allclose(data.up / data.nominal, 1.1)
    assert LeadingMuonPtWeight.variation_names() == ("mu_pt_reweightUp", "mu_pt_reweightDown")


def test_base_class_requires_compute(dy):
    class Incomplete(WeightWrapper):
        name = "incomplete"

    # an abstract method: the mistake shows when the weight is instantiated, before any chunk
    with pytest.raises(TypeError, match="abstract method compute"):
        Incomplete({}, META)
