"""Skimmed-event export: the files hold exactly the skimmed events and the bookkeeping to normalise."""
from __future__ import annotations

import copy

import numpy as np
import uproot

from analysis_testlib import DY
from pcrun_reference import compute
from pc_core import load_configurator
from pc_core.run_options import load_run_options
from pc_run.executors import IterativeExecutorFactory
from pc_run.runner import run_fileset


def test_skimmed_files_hold_skimmed_events_and_genweight_sums(analysis_config, nanoaod_dir, tmp_path):
    cfg = load_configurator(analysis_config).filter(datasets=DY)
    skim_cfg = copy.copy(cfg)  # the loaded configurator is left untouched
    skim_cfg.__dict__["save_skimmed_files"] = str(tmp_path / "skimmed")
    options = load_run_options("iterative")
    result = run_fileset(skim_cfg, skim_cfg.fileset, IterativeExecutorFactory(options).get(), options)
    assert cfg.save_skimmed_files is None

    files = sorted(result.output["skimmed_files"][DY])
    assert len(files) == 1  # the empty input file has nothing to export
    ref = compute([str(nanoaod_dir / "nano_dy.root")], True, "2018", 6077.22, True)
    with uproot.open(files[0]) as skimmed, uproot.open(nanoaod_dir / "nano_dy.root") as source:
        events = skimmed["Events"]
        assert events.num_entries == ref.n_skim == result.output["nskimmed_events"][DY][0]
        assert isinstance(skimmed["Runs"], uproot.TTree)  # NanoAOD-like, not an RNTuple
        runs = skimmed["Runs"].arrays(library="np")
        assert runs["genEventCount"].tolist() == [ref.n_initial]
        np.testing.assert_allclose(runs["genEventSumw"], [ref.sum_genweights], rtol=1e-12)
        original = source["Events"].arrays(["Muon_pt", "event"], library="np")
        muon_pt = original["Muon_pt"]
        skim = np.array([np.sum(pt > 5.0) >= 1 for pt in muon_pt])
        np.testing.assert_array_equal(events["event"].array(library="np"), original["event"][skim])
        written = events["Muon_pt"].array(library="np")
        for a, b in zip(written, muon_pt[skim]):
            np.testing.assert_array_equal(a, b)
        assert events["nMuon"].array(library="np").tolist() == [len(p) for p in muon_pt[skim]]
