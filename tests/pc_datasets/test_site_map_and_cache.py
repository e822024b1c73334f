import http.server
import json
import threading
import time

import pytest

from pc_datasets import cache
from pc_datasets.errors import SiteMapError
from pc_datasets.site_map import load_site_map

STORAGE_JSON = [
    {"site": "T2_CH_CERN", "volume": "CERN_EOS", "protocols": [
        {"protocol": "WebDAV", "access": "global-rw", "prefix": "davs://eoscms.cern.ch:443/eos/cms"},
        {"protocol": "XRootD", "access": "site-ro", "prefix": "root://eoscms-site.cern.ch//eos/cms"},
        {"protocol": "XRootD", "access": "global-ro", "prefix": "root://eoscms.cern.ch//eos/cms"},
    ]},
    {"site": "T1_DE_KIT", "volume": "KIT_dCache", "protocols": [
        {"protocol": "XRootD", "access": "global-ro",
         "rules": [{"lfn": "/+store/(.*)", "pfn": "root://cmsxrootd-kit.gridka.de:1094//pnfs/gridka.de/cms/disk-only/store/$1"}]},
    ]},
]


@pytest.fixture()
def user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("POCKET_COFFEA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "pocket-coffea"


def test_storage_json_prefers_global_xrootd_and_applies_rules(tmp_path, user_cache, monkeypatch):
    path = tmp_path / "storage.json"
    path.write_text(json.dumps(STORAGE_JSON))
    monkeypatch.chdir(tmp_path)  # the cache must not land in the current directory
    smap = load_site_map(path)
    assert smap.url("T2_CH_CERN", "/store/mc/A/f.root") == "root://eoscms.cern.ch//eos/cms/store/mc/A/f.root"
    assert smap.url("T1_DE_KIT", "/store/mc/A/f.root") == \
        "root://cmsxrootd-kit.gridka.de:1094//pnfs/gridka.de/cms/disk-only/store/mc/A/f.root"
    assert smap.url("T3_XX_Other", "/store/x") is None
    cached = list(user_cache.rglob("*.json"))
    assert len(cached) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["storage.json", "xdg"]


def test_simple_yaml_map_and_errors(tmp_path, user_cache):
    path = tmp_path / "sites.yaml"
    path.write_text("T2_CH_CERN: root://127.0.0.1:1094/\nT1_DE_KIT: root://127.0.0.1:1095//\n")
    smap = load_site_map(path)
    assert smap.url("T1_DE_KIT", "/store/a.root") == "root://127.0.0.1:1095//store/a.root"
    bad = tmp_path / "bad.yaml"
    bad.write_text("T2_CH_CERN: 3\n")
    with pytest.raises(SiteMapError, match=r"bad.yaml: site 'T2_CH_CERN' maps to 3"):
        load_site_map(bad)
    with pytest.raises(SiteMapError, match="does not exist"):
        load_site_map(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    with pytest.raises(SiteMapError, match=r"\(JSON or YAML\): malformed YAML at line \d+"):
        load_site_map(broken)


def test_cache_expiry_and_atomic_write(user_cache):
    path = cache.write_cache("ns", "key", {"a": 1})
    assert path.parent.parent == user_cache
    assert cache.read_cache("ns", "key", max_age=60) == {"a": 1}
    assert cache.read_cache("ns", "other", max_age=60) is None
    entry = json.loads(path.read_text())
    entry["written"] = time.time() - 120
    path.write_text(json.dumps(entry))
    assert cache.read_cache("ns", "key", max_age=60) is None
    assert not list(path.parent.glob("*.tmp"))


def test_remote_site_map_is_fetched_once_within_expiry(tmp_path, user_cache):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            body = json.dumps(STORAGE_JSON).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/storage.json"
        first = load_site_map(url)
        second = load_site_map(url)
        assert first.sites == second.sites and len(hits) == 1
        load_site_map(url, max_age=0)  # expired: fetched again
        assert len(hits) == 2
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(SiteMapError, match="cannot be fetched"):
        load_site_map(f"http://127.0.0.1:{server.server_port}/gone.json", timeout=2)
