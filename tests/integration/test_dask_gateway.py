"""``dask@purdue-af`` (jobqueue-system gateway) on a real dask-gateway server started here.

The server is PyPI's ``dask-gateway-server`` (a dependency of the ``test`` extra) with its
local backend (``UnsafeLocalBackend``: scheduler and workers are processes of this machine),
its Go proxy, password authentication (``SimpleAuthenticator``) and two cluster options
(``worker_cores``, ``worker_memory``) whose handler records what each cluster asked for. It
listens on free ports of 127.0.0.1 and runs as a subprocess of the test.

The run uses the packaged ``dask@purdue-af`` section with the documented local override (a
``-ro`` YAML section amending it: the gateway's address and proxy address, a smaller
scaleout and memory) and dask-gateway's own auth configuration (``gateway.auth``), and must
give outputs equal to ``iterative`` bin for bin and leave no cluster on the gateway.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from condor_testlib import assert_outputs_equal, invoke_run, make_analysis, standard_fileset
from service_guard import require_service

pytestmark = pytest.mark.integration

SKIP = ("processing_metadata",)
PASSWORD = "pc-test-secret"
USER = "physicist"

SERVER_CONFIG = '''
import json
from dask_gateway_server.options import Float, Integer, Options

c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{http_port}"
c.Proxy.tcp_address = "127.0.0.1:{tcp_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.LocalBackend.clusters_directory = {clusters_dir!r}
c.ClusterConfig.scheduler_cmd = [{python!r}, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [{python!r}, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.idle_timeout = 120
c.ClusterConfig.adaptive_period = 1
c.DBBackendBase.worker_status_period = 1
c.DBBackendBase.cluster_status_period = 1
c.DBBackendBase.check_timeouts_period = 1


def options_handler(options, user):
    with open({record!r}, "a") as stream:
        stream.write(json.dumps({{"user": user.name, "worker_cores": options.worker_cores,
                                  "worker_memory": options.worker_memory}}) + "\\n")
    return {{"worker_cores": options.worker_cores, "worker_memory": int(options.worker_memory * 2**30)}}


c.Backend.cluster_options = Options(
    Integer("worker_cores", 1, min=1, max=2, label="Worker cores"),
    Float("worker_memory", 2, min=0.25, max=4, label="Worker memory (GiB)"),
    handler=options_handler,
)
'''


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


class GatewayServer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.api_port, self.http_port, self.tcp_port = _free_ports(3)
        self.record = folder / "cluster_options.jsonl"
        self.log = folder / "gateway.log"
        self.address = f"http://127.0.0.1:{self.http_port}"
        self.proxy_address = f"127.0.0.1:{self.tcp_port}"
        clusters = folder / "clusters"
        clusters.mkdir()
        config = folder / "dask_gateway_config.py"
        config.write_text(SERVER_CONFIG.format(
            api_port=self.api_port, http_port=self.http_port, tcp_port=self.tcp_port, password=PASSWORD,
            clusters_dir=str(clusters), python=sys.executable, record=str(self.record)))
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        env.pop("DASK_GATEWAY__ADDRESS", None)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dask_gateway_server", "-f", str(config)], cwd=folder, env=env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def clusters(self) -> list:
        """The clusters the gateway has running or pending, asked as the test user."""
        from dask_gateway import Gateway
        from dask_gateway.auth import BasicAuth
        from pc_run.executors import _forget_gateway_loop

        gateway = Gateway(self.address, proxy_address=self.proxy_address, auth=BasicAuth(USER, PASSWORD))
        try:
            return gateway.list_clusters()
        finally:
            gateway.close()
            _forget_gateway_loop(gateway)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="pc-gateway-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway_server(workdir):
    try:
        import dask_gateway  # noqa: F401
        import dask_gateway_server  # noqa: F401
    except ImportError as exc:
        require_service("dask-gateway", False, f"{exc}; run `python3 dev.py setup` (test extra)")
    (workdir / "gateway").mkdir()
    server = GatewayServer(workdir / "gateway")
    try:
        up = _wait_port(server.http_port, server.process) and _wait_port(server.tcp_port, server.process)
        require_service("dask-gateway-server", up, f"did not start; log: {server.log.read_text()[-2000:]}")
        yield server
    finally:
        server.stop()


@pytest.fixture()
def gateway_auth():
    """The documented way to authenticate: dask-gateway's own configuration (``gateway.auth``;
    ~/.config/dask/gateway.yaml or DASK_GATEWAY__AUTH__... variables), as on the facility."""
    import dask

    with dask.config.set({"gateway.auth.type": "basic",
                          "gateway.auth.kwargs": {"username": USER, "password": PASSWORD}}):
        yield


@pytest.fixture(scope="module")
def analysis(workdir, nanoaod_dir) -> Path:
    return make_analysis(workdir / "analysis", standard_fileset(nanoaod_dir))


@pytest.fixture(scope="module")
def reference(analysis, workdir):
    from pc_core.output import load_output

    result = invoke_run(["--cfg", analysis, "-o", workdir / "reference", "-e", "iterative", "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception)
    return load_output(workdir / "reference" / "output_all.coffea")


def _override(path: Path, server: GatewayServer, extra: str = "") -> Path:
    """The documented local override of the packaged dask@purdue-af section."""
    path.write_text(textwrap.dedent(f"""\
        dask@purdue-af:
          gateway-address: {server.address}
          gateway-proxy-address: {server.proxy_address}
          scaleout: 2
          mem-per-worker: 1GiB
          worker-timeout: 40
        """) + extra)
    return path


def test_purdue_af_preset_on_a_real_gateway_equals_iterative(gateway_server, gateway_auth, workdir, analysis,
                                                             reference):
    from pc_core.output import load_output
    from pc_core.run_options import load_run_options

    options = _override(workdir / "purdue_local.yaml", gateway_server)
    resolved = load_run_options("dask@purdue-af", options)
    assert resolved["jobqueue-system"] == "gateway" and resolved["adaptive"] is True  # the preset's own path
    outdir = workdir / "out_gateway"
    result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "dask@purdue-af", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code == 0, (result.output, result.exception, gateway_server.log.read_text()[-3000:])
    assert_outputs_equal(reference, load_output(outdir / "output_all.coffea"), skip=SKIP)
    # the gateway got the run's cluster options, from the authenticated user
    asked = [json.loads(line) for line in gateway_server.record.read_text().splitlines()]
    assert asked[-1] == {"user": USER, "worker_cores": 1, "worker_memory": 1.0}, asked
    # no cluster left on the gateway (running or pending)
    deadline = time.monotonic() + 10
    while gateway_server.clusters() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gateway_server.clusters() == []


def test_gateway_refusing_the_credentials_stops_with_a_clear_message(gateway_server, workdir, analysis):
    import dask

    options = _override(workdir / "purdue_badauth.yaml", gateway_server)
    outdir = workdir / "out_badauth"
    with dask.config.set({"gateway.auth.type": "basic", "gateway.auth.kwargs": {"username": USER, "password": "no"}}):
        result = invoke_run(["--cfg", analysis, "-o", outdir, "-e", "dask@purdue-af", "-ro", options, "-ll", "WARNING"])
    assert result.exit_code != 0
    message = str(result.exception)
    assert f"cannot use the dask-gateway at {gateway_server.address}" in message, message
    assert "gateway.auth" in message, message
    assert gateway_server.clusters() == []
