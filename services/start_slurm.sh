#!/usr/bin/env bash
# Start a real one-node SLURM cluster on 127.0.0.1 for the dask/parsl SLURM integration tests.
#
# Debian's own packages (bookworm: slurm 22.05): munge, slurmctld, slurmd, slurm-client, run
# directly (no systemd, no cgroups: proctrack/linuxproc, task/none, no accounting). Jobs run
# on this host as the submitting user, so the checkout, its .venv and /tmp are the same
# paths for the jobs (a shared file system, as on a real SLURM site).
#
# The node claims $SLURM_NODE_CPUS cores and $SLURM_NODE_MEMORY_MB memory whatever the machine
# has (SlurmdParameters=config_overrides): the presets' requests (4-7.5 GB per worker) fit on
# a 2-core CI machine; nothing is enforced (no cgroups).
#
# Partitions, named as the run-options presets use them (pc_core/data/run_options_defaults.yaml):
#   standard (default; dask@T3_CH_PSI, and dask@brux which names none), c23ms (dask@CLAIX,
#   parsl@CLAIX), batch (dask@oscar), and `offline`, a DOWN partition where jobs are accepted
#   but never start (for the "workers that never come" tests).
#
# Config: /etc/slurm/slurm.conf (the default path, so sbatch/squeue/scancel need no
# environment); state, spool, logs and pid files under $PC_SERVICES_DIR/slurm. Writes
# $PC_SERVICES_DIR/slurm.json (start_all.sh puts it into services.json under "slurm").
# Must run as root. Idempotent: reuses running daemons when the config did not change.
set -euo pipefail

BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
DIR=$BASE/slurm
CONF=/etc/slurm/slurm.conf
NODE=${SLURM_NODE_NAME:-pcnode}  # any name: slurmd is started with -N, every address is 127.0.0.1
CPUS=${SLURM_NODE_CPUS:-8}
MEMORY_MB=${SLURM_NODE_MEMORY_MB:-32000}
PARTITIONS="standard c23ms batch"

[ "$(id -u)" = 0 ] || { echo "[slurm] start_slurm.sh: must run as root" >&2; exit 1; }
SERVICE=slurm; . "$(dirname "$0")/common.sh"
t_start=$(now)
echo "[slurm] starting (config $CONF, state $DIR)"
mkdir -p "$BASE" "$DIR/state" "$DIR/spool" "$DIR/log"; chmod 0755 "$BASE" "$DIR"
rm -f "$BASE/slurm.json"  # written again once the cluster runs a job

# ---------------------------------------------------------------- install
install_slurm() {
  # the packages' postinst would start the daemons with no config: forbid it (as Docker images do)
  local own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  local rc=0 i
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends \
      munge slurmctld slurmd slurm-client
  }
  # start_xrootd.sh has just updated the package lists: install from them; update only if that
  # fails. `apt-get update` does not wait for the lists lock (start_condor.sh may hold it for
  # its own update): retry it every 2 s for a minute.
  {
    apt_install || {
      for i in $(seq 1 30); do
        apt-get "${APT_OPTS[@]}" update -qq && break
        [ "$i" = 30 ] && break
        echo "[slurm] apt-get update failed (lock held?), again in 2s"; sleep 2
      done
      apt_install
    }
  } >"$DIR/apt.log" 2>&1 || rc=$?
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || tail -20 "$DIR/apt.log" >&2
  return "$rc"
}
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
   ! command -v munged >/dev/null; then
  retry 3 install_slurm || { echo "[slurm] apt-get install munge slurmctld slurmd slurm-client failed (log: $DIR/apt.log)" >&2; exit 1; }
  echo "[slurm] installed slurm $(dpkg-query -W -f '${Version}' slurmctld 2>/dev/null) ($(since "$t_start")s)"
fi

# ---------------------------------------------------------------- munge
MUNGE_SOCKET=/run/munge/munge.socket.2
mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0755 /run/munge; chmod 0700 /etc/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
if munge_ok; then
  echo "[slurm] munged already running"
else
  # (a munged killed with -9 leaves its pid file: `kill` of that pid fails, which must not end
  # this `set -e` script, as a bare `[ -f ] && kill` at the end of a list would, silently)
  pkill_pidfile() { if [ -f "$1" ]; then kill "$(cat "$1")" 2>/dev/null || true; fi; rm -f "$1"; }
  pkill_pidfile /run/munge/munged.pid
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --pid-file=/run/munge/munged.pid \
    --log-file=/var/log/munge/munged.log
  for _ in $(seq 1 50); do munge_ok && break; sleep 0.1; done
  munge_ok || { echo "[slurm] munged does not answer" >&2; tail -20 /var/log/munge/munged.log >&2; exit 1; }
  echo "[slurm] munged started"
fi

# ---------------------------------------------------------------- config
mkdir -p /etc/slurm
partitions=""
for p in $PARTITIONS; do
  default=NO; [ "$p" = standard ] && default=YES
  partitions+="PartitionName=$p Nodes=$NODE Default=$default MaxTime=INFINITE State=UP"$'\n'
done
cat >"$CONF.tmp" <<EOF
# written by services/start_slurm.sh: a one-node test cluster on 127.0.0.1
ClusterName=pocketcoffea
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd, no cgroups in this container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SlurmdParameters=config_overrides
ReturnToService=2
# quick test cycles: finished jobs leave the controller's memory soon, killed jobs fast
MinJobAge=5
KillWait=2
InactiveLimit=0
SlurmdTimeout=30
MessageTimeout=10
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEMORY_MB State=UNKNOWN
${partitions}PartitionName=offline Nodes=$NODE Default=NO MaxTime=INFINITE State=DOWN
EOF
changed=1
if cmp -s "$CONF.tmp" "$CONF"; then changed=; rm -f "$CONF.tmp"; else mv -f "$CONF.tmp" "$CONF"; fi
chmod 0644 "$CONF"

# ---------------------------------------------------------------- start
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_daemon() {  # stop_daemon PIDFILE NAME
  alive "$1" || return 0
  local pid; pid=$(cat "$1"); kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  echo "[slurm] stopped $2 (pid $pid)"
}
node_ready() { [ "$(sinfo -h -n "$NODE" -p standard -o %t 2>/dev/null | head -1)" = idle ]; }
if [ -n "$changed" ]; then
  stop_daemon "$DIR/slurmd.pid" slurmd; stop_daemon "$DIR/slurmctld.pid" slurmctld
fi
if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && node_ready; then
  echo "[slurm] already running (slurmctld pid $(cat "$DIR/slurmctld.pid"), slurmd pid $(cat "$DIR/slurmd.pid"))"
else
  t0=$(now)
  stop_daemon "$DIR/slurmd.pid" slurmd
  if ! alive "$DIR/slurmctld.pid"; then
    # -i: ignore (and drop) state left by an earlier run that was not stopped cleanly
    slurmctld -i
  fi
  for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
  scontrol ping 2>/dev/null | grep -q UP || { echo "[slurm] slurmctld does not answer" >&2; tail -20 "$DIR/log/slurmctld.log" >&2; exit 1; }
  slurmd -N "$NODE"
  for _ in $(seq 1 150); do node_ready && break; sleep 0.2; done
  if ! node_ready; then
    # a node that was DOWN in the saved state: bring it back
    scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
    for _ in $(seq 1 50); do node_ready && break; sleep 0.2; done
  fi
  node_ready || { echo "[slurm] node $NODE not idle: $(sinfo -h -N -o '%N %t %E' 2>&1)" >&2;
                  tail -20 "$DIR/log/slurmd.log" >&2; tail -20 "$DIR/log/slurmctld.log" >&2; exit 1; }
  echo "[slurm] cluster ready in $(since "$t0")s (slurmctld pid $(cat "$DIR/slurmctld.pid"), slurmd pid $(cat "$DIR/slurmd.pid"))"
fi

# ---------------------------------------------------------------- smoke test: a real job runs
out=$(srun -p standard -N1 -n1 --mem=100M -t 1 -J pc-smoke /bin/echo slurm-ok 2>&1) ||
  { echo "[slurm] srun smoke test failed: $out" >&2; tail -20 "$DIR/log/slurmd.log" >&2; exit 1; }
[ "$out" = slurm-ok ] || { echo "[slurm] srun smoke test printed '$out'" >&2; exit 1; }

python3 - "$BASE" "$CONF" "$NODE" "$DIR" "$PARTITIONS" <<'EOF'
import json, os, sys
base, conf, node, d, parts = sys.argv[1:6]
info = {"conf": conf, "node": node, "partitions": parts.split(), "default_partition": "standard",
        "down_partition": "offline", "logs": f"{d}/log", "controller": "127.0.0.1:6817"}
with open(f"{base}/slurm.json.tmp", "w") as fh:
    json.dump(info, fh, indent=1)
os.replace(f"{base}/slurm.json.tmp", f"{base}/slurm.json")
EOF
echo "[slurm] done in $(since "$t_start")s: partitions $(sinfo -h -o '%P:%a' | tr '\n' ' ')"
