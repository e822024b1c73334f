"""Replica failover on real XRootD sites: a site dies, the replica tools move the fileset."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import uproot

from pc_datasets import classify_read_error, find_other_replica, rewrite_fileset_away_from_sites
from pc_datasets.build import BuildOptions, build_datasets
from pc_datasets.definition import parse_definition
from pc_datasets.errors import RucioUnavailableError
from pc_datasets.read_errors import DEAD_SERVER, MISSING_FILE
from pc_datasets.rucio_gateway import RucioGateway, RucioSettings
from pc_datasets.sites import SiteSelection

pytestmark = pytest.mark.integration
CERN, KIT = "T2_CH_CERN", "T1_DE_KIT"

READ_PROBE = """
import sys, uproot
from pc_datasets import classify_read_error
try:
    with uproot.open(sys.argv[1], timeout=10) as f:
        print("read", f["Events"].num_entries)
except Exception as exc:
    print(classify_read_error(exc))
"""


def _probe(url: str) -> str:
    """Read in a fresh process with short XRootD timeouts (the client reads them at start-up)."""
    env = dict(os.environ, XRD_CONNECTIONRETRY="1", XRD_CONNECTIONWINDOW="2", XRD_REQUESTTIMEOUT="5")
    res = subprocess.run([sys.executable, "-c", READ_PROBE, url], capture_output=True, text=True, env=env, timeout=120)
    return res.stdout.strip().splitlines()[-1]


def test_missing_file_on_live_server_is_classified(xrootd_sites):
    url = f"root://127.0.0.1:{xrootd_sites[CERN]}//store/mc/does/not/exist.root"
    with pytest.raises(OSError) as info:
        uproot.open(url, timeout=10)
    assert classify_read_error(info.value) == MISSING_FILE


def test_failover_after_a_site_dies(rucio_catalog, gateway, flaky_site, services):
    cat = rucio_catalog
    flaky, port = flaky_site
    files = cat.containers["failover"]
    definition = {"FO": {"sample": "FO", "json_output": "fo.json", "files": [
        {"das_names": [cat.das["failover"]], "metadata": {"year": "2022", "isMC": True, "xsec": 1.0}}]}}
    [built] = build_datasets(parse_definition(definition, "d"), gateway,
                             BuildOptions(selection=SiteSelection(prioritylist=(flaky,)), show_progress=False))
    assert built.sites == [flaky] * 3
    fileset = {built.name: built.entry()}
    before = copy.deepcopy(fileset)
    assert _probe(fileset["FO_2022"]["files"][0]) == "read 40"

    scripts = Path(services["scripts_dir"])
    env = dict(os.environ, PC_SERVICES_DIR=services["services_dir"])
    subprocess.run(["bash", str(scripts / "stop_xrootd.sh"), flaky], check=True, env=env, timeout=60)
    try:
        assert _probe(fileset["FO_2022"]["files"][0]) == DEAD_SERVER

        result = rewrite_fileset_away_from_sites(fileset, [flaky], gateway)
        assert fileset == before  # input untouched
        moved = result.fileset["FO_2022"]["files"]
        assert moved == [files[0].pfn(CERN, cat.ports), files[1].pfn(CERN, cat.ports), files[2].pfn(KIT, cat.ports)]
        assert [r.index for r in result.rewrites] == [0, 1, 2]
        assert all(f"site {flaky} blocklisted" in r.reason for r in result.rewrites)
        assert result.fileset["FO_2022"]["metadata"] == before["FO_2022"]["metadata"]
        for url, f in zip(moved, files):
            with uproot.open(url, timeout=20) as remote, uproot.open(f.local) as local:
                assert remote["Events/run"].array(library="np").tolist() == local["Events/run"].array(library="np").tolist()
        assert sum(uproot.open(u, timeout=20)["Events"].num_entries for u in moved) == \
            built.metadata()["nevents"] == 280

        # single-file lookups: skip the current site, failed URLs, blocklisted sites; else the redirector
        dead_url = fileset["FO_2022"]["files"][0]
        assert find_other_replica(dead_url, gateway) == files[0].pfn(CERN, cat.ports)
        assert find_other_replica(dead_url, gateway, failed_urls=[files[0].pfn(CERN, cat.ports)]) == \
            "root://xrootd-cms.infn.it/" + files[0].lfn
        assert find_other_replica(files[2].pfn(KIT, cat.ports), gateway, blocklist_sites=[flaky]) == \
            "root://xrootd-cms.infn.it/" + files[2].lfn
    finally:
        subprocess.run(["bash", str(scripts / "start_xrootd.sh"), f"{flaky}:{port}"], check=True, env=env, timeout=120)
    assert _probe(fileset["FO_2022"]["files"][2]) == "read 200"  # the site serves again after a restart


def test_rucio_down_is_a_clear_error_quickly(tmp_path):
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[client]\nrucio_host = http://127.0.0.1:9\nauth_host = http://127.0.0.1:9\n"
                   "auth_type = userpass\nusername = u\npassword = p\naccount = pc_down_test\n")
    dead = RucioGateway(RucioSettings.from_config(cfg, timeout=3))
    fileset = {"X": {"files": ["root://127.0.0.1:1095//store/mc/x.root"], "metadata": {}}}
    with pytest.raises(RucioUnavailableError, match=r"Rucio at http://127.0.0.1:9 .* is unreachable"):
        rewrite_fileset_away_from_sites(fileset, [KIT], dead)
    with pytest.raises(RucioUnavailableError, match="unreachable"):
        find_other_replica("root://127.0.0.1:1095//store/mc/x.root", dead)
