#!/usr/bin/env bash
# Stop what start_all.sh started (by recorded pids); keeps the venv and XRootD data so a
# restart is fast. Remove $PC_SERVICES_DIR by hand for a cold start.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
bash "$HERE/stop_rucio.sh"
bash "$HERE/stop_xrootd.sh"
bash "$HERE/stop_condor.sh"
bash "$HERE/stop_slurm.sh"
rm -f "${PC_SERVICES_DIR:-${REALCOMP_DIR:-/tmp/pc-services}}/services.json"
exit 0
