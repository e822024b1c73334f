"""Fixtures for the real-service integration tests (Rucio + XRootD sites).

``services/start_all.sh`` starts the services and writes
``$PC_SERVICES_DIR/services.json`` (default ``/tmp/pc-services``); the fixtures read it,
check that every service answers, and otherwise skip (or, with
POCKET_COFFEA_REQUIRE_SERVICES=1, fail) through ``service_guard.require_service``.

``rucio_catalog`` uploads real NanoAOD files (../shared/data/nanoaod) to the XRootD sites
with ``xrdcp`` and registers them in Rucio under names unique to this test session, so
runs against a long-lived server never collide.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service_guard import require_service

SERVICES_DIR = Path(os.environ.get("PC_SERVICES_DIR", "/tmp/pc-services"))
REPO = Path(__file__).resolve().parents[2]
FLAKY_SITE = ("T3_XX_FLAKY", 1096)  # throw-away site the failover test stops


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def services() -> dict:
    info_path = SERVICES_DIR / "services.json"
    if not info_path.exists():
        require_service("Rucio/XRootD", False, f"{info_path} missing; run `bash services/start_all.sh` (as root)")
    info = json.loads(info_path.read_text())
    return info


@pytest.fixture(scope="session")
def rucio_config(services) -> str:
    url = services["rucio"]["url"]
    try:
        with urllib.request.urlopen(url + "/ping", timeout=3) as response:
            alive = response.status == 200
    except OSError:
        alive = False
    require_service("Rucio", alive, f"{url}/ping does not answer; run `bash services/start_all.sh`")
    return services["rucio"]["config"]


@pytest.fixture(scope="session")
def xrootd_sites(services) -> dict[str, int]:
    sites = {name: s["port"] for name, s in services["xrootd"].items()}
    dead = [f"{n}:{p}" for n, p in sites.items() if not _port_open(p)]
    require_service("XRootD", not dead and shutil.which("xrdcp") is not None,
                    f"sites {dead} not listening or xrdcp missing; run `bash services/start_all.sh`")
    return sites


@pytest.fixture(scope="session")
def rucio_settings(rucio_config):
    from pc_datasets.rucio_gateway import RucioSettings

    return RucioSettings.from_config(rucio_config, timeout=10)


@pytest.fixture()
def gateway(rucio_settings):
    from pc_datasets.rucio_gateway import RucioGateway

    return RucioGateway(rucio_settings)


@dataclass
class CatalogFile:
    lfn: str
    local: Path
    events: int
    bytes: int
    sites: tuple[str, ...]

    def pfn(self, site: str, ports: dict[str, int]) -> str:
        return f"root://127.0.0.1:{ports[site]}/{self.lfn}"


@dataclass
class Catalog:
    tag: str
    ports: dict[str, int]
    containers: dict[str, list[CatalogFile]] = field(default_factory=dict)
    das: dict[str, str] = field(default_factory=dict)  # short name -> DAS name


def _xrdcp(local: Path, url: str) -> None:
    env = dict(os.environ, XRD_CONNECTIONRETRY="1", XRD_REQUESTTIMEOUT="20")
    subprocess.run(["xrdcp", "-f", "-s", "--path", str(local), url], check=True, env=env, timeout=60)


@pytest.fixture(scope="session")
def flaky_site(services, xrootd_sites):
    """A third XRootD site (own data folder) that tests may stop; stopped at session end."""
    name, port = FLAKY_SITE
    scripts = Path(services.get("scripts_dir", REPO / "services"))
    res = subprocess.run(["bash", str(scripts / "start_xrootd.sh"), f"{name}:{port}"], capture_output=True, text=True,
                         env=dict(os.environ, PC_SERVICES_DIR=services["services_dir"]), timeout=300)
    require_service("XRootD (throw-away site)", res.returncode == 0, res.stderr[-500:])
    yield name, port
    subprocess.run(["bash", str(scripts / "stop_xrootd.sh"), name], capture_output=True,
                   env=dict(os.environ, PC_SERVICES_DIR=services["services_dir"]), timeout=60)


@pytest.fixture(scope="session")
def rucio_catalog(rucio_settings, xrootd_sites, flaky_site, nanoaod_dir) -> Catalog:
    """Containers/blocks of real NanoAOD files, uploaded to the sites and registered in Rucio.

    - ``dy`` (MC): f0 = nano_dy (40 ev, both sites), f1 = nano_dimuon (40 ev, both sites),
      f2 = nano_tt_v12 (200 ev, T2_CH_CERN only, *no* event count in Rucio -> uproot);
      two blocks.
    - ``tt`` (MC): nano_tt_v12 at T1_DE_KIT only.
    - ``data``: nano_dimuon at T2_CH_CERN only.
    - ``failover``: nano_dy and nano_dimuon at the throw-away site and T2_CH_CERN;
      nano_tt_v12 at the throw-away site and T1_DE_KIT.
    """
    from pc_datasets.registration import FileSpec, ensure_rse, ensure_scope, register_container
    from pc_datasets.rucio_gateway import default_client_factory

    client = default_client_factory(rucio_settings)
    ports = dict(xrootd_sites)
    ports[flaky_site[0]] = flaky_site[1]
    for site, port in ports.items():
        ensure_rse(client, site, "127.0.0.1", port)
    ensure_scope(client, "cms")
    tag = uuid.uuid4().hex[:8]
    catalog = Catalog(tag=tag, ports=ports)
    cern, kit, flaky = "T2_CH_CERN", "T1_DE_KIT", flaky_site[0]
    layout = {
        "dy": (f"/DYJetsToLL_{tag}/Run3Summer22-v1/NANOAODSIM", "mc",
               [("nano_dy.root", (kit, cern), True), ("nano_dimuon.root", (cern, kit), True),
                ("nano_tt_v12.root", (cern,), False)]),
        "tt": (f"/TTTo2L2Nu_{tag}/Run3Summer22-v1/NANOAODSIM", "mc", [("nano_tt_v12.root", (kit,), True)]),
        "data": (f"/Muon_{tag}/Run2022C-v1/NANOAOD", "data", [("nano_dimuon.root", (cern,), True)]),
        "failover": (f"/Failover_{tag}/Run3Summer22-v1/NANOAODSIM", "mc",
                     [("nano_dy.root", (flaky, cern), True), ("nano_dimuon.root", (flaky, cern), True),
                      ("nano_tt_v12.root", (flaky, kit), True)]),
    }
    import uproot

    for short, (container, kind, entries) in layout.items():
        files: list[CatalogFile] = []
        file_specs: list[FileSpec] = []
        for i, (fname, sites, with_events) in enumerate(entries):
            local = nanoaod_dir / fname
            data = local.read_bytes()
            with uproot.open(local) as handle:
                events = int(handle["Events"].num_entries)
            lfn = f"/store/{kind}/Run3Summer22/{short}_{tag}/NANOAODSIM/{i}_{fname}"
            for site in sites:
                _xrdcp(local, f"root://127.0.0.1:{ports[site]}/{lfn}")
            files.append(CatalogFile(lfn, local, events, len(data), sites))
            file_specs.append(FileSpec(lfn, len(data), "%08x" % zlib.adler32(data), events if with_events else None))
        # the first two files in one block, the rest in a second
        specs = {f"{container}#b1": file_specs[:2]}
        if len(file_specs) > 2:
            specs[f"{container}#b2"] = file_specs[2:]
        register_container(client, container, specs, {f.lfn: f.sites for f in files})
        catalog.containers[short] = files
        catalog.das[short] = container
    return catalog


POOL_FREE_TIMEOUT = 90  # a removed job gets 10 s to stop (MachineMaxVacateTime, start_condor.sh)


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip('"')
    return env


def _busy_slots(htcondor2) -> list[str]:
    """The pool's claimed dynamic slots, with the job each one runs (empty when the pool is free)."""
    slots = htcondor2.Collector().query(htcondor2.AdType.Startd, constraint="DynamicSlot =?= true",
                                        projection=["Name", "State", "Activity", "JobId", "Cpus"])
    return [f"{s.get('Name')} {s.get('State')}/{s.get('Activity')} job {s.get('JobId', '?')}" for s in slots]


@pytest.fixture()
def condor_pool(monkeypatch):
    """CONDOR_CONFIG of the running test pool, with the condor_* wrappers on PATH (dask-jobqueue
    and parsl call condor_submit). Waits until no slot is claimed: the pool has two cores, and a
    test whose jobs cannot start because an earlier test's jobs are still stopping would fail
    with a misleading "no worker connected"; here it fails naming the slots that stay busy."""
    env_file = SERVICES_DIR / "condor.env"
    if not env_file.is_file():
        require_service("HTCondor", False, f"{env_file} missing; run `bash services/start_condor.sh` (as root)")
    config = _read_env(env_file)["CONDOR_CONFIG"]
    monkeypatch.setenv("CONDOR_CONFIG", config)
    monkeypatch.setenv("PATH", f"{SERVICES_DIR / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    import htcondor2

    htcondor2.reload_config()
    try:
        htcondor2.Schedd().query(projection=["ClusterId"], limit=1)
        alive, reason = shutil.which("condor_submit") is not None, "condor_submit not on PATH"
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable pool
        alive, reason = False, f"{type(exc).__name__}: {exc}"
    require_service("HTCondor", alive, f"schedd of {config} does not answer ({reason}); run services/start_condor.sh")
    deadline = time.monotonic() + POOL_FREE_TIMEOUT
    while busy := _busy_slots(htcondor2):
        if time.monotonic() > deadline:
            pytest.fail(f"the HTCondor pool is still busy {POOL_FREE_TIMEOUT} s before this test: {busy}")
        time.sleep(1)
    yield config
    monkeypatch.undo()
    htcondor2.reload_config()


@pytest.fixture(scope="session")
def slurm_cluster(services) -> dict:
    """The one-node SLURM cluster of services/start_slurm.sh (``services.json`` key ``slurm``):
    the controller answers, the node takes jobs, and sbatch/squeue/scancel are on PATH (the
    config is /etc/slurm/slurm.conf, so they need no environment)."""
    info = services.get("slurm")
    if not info:
        require_service("SLURM", False, "services.json has no 'slurm' entry; run `bash services/start_slurm.sh` (as root)")
    missing = [tool for tool in ("sbatch", "squeue", "scancel", "scontrol", "sinfo") if shutil.which(tool) is None]
    require_service("SLURM", not missing, f"{', '.join(missing)} not on PATH; run `bash services/start_slurm.sh`")
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    require_service("SLURM", "UP" in ping.stdout, f"slurmctld does not answer: {ping.stdout}{ping.stderr}")
    state = subprocess.run(["sinfo", "-h", "-n", info["node"], "-p", info["default_partition"], "-o", "%t"],
                           capture_output=True, text=True, timeout=30).stdout.strip()
    require_service("SLURM", state in ("idle", "mix", "alloc"), f"node {info['node']} is {state!r}, not idle")
    return info


@pytest.fixture(scope="module")
def reference_output(nanoaod_dir, tmp_path_factory):
    """(output, fileset): the real NanoAOD files copied where the condor pool's jobs can read them
    (/tmp: the jobs run in a chroot that does not see ../shared) and one local iterative run of the
    test analysis over them per module; the condor tests' merged outputs must equal it
    (``condor_testlib.assert_merged_equals``)."""
    import tempfile

    from condor_testlib import copy_for_jobs, fileset_for, local_reference

    data_dir = Path(tempfile.mkdtemp(prefix="pc-condor-data-", dir="/tmp"))
    try:
        copy_for_jobs(nanoaod_dir, data_dir)
        fileset = fileset_for(data_dir)
        yield local_reference(tmp_path_factory.mktemp("reference"), fileset), fileset
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
