"""``job.sh``: the wrapper every manual job runs, and its idempotent patch.

The wrapper takes ``INDEX CHUNKSIZE JOBS_DIR OUTPUT_DIR``; it flags the job ``.running``,
runs the inner ``pocket-coffea run`` on the transferred ``config_job_{INDEX}.pkl``, copies
``output_all.coffea`` to ``OUTPUT_DIR/output_job_{INDEX}.coffea`` (``xrdcp`` when
``OUTPUT_DIR`` is a ``root://`` URL, else copy + rename so a half-copied file is never
seen) and ends with ``.done`` or ``.failed`` and the matching exit code.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .submit_file import INNER_OPTIONS_FILE

PREFIX_ENV = "POCKET_COFFEA_JOB_PREFIX"
"""Environment variable (read at submission): the Python prefix whose ``bin/pocket-coffea`` jobs run."""

_TEMPLATE = r"""#!/bin/bash
# pocket-coffea manual job (written by pc_jobs): INDEX CHUNKSIZE JOBS_DIR OUTPUT_DIR
set -u
index=$1; chunksize=$2; jobs_dir=$3; output_dir=$4
flag() {  # exactly one state flag per job
  rm -f "$jobs_dir/job_$index.idle" "$jobs_dir/job_$index.running" "$jobs_dir/job_$index.done" "$jobs_dir/job_$index.failed"
  : > "$jobs_dir/job_$index.$1"
}
finish() { rm -rf "$scratch_out"; flag "$1"; echo "[pocket-coffea job $index] $1 ($(date -u +%FT%TZ))"; exit "$2"; }
flag running
echo "[pocket-coffea job $index] start on $(hostname) in $PWD ($(date -u +%FT%TZ)), chunksize $chunksize"
scratch_out=$PWD/pc_job_output
export XRD_RUNFORKHANDLER=1 MALLOC_TRIM_THRESHOLD_=0
[ -n "${HOME:-}" ] && [ -w "${HOME:-}" ] || export HOME=$PWD
export MPLCONFIGDIR=$PWD/.mplconfig
__PROXY__
__SETUP__
PC_BIN=__BIN__
"$PC_BIN" run --cfg "config_job_$index.pkl" -o "$scratch_out" __EXECUTOR__ --chunksize "$chunksize" --custom-run-options __INNER__ -ll INFO
rc=$?
if [ "$rc" -ne 0 ]; then echo "[pocket-coffea job $index] pocket-coffea run failed (exit $rc)" >&2; finish failed "$rc"; fi
result=$scratch_out/output_all.coffea
[ -f "$result" ] || { echo "[pocket-coffea job $index] no output $result" >&2; finish failed 3; }
case "$output_dir" in
  root://*) xrdcp -f -s "$result" "$output_dir/output_job_$index.coffea" || { echo "[pocket-coffea job $index] xrdcp to $output_dir failed" >&2; finish failed 4; } ;;
  *) mkdir -p "$output_dir" &&
     cp "$result" "$output_dir/.output_job_$index.coffea.part$$" &&
     mv -f "$output_dir/.output_job_$index.coffea.part$$" "$output_dir/output_job_$index.coffea" ||
     { rm -f "$output_dir/.output_job_$index.coffea.part$$"; echo "[pocket-coffea job $index] copy to $output_dir failed" >&2; finish failed 4; } ;;
esac
finish done 0
"""


@dataclass(frozen=True)
class JobEnvironment:
    """How the job finds pocket-coffea and what it runs first."""

    pocket_coffea: str  # path (or name on PATH) of the pocket-coffea executable
    setup_commands: tuple[str, ...] = ()
    proxy_name: str | None = None  # transferred proxy file name, exported as X509_USER_PROXY

    @classmethod
    def from_run_options(cls, run_options: Mapping[str, Any], proxy_name: str | None = None) -> JobEnvironment:
        """``$POCKET_COFFEA_JOB_PREFIX``, else ``local-virtualenv`` (this venv) / ``conda-env`` (this conda env), else PATH (the image)."""
        prefix = os.environ.get(PREFIX_ENV)
        if not prefix and run_options.get("local-virtualenv"):
            prefix = sys.prefix
        if not prefix and run_options.get("conda-env"):
            prefix = os.environ.get("CONDA_PREFIX") or sys.prefix
        executable = os.path.join(prefix, "bin", "pocket-coffea") if prefix else "pocket-coffea"
        return cls(executable, tuple(run_options.get("custom-setup-commands") or ()), proxy_name)


def executor_arguments(cores: int) -> list[str]:
    """Inner executor: iterative on one core, futures with one process per core otherwise."""
    return ["-e", "iterative"] if cores <= 1 else ["-e", "futures", "-s", str(cores)]


def render_job_script(environment: JobEnvironment, cores: int) -> str:
    proxy = (f'export X509_USER_PROXY="$PWD/{environment.proxy_name}"' if environment.proxy_name
             else "# no grid proxy shipped")
    setup = "\n".join(environment.setup_commands) if environment.setup_commands else "# no custom setup commands"
    replacements = {
        "__PROXY__": proxy,
        "__SETUP__": setup,
        "__BIN__": shlex.quote(environment.pocket_coffea),
        "__EXECUTOR__": " ".join(executor_arguments(cores)),
        "__INNER__": INNER_OPTIONS_FILE,
    }
    text = _TEMPLATE
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    return text


# a command line starting with the pocket-coffea executable (not a message mentioning it)
_RUN_CALL = re.compile(r'^(\s*(?:\S*pocket-coffea\S*|"\$PC_BIN")\s+run)(?=\s)', re.MULTILINE)


def patch_inner_options(script: str) -> str:
    """Make every inner ``pocket-coffea run`` call read ``inner_run_options.yaml`` (once)."""
    if INNER_OPTIONS_FILE in script:
        return script
    return _RUN_CALL.sub(lambda m: f"{m.group(1)} --custom-run-options {INNER_OPTIONS_FILE}", script)
