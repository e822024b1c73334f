"""The plain-awkward benchmark (``../plain_analysis.py``) for PocketCoffea 0.9.13: the same
steps, cuts, categories, weights and histograms in its classes; its spelling of the lumi
(``lumi.picobarns``) and of integer axes (``int``); no calibrators (the benchmark inputs carry
no calibration branches). The fileset is ``$POCKET_COFFEA_BENCH_FILESET``, with
PocketCoffea's ``isMC: "True"`` metadata.

    python run_peer.py run --cfg config.py -ro run_options.yaml -o OUT -e iterative -c 100000
"""
import os
import sys

import cloudpickle
from omegaconf import OmegaConf
from pocket_coffea.lib.cut_definition import Cut
from pocket_coffea.parameters import defaults
from pocket_coffea.parameters.cuts import passthrough
from pocket_coffea.parameters.histograms import Axis, HistConf
from pocket_coffea.utils.configurator import Configurator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import plain_analysis  # noqa: E402
import workflow  # noqa: E402
from plain_analysis import LUMI_2018, OBJECT_PRESELECTION, configurator  # noqa: E402
from workflow import PlainDimuonProcessor  # noqa: E402

cloudpickle.register_pickle_by_value(workflow)
cloudpickle.register_pickle_by_value(plain_analysis)

parameters = OmegaConf.merge(defaults.get_default_parameters(), OmegaConf.create({
    "lumi": {"picobarns": {"2018": {"tot": LUMI_2018}}},  # PocketCoffea's default: 59832.47534
    "object_preselection": OBJECT_PRESELECTION,
}))

cfg = configurator(Configurator=Configurator, Cut=Cut, HistConf=HistConf, Axis=Axis, passthrough=passthrough,
                   workflow=PlainDimuonProcessor, parameters=parameters, integer_axis="int", calibrators=[])
