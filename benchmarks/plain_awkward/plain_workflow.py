"""The plain-awkward benchmark analysis' processor for pocket-coffea (its steps: ``plain_analysis.py``)."""
from pc_run import BaseProcessorABC

from plain_analysis import PlainDimuonSteps


class PlainDimuonProcessor(PlainDimuonSteps, BaseProcessorABC):
    pass
