"""The jobs folder of the manual-job executors: the one model of its names, flags, logs and ``jobs_config.yaml``.

``job_flags`` (scan_jobs, set_flag), ``merge.load_jobs_config``, ``check_jobs``, ``recreate``
and ``job_state`` read the folder through this module; job states from HTCondor itself are
``job_state.JobStateReader``'s (which reads the flags through ``JobsDir.scan``).

Layout (docs/condor-jobs.md)::

    <jobs-dir>/<job-name>/
        configurator.pkl        the ONE cloudpickle of the Configurator, shared by every job
        config_job_{i}.pkl      job i's inputs as plain data (format pocket-coffea-job/1, pc_jobs.job_config)
        jobs_config.yaml        every job's fileset slice, config and output (docs/merging.md)
        .jobs_config.cache.json jobs_config.yaml parsed, as JSON (ignored once the YAML changes)
        job_{i}.sub             submit file of job i alone (for resubmission)
        jobs_all.sub            every job in one submission (queue chunksize from (...))
        job.sh                  the wrapper each job runs
        inner_run_options.yaml  run options forwarded to the inner ``pocket-coffea run``
        job_{i}.{idle,running,done,failed}   state flags, exactly one per job
        logs/job_{i}.{out,err,log}
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pc_core.atomic import atomic_path
from pc_core.errors import PocketCoffeaError

from .submit_file import SHARED_CONFIGURATOR

log = logging.getLogger(__name__)

JOBS_CONFIG = "jobs_config.yaml"
JOBS_CONFIG_CACHE = ".jobs_config.cache.json"
"""``jobs_config.yaml`` parsed, as JSON (reads 30x faster than YAML); ignored when the YAML changed."""
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
JOBS_CONFIG_VERSION = 1
FLAGS = ("idle", "running", "done", "failed")
STATES = FLAGS
_STAGE = {state: rank for rank, state in enumerate(FLAGS)}  # equal flag times: the later stage wins
_SUB = re.compile(r"^job_(\d+)\.sub$")
_FLAG = re.compile(r"^job_(\d+)\.(idle|running|done|failed)$")
INNER_OPTIONS_KEYS = ("skip-bad-files", "tree-reduction", "retries", "retry-delay")
"""Run options the inner (in-job) ``pocket-coffea run`` consumes (it reads the job's chunks: what to
do when one cannot be read); nothing else is forwarded."""


def write_job_file(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Atomic write with a normal file mode (mkstemp's 0600 would hide the file from the
    HTCondor daemons when they act as another user than the submitter, as in test pools)."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        tmp.chmod(mode)


class JobsDirError(PocketCoffeaError):
    """A jobs folder that is missing, incomplete or does not match the request."""


class JobsFolderError(JobsDirError):
    """The jobs folder does not exist or holds no ``job_{i}.sub`` files."""


def job_name(index: int) -> str:
    return f"job_{index}"


def resolve_jobs_folder(path: str | os.PathLike) -> Path:
    """The jobs folder itself, or its ``job/`` subfolder when given the output folder above it."""
    path = Path(path)
    if not path.is_dir():
        raise JobsFolderError(f"--jobs-folder {path} is not a directory; pass the jobs folder of a condor run")
    if not any(_SUB.match(p.name) for p in path.iterdir()) and (path / "job").is_dir():
        return path / "job"
    return path


@dataclass(frozen=True)
class JobsSnapshot:
    """The flag of every job at one moment (``states[i]`` is None when a job has no flag yet)."""

    folder: Path
    states: dict[int, str | None]
    mtimes: dict[int, float] = field(default_factory=dict)
    """When each job's flag was last written (jobs without a flag are absent)."""

    @property
    def total(self) -> int:
        return len(self.states)

    def jobs_in(self, state: str) -> list[int]:
        return sorted(i for i, s in self.states.items() if s == state)

    def counts(self) -> dict[str, int]:
        """Jobs per state; a job without a flag counts as idle (it never started)."""
        counter = Counter(s or "idle" for s in self.states.values())
        return {state: counter.get(state, 0) for state in FLAGS}


# --------------------------------------------------------------------------- reading jobs_config.yaml fast


def _cache_path(config: Path) -> Path:
    return config.with_name(JOBS_CONFIG_CACHE)


def _write_cache(config: Path, document: Mapping[str, Any]) -> None:
    try:
        stat = config.stat()
        cache = {"source": [stat.st_size, stat.st_mtime_ns], "document": document}
        write_job_file(_cache_path(config), json.dumps(cache, separators=(",", ":")))
    except (OSError, TypeError, ValueError) as exc:  # a read-only folder, a value JSON cannot hold
        log.debug("no cache of %s: %s", config, exc)


def _read_cache(config: Path, stat: os.stat_result) -> dict[str, Any] | None:
    try:
        cache = json.loads(_cache_path(config).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(cache, dict) or cache.get("source") != [stat.st_size, stat.st_mtime_ns]:
        return None
    document = cache.get("document")
    if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict):
        return None
    document["jobs"] = {int(i) if str(i).isdigit() else i: job for i, job in document["jobs"].items()}
    return document


def load_jobs_document(config: str | os.PathLike) -> Any:
    """``jobs_config.yaml`` parsed: from its JSON cache while the YAML is unchanged (size and mtime;
    10,000 jobs in ~0.1 s instead of seconds of YAML), else with the C YAML loader (the cache is
    then rewritten when the folder is writable). Raises ``OSError`` / ``yaml.YAMLError``."""
    config = Path(config)
    stat = config.stat()
    document = _read_cache(config, stat)
    if document is None:
        document = yaml.load(config.read_text(encoding="utf-8"), Loader=_LOADER)
        if isinstance(document, dict) and isinstance(document.get("jobs"), dict):
            _write_cache(config, document)
    return document


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_jobs_config(document: Mapping[str, Any]) -> str:
    """``jobs_config.yaml`` in block style, lists of files and counts in flow style (libyaml:
    10,000 jobs in ~2 s)."""
    return yaml.dump(_plain_paths(document), Dumper=_DUMPER, sort_keys=False, default_flow_style=None, width=10**9)


def _plain_paths(value: Any) -> Any:
    """The document with ``Path`` values as strings (the only non-YAML type a job entry holds)."""
    if isinstance(value, Mapping):
        return {key: _plain_paths(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_paths(item) for item in value]
    return os.fspath(value) if isinstance(value, os.PathLike) else value


@dataclass(frozen=True)
class JobsDir:
    """Names inside one jobs folder; creates nothing by itself."""

    path: Path

    @property
    def jobs_config(self) -> Path:
        return self.path / JOBS_CONFIG

    @property
    def shared_configurator(self) -> Path:
        return self.path / SHARED_CONFIGURATOR

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def script(self) -> Path:
        return self.path / "job.sh"

    @property
    def all_sub(self) -> Path:
        return self.path / "jobs_all.sub"

    @property
    def inner_options(self) -> Path:
        return self.path / "inner_run_options.yaml"

    def config(self, index: int) -> Path:
        return self.path / f"config_job_{index}.pkl"

    def sub(self, index: int) -> Path:
        return self.path / f"job_{index}.sub"

    def flag(self, index: int, state: str) -> Path:
        return self.path / f"job_{index}.{state}"

    def log(self, index: int, kind: str) -> Path:
        return self.logs / f"job_{index}.{kind}"

    # ------------------------------------------------------------------ flags
    def set_flag(self, index: int, state: str) -> None:
        """Exactly one flag file for the job: ``state``."""
        if state not in FLAGS:
            raise ValueError(f"unknown job state {state!r}; expected one of {FLAGS}")
        self.flag(index, state).touch()
        for other in FLAGS:
            if other != state:
                self.flag(index, other).unlink(missing_ok=True)

    def state(self, index: int) -> str | None:
        """The job's flag; None without flag. With several flags left over (a wrapper killed between
        rm and touch) the newest wins, on equal times the later stage: the rule of ``scan``."""
        best: tuple[float, int, str] | None = None
        for rank, state in enumerate(FLAGS):
            try:
                key = (self.flag(index, state).stat().st_mtime, rank, state)
            except FileNotFoundError:
                continue
            if best is None or key > best:
                best = key
        return best[2] if best else None

    def scan(self) -> JobsSnapshot:
        """Every job (``job_{i}.sub``) and its flag, from one listing of the folder."""
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise JobsFolderError(f"cannot list the jobs folder {self.path}: {exc.strerror or exc}") from None
        jobs = sorted(int(m.group(1)) for n in names if (m := _SUB.match(n)))
        if not jobs:
            raise JobsFolderError(
                f"{self.path} holds no job_<i>.sub files: pass the jobs folder written by a condor@<site> run "
                "(or the output folder holding its 'job' subfolder)"
            )
        best: dict[int, tuple[float, int, str]] = {}
        for name in names:
            match = _FLAG.match(name)
            if match is None:
                continue
            index, state = int(match.group(1)), match.group(2)
            try:
                mtime = os.stat(os.path.join(self.path, name)).st_mtime
            except FileNotFoundError:  # removed by the wrapper while we were listing
                continue
            key = (mtime, _STAGE[state], state)
            if index not in best or key > best[index]:
                best[index] = key
        return JobsSnapshot(self.path, {i: best[i][2] if i in best else None for i in jobs},
                            {i: best[i][0] for i in jobs if i in best})

    # ------------------------------------------------------------------ logs
    def logs_by_job(self, cluster_jobs: Mapping[int, int] | None = None) -> dict[int, dict[str, list[Path]]]:
        """``{job: {"out"|"err"|"log": [paths]}}`` from ONE listing of ``logs/`` (never one per job)."""
        from .job_logs import parse_log_name

        cluster_jobs = cluster_jobs or {}
        found: dict[int, dict[str, list[Path]]] = {}
        try:
            entries = list(os.scandir(self.logs))
        except OSError:
            return found
        for entry in entries:
            parsed = parse_log_name(entry.name)
            if parsed is None:
                continue
            cluster, index, kind = parsed
            owner = cluster_jobs.get(cluster, index) if cluster is not None else index
            found.setdefault(owner, {}).setdefault(kind, []).append(Path(entry.path))
        return found

    # ------------------------------------------------------------------ jobs_config.yaml
    def write_jobs_config(self, jobs: Mapping[int, Mapping[str, Any]], extra: Mapping[str, Any]) -> None:
        """``jobs_config.yaml`` (written by a fast emitter: 10,000 jobs in well under a second; the
        document reads back with any YAML reader) and its JSON cache ``.jobs_config.cache.json``."""
        document = {"version": JOBS_CONFIG_VERSION, **extra, "jobs": {int(i): dict(job) for i, job in jobs.items()}}
        write_job_file(self.jobs_config, dump_jobs_config(document))
        _write_cache(self.jobs_config, document)

    @property
    def jobs_config_cache(self) -> Path:
        return self.path / JOBS_CONFIG_CACHE

    def read_jobs_config(self) -> dict[str, Any]:
        """The parsed ``jobs_config.yaml`` (``load_jobs_document``), checked to hold jobs."""
        if not self.jobs_config.is_file():
            raise JobsDirError(
                f"{self.jobs_config} does not exist: {self.path} is not a jobs folder of a manual-job run "
                "(submit the jobs first, without --recreate-jobs, or point jobs-dir/job-name at the right folder)"
            )
        try:
            document = load_jobs_document(self.jobs_config)
        except (OSError, yaml.YAMLError) as exc:
            raise JobsDirError(f"{self.jobs_config} cannot be read as YAML: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("jobs"), dict) or not document["jobs"]:
            raise JobsDirError(f"{self.jobs_config}: expected a mapping with a non-empty 'jobs' mapping (version 1)")
        return document

    def job_indices(self) -> list[int]:
        return sorted(int(i) for i in self.read_jobs_config()["jobs"])

    # ------------------------------------------------------------------ inner run options
    def write_inner_options(self, run_options: Mapping[str, Any]) -> dict[str, Any]:
        """``inner_run_options.yaml``: only the Coffea-Runner keys of ``run_options``."""
        inner = {key: run_options[key] for key in INNER_OPTIONS_KEYS if run_options.get(key) is not None}
        write_job_file(self.inner_options, yaml.safe_dump(inner, sort_keys=False))
        return inner


def parse_job_selection(selection: str, available: list[int]) -> list[int] | None:
    """``"0,1,3"`` -> [0, 1, 3]; ``"auto"`` -> None (chosen from the flags)."""
    text = str(selection).strip()
    if text.lower() == "auto":
        return None
    if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        raise JobsDirError(
            f"--recreate-jobs {selection!r} is not valid; expected 'auto' or a comma separated list of "
            f"job indices such as 0,1,3 (jobs of this folder: 0-{max(available)})"
        )
    indices = sorted({int(part) for part in text.split(",")})
    unknown = [i for i in indices if i not in available]
    if unknown:
        raise JobsDirError(
            f"--recreate-jobs {selection!r}: no job {', '.join(map(str, unknown))} in the jobs folder "
            f"(jobs: {min(available)}-{max(available)}, {len(available)} in total)"
        )
    return indices
