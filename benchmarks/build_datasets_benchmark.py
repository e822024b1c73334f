#!/usr/bin/env python
"""Benchmark: build-datasets over N datasets x M files registered in the local Rucio.

    bash services/start_all.sh
    .venv/bin/python benchmarks/build_datasets_benchmark.py [--datasets 200] [--files 50]

Registers the catalogue in bulk (a handful of calls: add_dids, add_replicas,
attach_dids_to_dids, set_dids_metadata_bulk), then runs ``build-datasets``' library path
(the same code the CLI runs) and prints the wall time and the number of Rucio API calls,
counted by wrapping the rucio ``Client``. The build must not make one call per file.
Nothing is read over XRootD: every file has its event count in Rucio.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from pc_datasets.build import BuildOptions, build_datasets
from pc_datasets.definition import parse_definition
from pc_datasets.outputs import OutputOptions, plan_outputs, write_outputs
from pc_datasets.registration import ensure_rse, ensure_scope
from pc_datasets.rucio_gateway import RucioGateway, RucioSettings, default_client_factory
from pc_datasets.sites import SiteSelection

CHUNK = 250  # the server schema allows 1000 DIDs per bulk call; SQLite limits bind variables


class CountingClient:
    """Wraps a rucio Client; counts every public method call by name."""

    def __init__(self, client, counter: Counter):
        self._client, self._counter = client, counter

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if callable(attr) and not name.startswith("_"):
            def counted(*args, **kwargs):
                self._counter[name] += 1
                return attr(*args, **kwargs)
            return counted
        return attr


def register(client, n_datasets: int, n_files: int, tag: str) -> dict[str, str]:
    scope = "cms"
    containers = [f"/Bench{i:03d}_{tag}/Run3Summer22-v1/NANOAODSIM" for i in range(n_datasets)]
    blocks = [c + "#b1" for c in containers]
    client.add_dids([{"scope": scope, "name": c, "type": "CONTAINER"} for c in containers])
    client.add_dids([{"scope": scope, "name": b, "type": "DATASET"} for b in blocks])
    files_of = {b: [f"/store/mc/Run3Summer22/Bench{i:03d}_{tag}/NANOAODSIM/f{j:03d}.root" for j in range(n_files)]
                for i, b in enumerate(blocks)}
    all_files = [(b, lfn, j) for b, lfns in files_of.items() for j, lfn in enumerate(lfns)]
    # every file at T2_CH_CERN, every other one also at T1_DE_KIT
    for site, pick in (("T2_CH_CERN", lambda j: True), ("T1_DE_KIT", lambda j: j % 2 == 0)):
        dids = [{"scope": scope, "name": lfn, "bytes": 1000 + j, "adler32": "00000001"} for _, lfn, j in all_files if pick(j)]
        for k in range(0, len(dids), CHUNK):
            client.add_replicas(site, dids[k:k + CHUNK])
    attachments = [{"scope": scope, "name": b, "dids": [{"scope": scope, "name": lfn} for lfn in lfns]}
                   for b, lfns in files_of.items()]
    for k in range(0, len(attachments), 40):
        client.attach_dids_to_dids(attachments[k:k + 40])
    client.attach_dids_to_dids([{"scope": scope, "name": c, "dids": [{"scope": scope, "name": b}]}
                                for c, b in zip(containers, blocks)])
    meta = [{"scope": scope, "name": lfn, "meta": {"events": 100 + j}} for _, lfn, j in all_files]
    for k in range(0, len(meta), CHUNK):
        client.set_dids_metadata_bulk(meta[k:k + CHUNK])
    return {f"B{i:03d}": c for i, c in enumerate(containers)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--rucio-config", default=os.environ.get("RUCIO_CONFIG", "/tmp/pc-services/rucio/client.cfg"))
    args = parser.parse_args()

    settings = RucioSettings.from_config(args.rucio_config)
    admin = default_client_factory(settings)
    ensure_rse(admin, "T2_CH_CERN", "127.0.0.1", 1094)
    ensure_rse(admin, "T1_DE_KIT", "127.0.0.1", 1095)
    ensure_scope(admin, "cms")
    tag = uuid.uuid4().hex[:8]
    reg_counter: Counter = Counter()
    t0 = time.perf_counter()
    das = register(CountingClient(admin, reg_counter), args.datasets, args.files, tag)
    t_reg = time.perf_counter() - t0
    n_files = args.datasets * args.files
    print(f"registered {args.datasets} datasets x {args.files} files = {n_files} files "
          f"in {t_reg:.1f} s with {sum(reg_counter.values())} Rucio calls")

    definition = {key: {"sample": key, "json_output": "bench.json", "files": [
        {"das_names": [name], "metadata": {"year": "2022", "isMC": True, "xsec": 1.0}}]} for key, name in das.items()}
    counter: Counter = Counter()
    gateway = RucioGateway(settings, client_factory=lambda s: CountingClient(default_client_factory(s), counter))
    t0 = time.perf_counter()
    built = build_datasets(parse_definition(definition, "bench"), gateway,
                           BuildOptions(selection=SiteSelection(prioritylist=("T1_DE_KIT",)),
                                        parallelism=args.parallelism, show_progress=False))
    with tempfile.TemporaryDirectory() as out:
        written = write_outputs(plan_outputs(built, OutputOptions(outputdir=Path(out))))
        size = sum(p.stat().st_size for p in written)
    wall = time.perf_counter() - t0
    total_files = sum(len(d.files) for d in built)
    at_kit = sum(s == "T1_DE_KIT" for d in built for s in d.sites)
    assert total_files == n_files, (total_files, n_files)
    assert sum(d.metadata()["nevents"] for d in built) == args.datasets * sum(100 + j for j in range(args.files))
    calls = sum(counter.values())
    print(json.dumps({
        "datasets": args.datasets, "files": total_files, "wall_seconds": round(wall, 2),
        "rucio_calls": calls, "calls_by_method": dict(counter), "gateway_calls": gateway.calls,
        "calls_per_file": round(calls / total_files, 4), "files_at_T1_DE_KIT": at_kit,
        "output_bytes": size, "parallelism": args.parallelism,
    }, indent=1))
    if calls >= total_files:
        print("FAIL: one Rucio call per file (or worse)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
