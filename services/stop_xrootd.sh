#!/usr/bin/env bash
# Stop XRootD sites started by start_xrootd.sh, by their recorded pid only.
#   bash services/stop_xrootd.sh              # every site
#   bash services/stop_xrootd.sh T1_DE_KIT    # one site (names, or NAME:PORT)
# Data under $PC_SERVICES_DIR/xrootd/<site>/data is kept (a restart serves it again).
set -uo pipefail
XRD_BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}/xrootd
if [ "$#" -gt 0 ]; then
  pidfiles=(); for s in "$@"; do pidfiles+=("$XRD_BASE/${s%%:*}/pid"); done
else
  pidfiles=("$XRD_BASE"/*/pid)
fi
for pf in "${pidfiles[@]}"; do
  [ -f "$pf" ] || continue
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"; for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "[xrootd] stopped $(basename "$(dirname "$pf")") (pid $pid)"
  fi
  rm -f "$pf"
done
exit 0
