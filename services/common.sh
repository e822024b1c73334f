# Sourced by the services/start_*.sh scripts: timing and retrying apt on fresh CI machines.
# The sourcing script sets SERVICE (the log prefix, e.g. "condor") before sourcing.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
retry() {  # retry N CMD...: run CMD up to N times, 10 s apart (fresh CI machines: apt locks, mirrors)
  local n=$1 i; shift
  for i in $(seq 1 "$n"); do
    "$@" && return 0
    [ "$i" = "$n" ] && return 1
    echo "[$SERVICE] attempt $i of '$*' failed; retrying in 10s" >&2; sleep 10
  done
}
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
