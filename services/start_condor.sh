#!/usr/bin/env bash
# Start a real single-node HTCondor pool on 127.0.0.1 for the condor integration tests.
#
# Debian 12 (bookworm) has no HTCondor package and the PyPI `htcondor` wheel ships only the
# Python bindings (`htcondor2`), so the daemons come from Debian 13 (trixie)'s `minicondor`
# installed in a debootstrap'ed chroot ($CONDOR_ROOTFS, default /opt/pc-condor-root). The
# chroot shares the host network namespace (everything on 127.0.0.1) and gets host /tmp,
# /dev, the host Python prefix and $CONDOR_EXTRA_BINDS bind-mounted at the same paths, so
# the project's venv runs inside jobs. By default the checkout holding this script (which
# holds .venv) is bound too.
#
# Jobs run as an unprivileged user ($CONDOR_SUBMIT_USER, uid $CONDOR_SUBMIT_UID); the host
# (root) authenticates as that user with an IDTOKEN. Job folders must be writable by that
# user (mode 1777 under /tmp works).
#
# After it runs:  source ${PC_SERVICES_DIR:-/tmp/pc-services}/condor.env
#   -> CONDOR_CONFIG (for the htcondor2 bindings) and PATH with condor_* wrappers.
# Must run as root. Idempotent: reuses an existing rootfs and a running pool.
# Network is needed only the first time (debootstrap + apt in the chroot), with retries.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
ROOTFS=${CONDOR_ROOTFS:-/opt/pc-condor-root}
SUITE=${CONDOR_SUITE:-trixie}            # trixie: condor 23.9.6
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUBMIT_USER=${CONDOR_SUBMIT_USER:-cmsuser}
SUBMIT_UID=${CONDOR_SUBMIT_UID:-2001}
BASE=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
CLIENT_DIR=$BASE/condor-client
BIN_DIR=$BASE/bin
NUM_CPUS=${CONDOR_NUM_CPUS:-2}
MEMORY_MB=${CONDOR_MEMORY_MB:-4096}
# host directories exposed at the same path inside the chroot (space separated); the
# checkout (code + .venv of the editable install) is always added
EXTRA_BINDS="$REPO ${CONDOR_EXTRA_BINDS:-}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi

[ "$(id -u)" = 0 ] || { echo "[condor] start_condor.sh: must run as root" >&2; exit 1; }
SERVICE=condor; . "$(dirname "$0")/common.sh"
t_start=$(now)
mkdir -p "$BASE"; chmod 0755 "$BASE"

# ---------------------------------------------------------------- install
install_debootstrap() {
  apt-get "${APT_OPTS[@]}" update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq debootstrap >/dev/null
}
run_debootstrap() {
  # a half-finished debootstrap leaves a rootfs it cannot resume: start over (nothing is mounted yet)
  if [ -d "$ROOTFS" ] && [ ! -x "$ROOTFS/usr/bin/apt-get" ]; then
    if awk -v r="$ROOTFS" '$2 ~ "^"r"/" {f=1} END {exit !f}' /proc/mounts; then
      echo "[condor] $ROOTFS is incomplete but has mounts; run services/stop_condor.sh first" >&2; return 1
    fi
    rm -rf --one-file-system "$ROOTFS"
  fi
  [ -x "$ROOTFS/usr/bin/apt-get" ] && return 0
  debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$BASE/condor-debootstrap.log" 2>&1 ||
    { tail -20 "$BASE/condor-debootstrap.log" >&2; return 1; }
}
install_minicondor() {
  chroot "$ROOTFS" apt-get -o Acquire::Retries=3 update -qq >"$BASE/condor-apt.log" 2>&1 &&
    chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive \
      apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends minicondor >>"$BASE/condor-apt.log" 2>&1 ||
    { tail -20 "$BASE/condor-apt.log" >&2; return 1; }
}
if [ ! -x "$ROOTFS/usr/sbin/condor_master" ]; then
  if ! command -v debootstrap >/dev/null; then
    retry 3 install_debootstrap || { echo "[condor] could not install debootstrap" >&2; exit 1; }
  fi
  retry 3 run_debootstrap || { echo "[condor] debootstrap $SUITE failed (log: $BASE/condor-debootstrap.log)" >&2; exit 1; }
  echo "[condor] debootstrap $SUITE done ($(since "$t_start")s)"
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"; chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
  mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
  retry 3 install_minicondor || { echo "[condor] apt-get install minicondor failed (log: $BASE/condor-apt.log)" >&2; exit 1; }
  echo "[condor] installed minicondor ($(since "$t_start")s)"
fi

# ---------------------------------------------------------------- mounts
bind() {  # bind SRC at the same path inside the chroot
  local src=$1 dst=$ROOTFS$1
  mkdir -p "$dst"
  mountpoint -q "$dst" || mount --bind "$src" "$dst"
}
open_path() {  # let the job user walk down to a bound folder inside the chroot
  local d=$1
  while [ "$d" != / ]; do chmod o+rx "$ROOTFS$d" 2>/dev/null || true; d=$(dirname "$d"); done
}
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
bind /dev; bind /dev/pts; bind /dev/shm          # /dev/shm: multiprocessing locks (futures in jobs)
bind /tmp                                        # job folders, submit files, logs
PYPREFIX=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')
case "$PYPREFIX" in
  /usr|/usr/*) echo "[condor] WARNING: host python is in /usr; host venvs will not run inside jobs" >&2 ;;
  *) bind "$PYPREFIX"; mount -o remount,bind,ro "$ROOTFS$PYPREFIX" 2>/dev/null || true; open_path "$PYPREFIX" ;;
esac
for d in $EXTRA_BINDS; do
  [ -d "$d" ] || { echo "[condor] WARNING: CONDOR_EXTRA_BINDS entry $d is not a folder; skipped" >&2; continue; }
  bind "$d"; open_path "$d"
done

# ---------------------------------------------------------------- config
grep -q "[[:space:]]$(hostname)\$" "$ROOTFS/etc/hosts" 2>/dev/null || echo "127.0.0.1 $(hostname)" >>"$ROOTFS/etc/hosts"
cat >"$ROOTFS/etc/condor/config.d/99-pocket-coffea.conf" <<EOF
# test pool: loopback only, fast cycles
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
NUM_CPUS = $NUM_CPUS
MEMORY = $MEMORY_MB
SCHEDD_INTERVAL = 2
NEGOTIATOR_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
STARTER_UPDATE_INTERVAL = 2
SHADOW_QUEUE_UPDATE_INTERVAL = 2
UPDATE_INTERVAL = 2
# a removed job's processes get 10 s after SIGTERM, not HTCondor's default 10 minutes: a
# batch worker (a parsl block, a dask worker) that ignores SIGTERM would otherwise keep
# its cores claimed and starve the next test's jobs. HTCondor 23's slot attribute
# MachineMaxVacateTime defaults to \$(MaxVacateTime); it ignores MACHINE_MAX_VACATE_TIME.
MaxVacateTime = 10
# a chroot cannot unshare a mount namespace -> do not mount scratch over /tmp
MOUNT_UNDER_SCRATCH =
EOF
if ! chroot "$ROOTFS" id "$SUBMIT_USER" >/dev/null 2>&1; then
  chroot "$ROOTFS" useradd -m -u "$SUBMIT_UID" -s /bin/bash "$SUBMIT_USER"
fi

# ---------------------------------------------------------------- start
mkdir -p "$ROOTFS/run/condor"; chroot "$ROOTFS" chown condor:condor /run/condor
PIDFILE=$ROOTFS/run/condor/master.pid
running=
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  if chroot "$ROOTFS" condor_reconfig >/dev/null 2>&1; then
    running=1; echo "[condor] already running (master pid $(cat "$PIDFILE")); reconfigured"
  else  # a master that is dying (killed with its daemons) does not answer: start afresh
    echo "[condor] master pid $(cat "$PIDFILE") does not answer condor_reconfig; starting a new pool"
    kill -KILL "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; sleep 1
  fi
fi
if [ -z "$running" ]; then
  t0=$(now)
  chroot "$ROOTFS" /usr/sbin/condor_master -pidfile /run/condor/master.pid
  ok=
  for _ in $(seq 1 240); do
    if [ -n "$(chroot "$ROOTFS" condor_status -af Name 2>/dev/null)" ] &&
       [ -n "$(chroot "$ROOTFS" condor_status -schedd -af Name 2>/dev/null)" ]; then ok=1; break; fi
    sleep 0.5
  done
  [ -n "$ok" ] || { echo "[condor] pool did not become ready in 120s" >&2; tail -20 "$ROOTFS/var/log/condor/MasterLog" >&2; exit 1; }
  echo "[condor] pool ready in $(since "$t0")s (master pid $(cat "$PIDFILE"))"
fi

# ---------------------------------------------------------------- client side
UID_DOMAIN=$(chroot "$ROOTFS" condor_config_val UID_DOMAIN)
mkdir -p "$CLIENT_DIR/tokens.d" "$BIN_DIR"; chmod 700 "$CLIENT_DIR/tokens.d"
chroot "$ROOTFS" condor_token_create -identity "$SUBMIT_USER@$UID_DOMAIN" >"$CLIENT_DIR/tokens.d/$SUBMIT_USER.tmp"
mv -f "$CLIENT_DIR/tokens.d/$SUBMIT_USER.tmp" "$CLIENT_DIR/tokens.d/$SUBMIT_USER"
chmod 600 "$CLIENT_DIR/tokens.d/$SUBMIT_USER"
cat >"$CLIENT_DIR/condor_config" <<EOF
CONDOR_HOST = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:9618
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
ENABLE_IPV6 = False
SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS
SEC_TOKEN_DIRECTORY = $CLIENT_DIR/tokens.d
SEC_DEFAULT_AUTHENTICATION = REQUIRED
SEC_DEFAULT_INTEGRITY = REQUIRED
EOF
cat >"$BIN_DIR/condor-chroot-wrapper" <<EOF
#!/bin/sh
# Run the HTCondor CLI tool this symlink is named after inside the chroot, authenticated
# (IDTOKEN) as $SUBMIT_USER, with the chroot's own config (CONDOR_CONFIG is for the
# host-side bindings). Only /tmp and the bound folders exist inside the chroot.
tool=\$(basename "\$0")
exec chroot "$ROOTFS" /usr/bin/env -u CONDOR_CONFIG PATH=/usr/sbin:/usr/bin:/sbin:/bin \\
  _CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS=IDTOKENS \\
  _CONDOR_SEC_TOKEN_DIRECTORY="$CLIENT_DIR/tokens.d" \\
  /bin/sh -c 'cd "\$0" 2>/dev/null || cd /; exec "\$@"' "\$PWD" "\$tool" "\$@"
EOF
chmod +x "$BIN_DIR/condor-chroot-wrapper"
for t in condor_submit condor_rm condor_q condor_history condor_status condor_wait \
         condor_hold condor_release condor_qedit condor_tail condor_version; do
  ln -sf condor-chroot-wrapper "$BIN_DIR/$t"
done
cat >"$BASE/condor.env.tmp" <<EOF
# written by services/start_condor.sh; source it to talk to the test HTCondor pool
export CONDOR_CONFIG=$CLIENT_DIR/condor_config
export PATH=$BIN_DIR:\$PATH
export CONDOR_ROOTFS=$ROOTFS
export PC_CONDOR_BINDS="$(echo /tmp $PYPREFIX $EXTRA_BINDS)"
EOF
mv -f "$BASE/condor.env.tmp" "$BASE/condor.env"
echo "[condor] done in $(since "$t_start")s; source $BASE/condor.env"
