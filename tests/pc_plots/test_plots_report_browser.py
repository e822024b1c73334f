"""The index.html report in a real headless chromium: no console errors, every image renders.

The report folder is served on 127.0.0.1 by http.server; chromium is driven over its
DevTools websocket (websocket-client, pc-plots' `test` extra). Needs /usr/bin/chromium
(Debian package `chromium`): skipped locally without it, a failure under .ci/run.
"""
from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

import plots_synthetic as syn
from pc_plots.cli import make_plots_command
from service_guard import require_service

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def report(tmp_path) -> Path:
    path = syn.save(syn.build_output(two_years=False), tmp_path / "output_all.coffea")
    out = tmp_path / "plots"
    result = CliRunner().invoke(make_plots_command, ["-i", str(path), "-o", str(out), "-oh", "jet_pt|jet_eta_phi",
                                                     "-ll", "WARNING"])
    assert result.exit_code == 0, repr(result.exception)
    return out


@pytest.fixture
def server(report):
    handler = functools.partial(_Quiet, directory=str(report))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def devtools(tmp_path):
    require_service("chromium", CHROMIUM is not None, "headless browser for the report test (apt-get install chromium)")
    websocket = pytest.importorskip("websocket", reason="websocket-client (pc-plots[test]) is needed")
    port = _free_port()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        targets = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert targets, "chromium did not expose a page target on its DevTools port"
        ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        yield ws
        ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Session:
    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout}s")


def test_report_loads_without_errors_and_every_image_renders(report, server, devtools):
    session = _Session(devtools)
    for domain in ("Runtime", "Log", "Network", "Page"):
        session.call(f"{domain}.enable")
    session.call("Page.navigate", url=f"{server}/index.html")
    session.wait_for("Page.loadEventFired")
    state = session.call(
        "Runtime.evaluate", returnByValue=True,
        expression="JSON.stringify(Array.from(document.images).map(i => ({src: i.getAttribute('src'), "
                   "complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, broken: i.dataset.broken || ''})))",
    )
    images = json.loads(state["result"]["value"])
    links = json.loads(session.call(
        "Runtime.evaluate", returnByValue=True,
        expression="JSON.stringify(Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')))",
    )["result"]["value"])
    time.sleep(0.3)  # let late console messages arrive
    devtools.settimeout(0.5)
    try:
        while True:
            session.events.append(json.loads(devtools.recv()))
    except Exception:  # websocket timeout: no more events
        pass

    errors = [e for e in session.events
              if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
              or e.get("method") == "Network.loadingFailed"]
    assert errors == [], errors

    # 2 categories x (jet_pt, jet_eta_phi, cutflow) thumbnails, all loaded and non-empty
    assert len(images) == 6
    for image in images:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0 and not image["broken"], image
        assert (report / image["src"]).is_file()
    # every link of the page points at a file of the plot folder
    files = [h for h in links if not h.startswith("#")]
    assert files and all((report / h).is_file() for h in files), [h for h in files if not (report / h).is_file()]
    anchors = [h[1:] for h in links if h.startswith("#")]
    html = (report / "index.html").read_text()
    assert all(f'id="{a}"' in html for a in anchors)
