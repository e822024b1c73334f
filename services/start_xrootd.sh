#!/usr/bin/env bash
# Start real XRootD servers (Debian `xrootd-server` 5.5) on 127.0.0.1, one per fake CMS site.
#
#   bash services/start_xrootd.sh                       # every site of $PC_XRD_SITES
#   bash services/start_xrootd.sh T1_DE_KIT:1095         # (re)start one site only
#
# PC_XRD_SITES defaults to "T2_CH_CERN:1094 T1_DE_KIT:1095" (name:port).
# Data root of site S: $PC_SERVICES_DIR/xrootd/S/data, so root://127.0.0.1:PORT//store/x
# is the file $PC_SERVICES_DIR/xrootd/S/data/store/x.  Anonymous read+write, no auth.
# XRootD has no "listen address" directive: the socket is pre-bound to 127.0.0.1 and
# handed over through the systemd socket-activation protocol (Debian's xrootd links
# libsystemd). Idempotent: a site already running is left alone. Must run as root (the
# server drops to user `xrootd`). Installs xrootd-server/xrootd-client with apt if absent.
set -euo pipefail
BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
XRD_BASE=$BASE/xrootd
if [ "$#" -gt 0 ]; then SITES="$*"; else SITES=${PC_XRD_SITES:-"T2_CH_CERN:1094 T1_DE_KIT:1095"}; fi
SERVICE=xrootd; . "$(dirname "$0")/common.sh"
t_start=$(now)

if ! command -v xrootd >/dev/null || ! command -v xrdcp >/dev/null || ! command -v xrdfs >/dev/null; then
  # apt may be busy with another installer for a moment on a fresh machine: retry
  for attempt in 1 2 3; do
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends xrootd-server xrootd-client >/dev/null; then break; fi
    [ "$attempt" = 3 ] && { echo "[xrootd] apt-get install xrootd-server xrootd-client failed" >&2; exit 1; }
    sleep 5
  done
  echo "[xrootd] installed xrootd-server/xrootd-client in $(since "$t_start")s"
fi
id xrootd >/dev/null 2>&1 || { echo "[xrootd] user 'xrootd' missing (xrootd-server package creates it)" >&2; exit 1; }

mkdir -p "$XRD_BASE"
cat >"$XRD_BASE/sd_launch.py.tmp" <<'EOF'
"""usage: sd_launch.py PORT PROGRAM [ARGS...]
Bind 127.0.0.1:PORT, pass it as fd 3 with LISTEN_FDS=1/LISTEN_PID (systemd socket
activation) and exec PROGRAM (same pid), so the server never listens on other addresses."""
import os, socket, sys
port, argv = int(sys.argv[1]), sys.argv[2:]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(128)
fd = s.detach()
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execvp(argv[0], argv)
EOF
mv -f "$XRD_BASE/sd_launch.py.tmp" "$XRD_BASE/sd_launch.py"

# short client timeouts for the readiness probe (the defaults retry for minutes)
export XRD_CONNECTIONRETRY=1 XRD_CONNECTIONWINDOW=2 XRD_REQUESTTIMEOUT=5
for site in $SITES; do
  name=${site%%:*}; port=${site##*:}; d=$XRD_BASE/$name
  case "$port" in ''|*[!0-9]*) echo "[xrootd] bad site '$site' (expected NAME:PORT)" >&2; exit 2;; esac
  mkdir -p "$d/data/store" "$d/admin" "$d/log"
  if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
    echo "[xrootd] $name already running on 127.0.0.1:$port (pid $(cat "$d/pid"))"; continue
  fi
  rm -f "$d/pid"
  if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE ":$port\$"; then
    echo "[xrootd] port $port is taken by another process; cannot start $name" >&2; exit 1
  fi
  cat >"$d/xrootd.cfg" <<EOF
xrd.port $port
all.export /store
oss.localroot $d/data
all.adminpath $d/admin
all.pidpath $d/admin
xrd.network nodnr
xrootd.trace emsg login stall redirect
EOF
  chown -R xrootd:xrootd "$d/data" "$d/admin" "$d/log"
  chmod 0755 "$BASE" "$XRD_BASE" "$d"
  t0=$(now)
  setsid python3 "$XRD_BASE/sd_launch.py" "$port" \
    xrootd -c "$d/xrootd.cfg" -l "$d/log/xrootd.log" -R xrootd -n "$name" \
    >"$d/stdout.log" 2>&1 </dev/null &
  echo $! >"$d/pid"
  ok=
  for _ in $(seq 1 100); do
    timeout 5 xrdfs "root://127.0.0.1:$port" ls /store >/dev/null 2>&1 && { ok=1; break; }
    kill -0 "$(cat "$d/pid")" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    echo "[xrootd] $name failed to start" >&2; cat "$d/stdout.log" >&2
    tail -n 30 "$d"/log/*/xrootd.log "$d"/log/xrootd.log 2>/dev/null >&2 || true
    kill "$(cat "$d/pid")" 2>/dev/null || true; rm -f "$d/pid"; exit 1
  fi
  if ss -ltn 2>/dev/null | awk '{print $4}' | grep -qE "^(0\.0\.0\.0|\*|\[::\]):$port\$"; then
    echo "[xrootd] ERROR: $name bound a wildcard address" >&2; kill "$(cat "$d/pid")"; rm -f "$d/pid"; exit 1
  fi
  echo "[xrootd] $name on root://127.0.0.1:$port in $(since "$t0")s (pid $(cat "$d/pid")), data $d/data"
done
echo "[xrootd] ready in $(since "$t_start")s"
