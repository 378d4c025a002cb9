#!/usr/bin/env bash
# CPU and allocation profiles of Caddy under the load of one of bench/run.sh's
# measurements (see bench/README.md).
#
#   bash bench/profile.sh                      # under the "single" load
#   TARGET=reject bash bench/profile.sh        # single, batch, proxy, reject, respond, signed or idemkey
#   QUEUE=redis bash bench/profile.sh          # the postback app on a local redis-server
#   PROFILE_SECONDS=30 OUT=/tmp/prof bash bench/profile.sh
#
# Same build, Caddyfile, pinning and load as that measurement of bench/run.sh. While the load runs it fetches, over the same window, from
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
# Environment: TARGET (single), QUEUE (memory|redis), PROFILE_SECONDS (20), CONNS (64), WARMUP (1s),
# PIN, CADDY_CPUS, LOAD_CPUS, QUIET_WAIT, OUT. See bench/lib.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILE_SECONDS=${PROFILE_SECONDS:-20}
TARGET=${TARGET:-single}
QUEUE=${QUEUE:-memory}
case $TARGET in
single | batch | proxy | reject | respond | signed | idemkey) ;;
*)
	log "TARGET must be single, batch, proxy, reject, respond, signed or idemkey, got $TARGET"
	exit 2
	;;
esac
case $QUEUE in
memory | redis) ;;
*)
	log "QUEUE must be memory or redis, got $QUEUE"
	exit 2
	;;
esac
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/caddy-postback-profile.XXXXXX")}
mkdir -p "$OUT"

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

command -v curl >/dev/null || {
	log "profile.sh needs curl"
	exit 1
}

bench_build
bench_queue "$QUEUE"
bench_start
bench_bodies
bench_smoke
cp "$BENCH_TMP/caddy" "$OUT/caddy"

# The load runs 2s longer than the profiles on each side: the warm-up, then
# 1s before the profiles start, and 1s after they end.
wait_quiet
LOAD_SECONDS=$((PROFILE_SECONDS + 2))
LOAD_FLAGS=()
case $TARGET in
single) LOAD=("$POSTBACK_URL" "$SINGLE_BODY" 200) ;;
signed) LOAD=("$SIGNED_URL" "$SINGLE_BODY" 200) LOAD_FLAGS=(-sign-secret "$BENCH_SECRET") ;;
idemkey) LOAD=("$POSTBACK_URL" "$SINGLE_BODY" 200) LOAD_FLAGS=(-idempotency-key "profile-$(date +%s%N)") ;;
batch) LOAD=("$POSTBACK_URL" "$BATCH_BODY" 200) ;;
proxy) LOAD=("$PROXY_URL" "$SINGLE_BODY" 200) ;;
reject) LOAD=("$POSTBACK_URL" "$REJECT_BODY" 400) ;;
respond) LOAD=("$STATIC_URL" "$REJECT_BODY" 200) ;;
esac
log "$TARGET load for ${WARMUP} + ${LOAD_SECONDS}s; profiling Caddy (pid $CADDY_PID) for ${PROFILE_SECONDS}s ..."
loadgen "${LOAD[@]}" "${LOAD_SECONDS}s" "${LOAD_FLAGS[@]}" >"$OUT/load.json" &
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
echo "== caddy-postback: Caddy profiles under the $TARGET load, $QUEUE queue ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
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
