#!/usr/bin/env bash
# Start every service the integration tests need, on 127.0.0.1 only:
#   - XRootD sites T2_CH_CERN (1094) and T1_DE_KIT (1095)      (start_xrootd.sh)
#   - a Rucio server on 18080, userpass ddmlab/secret           (start_rucio.sh)
#   - a one-node HTCondor pool (chroot, jobs as uid 2001)       (start_condor.sh)
#   - a one-node SLURM cluster (Debian slurm + munge, partitions
#     standard/c23ms/batch/offline, /etc/slurm/slurm.conf)    (start_slurm.sh)
# and write $PC_SERVICES_DIR/env.sh (shell) and $PC_SERVICES_DIR/services.json (the test
# fixtures read it; tests/integration/conftest.py looks in /tmp/pc-services by default).
# Idempotent and safe to re-run. Runs as root (apt-get, xrootd drops to user xrootd).
# The HTCondor pool writes $PC_SERVICES_DIR/condor.env (CONDOR_CONFIG, condor_* wrappers);
# env.sh sources it. A failed HTCondor start does not stop the other services, but makes
# this script exit non-zero at the end; likewise a failed SLURM start.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export PC_SERVICES_DIR=${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}
export PC_XRD_SITES=${PC_XRD_SITES:-"T2_CH_CERN:1094 T1_DE_KIT:1095"}
export PC_RUCIO_PORT=${PC_RUCIO_PORT:-18080}
t0=$(date +%s.%N)
mkdir -p "$PC_SERVICES_DIR"; chmod 0755 "$PC_SERVICES_DIR"
# the two are independent (apt-get vs pip): start them side by side
log=$PC_SERVICES_DIR/start-logs; mkdir -p "$log"
bash "$HERE/start_xrootd.sh" >"$log/xrootd.log" 2>&1 & xrd_pid=$!
bash "$HERE/start_rucio.sh" >"$log/rucio.log" 2>&1 & rucio_pid=$!
rc=0; condor_rc=0; slurm_rc=0
wait "$xrd_pid" || { echo "[services] XRootD failed to start (exit $?)" >&2; rc=1; }
# HTCondor (debootstrap + apt in its chroot, ~45 s fresh) and SLURM (host apt-get, ~15 s
# fresh) once XRootD's host apt-get is done
bash "$HERE/start_condor.sh" >"$log/condor.log" 2>&1 & condor_pid=$!
bash "$HERE/start_slurm.sh" >"$log/slurm.log" 2>&1 & slurm_pid=$!
wait "$rucio_pid" || { echo "[services] Rucio failed to start (exit $?)" >&2; rc=1; }
wait "$condor_pid" || { echo "[services] HTCondor failed to start (exit $?; log $log/condor.log)" >&2; condor_rc=1; }
wait "$slurm_pid" || { echo "[services] SLURM failed to start (exit $?; log $log/slurm.log)" >&2; slurm_rc=1; }
sed 's/^/  /' "$log/xrootd.log" "$log/rucio.log" "$log/condor.log" "$log/slurm.log"
[ "$rc" = 0 ] || exit 1

cat >"$PC_SERVICES_DIR/env.sh.tmp" <<EOF
# written by services/start_all.sh; source it to talk to the test services
export PC_SERVICES_DIR=$PC_SERVICES_DIR
export PC_XRD_SITES="$PC_XRD_SITES"
export RUCIO_CONFIG=$PC_SERVICES_DIR/rucio/client.cfg
export XRD_CONNECTIONRETRY=1 XRD_REQUESTTIMEOUT=10
if [ -f $PC_SERVICES_DIR/condor.env ]; then . $PC_SERVICES_DIR/condor.env; fi
EOF
mv -f "$PC_SERVICES_DIR/env.sh.tmp" "$PC_SERVICES_DIR/env.sh"
python3 - "$PC_SERVICES_DIR" "$PC_XRD_SITES" "$PC_RUCIO_PORT" "$HERE" <<'EOF'
import json, os, sys
base, sites, port, here = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4]
info = {
    "services_dir": base,
    "scripts_dir": here,
    "rucio": {"url": f"http://127.0.0.1:{port}", "config": f"{base}/rucio/client.cfg"},
    "xrootd": {s.split(":")[0]: {"port": int(s.split(":")[1]),
                                 "url": f"root://127.0.0.1:{s.split(':')[1]}/",
                                 "data": f"{base}/xrootd/{s.split(':')[0]}/data"} for s in sites},
}
if os.path.exists(f"{base}/slurm.json"):  # written by start_slurm.sh
    with open(f"{base}/slurm.json") as fh:
        info["slurm"] = json.load(fh)
tmp = f"{base}/services.json.tmp"
with open(tmp, "w") as fh:
    json.dump(info, fh, indent=1)
os.replace(tmp, f"{base}/services.json")
EOF
echo "[services] all up in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")s; source $PC_SERVICES_DIR/env.sh"
[ "$condor_rc" = 0 ] && [ "$slurm_rc" = 0 ] || exit 1
