"""build-datasets refuses bad input with one clear line, exit 1, and writes nothing."""
import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "build-datasets"

DEFINITION = {"DY": {"sample": "DYJetsToLL", "json_output": "out/DY.json", "files": [
    {"das_names": ["/DYJetsToLL/Run3Summer22-v1/NANOAODSIM"], "metadata": {"year": "2022", "isMC": True, "xsec": 6000}}]}}


def run(args, cwd, env=None, timeout=120):
    return subprocess.run([str(BIN), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_malformed_definition(tmp_path):
    path = tmp_path / "def.json"
    path.write_text('{"DY": [1, 2,]}')
    res = run(["-cfg", str(path)], tmp_path)
    assert res.returncode == 1
    assert f"{path} is not valid JSON" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["def.json"]


def test_unknown_key(tmp_path):
    path = tmp_path / "def.json"
    path.write_text(json.dumps(DEFINITION))
    res = run(["-cfg", str(path), "--keys", "TTbar"], tmp_path)
    assert res.returncode == 1 and "--keys TTbar: not in" in res.stderr and "available keys: DY" in res.stderr


def test_rucio_down_fails_within_seconds(tmp_path):
    path = tmp_path / "def.json"
    path.write_text(json.dumps(DEFINITION))
    cfg = tmp_path / "rucio.cfg"
    # port 9 (discard) on loopback: nothing listens there
    cfg.write_text("[client]\nrucio_host = http://127.0.0.1:9\nauth_host = http://127.0.0.1:9\nauth_type = userpass\n"
                   "username = u\npassword = p\naccount = nobody_pc_test\n")
    env = {"PATH": str(BIN.parent), "RUCIO_CONFIG": str(cfg), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    # "within seconds": a hang (rucio-clients' default retries last minutes) trips the timeout
    res = run(["-cfg", str(path)], tmp_path, env=env, timeout=30)
    assert res.returncode == 1, res.stderr
    assert "Rucio at http://127.0.0.1:9" in res.stderr and "unreachable" in res.stderr and str(cfg) in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_missing_rucio_config(tmp_path):
    path = tmp_path / "def.json"
    path.write_text(json.dumps(DEFINITION))
    res = run(["-cfg", str(path), "--rucio-config", str(tmp_path / "nope.cfg")], tmp_path)
    assert res.returncode == 1 and "No Rucio client configuration found" in res.stderr
