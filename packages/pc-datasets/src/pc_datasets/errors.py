"""User errors of pc-datasets; all are ``PocketCoffeaError`` so the CLI prints them cleanly."""
from __future__ import annotations

from pc_core.errors import DatasetError


class DefinitionError(DatasetError):
    """The dataset-definition JSON is missing, malformed or lacks a required key."""


class RucioUnavailableError(DatasetError):
    """Rucio cannot be reached or refuses our credentials."""


class RucioLookupError(DatasetError):
    """Rucio does not know a DAS name / LFN we asked about."""


class SiteSelectionError(DatasetError):
    """Unknown site names, bad regex, or no acceptable replica for a dataset."""


class SiteMapError(DatasetError):
    """A site-map file (storage.json style or YAML) cannot be read or understood."""
