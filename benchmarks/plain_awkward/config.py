"""The plain-awkward benchmark (``plain_analysis.py``) for pocket-coffea. Used by
``benchmarks/plain_awkward/harness.py``; the fileset is ``$POCKET_COFFEA_BENCH_FILESET``.
"""
from pc_core import Axis, Configurator, Cut, HistConf, passthrough

from plain_analysis import LUMI_2018, OBJECT_PRESELECTION, configurator
from plain_workflow import PlainDimuonProcessor

parameters = {"lumi": {"picobarn": {"2018": {"tot": LUMI_2018}}}, "object_preselection": OBJECT_PRESELECTION}

cfg = configurator(Configurator=Configurator, Cut=Cut, HistConf=HistConf, Axis=Axis, passthrough=passthrough,
                   workflow=PlainDimuonProcessor, parameters=parameters, integer_axis="integer")
