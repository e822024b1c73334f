"""Send submit files to HTCondor through the ``htcondor2`` Python bindings, checking every result.

The bindings read ``CONDOR_CONFIG`` (the pool to talk to). A schedd that cannot be
reached, a description HTCondor rejects, or a cluster with a different number of jobs
than expected is an ``SubmissionError`` naming the submit file.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pc_core.errors import ExecutorError

log = logging.getLogger(__name__)


class SubmissionError(ExecutorError):
    """HTCondor refused or could not take the jobs."""


@dataclass(frozen=True)
class Submitted:
    submit_file: Path
    cluster: int
    jobs: int


def _where() -> str:
    config = os.environ.get("CONDOR_CONFIG")
    return f"the HTCondor schedd (CONDOR_CONFIG={config})" if config else "the HTCondor schedd (CONDOR_CONFIG not set)"


def submit_file(path: Path, expected_jobs: int) -> Submitted:
    """Submit the description in ``path`` (with its queue statement); returns the cluster."""
    import htcondor2

    errors = (htcondor2.HTCondorException, RuntimeError, ValueError, TypeError, OSError)
    text = Path(path).read_text()
    try:
        description = htcondor2.Submit(text)
    except errors as exc:  # the bindings raise several types for a bad description
        raise SubmissionError(f"{path}: HTCondor cannot parse the submit description: {exc}") from None
    try:
        schedd = htcondor2.Schedd()
    except errors as exc:
        raise SubmissionError(
            f"cannot reach {_where()} to submit {path}: {type(exc).__name__}: {exc}. "
            "Is HTCondor running and CONDOR_CONFIG pointing at its configuration?"
        ) from None
    try:
        result = schedd.submit(description)
    except errors as exc:
        raise SubmissionError(f"{_where()} refused {path}: {type(exc).__name__}: {exc}") from None
    cluster, jobs = int(result.cluster()), int(result.num_procs())
    if cluster <= 0 or jobs != expected_jobs:
        raise SubmissionError(
            f"{path}: HTCondor returned cluster {cluster} with {jobs} job(s), expected {expected_jobs}; "
            "check condor_q and the submit file"
        )
    log.info("Submitted %s: cluster %d, %d job(s)", path.name, cluster, jobs)
    return Submitted(Path(path), cluster, jobs)
