#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by start_slurm.sh (cancel its jobs, then slurmd,
# slurmctld and munged by their pid files). Keeps the packages and the config, so the next
# start takes seconds.
set -uo pipefail
BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
DIR=$BASE/slurm
stop_daemon() {  # stop_daemon PIDFILE NAME
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then echo "[slurm] $2 $pid still alive, SIGKILL"; kill -KILL "$pid"; fi
    echo "[slurm] stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null && command -v scancel >/dev/null; then
  scancel --full --quiet -u root 2>/dev/null || true
fi
stop_daemon "$DIR/slurmd.pid" slurmd
stop_daemon "$DIR/slurmctld.pid" slurmctld
stop_daemon /run/munge/munged.pid munged
rm -f "$BASE/slurm.json"
exit 0
