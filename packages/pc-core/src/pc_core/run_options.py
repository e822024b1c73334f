"""Run options: packaged defaults, custom YAML and command-line overrides, validated.

The options are layered (later wins)::

    general  ->  executor@site section  ->  --custom-run-options YAML  ->  CLI flags

and every layer is checked against one schema, so a typo or a wrong type is reported with
the file (or "command line") it came from, the key, the value and what is accepted.
Keys are kebab-case, as in the user documentation (docs/run-options.md).
"""
from __future__ import annotations

import copy
import difflib
import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any


from .errors import ExecutorError, RunOptionsError
from .units import SIZE_EXPECTED, WALLTIME_EXPECTED, size_problem, walltime_problem
from .yaml_reader import parse_yaml

logger = logging.getLogger(__name__)

DEFAULTS_RESOURCE = "data/run_options_defaults.yaml"
GENERAL_SECTION = "general"
CLI_SOURCE = "command line"
JOBQUEUE_SYSTEMS = ("local", "htcondor", "slurm", "gateway", "external")

_EXECUTOR_PART_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


# ----------------------------------------------------------------------------------------
# Schema
# ----------------------------------------------------------------------------------------

Check = Callable[[Any], "str | None"]
"""A value check: returns None when the value is fine, else what is wrong with it."""


@dataclass(frozen=True)
class KeySpec:
    """One known run option: what it accepts (for messages) and how to check it."""

    expected: str
    check: Check
    description: str


def is_int(value: Any) -> bool:
    """True for ints, False for booleans (``True`` is an ``int`` to Python, not to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int_check(minimum: int | None = None, maximum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if not is_int(value):
            return "not an integer"
        if minimum is not None and value < minimum:
            return f"smaller than {minimum}"
        if maximum is not None and value > maximum:
            return f"larger than {maximum}"
        return None

    return check


def _seconds_check(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not a number"
    if not value >= 0:  # also NaN
        return "smaller than 0"
    return None


def _optional(check: Check) -> Check:
    def optional(value: Any) -> str | None:
        return None if value is None else check(value)

    return optional


def _bool_check(value: Any) -> str | None:
    return None if isinstance(value, bool) else "not a boolean (true/false)"


def _bool_or_auto_check(value: Any) -> str | None:
    return None if isinstance(value, bool) or value == "auto" else "not true, false or auto"


def _str_check(value: Any) -> str | None:
    if not isinstance(value, str):
        return "not a string"
    return None if value.strip() else "an empty string"


def _walltime_check(value: Any) -> str | None:
    return walltime_problem(value) if isinstance(value, str) else "not a string"


def _duration_check(value: Any) -> str | None:
    if is_int(value):
        return None if value >= 0 else "negative"
    return _str_check(value)


def _str_list_check(value: Any) -> str | None:
    if not isinstance(value, list):
        return "not a list"
    for item in value:
        if not isinstance(item, str):
            return f"list item {item!r} is not a string"
    return None


def _choice_check(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"not one of {', '.join(choices)}"

    return check


def _job_name_check(value: Any) -> str | None:
    problem = _str_check(value)
    if problem:
        return problem
    return "contains a path separator" if "/" in value or value in {".", ".."} else None


def per_sample_int_problem(value: Any) -> str | None:
    """Check an int > 0 or ``{"default": int > 0, sample: int > 0, ...}``; None when fine."""
    if is_int(value):
        return None if value > 0 else "not positive"
    if isinstance(value, Mapping):
        if not value:
            return "an empty mapping"
        for sample, budget in value.items():
            if not isinstance(sample, str):
                return f"key {sample!r} is not a sample name (string)"
            if not is_int(budget) or budget <= 0:
                return f"entry {sample!r}: {budget!r} is not an integer > 0"
        return None
    return "neither an integer nor a mapping {sample: integer}"


def _group_samples_check(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "not a mapping {group: [sample, ...]}"
    if not value:
        return "an empty mapping"
    owner: dict[str, str] = {}
    for group, samples in value.items():
        if not isinstance(group, str):
            return f"group name {group!r} is not a string"
        if not isinstance(samples, list) or not samples:
            return f"group {group!r}: {samples!r} is not a non-empty list of sample names"
        for sample in samples:
            if not isinstance(sample, str):
                return f"group {group!r}: sample {sample!r} is not a string"
            if sample in owner and owner[sample] != group:
                return f"sample {sample!r} is in two groups ({owner[sample]!r} and {group!r})"
            owner[sample] = group
    return None


def _directives_check(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "not a mapping {directive: value}"
    for key, item in value.items():
        if not isinstance(key, str):
            return f"directive {key!r} is not a string"
        if not isinstance(item, (str, int, float, bool)):
            return f"directive {key!r}: {item!r} is not a string, number or boolean"
    return None


_POS_INT = "an integer > 0"
_OPT_POS_INT = "an integer > 0 or null"
_OPT_STR = "a string or null"
_PER_SAMPLE = "an integer > 0 or a mapping {default: int, <sample>: int, ...} of integers > 0"
_SIZE = f"{SIZE_EXPECTED}, or null"

SCHEMA: dict[str, KeySpec] = {
    # general
    "scaleout": KeySpec(_OPT_POS_INT, _optional(_int_check(1)), "workers, processes or jobs to use"),
    "chunksize": KeySpec(_PER_SAMPLE, per_sample_int_problem, "events per chunk, or per-sample dict"),
    "limit-files": KeySpec(_OPT_POS_INT, _optional(_int_check(1)), "process only the first N files per dataset"),
    "limit-chunks": KeySpec(_OPT_POS_INT, _optional(_int_check(1)), "process only the first N chunks"),
    "retries": KeySpec("an integer >= 0", _int_check(0), "retries of a failed chunk"),
    "retry-delay": KeySpec(
        "a number >= 0 (seconds)", _seconds_check,
        "wait before the first retry of an unreadable chunk, doubled for each next one up to 30 s"
    ),
    "tree-reduction": KeySpec(_OPT_POS_INT, _optional(_int_check(1)), "fan-in of the dask tree reduction"),
    "skip-bad-files": KeySpec("a boolean", _bool_check, "skip unreadable files instead of failing"),
    "checkpoint-interval": KeySpec(
        "an integer >= 1 (seconds)", _int_check(1), "seconds between two checkpoints of the finished chunks"
    ),
    "pipelined-reading": KeySpec(
        "true, false or auto", _bool_or_auto_check,
        "read the next chunk's branches in a helper process while a chunk is analysed (auto: when a core is free)"
    ),
    "voms-proxy": KeySpec(_OPT_STR, _optional(_str_check), "path of the grid proxy"),
    "ignore-grid-certificate": KeySpec("a boolean", _bool_check, "do not look for a grid proxy"),
    "group-samples": KeySpec(
        "a mapping {group: [sample, ...]} or null", _optional(_group_samples_check), "sample groups"
    ),
    "max-events-per-job": KeySpec(
        _PER_SAMPLE + " or null", _optional(per_sample_int_problem), "event budget of a condor job"
    ),
    # sites: workers and batch system
    "cores-per-worker": KeySpec(_POS_INT, _int_check(1), "cores of each worker/job"),
    "mem-per-worker": KeySpec(_SIZE, _optional(size_problem), "memory of each worker/job"),
    "disk-per-worker": KeySpec(_SIZE, _optional(size_problem), "disk of each worker/job"),
    "worker-image": KeySpec(_OPT_STR, _optional(_str_check), "container image of the workers"),
    "death-timeout": KeySpec(
        "seconds (integer or string) or null", _optional(_duration_check), "worker timeout without scheduler"
    ),
    "queue": KeySpec(_OPT_STR, _optional(_str_check), "HTCondor JobFlavour or SLURM partition"),
    "walltime": KeySpec(f"{WALLTIME_EXPECTED}, or null", _optional(_walltime_check), "batch wall-time limit"),
    "account": KeySpec(_OPT_STR, _optional(_str_check), "SLURM account/project"),
    "adaptive": KeySpec("a boolean", _bool_check, "adapt the number of workers between 1 and scaleout"),
    "performance-report": KeySpec("a boolean", _bool_check, "write a dask performance report"),
    "custom-setup-commands": KeySpec(
        "a list of strings or null", _optional(_str_list_check), "shell lines run before the worker"
    ),
    "conda-env": KeySpec("a boolean", _bool_check, "activate the current conda env on the workers"),
    "local-virtualenv": KeySpec("a boolean", _bool_check, "activate the current virtualenv on the workers"),
    "jobqueue-system": KeySpec(
        "one of " + ", ".join(JOBQUEUE_SYSTEMS), _choice_check(JOBQUEUE_SYSTEMS), "how workers are started"
    ),
    "scheduler-address": KeySpec(_OPT_STR, _optional(_str_check), "address of an existing dask scheduler"),
    "scheduler-port": KeySpec(
        "an integer 0-65535 or null", _optional(_int_check(0, 65535)), "port of the dask scheduler"
    ),
    "scheduler-host": KeySpec(
        _OPT_STR, _optional(_str_check), "address the scheduler (dask) or interchange (parsl) listens on"
    ),
    "scheduler-interface": KeySpec(
        _OPT_STR, _optional(_str_check), "network interface of the scheduler/interchange, e.g. 'eth0'"
    ),
    "worker-timeout": KeySpec(
        "an integer >= 1 (seconds) or null", _optional(_int_check(1)),
        "seconds to wait for the first worker before the run stops (null: forever)",
    ),
    "dashboard-address": KeySpec(_OPT_STR, _optional(_str_check), "dask dashboard address, null: none"),
    "gateway-address": KeySpec(_OPT_STR, _optional(_str_check), "dask-gateway address"),
    "gateway-proxy-address": KeySpec(_OPT_STR, _optional(_str_check), "dask-gateway proxy address"),
    "worker-extra-args": KeySpec(
        "a list of strings or null", _optional(_str_list_check), "extra arguments of the worker command"
    ),
    "job-extra-directives": KeySpec(
        "a mapping {directive: value} or null", _optional(_directives_check), "extra batch submit directives"
    ),
    "logs-dir": KeySpec(_OPT_STR, _optional(_str_check), "parsl log folder (relative: inside the output dir)"),
    # condor manual jobs
    "job-name": KeySpec("a folder name (string without '/')", _job_name_check, "sub-folder of jobs-dir"),
    "jobs-dir": KeySpec(_OPT_STR, _optional(_str_check), "where the jobs folder goes; null: --outputdir"),
    "eos-prefix": KeySpec(_OPT_STR, _optional(_str_check), "xrootd prefix used to copy outputs to EOS"),
    "dry-run": KeySpec("a boolean", _bool_check, "prepare the jobs folder but do not submit"),
    "max-retries": KeySpec("an integer >= 0 or null", _optional(_int_check(0)), "HTCondor retries of a job"),
    "max-run-time": KeySpec(
        "an integer > 0 (seconds) or null", _optional(_int_check(1)), "HTCondor MaxRuntime of a job"
    ),
    "notify-user": KeySpec(_OPT_STR, _optional(_str_check), "e-mail HTCondor notifies"),
}


# keys that existed once and are refused with a reason rather than "unknown"
REMOVED_KEYS: dict[str, str] = {
    "split-by-category": (
        "it was never implemented (jobs always write one output with every category); "
        "remove it from your run options"
    ),
}

# keys the run itself reads, whatever the executor (the rest belongs to engines)
RUNNER_KEYS = frozenset({
    "scaleout", "chunksize", "limit-files", "limit-chunks", "retries", "retry-delay", "tree-reduction",
    "skip-bad-files", "checkpoint-interval", "pipelined-reading", "voms-proxy", "ignore-grid-certificate", "group-samples",
})


def known_keys() -> list[str]:
    """Every run-option key, in schema order."""
    return list(SCHEMA)


def _suggestion(key: str) -> str | None:
    normalized = key.strip().lower().replace("_", "-").replace(" ", "-")
    if normalized in SCHEMA:
        return normalized
    matches = difflib.get_close_matches(normalized, SCHEMA, n=1, cutoff=0.6)
    return matches[0] if matches else None


def validate_options(options: Any, source: str) -> dict[str, Any]:
    """Check one layer of options against the schema; return a deep copy.

    ``source`` names where the options come from (a file path, ``command line``, a
    section of the packaged defaults) and starts every error message.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise RunOptionsError(
            f"{source}: run options must be a mapping of option: value, got {type(options).__name__}"
        )
    for key, value in options.items():
        spec = SCHEMA.get(key) if isinstance(key, str) else None
        if spec is None and key in REMOVED_KEYS:
            raise RunOptionsError(f"{source}: run option {key!r} is not supported: {REMOVED_KEYS[key]}")
        if spec is None:
            hint = _suggestion(str(key))
            message = f"{source}: unknown run option {str(key)!r}."
            if hint:
                message += f" Did you mean {hint!r}?"
            else:
                message += f" Known options: {', '.join(SCHEMA)}"
            raise RunOptionsError(message)
        problem = spec.check(value)
        if problem is not None:
            raise RunOptionsError(
                f"{source}: run option {key!r} has invalid value {value!r} "
                f"({type(value).__name__}, {problem}); expected {spec.expected}"
            )
    return copy.deepcopy(dict(options))


# ----------------------------------------------------------------------------------------
# YAML files
# ----------------------------------------------------------------------------------------


def read_options_file(path: str | Path) -> dict[str, Any]:
    """Read and validate a custom run-options YAML; only its flat ``option: value`` part
    (site sections, ``engine@site: {...}``, are validated and left out: see read_options_layers)."""
    return read_options_layers(path)[0]


def _is_section_name(key: Any, value: Any, engines: Iterable[str]) -> bool:
    """A key of a custom run-options mapping that names an executor section, not an option."""
    if not isinstance(key, str) or key in SCHEMA or key in REMOVED_KEYS:
        return False
    return "@" in key or (key in engines and isinstance(value, Mapping))


def split_sections(
    options: Any, source: str, defaults: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split a custom run-options mapping into its flat options and its executor sections.

    ``engine@site: {...}`` (and ``engine: {...}``) sections define or amend a site; each is
    validated on its own and its engine must be one with a packaged template section.
    """
    if options is None:
        return {}, {}
    if not isinstance(options, Mapping):
        raise RunOptionsError(
            f"{source}: run options must be a mapping of option: value, got {type(options).__name__}"
        )
    defaults = load_defaults() if defaults is None else defaults
    engines = engine_names(defaults)
    flat: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        if not _is_section_name(key, value, engines):
            flat[key] = value
            continue
        try:
            engine, _site = parse_executor(key)
        except ExecutorError as exc:
            raise RunOptionsError(f"{source}: section {key!r}: {exc}") from None
        if engine not in engines:
            raise RunOptionsError(
                f"{source}: section {key!r} names engine {engine!r}, which has no template; "
                f"a site section must be 'engine@site' with engine one of {', '.join(engines)}"
            )
        if not isinstance(value, Mapping):
            raise RunOptionsError(
                f"{source}: section {key!r} must be a mapping of option: value, got {type(value).__name__}"
            )
        sections[key] = validate_options(value, f"{source} [{key}]")
    return validate_options(flat, source), sections


def engine_names(defaults: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Engines with a template section (``iterative``, ``futures``, ``dask``, ``parsl``, ``condor``)."""
    sections = load_defaults() if defaults is None else defaults
    return sorted(name for name in sections if name != GENERAL_SECTION and "@" not in name)


def read_options_layers(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read a custom run-options YAML: ``(flat options, {executor: section options})``, validated."""
    path = Path(path)
    if not path.is_file():
        raise RunOptionsError(
            f"custom run options file {str(path)!r} does not exist or is not a file; "
            "pass a YAML file with option: value lines"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunOptionsError(f"{path}: cannot read the custom run options file: {exc}") from exc
    return split_sections(parse_yaml(text, str(path), RunOptionsError), str(path))


def defaults_path() -> str:
    """Where the packaged defaults live (for messages and docs)."""
    return str(files("pc_core").joinpath(DEFAULTS_RESOURCE))


@functools.cache
def _packaged_defaults() -> dict[str, dict[str, Any]]:
    """The packaged defaults file, read and validated once per process (it is part of the install)."""
    source = defaults_path()
    data = parse_yaml(files("pc_core").joinpath(DEFAULTS_RESOURCE).read_text(), source, RunOptionsError)
    if not isinstance(data, Mapping) or GENERAL_SECTION not in data:
        raise RunOptionsError(f"{source}: the packaged defaults need a mapping with a 'general' section")
    return {name: validate_options(section, f"{source} [{name}]") for name, section in data.items()}


def load_defaults() -> dict[str, dict[str, Any]]:
    """The packaged defaults, every section validated; a fresh copy each call."""
    return copy.deepcopy(_packaged_defaults())


def available_executors(defaults: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Every executor string with a section in the defaults (``dask``, ``dask@lxplus``, ...)."""
    sections = load_defaults() if defaults is None else defaults
    return sorted((name for name in sections if name != GENERAL_SECTION), key=lambda s: (s.split("@")[0], s))


def parse_executor(executor: str) -> tuple[str, str | None]:
    """Split ``engine@site`` into ``(engine, site)``; ``site`` is None for local executors."""
    if not isinstance(executor, str) or not executor.strip():
        raise ExecutorError(f"executor must be a non-empty string like 'dask' or 'dask@lxplus', got {executor!r}")
    parts = executor.strip().split("@")
    if len(parts) > 2 or not all(_EXECUTOR_PART_RE.match(p) for p in parts):
        raise ExecutorError(f"malformed executor string {executor!r}: expected 'engine' or 'engine@site'")
    return parts[0], (parts[1] if len(parts) == 2 else None)


# ----------------------------------------------------------------------------------------
# RunOptions
# ----------------------------------------------------------------------------------------


class RunOptions(Mapping[str, Any]):
    """The resolved, validated run options of one executor: a read-only mapping.

    Keys are kebab-case.  Mutable values (dicts, lists) are handed out as copies, so the
    options cannot change behind the back of whoever loaded them.  ``origin(key)`` says
    which layer set a key.  Instances pickle (they travel inside condor job configs).
    """

    __slots__ = ("_data", "_executor", "_origins")

    def __init__(self, data: Mapping[str, Any], executor: str, origins: Mapping[str, str] | None = None):
        parse_executor(executor)
        self._data = validate_options(data, f"run options of {executor!r}")
        self._executor = executor
        self._origins = {key: (origins or {}).get(key, "unknown") for key in self._data}

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return copy.deepcopy(value) if isinstance(value, (dict, list)) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"RunOptions(executor={self._executor!r}, {self._data!r})"

    def __reduce__(self):
        return (RunOptions, (self._data, self._executor, self._origins))

    @property
    def executor(self) -> str:
        """The executor string the options were resolved for, e.g. ``dask@lxplus``."""
        return self._executor

    @property
    def engine(self) -> str:
        """The engine part of the executor string, e.g. ``dask``."""
        return parse_executor(self._executor)[0]

    @property
    def site(self) -> str | None:
        """The site part of the executor string, e.g. ``lxplus``; None for local executors."""
        return parse_executor(self._executor)[1]

    def origin(self, key: str) -> str:
        """Which layer set ``key``: ``general``, the section name, a file path or ``command line``."""
        if key not in self._data:
            raise KeyError(key)
        return self._origins[key]

    def to_dict(self) -> dict[str, Any]:
        """A plain deep copy, e.g. to dump as YAML."""
        return copy.deepcopy(self._data)

    def with_overrides(self, overrides: Mapping[str, Any], source: str = CLI_SOURCE) -> RunOptions:
        """A new RunOptions with validated ``overrides`` on top (None values are ignored)."""
        layer = validate_options(_drop_none(overrides, normalize=True), source)
        data = {**self._data, **layer}
        origins = {**self._origins, **{key: source for key in layer}}
        return RunOptions(data, self._executor, origins)


def _drop_none(overrides: Mapping[str, Any] | None, normalize: bool) -> dict[str, Any]:
    """CLI layer: None means "flag not given"; click's snake_case names become kebab-case."""
    if not overrides:
        return {}
    result = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if normalize and isinstance(key, str):
            key = key.replace("_", "-")
        result[key] = value
    return result


def load_run_options(
    executor: str,
    custom_options: str | Path | Mapping[str, Any] | None = None,
    cli_overrides: Mapping[str, Any] | None = None,
) -> RunOptions:
    """Resolve the run options of ``executor`` (``engine`` or ``engine@site``).

    Layers, later wins: packaged ``general`` -> the ``executor`` section -> the custom
    options (a YAML path or a mapping) -> ``cli_overrides`` (None values mean "not given";
    snake_case keys are accepted there).  Nothing passed in is modified.
    """
    engine, _site = parse_executor(executor)
    executor = executor.strip()
    defaults = load_defaults()
    flat: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    source = "custom run options"
    if custom_options is not None:
        if isinstance(custom_options, Mapping):
            flat, sections = split_sections(custom_options, source, defaults)
        else:
            source = str(custom_options)
            flat, sections = read_options_layers(custom_options)
    packaged = executor in defaults and executor != GENERAL_SECTION
    if not packaged and not (executor in sections and engine in defaults):
        raise ExecutorError(
            f"unknown executor {executor!r}; available executors: {', '.join(available_executors(defaults))}"
            + (f"; sections of {source}: {', '.join(sections)}" if sections else "")
            + f". To define your own site, add a section '{executor}:' with its options to your "
            "--custom-run-options YAML (engine one of " + ", ".join(engine_names(defaults)) + ")"
        )
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def layer(values: Mapping[str, Any], origin: str) -> None:
        for key, value in values.items():
            data[key] = value
            origins[key] = origin

    layer(defaults[GENERAL_SECTION], GENERAL_SECTION)
    # a user-defined site starts from its engine's template, as the packaged sites do
    layer(defaults[executor] if packaged else defaults[engine], executor if packaged else engine)
    if executor in sections:
        layer(sections[executor], f"{source} [{executor}]")
    layer(flat, source)
    layer(validate_options(_drop_none(cli_overrides, normalize=True), CLI_SOURCE), CLI_SOURCE)
    return RunOptions(data, executor, origins)


def chunksize_for_sample(run_options_or_value: Mapping[str, Any] | int, sample: str) -> int:
    """The chunksize of ``sample``: an int as is; a per-sample dict by sample, else ``default``.

    Accepts a RunOptions (or a plain run-options dict with a ``chunksize`` key), or the
    chunksize value itself.
    """
    value: Any = run_options_or_value
    if isinstance(value, Mapping) and "chunksize" in value:  # run options, not a per-sample dict
        value = value["chunksize"]
    return per_sample_value(value, sample, "chunksize")


def warn_unknown_samples(value: Any, key: str, samples: Iterable[str]) -> list[str]:
    """Log (and return) the keys of a per-sample ``value`` that match no sample of the run: a
    typo would otherwise silently fall back to ``default``."""
    if not isinstance(value, Mapping):
        return []
    present = sorted(set(samples))
    unknown = sorted(str(k) for k in value if k != "default" and k not in present)
    if unknown:
        logger.warning("%s has keys matching no sample in the fileset: %s; samples present: %s",
                       key, ", ".join(unknown), ", ".join(present))
    return unknown


def per_sample_value(value: Any, sample: str, key: str) -> int:
    """Resolve an ``int | {default: int, sample: int}`` option for one sample."""
    problem = per_sample_int_problem(value)
    if problem is not None:
        raise RunOptionsError(f"run option {key!r} has invalid value {value!r} ({problem}); expected {_PER_SAMPLE}")
    if is_int(value):
        return value
    if sample in value:
        return value[sample]
    if "default" in value:
        return value["default"]
    raise RunOptionsError(
        f"run option {key!r} has no entry for sample {sample!r} and no 'default'; "
        f"keys present: {', '.join(map(str, value))}. Add '{sample}: <int>' or 'default: <int>'."
    )


# ----------------------------------------------------------------------------------------
# Which engine reads which key
# ----------------------------------------------------------------------------------------


def engine_keys(engine: str, defaults: Mapping[str, Mapping[str, Any]] | None = None) -> frozenset[str]:
    """The keys an engine reads according to its packaged template section, plus the run's own keys."""
    sections = load_defaults() if defaults is None else defaults
    return frozenset(sections.get(engine, {})) | RUNNER_KEYS


def is_packaged_origin(origin: str, defaults: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """True when a key's value came from the packaged defaults (``general`` or a packaged section)."""
    sections = load_defaults() if defaults is None else defaults
    return origin in sections


def unread_keys(
    options: RunOptions, reads: Iterable[str] | None = None, defaults: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[list[str], list[str]]:
    """Keys set by the user (custom YAML, a user site section, the command line) that the
    executor's engine does not read: ``(errors, warnings)``, each a message.

    ``reads`` is what the engine's factory declares (default: its template section). A key
    that two or more other engines read (``queue``, ``mem-per-worker``: one options file for
    several executors is normal) is a warning; a key that at most one other engine reads
    (``job-name`` for condor, ``performance-report`` for dask) is an error. ``null`` values
    count as not set.
    """
    sections = load_defaults() if defaults is None else defaults
    engine = options.engine
    readable = frozenset(reads) if reads is not None else engine_keys(engine, sections)
    errors: list[str] = []
    warnings: list[str] = []
    for key in options:
        if key in readable or options[key] is None:
            continue
        origin = options.origin(key)
        if is_packaged_origin(origin, sections):
            continue
        readers = [name for name in engine_names(sections) if name != engine and key in sections[name]]
        where = f"run option {key!r} (set in {origin}) is not read by executor {options.executor!r}"
        if len(readers) >= 2:
            warnings.append(f"{where}; it is read by {', '.join(readers)}; ignored")
        else:
            hint = f"only {readers[0]} reads it" if readers else "no executor reads it"
            errors.append(f"{where} ({hint}); remove it, or run with an executor that reads it")
    return errors, warnings
