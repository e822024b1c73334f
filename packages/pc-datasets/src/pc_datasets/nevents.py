"""Count events by opening files with uproot, for files Rucio has no event count for."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from pc_core.cli_support import progress_bar
from pc_core.errors import DatasetError

from .read_errors import classify_read_error

log = logging.getLogger(__name__)

TREE = "Events"


def count_events(url: str, tree: str = TREE, timeout: float = 30) -> int:
    """Number of entries of ``tree`` in one file (local path or root:// URL)."""
    import uproot

    with uproot.open(url, timeout=timeout) as handle:
        return int(handle[tree].num_entries)


def count_events_parallel(urls: Sequence[str], parallelism: int = 4, show_progress: bool = True) -> list[int]:
    """Event counts of many files, read in parallel threads with a progress bar.

    A file that cannot be read raises a ``DatasetError`` naming the URL and the kind of
    failure (see ``read_errors.classify_read_error``).
    """
    results: list[int | None] = [None] * len(urls)
    if not urls:
        return []
    with progress_bar(enabled=show_progress, transient=True) as progress, ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        task = progress.add_task("Counting events with uproot", total=len(urls))
        futures = {pool.submit(count_events, url): i for i, url in enumerate(urls)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise DatasetError(
                    f"cannot count events in {urls[i]} ({classify_read_error(exc)}): {type(exc).__name__}: {exc}"
                ) from None
            progress.advance(task)
    log.info("counted events of %d files with uproot", len(urls))
    return [int(n) for n in results]  # type: ignore[arg-type]
