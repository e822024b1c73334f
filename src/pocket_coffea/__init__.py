"""The umbrella ``pocket-coffea`` CLI: it owns no command, the packages contribute them."""
from importlib.metadata import version as _version

__version__ = _version("pocket-coffea")
