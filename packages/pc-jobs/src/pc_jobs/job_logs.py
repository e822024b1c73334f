"""Read what a job left in ``jobs_dir/logs/``: the file it failed to read, and HTCondor's verdict.

Two kinds of logs matter to ``check-jobs``:

- the job's stdout ``logs/job_<i>.out`` (or ``job_<cluster>.<i>.out``): a failed read of an input file shows up
  as uproot's ``OSError: XRootD error ... in file <url>`` or
  ``FileNotFoundError: file not found ... '<url>'``, or as pocket-coffea's own
  ``input file <url> of dataset '...' cannot be read (<kind>)`` (any read kind but ``other``);
- HTCondor's user log ``logs/job_<i>.log`` (or ``job_<cluster>.<i>.log``): a ``009 (...) Job was aborted``
  event, with ``SYSTEM_PERIODIC_REMOVE`` in its text when the queue's time limit killed it.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

READ_FAILURE_TRIGGERS: tuple[str, ...] = ("OSError: XRootD error", "FileNotFoundError: file not found")
_PC_RUN_FAILURE = re.compile(
    r"input file (?P<url>\S+) of dataset \S+ cannot be read \((?P<kind>dead-server|missing-file|corrupt-file|dns|permission|other-io)\)"
)
_URL = re.compile(r"""(?:root|xroot|roots|https?|davs?)://[^\s'"]+""")
_QUOTED_PATH = re.compile(r"""^['"](?P<path>/[^'"]+)['"]$""")
_LOOKAHEAD = 4  # lines after the exception line where uproot names the file
_EVENT = re.compile(r"^(?P<code>\d{3}) \((?P<cluster>\d+)\.(?P<proc>\d+)\.\d+\) (?P<rest>.*)$")
_LOG_NAME = re.compile(r"^job_(?:(?P<cluster>\d+)\.)?(?P<index>\d+)\.(?P<ext>out|err|log)$")

SUBMIT_EVENT = "000"
ABORT_EVENT = "009"


@dataclass(frozen=True)
class ReadFailure:
    """An input file a job could not read, as named in its stdout."""

    url: str
    log: Path
    line: int
    message: str


def _url_in(line: str) -> str | None:
    match = _URL.search(line)
    if match:
        return match.group(0).rstrip(".,;:)")
    quoted = _QUOTED_PATH.match(line.strip())
    return quoted.group("path") if quoted else None


def find_read_failures(lines: Sequence[str], log: Path = Path("-")) -> list[ReadFailure]:
    """Every input file named by a read failure in a job's output, in order of appearance."""
    failures = []
    for number, line in enumerate(lines):
        match = _PC_RUN_FAILURE.search(line)
        if match:
            failures.append(ReadFailure(match.group("url").rstrip(".,;:"), log, number + 1, line.strip()))
            continue
        for trigger in READ_FAILURE_TRIGGERS:
            position = line.find(trigger)
            if position < 0:
                continue
            window = [line[position + len(trigger):]] + list(lines[number + 1 : number + 1 + _LOOKAHEAD])
            url = next((u for u in map(_url_in, window) if u), None)
            if url:
                failures.append(ReadFailure(url, log, number + 1, line.strip()))
                break
    return failures


def find_read_failure(lines: Sequence[str], log: Path = Path("-")) -> ReadFailure | None:
    """The first input file named by a read failure in a job's output, or None."""
    failures = find_read_failures(lines, log)
    return failures[0] if failures else None


def read_failure_in_file(path: str | os.PathLike) -> ReadFailure | None:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return find_read_failure(text.splitlines(), path)


def parse_log_name(name: str) -> tuple[int | None, int, str] | None:
    """``job_[<cluster>.]<i>.<ext>`` -> (cluster or None, job index, ext); None for other names.

    The condor executors name logs ``job_{i}.{out,err,log}``; ``job_{cluster}.{i}.*``
    (PocketCoffea's ``$(ClusterId).$(ProcId)``) is understood too.
    """
    match = _LOG_NAME.match(name)
    if match is None:
        return None
    cluster = match.group("cluster")
    return int(cluster) if cluster is not None else None, int(match.group("index")), match.group("ext")


def job_stdout_logs(logs_dir: Path, index: int, cluster_jobs: Mapping[int, int] | None = None) -> list[Path]:
    """Unprocessed stdout/stderr logs of job ``index``, oldest first.

    ``job_{index}.out|err`` and ``job_<c>.{index}.out|err``; ``cluster_jobs`` ({cluster: job},
    the clusters check-jobs submitted) decides for ``job_<c>.<p>.*`` names of those clusters
    (a submit file naming its logs ``$(ProcId)`` gives ``.0.`` whatever the job).
    """
    cluster_jobs = cluster_jobs or {}
    found: list[Path] = []
    try:
        entries = list(logs_dir.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        parsed = parse_log_name(path.name)
        if parsed is None or parsed[2] == "log":
            continue
        cluster, log_index, _ = parsed
        owner = cluster_jobs.get(cluster, log_index) if cluster is not None else log_index
        if owner == index:
            found.append(path)
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


@dataclass(frozen=True)
class LogEvent:
    """One event of an HTCondor user log."""

    code: str
    cluster: int
    proc: int
    text: str  # the header line after the id, plus the body lines
    log: Path

    @property
    def job_id(self) -> str:
        return f"{self.cluster}.{self.proc}"

    @property
    def is_abort(self) -> bool:
        return self.code == ABORT_EVENT

    @property
    def is_periodic_remove(self) -> bool:
        return self.is_abort and "SYSTEM_PERIODIC_REMOVE" in self.text


def parse_user_log(text: str, log: Path = Path("-")) -> list[LogEvent]:
    """Events of an HTCondor user log (classic text format, events ended by ``...``)."""
    events: list[LogEvent] = []
    current: dict | None = None
    body: list[str] = []
    for line in text.splitlines():
        match = _EVENT.match(line)
        if match:
            if current is not None:
                events.append(LogEvent(text="\n".join(body), log=log, **current))
            current = {"code": match.group("code"), "cluster": int(match.group("cluster")),
                       "proc": int(match.group("proc"))}
            body = [match.group("rest")]
        elif line.strip() == "...":
            if current is not None:
                events.append(LogEvent(text="\n".join(body), log=log, **current))
            current, body = None, []
        elif current is not None:
            body.append(line.strip())
    if current is not None:
        events.append(LogEvent(text="\n".join(body), log=log, **current))
    return events


def read_user_logs(logs_dir: Path) -> list[LogEvent]:
    """Events of every ``job_*.log`` directly in ``logs_dir`` (processed logs are not read)."""
    events: list[LogEvent] = []
    try:
        entries = sorted(logs_dir.iterdir())
    except FileNotFoundError:
        return []
    for path in entries:
        parsed = parse_log_name(path.name)
        if parsed is None or parsed[2] != "log":
            continue
        try:
            events += parse_user_log(path.read_text(encoding="utf-8", errors="replace"), path)
        except FileNotFoundError:
            continue
    return events




# --------------------------------------------------------------------------- diagnosis: the error line of a job


@dataclass(frozen=True)
class LogDiagnosis:
    """The line of a job's stdout/stderr that says why it failed, and its class.

    ``kind`` is a read-failure kind of ``pc_core.read_errors`` (``dead-server``, ``missing-file``,
    ``corrupt-file``, ``dns``, ``permission``, ``other-io``) when an input file could not be
    read, ``error`` for another Python exception, ``wrapper`` for a message of ``job.sh``
    (``[pocket-coffea job N] ...``) and ``other`` for the last line of a log saying nothing more.
    The text is the log's, verbatim: show it as plain text, never as markup.
    """

    kind: str
    line: str
    log: Path
    number: int
    url: str | None = None


_EXCEPTION_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(?P<type>[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failure)|Error)(?::\s*(?P<msg>.*))?$")
_WRAPPER_LINE = re.compile(r"^\[pocket-coffea job \d+\] .*(failed|no output|\bexit\b)")


def _classify_text(type_name: str, text: str) -> str:
    """A read-failure kind for an exception named ``type_name`` with message ``text``."""
    import builtins

    from pc_core.read_errors import OTHER, OTHER_IO, classify_read_error

    kind_type = getattr(builtins, type_name, None)
    if not (isinstance(kind_type, type) and issubclass(kind_type, BaseException)):
        kind_type = OSError
    try:
        exc = kind_type(text)
    except Exception:  # noqa: BLE001 - exception types with unusual constructors
        exc = OSError(text)
    kind = classify_read_error(exc)
    return OTHER_IO if kind == OTHER else kind


def classify_failure(lines: Sequence[str], log: Path = Path("-")) -> LogDiagnosis | None:
    """Why a job failed, from one of its logs: a read failure (classified) first, then the last
    Python exception line, then the wrapper's own failure message, else None."""
    for failure in find_read_failures(lines, log):
        match = _PC_RUN_FAILURE.search(failure.message)
        window = " ".join(lines[failure.line - 1: failure.line - 1 + _LOOKAHEAD + 1])
        if match:
            kind = match.group("kind")
            if kind in ("missing-file", "other-io"):  # a DNS or permission failure said more precisely
                better = _classify_text("OSError", window)
                kind = better if better in ("dns", "permission") else kind
        else:
            type_match = _EXCEPTION_LINE.match(failure.message)
            kind = _classify_text(type_match.group("type") if type_match else "OSError", window)
        return LogDiagnosis(kind, failure.message, log, failure.line, failure.url)
    exception = None
    wrapper = None
    for number, line in enumerate(lines, 1):
        if _EXCEPTION_LINE.match(line) and not line.lstrip().startswith("Traceback"):
            exception = (number, line.strip())
        elif _WRAPPER_LINE.match(line.strip()):
            wrapper = (number, line.strip())
    if exception is not None:
        return LogDiagnosis("error", exception[1], log, exception[0])
    if wrapper is not None:
        return LogDiagnosis("wrapper", wrapper[1], log, wrapper[0])
    return None


def diagnose_logs(paths: Sequence[Path]) -> LogDiagnosis | None:
    """The most telling line of a job's logs (newest first; a read failure or exception beats the
    wrapper's message), or the last line of the newest non-empty log as ``other``."""
    found: list[LogDiagnosis] = []
    last: LogDiagnosis | None = None
    for path in sorted(paths, key=lambda p: (p.stat().st_mtime if p.exists() else 0, p.name), reverse=True):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        diagnosis = classify_failure(lines, path)
        if diagnosis is not None:
            found.append(diagnosis)
        if last is None:
            numbered = [(n, ln.strip()) for n, ln in enumerate(lines, 1) if ln.strip()]
            if numbered:
                last = LogDiagnosis("other", numbered[-1][1][:300], path, numbered[-1][0])
    rank = {"wrapper": 1, "error": 2}
    if found:
        return max(found, key=lambda d: rank.get(d.kind, 3))  # newest log wins among equals (max is stable)
    return last


__all__ = [
    "READ_FAILURE_TRIGGERS",
    "LogDiagnosis",
    "LogEvent",
    "ReadFailure",
    "classify_failure",
    "diagnose_logs",
    "find_read_failure",
    "job_stdout_logs",
    "parse_log_name",
    "parse_user_log",
    "read_failure_in_file",
    "read_user_logs",
]
