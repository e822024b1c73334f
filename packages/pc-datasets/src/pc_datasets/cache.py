"""A small JSON cache in the user cache folder (never the current directory).

Folder: ``$POCKET_COFFEA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/pocket-coffea``, else
``~/.cache/pocket-coffea`` (the platformdirs convention on Linux). Entries are written
atomically (temporary file in the same folder, then ``os.replace``) and carry the time
they were written, so readers can apply an expiry.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pc_core.atomic import atomic_write_text

log = logging.getLogger(__name__)

DEFAULT_EXPIRY_SECONDS = 24 * 3600


def cache_dir() -> Path:
    """The pocket-coffea user cache folder (not created here)."""
    explicit = os.environ.get("POCKET_COFFEA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "pocket-coffea"


def cache_path(namespace: str, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir() / namespace / f"{digest}.json"


def read_cache(namespace: str, key: str, max_age: float = DEFAULT_EXPIRY_SECONDS) -> Any | None:
    """The cached value for ``key`` if younger than ``max_age`` seconds, else None."""
    path = cache_path(namespace, key)
    try:
        with open(path, encoding="utf-8") as stream:
            entry = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    age = time.time() - float(entry.get("written", 0))
    if age > max_age or age < 0:
        log.debug("cache entry %s expired (%.0f s old, expiry %.0f s)", path, age, max_age)
        return None
    return entry.get("value")


def write_cache(namespace: str, key: str, value: Any) -> Path:
    """Store ``value`` (JSON-serialisable) atomically; returns the cache file path."""
    path = cache_path(namespace, key)
    atomic_write_text(path, json.dumps({"key": key, "written": time.time(), "value": value}))
    return path
