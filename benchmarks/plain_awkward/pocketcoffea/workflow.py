"""The plain-awkward benchmark analysis' processor for PocketCoffea 0.9 (coffea 0.7, awkward 1):
the steps of ``../plain_analysis.py`` on PocketCoffea's base processor."""
from plain_analysis import PlainDimuonSteps
from pocket_coffea.workflows.base import BaseProcessorABC


class PlainDimuonProcessor(PlainDimuonSteps, BaseProcessorABC):
    pass
