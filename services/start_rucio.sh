#!/usr/bin/env bash
# Start a real Rucio REST server (PyPI `rucio`, SQLite, Flask app under werkzeug) on
# 127.0.0.1:$PC_RUCIO_PORT (default 18080), with the root account (userpass ddmlab/secret)
# and write the client config $PC_SERVICES_DIR/rucio/client.cfg (use: RUCIO_CONFIG=...).
#
# The server lives in its own venv ($PC_SERVICES_DIR/rucio-venv, built here from PyPI):
# `rucio` and `rucio-clients` clash in one environment. A tiny policy package makes
# PFNs `root://127.0.0.1:PORT//store/...` (PFN = protocol prefix + LFN, like CMS) and
# allows '#' in DID names (CMS blocks). Idempotent: a running server is left alone; a
# new start gets a fresh, empty database (tests populate what they need).
set -euo pipefail
BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
RUCIO_DIR=$BASE/rucio
RUCIO_VENV=${PC_RUCIO_VENV:-$BASE/rucio-venv}
RUCIO_PORT=${PC_RUCIO_PORT:-18080}
RUCIO_VERSION=${PC_RUCIO_VERSION:-41.5.1}
PYTHON=${PC_RUCIO_PYTHON:-python3}
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVICE=rucio; . "$(dirname "$0")/common.sh"
t_start=$(now)
mkdir -p "$RUCIO_DIR/log" "$RUCIO_DIR/policy/cmstestpolicy"

if [ -f "$RUCIO_DIR/server.pid" ] && kill -0 "$(cat "$RUCIO_DIR/server.pid")" 2>/dev/null \
   && curl -sf --max-time 2 "http://127.0.0.1:$RUCIO_PORT/ping" >/dev/null; then
  echo "[rucio] already running on 127.0.0.1:$RUCIO_PORT (pid $(cat "$RUCIO_DIR/server.pid"))"; exit 0
fi

stamp="$RUCIO_VENV/.pc-rucio-$RUCIO_VERSION"
if [ ! -f "$stamp" ] || ! "$RUCIO_VENV/bin/python" -c 'import rucio.web.rest.flaskapi.v1.main' 2>/dev/null; then
  rm -rf "$RUCIO_VENV"
  # uv (on PATH or in the checkout's .venv) is ~5x faster than pip; pip is the fallback
  UV=$(command -v uv || true)
  [ -n "$UV" ] || { [ -x "$REPO_ROOT/.venv/bin/uv" ] && UV=$REPO_ROOT/.venv/bin/uv; } || true
  for attempt in 1 2 3; do
    if [ -n "$UV" ]; then
      "$UV" venv -q --python "$(command -v "$PYTHON")" "$RUCIO_VENV" >"$RUCIO_DIR/log/install.log" 2>&1 \
        && "$UV" pip install -q --python "$RUCIO_VENV/bin/python" "rucio==$RUCIO_VERSION" >>"$RUCIO_DIR/log/install.log" 2>&1 \
        && break
    else
      "$PYTHON" -m venv "$RUCIO_VENV" \
        && "$RUCIO_VENV/bin/python" -m pip install -q --disable-pip-version-check "rucio==$RUCIO_VERSION" \
             >"$RUCIO_DIR/log/install.log" 2>&1 \
        && break
    fi
    if [ "$attempt" = 3 ]; then
      echo "[rucio] installing rucio==$RUCIO_VERSION failed:" >&2; grep -v "is ignored" "$RUCIO_DIR/log/install.log" | tail -20 >&2; exit 1
    fi
    rm -rf "$RUCIO_VENV"; sleep 5
  done
  touch "$stamp"
  echo "[rucio] server venv built in $(since "$t_start")s"
fi

# --- minimal policy package: generic rules, '#' allowed in DID names (CMS blocks),
#     'cmstfc' lfn2pfn: PFN = <protocol prefix> + LFN (/store/...)
cat >"$RUCIO_DIR/policy/cmstestpolicy/__init__.py" <<'EOF'
SUPPORTED_VERSION = [">=35"]


def cms_lfn2pfn(scope, name, rse, rse_attrs, protocol_attrs):
    return name


def get_algorithms():
    return {"lfn2pfn": {"cmstfc": cms_lfn2pfn}}
EOF
cat >"$RUCIO_DIR/policy/cmstestpolicy/schema.py" <<'EOF'
from rucio.common.schema.generic import *  # noqa: F401,F403
from rucio.common.schema import generic as _generic

_generic.NAME["pattern"] = r"^[/A-Za-z0-9][/A-Za-z0-9\.\-_#]*$"
EOF
cat >"$RUCIO_DIR/policy/cmstestpolicy/permission.py" <<'EOF'
from rucio.core.permission.generic import *  # noqa: F401,F403
EOF
cat >"$RUCIO_DIR/server.cfg" <<EOF
[common]
loglevel = WARNING
logdir = $RUCIO_DIR/log
[database]
default = sqlite:///$RUCIO_DIR/rucio.db
[bootstrap]
userpass_identity = ddmlab
userpass_pwd = secret
userpass_email = test@example.org
[policy]
package = cmstestpolicy
permission = generic
schema = generic
lfn2pfn_algorithm_default = cmstfc
support = test@example.org
support_rucio = https://github.com/rucio/rucio/issues
EOF
cat >"$RUCIO_DIR/client.cfg.tmp" <<EOF
[client]
rucio_host = http://127.0.0.1:$RUCIO_PORT
auth_host = http://127.0.0.1:$RUCIO_PORT
auth_type = userpass
username = ddmlab
password = secret
account = root
request_retries = 1
auth_token_file_path = $RUCIO_DIR/client-token
EOF
mv -f "$RUCIO_DIR/client.cfg.tmp" "$RUCIO_DIR/client.cfg"
cat >"$RUCIO_DIR/serve.py" <<'EOF'
import logging, sys
from werkzeug.serving import run_simple
from rucio.web.rest.flaskapi.v1.main import application
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
run_simple("127.0.0.1", int(sys.argv[1]), application, threaded=True, use_reloader=False)
EOF

export RUCIO_CONFIG=$RUCIO_DIR/server.cfg PYTHONPATH=$RUCIO_DIR/policy
if [ -f "$RUCIO_DIR/server.pid" ]; then   # a stale/unresponsive server of ours: stop it by pid
  old=$(cat "$RUCIO_DIR/server.pid")
  if grep -qs "serve.py" "/proc/$old/cmdline"; then kill "$old" 2>/dev/null || true; sleep 1; kill -9 "$old" 2>/dev/null || true; fi
  rm -f "$RUCIO_DIR/server.pid"
fi
if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE ":$RUCIO_PORT\$"; then
  echo "[rucio] port $RUCIO_PORT is taken by another process" >&2; exit 1
fi
# fresh DB each start (tests are hermetic). build_database() would also need an
# [alembic] section for stamping, so create the tables directly.
rm -f "$RUCIO_DIR/rucio.db" "$RUCIO_DIR/client-token"
"$RUCIO_VENV/bin/python" - <<'EOF'
from rucio.db.sqla import models
from rucio.db.sqla.session import get_engine
from rucio.db.sqla.util import create_base_vo, create_root_account
models.register_models(get_engine())
create_base_vo()
create_root_account()
EOF
t0=$(now)
setsid "$RUCIO_VENV/bin/python" "$RUCIO_DIR/serve.py" "$RUCIO_PORT" >"$RUCIO_DIR/log/server.out" 2>&1 </dev/null &
echo $! >"$RUCIO_DIR/server.pid"
for _ in $(seq 1 150); do
  curl -sf --max-time 2 "http://127.0.0.1:$RUCIO_PORT/ping" >/dev/null && break
  kill -0 "$(cat "$RUCIO_DIR/server.pid")" 2>/dev/null || break
  sleep 0.2
done
if ! curl -sf --max-time 2 "http://127.0.0.1:$RUCIO_PORT/ping" >/dev/null; then
  echo "[rucio] server failed to start" >&2; tail -30 "$RUCIO_DIR/log/server.out" >&2
  kill "$(cat "$RUCIO_DIR/server.pid")" 2>/dev/null || true; rm -f "$RUCIO_DIR/server.pid"; exit 1
fi
echo "[rucio] server up on 127.0.0.1:$RUCIO_PORT in $(since "$t0")s (pid $(cat "$RUCIO_DIR/server.pid")); total $(since "$t_start")s"
echo "[rucio] clients: export RUCIO_CONFIG=$RUCIO_DIR/client.cfg"
