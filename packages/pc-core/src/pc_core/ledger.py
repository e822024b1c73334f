"""The processing ledger: exactly which entries of which input files made an output.

Every output (``processing_metadata["ledger"]``) and every processing report carries one.
Summed event counts cannot tell "every event once" from "half the events twice"; the
ledger can, because it names the entry ranges. Adding two outputs whose ledgers both hold
the same processed range of the same file is refused (``LedgerOverlapError``), and the
completeness checks compare the ranges with what the fileset asked for.

A ledger is a plain JSON-able dict, so it survives pickling, the report and old readers::

    {"version": 1,
     "files": {
       "<identity>": {                       # the ROOT file's UUID, else its normalised URL
         "dataset": "DY_2018",
         "url": "root://host//store/f.root",  # normalised; the first URL it was read from
         "entries": 1000,                     # entries of the tree (None: never opened)
         "processed": [[0, 500], [500, 1000]] -> stored merged: [[0, 1000]],
         "skipped": [{"start": 0, "stop": null, "kind": "missing-file", "reason": "..."}],
         "failed":  [{"start": 0, "stop": 500, "kind": "dead-server", "reason": "..."}]}}}

A ``stop`` of ``None`` means "to the end of the file" (a file that could not be opened has
no known length). Only *processed* ranges count events; a range skipped in one output and
processed in another is simply processed in their sum.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import OutputError
from .urls import normalise_url

LEDGER_KEY = "ledger"
LEDGER_VERSION = 1
PROCESSED, SKIPPED, FAILED = "processed", "skipped", "failed"

Ledger = dict[str, Any]


class LedgerOverlapError(OutputError):
    """Two outputs hold the same entries of the same input file: adding them double-counts."""


# --------------------------------------------------------------------------- identities


def file_identity(url: str, uuid: bytes | str | None = None) -> str:
    """The ledger key of a file: ``uuid:<hex>`` when the ROOT file's UUID is known (the same
    file on two servers is one file), else ``url:<normalised URL>``."""
    if isinstance(uuid, (bytes, bytearray)):
        uuid = bytes(uuid).hex() if any(uuid) else None
    if uuid:
        return f"uuid:{str(uuid).replace('-', '').lower()}"
    return f"url:{normalise_url(url)}"


# --------------------------------------------------------------------------- building


def new_ledger() -> Ledger:
    return {"version": LEDGER_VERSION, "files": {}}


def _file_entry(ledger: Ledger, identity: str, dataset: str, url: str, entries: int | None) -> dict[str, Any]:
    files = ledger["files"]
    entry = files.get(identity)
    if entry is None:
        entry = files[identity] = {
            "dataset": dataset, "url": normalise_url(url), "entries": entries,
            PROCESSED: [], SKIPPED: [], FAILED: [],
        }
    elif entry.get("entries") is None and entries is not None:
        entry["entries"] = int(entries)
    return entry


def record(
    ledger: Ledger,
    *,
    identity: str,
    dataset: str,
    url: str,
    entries: int | None,
    start: int,
    stop: int | None,
    status: str = PROCESSED,
    kind: str | None = None,
    reason: str | None = None,
) -> None:
    """Record one entry range of one file in ``ledger`` (which the caller owns)."""
    entry = _file_entry(ledger, identity, dataset, url, entries)
    if status == PROCESSED:
        entry[PROCESSED] = _merge_ranges([*entry[PROCESSED], [int(start), int(stop)]])
    elif status in (SKIPPED, FAILED):
        entry[status].append({"start": int(start), "stop": None if stop is None else int(stop),
                              "kind": kind or "other", "reason": reason or ""})
    else:
        raise ValueError(f"ledger status must be {PROCESSED!r}, {SKIPPED!r} or {FAILED!r}, not {status!r}")


def _merge_ranges(ranges: Iterable[Sequence[int]]) -> list[list[int]]:
    """Sorted ranges with touching neighbours joined (callers have already refused overlaps)."""
    merged: list[list[int]] = []
    for start, stop in sorted((int(a), int(b)) for a, b in ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return merged


def _end(stop: int | None, entries: int | None) -> float:
    if stop is not None:
        return stop
    return entries if entries is not None else float("inf")


def _covered_by(start: int, stop: int | None, entries: int | None, processed: list[list[int]]) -> bool:
    end = _end(stop, entries)
    position = start
    for a, b in processed:
        if a <= position < b:
            position = b
    return position >= end


# --------------------------------------------------------------------------- combining


def merge_ledgers(named: Sequence[tuple[str, Mapping[str, Any] | None]]) -> Ledger:
    """The ledger of the sum of several outputs, each given as ``(name, ledger)``.

    Raises ``LedgerOverlapError`` naming both outputs, the file and the entry range when two
    of them processed the same entries. Skipped or failed ranges that another output
    processed are dropped (they were made up for); the others are kept.
    """
    owners: dict[str, list[tuple[int, int, str]]] = {}
    result = new_ledger()
    for name, ledger in named:
        if not ledger:
            continue
        for identity, entry in (ledger.get("files") or {}).items():
            target = _file_entry(result, identity, entry.get("dataset", ""), entry.get("url", identity), entry.get("entries"))
            for start, stop in entry.get(PROCESSED) or []:
                for other_start, other_stop, other_name in owners.get(identity, []):
                    if start < other_stop and other_start < stop:
                        overlap = (max(start, other_start), min(stop, other_stop))
                        where = "the same output" if other_name == name else f"{other_name} and {name}"
                        raise LedgerOverlapError(
                            f"{where} both hold entries {overlap[0]}-{overlap[1]} of input file "
                            f"{entry.get('url', identity)} (dataset {entry.get('dataset')!r}, {identity}): "
                            "adding them would count those events twice. Merge only outputs of disjoint inputs "
                            "(e.g. either output_all.coffea or the per-dataset outputs of -ps, not both)"
                        )
                owners.setdefault(identity, []).append((int(start), int(stop), name))
                target[PROCESSED].append([int(start), int(stop)])
            for status in (SKIPPED, FAILED):
                target[status].extend(copy.deepcopy(list(entry.get(status) or [])))
    for entry in result["files"].values():
        entry[PROCESSED] = _merge_ranges(entry[PROCESSED])
        for status in (SKIPPED, FAILED):
            kept, seen = [], set()
            for item in entry[status]:
                key = (item["start"], item["stop"])
                if key in seen or _covered_by(item["start"], item["stop"], entry.get("entries"), entry[PROCESSED]):
                    continue
                seen.add(key)
                kept.append(item)
            entry[status] = kept
    return result


# --------------------------------------------------------------------------- reading


def processed_events(ledger: Mapping[str, Any] | None) -> dict[str, int]:
    """``{dataset: events}`` that the ledger says were processed."""
    events: dict[str, int] = {}
    for entry in ((ledger or {}).get("files") or {}).values():
        n = sum(stop - start for start, stop in entry.get(PROCESSED) or [])
        events[entry.get("dataset", "")] = events.get(entry.get("dataset", ""), 0) + n
    return events


def uncovered_ranges(entry: Mapping[str, Any]) -> list[tuple[int, int | None]]:
    """Entry ranges of one file that are neither processed, skipped nor failed."""
    entries = entry.get("entries")
    covered = [list(r) for r in entry.get(PROCESSED) or []]
    for status in (SKIPPED, FAILED):
        for item in entry.get(status) or []:
            covered.append([item["start"], _end(item["stop"], entries)])
    gaps: list[tuple[int, int | None]] = []
    position = 0
    for start, stop in sorted(covered):
        if start > position:
            gaps.append((position, int(start)))
        position = max(position, stop)
    if entries is None:
        return gaps if position == float("inf") else [*gaps, (int(position), None)]
    if position < entries:
        gaps.append((int(position), int(entries)))
    return gaps


def find_file(ledger: Mapping[str, Any] | None, url: str) -> tuple[str, dict[str, Any]] | None:
    """The ``(identity, entry)`` of the file read from ``url`` (any spelling), if any."""
    wanted = normalise_url(url)
    for identity, entry in ((ledger or {}).get("files") or {}).items():
        if entry.get("url") == wanted or identity == f"url:{wanted}":
            return identity, entry
    return None


def completeness_problems(ledger: Mapping[str, Any] | None, fileset: Mapping[str, Any]) -> list[str]:
    """Every way in which ``ledger`` does not account for ``fileset`` exactly once.

    A file of the fileset must be in the ledger and every one of its entries processed,
    skipped or failed (skipped and failed ranges are accounted for, and are reported by
    the callers as such); a file in the ledger must be in the fileset. Empty list: complete.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for dataset, entry in fileset.items():
        for url in entry.get("files") or []:
            found = find_file(ledger, url)
            if found is None:
                problems.append(f"file {url} of dataset {dataset!r} is in no output")
                continue
            identity, file_entry = found
            seen.add(identity)
            for start, stop in uncovered_ranges(file_entry):
                problems.append(
                    f"entries {start}-{'end' if stop is None else stop} of file {url} (dataset {dataset!r}) "
                    "are in no output"
                )
    for identity, file_entry in ((ledger or {}).get("files") or {}).items():
        if identity not in seen:
            problems.append(
                f"file {file_entry.get('url', identity)} (dataset {file_entry.get('dataset')!r}) is in an output "
                "but not in the fileset"
            )
    return problems


def not_processed(ledger: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every skipped or failed range, as ``{"dataset", "url", "status", "start", "stop", "kind", "reason"}``."""
    rows: list[dict[str, Any]] = []
    for entry in ((ledger or {}).get("files") or {}).values():
        for status in (SKIPPED, FAILED):
            for item in entry.get(status) or []:
                rows.append({"dataset": entry.get("dataset"), "url": entry.get("url"), "status": status, **item})
    return rows


__all__ = [
    "FAILED",
    "LEDGER_KEY",
    "PROCESSED",
    "SKIPPED",
    "Ledger",
    "LedgerOverlapError",
    "completeness_problems",
    "file_identity",
    "find_file",
    "merge_ledgers",
    "new_ledger",
    "not_processed",
    "processed_events",
    "record",
    "uncovered_ranges",
]
