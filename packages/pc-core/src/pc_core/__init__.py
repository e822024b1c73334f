"""pocket-coffea core: the analysis definition, datasets, run options, splitting and output format.

pc-core never imports coffea, dask, htcondor or rucio, so that every other package (and a
bare submit node) can depend on it.
"""
from importlib.metadata import version as _version

__version__ = _version("pc-core")
