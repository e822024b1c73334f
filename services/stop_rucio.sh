#!/usr/bin/env bash
# Stop the Rucio server started by start_rucio.sh (by its recorded pid only).
set -uo pipefail
RUCIO_DIR=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}/rucio
if [ -f "$RUCIO_DIR/server.pid" ]; then
  pid=$(cat "$RUCIO_DIR/server.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"; for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "[rucio] stopped (pid $pid)"
  fi
  rm -f "$RUCIO_DIR/server.pid"
fi
exit 0
