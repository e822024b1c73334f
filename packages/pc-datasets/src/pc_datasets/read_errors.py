"""Read-error classification, re-exported from ``pc_core.read_errors`` (its home, shared with pc-run)."""
from pc_core.read_errors import (
    CORRUPT_FILE,
    DEAD_SERVER,
    DNS,
    MISSING_FILE,
    OTHER,
    OTHER_IO,
    PERMISSION,
    READ_ERROR_KINDS,
    classify_read_error,
    read_error_hint,
)

__all__ = ["CORRUPT_FILE", "DEAD_SERVER", "DNS", "MISSING_FILE", "OTHER", "OTHER_IO", "PERMISSION", "READ_ERROR_KINDS",
           "classify_read_error", "read_error_hint"]
