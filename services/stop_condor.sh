#!/usr/bin/env bash
# Stop the chroot HTCondor pool started by start_condor.sh (by its master pid) and unmount
# its binds. Keeps the rootfs, so the next start takes seconds.
# NEVER `rm -rf` the rootfs while its /tmp bind is mounted: that deletes host /tmp.
set -uo pipefail
ROOTFS=${CONDOR_ROOTFS:-/opt/pc-condor-root}
BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
PIDFILE=$ROOTFS/run/condor/master.pid
if [ -f "$PIDFILE" ] && pid=$(cat "$PIDFILE") && kill -0 "$pid" 2>/dev/null; then
  chroot "$ROOTFS" condor_off -master >/dev/null 2>&1 || kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then echo "[condor] master $pid still alive, SIGKILL"; kill -KILL "$pid"; fi
  echo "[condor] stopped (master pid $pid)"
fi
rm -f "$PIDFILE" "$BASE/condor.env"
# unmount everything below the rootfs, deepest first
for m in $(awk -v r="$ROOTFS" '$2 ~ "^"r"/" {print $2}' /proc/mounts | sort -r); do
  umount "$m" 2>/dev/null || umount -l "$m"
done
if awk -v r="$ROOTFS" '$2 ~ "^"r"/" {f=1} END {exit !f}' /proc/mounts; then
  echo "[condor] WARNING: mounts left under $ROOTFS" >&2; exit 1
fi
echo "[condor] unmounted"
exit 0
