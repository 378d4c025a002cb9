#!/usr/bin/env bash
# CPU and allocation profiles of Caddy under single-id postback load
# (see bench/README.md).
#
#   bash bench/profile.sh
#   PROFILE_SECONDS=30 OUT=/tmp/prof bash bench/profile.sh
#
# Same build, Caddyfile, pinning and load as bench/run.sh's "single"
# measurement. While the load runs it fetches, over the same window, from
# Caddy's admin endpoint (localhost only):
#
#   /debug/pprof/profile?seconds=N   CPU profile
#   /debug/pprof/allocs?seconds=N    allocations made during the window (a delta
#                                    profile, so start-up does not count)
#
# and prints `go tool pprof -top -nodecount=25` of each (allocations by bytes
# and by count). The profiles and the Caddy binary stay in $OUT (default: a
# new temp dir) for `go tool pprof -http`.
#
# Environment: PROFILE_SECONDS (20), CONNS (32), WARMUP (1s), PIN, CADDY_CPUS,
# LOAD_CPUS, QUIET_WAIT, OUT. See bench/lib.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE_SECONDS=${PROFILE_SECONDS:-20}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/caddy-postback-profile.XXXXXX")}
mkdir -p "$OUT"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

command -v curl >/dev/null || {
	log "profile.sh needs curl"
	exit 1
}

bench_build
bench_start
bench_bodies
bench_smoke
cp "$BENCH_TMP/caddy" "$OUT/caddy"

# The load runs 2s longer than the profiles on each side: the warm-up, then
# 1s before the profiles start, and 1s after they end.
wait_quiet
LOAD_SECONDS=$((PROFILE_SECONDS + 2))
log "single-id load for ${WARMUP} + ${LOAD_SECONDS}s; profiling Caddy (pid $CADDY_PID) for ${PROFILE_SECONDS}s ..."
loadgen "$POSTBACK_URL" "$SINGLE_BODY" 200 "${LOAD_SECONDS}s" >"$OUT/load.json" &
LOAD_PID=$!
BG_PIDS+=("$LOAD_PID")
sleep "$(awk -v w="$(seconds "$WARMUP")" 'BEGIN {print w + 1}')"
curl -s --fail --max-time $((PROFILE_SECONDS + 30)) -o "$OUT/cpu.prof" \
	"$ADMIN/debug/pprof/profile?seconds=$PROFILE_SECONDS" &
CPU_PID=$!
BG_PIDS+=("$CPU_PID")
curl -s --fail --max-time $((PROFILE_SECONDS + 30)) -o "$OUT/allocs.prof" \
	"$ADMIN/debug/pprof/allocs?seconds=$PROFILE_SECONDS" &
ALLOCS_PID=$!
BG_PIDS+=("$ALLOCS_PID")
wait "$CPU_PID" || {
	log "could not fetch the CPU profile"
	exit 1
}
wait "$ALLOCS_PID" || {
	log "could not fetch the allocs profile"
	exit 1
}
wait "$LOAD_PID"

echo
echo "== caddy-postback: Caddy profiles under single-id update_fields load ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
machine_info
echo "load:     $CONNS connections, ${LOAD_SECONDS}s measured (profiling costs some throughput): $(cat "$OUT/load.json")"
echo "loadavg:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo "files:    $OUT (cpu.prof, allocs.prof, caddy)"
echo
echo "== CPU ($PROFILE_SECONDS s): go tool pprof -top -nodecount=25 caddy cpu.prof"
go tool pprof -top -nodecount=25 "$OUT/caddy" "$OUT/cpu.prof" 2>&1
echo
echo "== allocations during the window, by bytes: go tool pprof -top -nodecount=25 -sample_index=alloc_space caddy allocs.prof"
go tool pprof -top -nodecount=25 -sample_index=alloc_space "$OUT/caddy" "$OUT/allocs.prof" 2>&1
echo
echo "== allocations during the window, by count: go tool pprof -top -nodecount=25 -sample_index=alloc_objects caddy allocs.prof"
go tool pprof -top -nodecount=25 -sample_index=alloc_objects "$OUT/caddy" "$OUT/allocs.prof" 2>&1
