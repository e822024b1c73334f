"""pc-datasets: build filesets from Rucio, choose replicas by site, rewrite redirectors.

Public API (see docs/datasets-from-rucio.md):

- ``build-datasets`` (``pc_datasets.cli``);
- replica tools: ``find_other_replica``, ``find_other_replicas``,
  ``rewrite_fileset_away_from_sites``, ``rewrite_fileset_to_redirector``;
- ``classify_read_error`` to tell a dead server from a missing file;
- ``RucioGateway`` / ``RucioSettings`` for batched, counted Rucio access.
"""
from .read_errors import CORRUPT_FILE, DEAD_SERVER, DNS, MISSING_FILE, OTHER, OTHER_IO, PERMISSION, classify_read_error
from .replicas import (
    Rewrite,
    RewriteResult,
    find_other_replica,
    find_other_replicas,
    rewrite_fileset_away_from_sites,
    rewrite_fileset_to_redirector,
)
from .rucio_gateway import RucioGateway, RucioSettings
from .urls import GLOBAL_REDIRECTOR, lfn_of, redirector_url

__all__ = [
    "CORRUPT_FILE", "DEAD_SERVER", "DNS", "GLOBAL_REDIRECTOR", "MISSING_FILE", "OTHER", "OTHER_IO", "PERMISSION",
    "Rewrite", "RewriteResult",
    "RucioGateway", "RucioSettings", "classify_read_error", "find_other_replica", "find_other_replicas",
    "lfn_of", "redirector_url", "rewrite_fileset_away_from_sites", "rewrite_fileset_to_redirector",
]
