"""The processing report of a run: ``processing_report.json`` and a rich summary table.

Per dataset: files (and how many were skipped), chunks, events read, after the skim and
after the preselection. Per group (``output_*.coffea``): done or failed, with the error.
Totals: events, chunks, processing time and throughput. Skipped files with their reason.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pc_core.atomic import atomic_write_text

REPORT_FILE = "processing_report.json"


@dataclass
class GroupOutcome:
    """What happened to one unit of work (the whole fileset, a dataset or a group)."""

    name: str
    datasets: list[str]
    status: str  # "done", "failed" or "interrupted"
    output_file: str | None = None
    error: str | None = None
    result: Any = None  # runner.RunResult when done


def _write_json_atomic(data: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def build_report(
    outcomes: list[GroupOutcome],
    fileset: Mapping[str, Any],
    executor: str,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict; ``previous`` (a resubmission) keeps the entries of groups not rerun."""
    datasets: dict[str, Any] = dict((previous or {}).get("datasets", {}))
    groups: dict[str, Any] = dict((previous or {}).get("groups", {}))
    skipped: list[dict[str, str]] = [
        s for s in (previous or {}).get("skipped_files", []) if s.get("dataset") not in {d for o in outcomes for d in o.datasets}
    ]
    for outcome in outcomes:
        entry: dict[str, Any] = {"status": outcome.status, "datasets": outcome.datasets, "output": outcome.output_file}
        if outcome.status == "done" and outcome.result is not None:
            result = outcome.result
            processing = result.output.get("processing_metadata", {})
            cutflow = result.output.get("cutflow", {})
            entry["processing_seconds"] = round(result.processing_seconds, 3)
            if getattr(result, "processing_started", None) is not None:
                entry["processing_started"] = result.processing_started
            entry["ledger"] = result.ledger
            entry["events"] = int(sum(processing.get("events", {}).values()))
            entry["chunks"] = int(sum(processing.get("chunks", {}).values()))
            skipped += result.skipped_files
            for dataset in outcome.datasets:
                meta = fileset[dataset]["metadata"]
                skipped_here = [s for s in result.skipped_files if s["dataset"] == dataset]
                datasets[dataset] = {
                    "group": outcome.name,
                    "sample": meta["sample"],
                    "year": str(meta["year"]),
                    "isMC": bool(meta["isMC"]),
                    "files": len(fileset[dataset]["files"]),
                    "files_skipped": len({s["file"] for s in skipped_here}),
                    # None when a skipped file could not even be opened (its length is unknown)
                    "events_skipped": (None if any(s.get("events") is None for s in skipped_here)
                                       else sum(s["events"] for s in skipped_here)),
                    "chunks": int(processing.get("chunks", {}).get(dataset, 0)),
                    "events": int(processing.get("events", {}).get(dataset, 0)),
                    "events_skim": int(cutflow.get("skim", {}).get(dataset, 0)),
                    "events_presel": int(cutflow.get("presel", {}).get(dataset, 0)),
                }
        else:
            entry["error"] = outcome.error
            for dataset in outcome.datasets:
                datasets.pop(dataset, None)
        groups[outcome.name] = entry
    done = [g for g in groups.values() if g["status"] == "done"]
    seconds = sum(g.get("processing_seconds", 0.0) for g in done)
    events = sum(d["events"] for d in datasets.values())
    started = [g["processing_started"] for g in done if g.get("processing_started") is not None]
    return {
        "executor": executor,
        "datasets": datasets,
        "groups": groups,
        "failed": [name for name, g in groups.items() if g["status"] == "failed"],
        "interrupted": [name for name, g in groups.items() if g["status"] == "interrupted"],
        "skipped_files": skipped,
        "totals": {
            "datasets": len(datasets),
            "events": events,
            "chunks": sum(d["chunks"] for d in datasets.values()),
            "processing_seconds": round(seconds, 3),
            "events_per_second": round(events / seconds, 1) if seconds > 0 else None,
            # when the first chunk was handed out (seconds since the epoch): launch-to-first-chunk
            "processing_started": min(started) if started else None,
            "skipped_files": len(skipped),
        },
    }


def save_report(report: Mapping[str, Any], outputdir: str | os.PathLike) -> Path:
    path = Path(outputdir) / REPORT_FILE
    _write_json_atomic(report, path)
    return path


def load_report(outputdir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(outputdir) / REPORT_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def print_summary(report: Mapping[str, Any], console: Console | None = None) -> None:
    """The rich tables: datasets, then skipped files (if any), then the totals line."""
    console = console or Console()
    table = Table(title="Processing summary", show_lines=False)
    for column, justify in (
        ("dataset", "left"), ("sample", "left"), ("year", "left"), ("files", "right"), ("skipped", "right"),
        ("chunks", "right"), ("events", "right"), ("skim", "right"), ("presel", "right"), ("output", "left"),
    ):
        table.add_column(column, justify=justify)
    for dataset, d in report["datasets"].items():
        output = report["groups"].get(d["group"], {}).get("output") or ""
        table.add_row(
            dataset, d["sample"], d["year"], str(d["files"]), str(d["files_skipped"]), str(d["chunks"]),
            f"{d['events']:,}", f"{d['events_skim']:,}", f"{d['events_presel']:,}", Path(output).name,
        )
    for name, g in report["groups"].items():
        if g["status"] in ("failed", "interrupted"):
            for dataset in g["datasets"]:
                table.add_row(dataset, "", "", "", "", "", "", "", "", f"[red]{g['status'].upper()} ({name})[/red]")
    console.print(table)
    if report["skipped_files"]:
        skipped = Table(title="Skipped input files", title_style="bold yellow")
        skipped.add_column("dataset")
        skipped.add_column("file", overflow="fold")
        skipped.add_column("events", justify="right")
        skipped.add_column("reason", overflow="fold")
        for s in report["skipped_files"]:
            events = s.get("events")
            skipped.add_row(Text(s["dataset"]), Text(s["file"]), "?" if events is None else f"{events:,}",
                            Text(s["reason"]))  # Text: never read as rich markup
        console.print(skipped)
    totals = report["totals"]
    rate = totals["events_per_second"]
    console.print(
        f"[bold]{totals['events']:,}[/bold] events in {totals['chunks']} chunks, "
        f"{totals['processing_seconds']:.1f} s processing"
        + (f", [bold]{rate:,.0f}[/bold] events/s" if rate else "")
        + f" ({report['executor']})"
    )
