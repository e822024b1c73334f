"""``not_near`` against a plain Python loop and against coffea's ``nearest(threshold=...)``."""
import math

import awkward as ak
import numpy as np
from coffea.nanoevents.methods import candidate

from pc_run.object_cleaning import not_near


def _collection(rng, counts):
    n = int(counts.sum())
    return ak.zip(
        {
            "pt": rng.uniform(10, 100, n),
            "eta": rng.uniform(-2.5, 2.5, n),
            "phi": rng.uniform(-math.pi, math.pi, n),
            "mass": np.zeros(n),
            "charge": np.zeros(n),
        },
        with_name="PtEtaPhiMCandidate",
        behavior=candidate.behavior,
    )


def _events(seed=11, n=3000):
    rng = np.random.default_rng(seed)
    jet_counts = rng.integers(0, 7, n)
    lepton_counts = rng.integers(0, 4, n)
    jets = ak.unflatten(_collection(rng, jet_counts), jet_counts)
    leptons = ak.unflatten(_collection(rng, lepton_counts), lepton_counts)
    return jets, leptons


def _loop_reference(jets, leptons, max_dr):
    result = []
    for event_jets, event_leptons in zip(ak.to_list(jets), ak.to_list(leptons)):
        row = []
        for jet in event_jets:
            near = False
            for lepton in event_leptons:
                dphi = (jet["phi"] - lepton["phi"] + math.pi) % (2 * math.pi) - math.pi
                if math.hypot(jet["eta"] - lepton["eta"], dphi) <= max_dr:
                    near = True
            row.append(not near)
        result.append(row)
    return result


def test_not_near_equals_a_python_loop_and_coffea_nearest():
    jets, leptons = _events()
    ours = not_near(jets, leptons, 0.4)
    assert ak.to_list(ak.num(ours)) == ak.to_list(ak.num(jets))
    assert ak.to_list(ours) == _loop_reference(jets, leptons, 0.4)
    coffea = ak.is_none(jets.nearest(leptons, threshold=0.4), axis=1)
    assert ak.to_list(ours) == ak.to_list(coffea)
    removed = int(ak.sum(~ours))
    assert 0 < removed < int(ak.sum(ak.num(jets)))  # the sample really exercises both outcomes


def test_wrap_around_phi_and_objects_on_top_of_each_other():
    jets = ak.Array([[{"eta": 0.0, "phi": 3.1}, {"eta": 1.0, "phi": 0.0}], [{"eta": 0.5, "phi": -1.0}], []])
    leptons = ak.Array([[{"eta": 0.0, "phi": -3.1}], [{"eta": 0.5, "phi": -1.0}], [{"eta": 0.0, "phi": 0.0}]])
    # 3.1 and -3.1 are 0.083 apart across +-pi; the second event's jet is the lepton itself
    assert ak.to_list(not_near(jets, leptons, 0.4)) == [[False, True], [False], []]


def test_events_without_other_objects_keep_everything():
    jets = ak.Array([[{"eta": 0.0, "phi": 0.0}], [], [{"eta": 1.0, "phi": 1.0}, {"eta": 2.0, "phi": 2.0}]])
    no_leptons = ak.Array([[], [], []])
    assert ak.to_list(not_near(jets, ak.zip({"eta": no_leptons, "phi": no_leptons}), 0.4)) == [[True], [], [True, True]]
