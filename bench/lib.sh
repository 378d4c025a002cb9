# Shared by bench/run.sh and bench/profile.sh (sourced, not run): builds the
# three binaries, picks ports and CPUs, starts the upstream and Caddy, and
# stops them again. Everything lives in one temp dir, $BENCH_TMP.
#
# Environment (all optional):
#   CONNS=64          connections of the load generator
#   DRAIN_CONNS=32    connections of the drain benchmark's partner
#   WARMUP=1s         warm-up before each measured window
#   PIN=auto          auto: pin with taskset when it exists and there are 2+ CPUs; 0: never
#   CADDY_CPUS=...    CPU list for Caddy (default: the first half of the allowed CPUs)
#   LOAD_CPUS=...     CPU list for the load generator and the upstream (default: the rest)
#   QUIET_WAIT=0      wait up to this many seconds for the machine to be idle (other processes
#                     under 0.2 core) before measuring; 0: do not wait
#   KEEP=1            keep $BENCH_TMP (logs, binaries) after the run

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

CONNS=${CONNS:-64}
DRAIN_CONNS=${DRAIN_CONNS:-32}
WARMUP=${WARMUP:-1s}
PIN=${PIN:-auto}
QUIET_WAIT=${QUIET_WAIT:-0}
BATCH_SIZE=50
BENCH_KEY=${BENCH_KEY:-bench-key-$$}
BENCH_PLATFORM_KEY=${BENCH_PLATFORM_KEY:-bench-platform-key-$$}
# The signed webhook's secret: 32 random bytes.
BENCH_SECRET=${BENCH_SECRET:-whsec_$(head -c 32 /dev/urandom | base64)}
BENCH_REDIS=""
export BENCH_KEY BENCH_PLATFORM_KEY BENCH_SECRET BENCH_REDIS

# A bare number of seconds is a Go duration in seconds.
as_duration() { case $1 in *[a-z]) echo "$1" ;; *) echo "${1}s" ;; esac; }
WARMUP=$(as_duration "$WARMUP")

# seconds <go duration>: 5s, 1.5s, 500ms, 2m -> seconds as a decimal number
seconds() {
	awk -v d="$1" 'BEGIN {
		if (d ~ /ms$/) { sub(/ms$/, "", d); print d / 1000 }
		else if (d ~ /s$/) { sub(/s$/, "", d); print d + 0 }
		else if (d ~ /m$/) { sub(/m$/, "", d); print d * 60 }
		else print d + 0
	}'
}

CADDY_PID=""
UPSTREAM_PID=""
REDIS_PID=""
BG_PIDS=() # other background processes of the scripts (profile.sh's load and fetches)

log() { printf '%s\n' "$*" >&2; }

bench_cleanup() {
	local rc=$?
	set +e
	# Only the processes this script started, by pid.
	for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$CADDY_PID" ] && kill "$CADDY_PID" 2>/dev/null && wait "$CADDY_PID" 2>/dev/null
	[ -n "$UPSTREAM_PID" ] && kill "$UPSTREAM_PID" 2>/dev/null && wait "$UPSTREAM_PID" 2>/dev/null
	[ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
	if [ "$rc" -ne 0 ] && [ -n "${BENCH_TMP:-}" ] && [ -f "$BENCH_TMP/caddy.log" ]; then
		log "--- last lines of caddy.log"
		tail -n 20 "$BENCH_TMP/caddy.log" >&2
		log "--- last lines of upstream.log"
		tail -n 20 "$BENCH_TMP/upstream.log" >&2 || true
	fi
	if [ -n "${BENCH_TMP:-}" ] && [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$BENCH_TMP"
	elif [ -n "${BENCH_TMP:-}" ]; then
		log "kept $BENCH_TMP"
	fi
	return "$rc"
}

# expand_cpus "0-2,5" -> "0 1 2 5"
expand_cpus() {
	local part parts out=() a b i
	IFS=, read -ra parts <<<"$1"
	for part in "${parts[@]}"; do
		if [[ $part == *-* ]]; then
			a=${part%-*} b=${part#*-}
			for ((i = a; i <= b; i++)); do out+=("$i"); done
		else
			out+=("$part")
		fi
	done
	echo "${out[*]}"
}

# Decides CADDY_TASKSET / LOAD_TASKSET (command prefixes) and PIN_NOTE.
choose_cpus() {
	CADDY_TASKSET=() LOAD_TASKSET=()
	local allowed cpus n half
	allowed=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)
	read -ra cpus <<<"$(expand_cpus "$allowed")"
	n=${#cpus[@]}
	if [ "$PIN" = 0 ] || ! command -v taskset >/dev/null 2>&1 || [ "$n" -lt 2 ]; then
		PIN_NOTE="not pinned (PIN=$PIN, taskset $(command -v taskset >/dev/null && echo present || echo absent), $n CPUs allowed): Caddy, load generator and upstream share all CPUs"
		return
	fi
	half=$((n / 2))
	if [ -z "${CADDY_CPUS:-}" ]; then
		CADDY_CPUS=$(
			IFS=,
			echo "${cpus[*]:0:half}"
		)
	fi
	if [ -z "${LOAD_CPUS:-}" ]; then
		LOAD_CPUS=$(
			IFS=,
			echo "${cpus[*]:half}"
		)
	fi
	CADDY_TASKSET=(taskset -c "$CADDY_CPUS")
	LOAD_TASKSET=(taskset -c "$LOAD_CPUS")
	PIN_NOTE="Caddy on CPU $CADDY_CPUS; load generator + upstream on CPU $LOAD_CPUS (taskset; GOMAXPROCS follows the affinity)"
}

# Builds caddy, upstream and loadgen into $BENCH_TMP.
bench_build() {
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/caddy-postback-bench.XXXXXX")
	log "building caddy, upstream, loadgen into $BENCH_TMP ..."
	(cd "$REPO_DIR" &&
		go build -o "$BENCH_TMP/caddy" ./cmd/caddy &&
		go build -o "$BENCH_TMP/upstream" ./bench/upstream &&
		go build -o "$BENCH_TMP/loadgen" ./bench/loadgen &&
		go build -o "$BENCH_TMP/drain" ./bench/drain)
	LOADGEN=$BENCH_TMP/loadgen
}

wait_for() { # wait_for <what> <seconds> <command...>
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "$what is not ready after ${secs}s"
			return 1
		fi
		sleep 0.1
	done
}

http_status_is() { # http_status_is <status> <curl args...>
	local want=$1
	shift
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@")" = "$want" ]
}

# Starts the upstream and Caddy on free loopback ports and waits until both answer.
bench_start() {
	choose_cpus
	read -r BENCH_PORT BENCH_ADMIN_PORT BENCH_UPSTREAM_PORT <<<"$("$LOADGEN" -free-ports 3)"
	export BENCH_PORT BENCH_ADMIN_PORT BENCH_UPSTREAM_PORT
	EDGE=http://127.0.0.1:$BENCH_PORT
	ADMIN=http://localhost:$BENCH_ADMIN_PORT

	"${LOAD_TASKSET[@]}" "$BENCH_TMP/upstream" -addr "127.0.0.1:$BENCH_UPSTREAM_PORT" \
		>"$BENCH_TMP/upstream.log" 2>&1 &
	UPSTREAM_PID=$!
	# Caddy's data and config dirs inside the temp dir, not in $HOME.
	XDG_DATA_HOME=$BENCH_TMP/data XDG_CONFIG_HOME=$BENCH_TMP/config \
		"${CADDY_TASKSET[@]}" "$BENCH_TMP/caddy" run --config "$BENCH_DIR/Caddyfile.bench" --adapter caddyfile \
		>"$BENCH_TMP/caddy.log" 2>&1 &
	CADDY_PID=$! # taskset execs the command: this is Caddy's own pid

	wait_for "upstream" 30 http_status_is 200 -X PATCH "http://127.0.0.1:$BENCH_UPSTREAM_PORT/v1/calls/ready"
	wait_for "caddy" 60 http_status_is 200 -X POST "$EDGE/static"
	wait_for "caddy admin" 30 http_status_is 200 "$ADMIN/debug/pprof/"
	# The process we measure must be Caddy itself.
	if [ "$(cat "/proc/$CADDY_PID/comm")" != caddy ]; then
		log "pid $CADDY_PID is $(cat "/proc/$CADDY_PID/comm"), not caddy"
		return 1
	fi
}

# bench_queue memory|redis: the queue of the next bench_start. For redis, a
# redis-server (no persistence) on a free loopback port, on the load side's
# CPUs: in production Redis runs on another machine, not on Caddy's cores.
bench_queue() {
	choose_cpus
	bench_stop_redis
	BENCH_REDIS=""
	REDIS_ADDR=""
	if [ "$1" = redis ]; then
		command -v redis-server >/dev/null || {
			log "the redis measurements need redis-server"
			return 1
		}
		local port
		port=$("$LOADGEN" -free-ports 1)
		REDIS_ADDR=127.0.0.1:$port
		"${LOAD_TASKSET[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
		REDIS_PID=$!
		wait_for "redis-server" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
		BENCH_REDIS="redis redis://$REDIS_ADDR"
	fi
	export BENCH_REDIS
}

bench_stop_redis() {
	if [ -n "$REDIS_PID" ]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=""
	fi
}

# Stops Caddy and the upstream, for the next bench_start.
bench_stop() {
	local p
	for p in "$CADDY_PID" "$UPSTREAM_PID"; do
		if [ -n "$p" ]; then
			kill "$p" 2>/dev/null || true
			wait "$p" 2>/dev/null || true
		fi
	done
	CADDY_PID="" UPSTREAM_PID=""
	return 0
}

# drain_bench -> one JSON line of bench/drain against the running Caddy.
drain_bench() {
	"${LOAD_TASKSET[@]}" "$BENCH_TMP/drain" -edge "$EDGE" -key "$BENCH_KEY" -platform-key "$BENCH_PLATFORM_KEY" \
		-upstream "http://127.0.0.1:$BENCH_UPSTREAM_PORT" -redis "${REDIS_ADDR:-}" -c "$DRAIN_CONNS"
}

# Request bodies.
bench_bodies() {
	SINGLE_BODY=$BENCH_TMP/single.json
	BATCH_BODY=$BENCH_TMP/batch.json
	REJECT_BODY=$BENCH_TMP/reject.json
	printf '%s' '{"call_log_id":"abc-123","converted":true,"revenue_paid_out":25.50}' >"$SINGLE_BODY"
	{
		printf '{"call_log_id":['
		for ((i = 0; i < BATCH_SIZE; i++)); do
			[ "$i" -gt 0 ] && printf ','
			printf '"bench-%03d"' "$i"
		done
		printf '],"converted":true,"revenue_paid_out":25.50}'
	} >"$BATCH_BODY"
	printf '%s' '{"call_log_id":"a","converted":"maybe"}' >"$REJECT_BODY"
	POSTBACK_URL="$EDGE/postback/update-fields?moja_auth_key=$BENCH_KEY"
	# Signed requests carry no key: the handler finds the webhook whose secret verifies.
	SIGNED_URL="$EDGE/postback/update-fields"
	PROXY_URL="$EDGE/proxy/update-fields"
	STATIC_URL="$EDGE/static"
}

# Checks once that each target answers what the measurement expects.
bench_smoke() {
	local out
	out=$(curl -s --max-time 30 -X POST -H 'Content-Type: application/json' --data-binary "@$BATCH_BODY" "$POSTBACK_URL")
	case $out in
	*'"failed_call_log_ids":[]'*) ;;
	*)
		log "smoke test: the 50-id batch answered: $out"
		return 1
		;;
	esac
	smoke_one 200 "$SINGLE_BODY" "$POSTBACK_URL" &&
		smoke_signed &&
		smoke_one 200 "$SINGLE_BODY" "$PROXY_URL" &&
		smoke_one 400 "$REJECT_BODY" "$POSTBACK_URL" &&
		smoke_one 200 "$REJECT_BODY" "$STATIC_URL"
}

smoke_one() { # smoke_one <status> <body file> <url>
	local got
	got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X POST -H 'Content-Type: application/json' \
		--data-binary "@$2" "$3")
	if [ "$got" != "$1" ]; then
		log "smoke test: POST ${3%%\?*} with $(basename "$2") answered $got, want $1"
		return 1
	fi
}

# A retry with the same Idempotency-Key is answered from the stored outcome
# (Idempotent-Replayed: true), so the idemkey measurement measures keys at work.
smoke_idempotency() {
	local got
	got=$(curl -s -o /dev/null --max-time 30 -X POST -H 'Content-Type: application/json' -H "Idempotency-Key: smoke-$$" \
		--data-binary "@$SINGLE_BODY" "$POSTBACK_URL" &&
		curl -s -D - -o /dev/null --max-time 30 -X POST -H 'Content-Type: application/json' -H "Idempotency-Key: smoke-$$" \
			--data-binary "@$SINGLE_BODY" "$POSTBACK_URL")
	case $got in
	*[Ii]dempotent-[Rr]eplayed:\ true*) ;;
	*)
		log "smoke test: a retry with the same Idempotency-Key was not replayed: $got"
		return 1
		;;
	esac
}

# The signed target through the load generator itself (it computes the
# signatures): one connection, 200 expected, for a moment; on a busy machine
# that moment may see no answer at all, so up to three tries.
smoke_signed() {
	local out try
	for try in 1 2 3; do
		out=$("${LOAD_TASKSET[@]}" "$LOADGEN" -url "$SIGNED_URL" -method POST -body "$SINGLE_BODY" -content-type application/json \
			-sign-secret "$BENCH_SECRET" -expect 200 -c 1 -d 500ms -warmup 0s)
		case $out in
		*'"errors":0,'*'"statuses":{"200":'*) return 0 ;;
		*'"requests":0,'*) ;;
		*) break ;;
		esac
	done
	log "smoke test: the signed postback (try $try): $out"
	return 1
}

# loadgen <url> <body file> <expected status> <duration> [loadgen flags...] -> one JSON line
# The load side is the load generator, the upstream and, when running, redis-server.
loadgen() {
	local url=$1 body=$2 expect=$3 dur=$4 peers=$UPSTREAM_PID
	shift 4
	[ -n "$REDIS_PID" ] && peers="$peers,$REDIS_PID"
	"${LOAD_TASKSET[@]}" "$LOADGEN" -url "$url" -method POST -body "$body" -content-type application/json \
		-expect "$expect" -c "$CONNS" -d "$dur" -warmup "$WARMUP" "$@" \
		-pid "$CADDY_PID" -peer-pids "$peers" \
		-upstream-stats "http://127.0.0.1:$BENCH_UPSTREAM_PORT/stats" -clk-tck "$(getconf CLK_TCK)"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

machine_info() {
	echo "machine:  nproc=$(nproc)  cpu=\"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)\"  kernel=$(uname -r)"
	echo "go:       $(go version)"
	echo "caddy:    $("$BENCH_TMP/caddy" version 2>/dev/null | head -n1)"
	echo "pinning:  $PIN_NOTE"
}

busy_ticks() { # non-idle ticks of all CPUs so far (/proc/stat: user nice system irq softirq steal)
	local _c u n s _i _w irq sirq st _rest
	read -r _c u n s _i _w irq sirq st _rest </proc/stat
	echo $((u + n + s + irq + sirq + st))
}

# Waits, up to QUIET_WAIT seconds, until the machine is idle apart from the
# (idle) Caddy and upstream: under 0.2 core busy over one second.
wait_quiet() {
	[ "${QUIET_WAIT:-0}" -gt 0 ] || return 0
	local hz deadline a b
	hz=$(getconf CLK_TCK)
	deadline=$((SECONDS + QUIET_WAIT))
	while :; do
		a=$(busy_ticks)
		sleep 1
		b=$(busy_ticks)
		if [ $(((b - a) * 10)) -lt $((hz * 2)) ]; then
			log "machine idle ($(((b - a) * 100 / hz))% of a core busy): measuring"
			return 0
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "machine still busy after QUIET_WAIT=${QUIET_WAIT}s ($(((b - a) * 100 / hz))% of a core): measuring anyway"
			return 0
		fi
	done
}
