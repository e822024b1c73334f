"""pocket-coffea core: the analysis definition, datasets, run options, splitting and output format.

pc-core never imports coffea, dask, htcondor or rucio, so that every other package (and a
bare submit node) can depend on it.
"""
from importlib.metadata import version as _version

from .columns import ColOut
from .config_loading import load_configurator
from .configurator import Configurator
from .cuts import Cut, passthrough
from .histograms import Axis, HistConf
from .selections import CartesianSelection, MultiCut, StandardSelection
from .weights import WeightData, WeightLambda, WeightWrapper

__version__ = _version("pc-core")

__all__ = [
    "Axis",
    "CartesianSelection",
    "ColOut",
    "Configurator",
    "Cut",
    "HistConf",
    "MultiCut",
    "StandardSelection",
    "WeightData",
    "WeightLambda",
    "WeightWrapper",
    "__version__",
    "load_configurator",
    "passthrough",
]
