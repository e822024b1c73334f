"""HTCondor submit descriptions of the manual jobs: build, render, read back and patch.

A description is an ordered ``{command: value}`` mapping written one ``command = value``
line each, followed by a ``queue`` statement. ``job_{i}.sub`` carries the job's index and
chunksize literally; ``jobs_all.sub`` uses ``$(Process)`` and the inline
``queue chunksize from ( ... )`` form, so one submission covers every job whatever their
chunksizes. Patching (``set_command``) rewrites one command in place, so applying it twice
changes nothing the second time.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pc_core.errors import RunOptionsError
from pc_core.units import size_bytes

log = logging.getLogger(__name__)

JOB_FLAVOURS = ("espresso", "microcentury", "longlunch", "workday", "tomorrow", "testmatch", "nextweek")
"""CERN HTCondor ``+JobFlavour`` queues, shortest first."""

FLAVOUR_COMMAND = "+JobFlavour"
INNER_OPTIONS_FILE = "inner_run_options.yaml"
SHARED_CONFIGURATOR = "configurator.pkl"
"""The one cloudpickled Configurator every job's ``config_job_{i}.pkl`` (plain data) refers to."""
JOBS_DIR_ATTR = "PocketCoffeaJobsDir"
JOB_ATTR = "PocketCoffeaJob"
"""Job ClassAd attributes naming the jobs folder (absolute path) and the job index of every job."""



def is_known_flavour(queue: str) -> bool:
    return queue in JOB_FLAVOURS


def warn_unknown_flavour(queue: str, what: str) -> None:
    if not is_known_flavour(queue):
        log.warning("%s %r is not a known HTCondor JobFlavour (%s); written verbatim", what, queue,
                    ", ".join(JOB_FLAVOURS))


def next_flavour(queue: str | None, steps: int = 1) -> str | None:
    """The flavour ``steps`` longer than ``queue`` (capped at the longest); None/unknown stay as they are."""
    if queue is None or queue not in JOB_FLAVOURS:
        return queue
    return JOB_FLAVOURS[min(JOB_FLAVOURS.index(queue) + steps, len(JOB_FLAVOURS) - 1)]


def size_in_mb(value: Any, key: str) -> int:
    """``"2GB"`` / ``"500MB"`` / a number of GB -> megabytes (HTCondor's request_memory unit)."""
    try:
        return max(1, round(size_bytes(value) / 1e6))
    except ValueError as exc:
        raise RunOptionsError(f"run option {key!r}: {exc}") from None


def quote_value(value: Any) -> str:
    """A ClassAd literal for ``+Attr``/``MY.Attr`` commands: strings quoted, booleans/numbers as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text
    return '"' + text.replace('"', '\\"') + '"'


def condor_arguments(args: Sequence[str]) -> str:
    """The new-syntax ``arguments`` value: double-quoted, each argument single-quoted."""
    parts = []
    for arg in args:
        text = str(arg)
        if text.startswith("$(") and text.endswith(")"):
            parts.append(text)
        else:
            parts.append("'" + text.replace("'", "''").replace('"', '""') + "'")
    return '"' + " ".join(parts) + '"'


@dataclass(frozen=True)
class SubmitSpec:
    """What every job of a jobs folder shares; ``for_job``/``for_all`` add the per-job parts."""

    jobs_dir: Path
    output_target: str
    directives: dict[str, str] = field(default_factory=dict)
    extra_inputs: tuple[str, ...] = ()

    def _common(self, config: str, index: str, chunksize: str, logname: str) -> dict[str, str]:
        jobs_dir = self.jobs_dir
        inputs = [f"{jobs_dir}/{config}", f"{jobs_dir}/{SHARED_CONFIGURATOR}", f"{jobs_dir}/{INNER_OPTIONS_FILE}",
                  *self.extra_inputs]
        description = {
            "universe": "vanilla",
            "executable": f"{jobs_dir}/job.sh",
            "arguments": condor_arguments([index, chunksize, str(jobs_dir), self.output_target]),
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_input_files": ", ".join(inputs),
            "output": f"{jobs_dir}/logs/{logname}.out",
            "error": f"{jobs_dir}/logs/{logname}.err",
            "log": f"{jobs_dir}/logs/{logname}.log",
        }
        description.update(self.directives)
        # the job's identity in the schedd: recovery asks for every copy of job i of this folder
        description[f"+{JOBS_DIR_ATTR}"] = quote_value(str(jobs_dir))
        description[f"+{JOB_ATTR}"] = index
        return description

    def for_job(self, index: int, chunksize: int) -> dict[str, str]:
        return self._common(f"config_job_{index}.pkl", str(index), str(chunksize), f"job_{index}")

    def for_all(self) -> dict[str, str]:
        return self._common("config_job_$(Process).pkl", "$(Process)", "$(chunksize)", "job_$(Process)")


def render(description: Mapping[str, str], queue: str = "queue") -> str:
    lines = ["# written by pocket-coffea (pc_jobs); one manual job per queued item"]
    width = max(len(key) for key in description)
    lines += [f"{key:<{width}} = {value}" for key, value in description.items()]
    return "\n".join(lines) + "\n" + queue.rstrip("\n") + "\n"


def render_job(spec: SubmitSpec, index: int, chunksize: int) -> str:
    return render(spec.for_job(index, chunksize))


def render_all(spec: SubmitSpec, chunksizes: Sequence[int]) -> str:
    """``jobs_all.sub``: job ``i`` is ``$(Process) == i`` with ``chunksizes[i]``."""
    items = "\n".join(f"  {int(c)}" for c in chunksizes)
    return render(spec.for_all(), f"queue chunksize from (\n{items}\n)")


# --------------------------------------------------------------------------- reading back

_LINE_RE = re.compile(r"^\s*([A-Za-z_+][A-Za-z0-9_.+]*)\s*=\s*(.*?)\s*$")


def read_commands(text: str) -> dict[str, str]:
    """The ``command = value`` lines of a submit file (keys as written); queue statements skipped."""
    commands: dict[str, str] = {}
    in_items = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_items:
            in_items = not stripped.startswith(")")
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.lower().startswith("queue"):
            in_items = stripped.endswith("(")
            continue
        match = _LINE_RE.match(line)
        if match:
            commands[match.group(1)] = match.group(2)
    return commands


def get_command(text: str, key: str) -> str | None:
    lowered = key.lower()
    for name, value in read_commands(text).items():
        if name.lower() == lowered:
            return value
    return None


def set_command(text: str, key: str, value: str) -> str:
    """``text`` with ``key = value`` (replaced in place, else added before the first queue line)."""
    lowered = key.lower()
    out: list[str] = []
    done = False
    for line in text.splitlines():
        match = _LINE_RE.match(line)
        if match and match.group(1).lower() == lowered and not line.strip().startswith("#"):
            if not done:
                out.append(f"{key} = {value}")
                done = True
            continue
        if not done and line.strip().lower().startswith("queue"):
            out.append(f"{key} = {value}")
            done = True
        out.append(line)
    if not done:
        out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


def job_flavour(text: str) -> str | None:
    value = get_command(text, FLAVOUR_COMMAND) or get_command(text, "MY.JobFlavour")
    return value.strip().strip('"') if value else None


def set_job_flavour(text: str, queue: str) -> str:
    return set_command(text, FLAVOUR_COMMAND, quote_value(queue))


def ensure_input(text: str, path: str) -> str:
    """``transfer_input_files`` lists ``path`` (added once; idempotent)."""
    current = get_command(text, "transfer_input_files") or ""
    items = [item.strip() for item in current.split(",") if item.strip()]
    if any(Path(item).name == Path(path).name for item in items):
        return text
    return set_command(text, "transfer_input_files", ", ".join([*items, path]))


def chunksize_of(text: str) -> int | None:
    """The chunksize (second argument) of a single-job ``job_{i}.sub``."""
    arguments = get_command(text, "arguments")
    if not arguments:
        return None
    parts = re.findall(r"'((?:[^']|'')*)'|(\S+)", arguments.strip('"'))
    values = [a or b for a, b in parts]
    try:
        return int(values[1])
    except (IndexError, ValueError):
        return None
