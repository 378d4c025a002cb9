#!/usr/bin/env bash
# The load benchmark of the postback handler (see bench/README.md).
#
#   bash bench/run.sh                          # 7 rounds, 5s per measurement, 64 connections
#   ROUNDS=3 DURATION=10s CONNS=128 bash bench/run.sh
#
# Builds Caddy (./cmd/caddy), the stand-in call store (bench/upstream) and the
# load generator (bench/loadgen) into a temp dir, starts the upstream and Caddy
# (bench/Caddyfile.bench) on free loopback ports, and measures in every round,
# back to back:
#
#   proxy    POST a single-id body to reverse_proxy -> upstream
#   single   POST a single-id update_fields postback -> 1 PATCH upstream
#   batch    POST a 50-id update_fields postback     -> 50 PATCHes upstream
#   reject   POST an invalid body to the handler     -> 400, nothing upstream
#   respond  POST the same body to a static `respond`
#   querykey the single-id postback with its query key, again ...
#   signed   ... and right beside it the same postback signed (Standard Webhooks,
#            no query key; the load generator computes each request's
#            signature); its webhook-id is its idempotency key ...
#   idemkey  ... and right beside that the query-key postback with a new
#            Idempotency-Key on every request (a key the store has not seen:
#            looked up, held and stored), the same idempotency work ...
#   plain    ... and right beside it the single-id postback once more
#
# Every measurement runs twice: with the memory queue, then with Redis (a
# local redis-server on a free port, on the load side's CPUs): QUEUES picks
# ("memory redis" by default). After the rounds of each queue, on a fresh
# Caddy, call store and Redis, the drain benchmark (bench/drain): 5000 updates queued for 1000 live calls, then
# drained by call-completed in batches of 50, against 5000 single-id updates
# of completed calls sent the same way (DRAIN_CONNS connections); with Redis, the memory per queued
# update. At the end, the medians of both queues side by side.
#
# Odd rounds run proxy, single, batch, reject, respond, querykey, signed,
# idemkey, plain; even rounds the reverse order within each group (batch,
# single, proxy, respond, reject, plain, idemkey, signed, querykey), so
# "single" and "signed" are always measured right next to both their
# partners, each pair back to back, and drift (heat, the neighbours' load, GC
# state) cancels over the rounds instead of favouring one side. The report
# gives, per ratio, min / median / max over the rounds, the raw figures and
# the machine. A measurement, not a test: it exits 0 whatever the ratios
# (non-zero only when it could not run).
#
# Environment: ROUNDS (7), DURATION (5s), CONNS (64), DRAIN_CONNS (32), WARMUP (1s), PIN (auto|0),
# QUEUES ("memory redis"), DRAIN (1; 0 leaves the drain benchmark out),
# CADDY_CPUS, LOAD_CPUS, QUIET_WAIT (0), OTHER_MAX (0.25: other processes' cores
# above which a round counts as disturbed), BENCH_SAVE=<file> (keep the load
# generator's JSON lines), KEEP=1 (keep the temp dir). See bench/lib.sh.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${ROUNDS:-7}
OTHER_MAX=${OTHER_MAX:-0.25}
DURATION=$(as_duration "${DURATION:-5s}")

trap bench_cleanup EXIT
trap 'exit 130' INT TERM

command -v curl >/dev/null || {
	log "run.sh needs curl"
	exit 1
}

bench_build

suite() { # suite memory|redis: start, measure, report, stop
	QUEUE=$1
	bench_queue "$QUEUE"
	bench_start
	bench_bodies
	bench_smoke
	smoke_idempotency

	RESULTS=$BENCH_TMP/results-$QUEUE.txt
	RAW=$BENCH_TMP/raw-$QUEUE.jsonl
	: >"$RESULTS"
	: >"$RAW"

	jnum() { # jnum <json> <key>: a number field of loadgen's JSON line, 0 when absent
		local v
		v=$(sed -n 's/.*"'"$2"'":\([-0-9.e+]*\).*/\1/p' <<<"$1")
		echo "${v:-0}"
	}

	measure() { # measure <round> <name> <url> <body file> <expected status> [loadgen flags...]
		local json
		json=$(loadgen "$3" "$4" "$5" "$DURATION" "${@:6}")
		echo "{\"round\":$1,\"target\":\"$2\",\"result\":$json}" >>"$RAW"
		echo "$1 $2 $(jnum "$json" rps) $(jnum "$json" cpu_us_per_req) $(jnum "$json" cpu_util)" \
			"$(jnum "$json" errors) $(jnum "$json" rss_peak_kib) $(jnum "$json" requests)" \
			"$(jnum "$json" load_cores) $(jnum "$json" other_cores)" \
			"$(jnum "$json" upstream_per_request) $(jnum "$json" upstream_conns_opened)" >>"$RESULTS"
		printf '  round %d  %-8s %10.1f req/s  %7.1f us Caddy CPU/req  errors %s\n' \
			"$1" "$2" "$(jnum "$json" rps)" "$(jnum "$json" cpu_us_per_req)" "$(jnum "$json" errors)" >&2
		case $json in *'"first_error"'*) log "    first error: $(sed -n 's/.*"first_error":"\([^"]*\)".*/\1/p' <<<"$json")" ;; esac
		case $json in *'"upstream_error"'*) log "    $(sed -n 's/.*"upstream_error":"\([^"]*\)".*/\1/p' <<<"$json")" ;; esac
	}

	run_target() { # run_target <round> <name>
		case $2 in
		proxy) measure "$1" proxy "$PROXY_URL" "$SINGLE_BODY" 200 ;;
		single) measure "$1" single "$POSTBACK_URL" "$SINGLE_BODY" 200 ;;
		batch) measure "$1" batch "$POSTBACK_URL" "$BATCH_BODY" 200 ;;
		reject) measure "$1" reject "$POSTBACK_URL" "$REJECT_BODY" 400 ;;
		respond) measure "$1" respond "$STATIC_URL" "$REJECT_BODY" 200 ;;
		querykey) measure "$1" querykey "$POSTBACK_URL" "$SINGLE_BODY" 200 ;;
		signed) measure "$1" signed "$SIGNED_URL" "$SINGLE_BODY" 200 -sign-secret "$BENCH_SECRET" ;;
		plain) measure "$1" plain "$POSTBACK_URL" "$SINGLE_BODY" 200 ;;
		idemkey) measure "$1" idemkey "$POSTBACK_URL" "$SINGLE_BODY" 200 -idempotency-key "bench-$1-$(date +%s%N)" ;;
		esac
	}

	wait_quiet
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	RSS_IDLE=$(rss_kib "$CADDY_PID")
	STARTED=$SECONDS
	local targets=9
	log "measuring, $QUEUE queue: $ROUNDS rounds x $targets measurements x (${WARMUP} warm-up + ${DURATION}), about" \
		"$(awk -v r="$ROUNDS" -v d="$(seconds "$DURATION")" -v w="$(seconds "$WARMUP")" -v t="$targets" 'BEGIN {printf "%.0f", r * t * (d + w + 0.5)}')s ..."
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2 == 1)); then
			order=(proxy single batch reject respond querykey signed idemkey plain)
		else
			order=(batch single proxy respond reject plain idemkey signed querykey)
		fi
		for t in "${order[@]}"; do run_target "$r" "$t"; done
	done
	RSS_END=$(rss_kib "$CADDY_PID")
	LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

	echo
	echo "== caddy-postback load benchmark, $QUEUE queue ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
	machine_info
	echo "load:     $ROUNDS rounds; each measurement ${WARMUP} warm-up + ${DURATION} measured, $CONNS keep-alive connections; batch = $BATCH_SIZE ids"
	echo "          loadavg before $LOAD_BEFORE, after $LOAD_AFTER; measuring took $((SECONDS - STARTED))s"
	echo "bodies:   single $(wc -c <"$SINGLE_BODY")B, batch $(wc -c <"$BATCH_BODY")B, invalid $(wc -c <"$REJECT_BODY")B: $(cat "$REJECT_BODY")"
	echo

	# Targets: with Redis, single / reverse_proxy has a required level (1.15, 0.85)
	# and the memory queue's as its goal (1.3, 0.75).
	if [ "$QUEUE" = redis ]; then rps_t=1.15 cpu_t=0.85; else rps_t=1.3 cpu_t=0.75; fi
	awk -v nproc="$(nproc)" -v load_before="${LOAD_BEFORE%% *}" -v batch="$BATCH_SIZE" \
		-v rss_idle="$RSS_IDLE" -v rss_end="$RSS_END" -v other_max="$OTHER_MAX" \
		-v rps_t="$rps_t" -v cpu_t="$cpu_t" -v sumfile="$BENCH_TMP/summary-$QUEUE.txt" '
	function median(a, n,   i, j, t, b) {
		for (i = 1; i <= n; i++) b[i] = a[i]
		for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j+1] = b[j]; b[j+1] = t }
		return (n % 2) ? b[(n+1)/2] : (b[n/2] + b[n/2+1]) / 2
	}
	function minof(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
	function maxof(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
	function meets(v, op, t) { return op == ">=" ? v >= t : v <= t }
	# summary of ratio k over the rounds with a value (and, when clean_only, not
	# disturbed); goal: a level beyond the target (0: none). The summary over all
	# rounds also goes to sumfile, for the side-by-side table at the end.
	function summary(k, label, op, target, goal, clean_only,   r, n, v, med, verdict, tgt) {
		n = 0
		for (r = 1; r <= rounds; r++)
			if (((k, r) in ratio) && !(clean_only && disturbed[r])) v[++n] = ratio[k, r]
		tgt = sprintf("%s %.2f", op, target) (goal ? sprintf(" (goal %.2f)", goal) : "")
		if (n == 0) {
			printf "  %-40s %7s %7s %7s    %-18s %s\n", label, "n/a", "n/a", "n/a", tgt, "-"
			if (!clean_only) printf "%s|%s|%s|n/a|n/a|n/a|-\n", k, label, tgt >sumfile
			return
		}
		med = median(v, n)
		verdict = meets(med, op, target) ? "met" : "NOT met"
		if (goal) verdict = verdict (meets(med, op, goal) ? ", goal met" : ", goal NOT met")
		printf "  %-40s %7.3f %7.3f %7.3f    %-18s %s%s\n", label, minof(v, n), med, maxof(v, n), tgt, verdict,
			(n < rounds && !clean_only) ? sprintf(" (%d rounds with a value)", n) : ""
		if (!clean_only) printf "%s|%s|%s|%.3f|%.3f|%.3f|%s\n", k, label, tgt, med, minof(v, n), maxof(v, n), verdict >sumfile
	}
	function summaries(clean_only) {
		summary("rps", "single / reverse_proxy, req/s", ">=", rps_t, rps_t != 1.3 ? 1.3 : 0, clean_only)
		summary("cpu", "single / reverse_proxy, CPU per request", "<=", cpu_t, cpu_t != 0.75 ? 0.75 : 0, clean_only)
		summary("batch", "batch(50) / single, calls/s", ">=", 2.2, 0, clean_only)
		summary("reject", "reject(400) / respond, req/s", ">=", 0.9, 0, clean_only)
		summary("signed", "signed / query key, req/s", ">=", 0.95, 0, clean_only)
		summary("signedkey", "signed / query key + new key, req/s", ">=", 0.95, 0, clean_only)
		summary("idem", "new Idempotency-Key / none, req/s", ">=", 0.8, 0, clean_only)
	}
	function setratio(k, r, num, den) { if (den > 0 && num > 0) ratio[k, r] = num / den }
	function showratio(k, r) { return ((k, r) in ratio) ? sprintf("%.3f", ratio[k, r]) : "n/a" }
	{
		r = $1; t = $2
		rps[r, t] = $3; cpu[r, t] = $4; util[r, t] = $5; errs[r, t] = $6; rss[r, t] = $7; reqs[r, t] = $8
		loadc[r, t] = $9; other[r, t] = $10; upper[r, t] = $11; upconns[r, t] = $12
		if ($10 > maxother_r[r]) maxother_r[r] = $10
		if ($10 > other_max) { disturbed[r] = 1; busy++ }
		if (r > rounds) rounds = r
		order[++nrows] = r SUBSEP t
		totalerr += $6
		if (t == "single" && $7 > rsspeak) { rsspeak = $7; rsspeakround = r }
		if ($5 < 0.9) unsat++
	}
	END {
		print "raw figures, in the order measured. CPU/req: delta utime+stime of the Caddy process over the window"
		print "/ requests completed in it. Cores, over the window (1.00 = one core busy): caddy = Caddy CPU s / wall s;"
		print "load = load generator + upstream (+ redis-server); other = whole machine (/proc/stat) - caddy - load,"
		print "i.e. other processes."
		printf "  %-5s %-8s %9s %9s %10s %5s %5s %5s %6s %7s %7s %7s\n", "round", "target", "req/s", "calls/s", "CPU/req us",
			"caddy", "load", "other", "errors", "RSS MiB", "up/req", "up conn"
		for (i = 1; i <= nrows; i++) {
			split(order[i], k, SUBSEP); r = k[1]; t = k[2]
			calls = (t == "batch") ? rps[r, t] * batch : ((t == "reject" || t == "respond" || t == "proxy") ? 0 : rps[r, t])
			printf "  %-5d %-8s %9.1f %9s %10.1f %5.2f %5.2f %5.2f %6d %7.1f %7.2f %7d\n", r, t, rps[r, t],
				(calls > 0 ? sprintf("%.1f", calls) : "-"), cpu[r, t], util[r, t], loadc[r, t], other[r, t],
				errs[r, t], rss[r, t] / 1024, upper[r, t], upconns[r, t]
		}
		print "  RSS MiB: peak VmRSS of Caddy during the window. up/req: requests the upstream answered in the window"
		print "  per request completed (1 for proxy and the single-id postbacks, 50 for batch, 0 for reject and"
		print "  respond); up conn: connections the upstream accepted in the window (0 when Caddy reuses its pooled"
		print "  connections)."
		print ""
		printf "ratios per round (a round is disturbed when other processes took over %.2f core in one of its windows):\n", other_max
		printf "  %-5s %12s %12s %12s %12s %12s %12s %12s  %s\n", "round", "single/proxy", "single/proxy", "batch/single", "reject/", "signed/", "signed/", "idemkey/", "max other"
		printf "  %-5s %12s %12s %12s %12s %12s %12s %12s\n", "", "req/s", "CPU/req", "calls/s", "respond", "querykey", "idemkey", "plain"
		for (r = 1; r <= rounds; r++) {
			setratio("rps", r, rps[r, "single"], rps[r, "proxy"])
			setratio("cpu", r, cpu[r, "single"], cpu[r, "proxy"])
			setratio("batch", r, rps[r, "batch"] * batch, rps[r, "single"])
			setratio("reject", r, rps[r, "reject"], rps[r, "respond"])
			setratio("signed", r, rps[r, "signed"], rps[r, "querykey"])
			setratio("signedkey", r, rps[r, "signed"], rps[r, "idemkey"])
			setratio("idem", r, rps[r, "idemkey"], rps[r, "plain"])
			if (!disturbed[r]) clean++
			printf "  %-5d %12s %12s %12s %12s %12s %12s %12s  %.2f%s\n", r, showratio("rps", r), showratio("cpu", r), showratio("batch", r),
				showratio("reject", r), showratio("signed", r), showratio("signedkey", r), showratio("idem", r), maxother_r[r], disturbed[r] ? " disturbed" : ""
		}
		print ""
		printf "summary over all %d rounds                    %7s %7s %7s    %-18s %s\n", rounds, "min", "median", "max", "target", "median vs target"
		summaries(0)
		if (clean > 0 && clean < rounds) {
			print ""
			printf "summary over the %d undisturbed rounds        %7s %7s %7s    %-18s %s\n", clean, "min", "median", "max", "target", "median vs target"
			summaries(1)
		}
		print ""
		printf "memory:   Caddy VmRSS %.1f MiB idle before the load; peak %.1f MiB during the single-id runs (round %d); %.1f MiB after all runs\n",
			rss_idle / 1024, rsspeak / 1024, rsspeakround, rss_end / 1024
		print ""
		if (totalerr > 0) print "NOTE: " totalerr " requests got an unexpected answer (see the errors column): those figures are suspect."
		if (unsat > 0) print "NOTE: in " unsat " measurements Caddy used under 0.9 of a core: there the load side (see its column) or other processes limited the rate, and req/s ratios understate the difference; CPU/req still holds."
		for (i = 1; i <= nrows; i++) {
			split(order[i], k, SUBSEP); r = k[1]; t = k[2]
			if (upconns[r, t] > 100) { churn[t] += upconns[r, t]; churnn[t]++ }
		}
		for (t in churn) printf "NOTE: %s: Caddy opened %.0f new connections to the upstream per %s window on average: its call-store connections were not all reused.\n", t, churn[t] / churnn[t], t
		if (busy > 0) printf "NOTE: in %d measurements other processes took over %.2f core: %d of %d rounds disturbed; %s\n", busy, other_max, rounds - clean, rounds,
			(clean > 0 ? "the second summary leaves them out." : "no undisturbed round: run again on a quiet machine (QUIET_WAIT=120).")
		if (load_before + 0 > nproc + 0) print "NOTE: the load average (" load_before ") exceeded the CPU count (" nproc ") before the run: other processes had been busy."
		print "This is a measurement, not a test: the targets are printed for comparison only."
	}' "$RESULTS"

	if [ "${DRAIN:-1}" = 1 ]; then
		echo
		# On a fresh Caddy, call store and Redis: the rounds leave Redis
		# holding hundreds of thousands of idempotency keys, and a resize of
		# its hash tables during the queue phase would land in the memory
		# figure (once, -327 bytes per queued update).
		bench_stop
		bench_queue "$QUEUE"
		bench_start
		log "drain benchmark, $QUEUE queue ..."
		DRAIN_JSON=$(drain_bench)
		echo "drain ($QUEUE queue): $DRAIN_JSON"
		awk -v line="$DRAIN_JSON" -v queue="$QUEUE" -v sumfile="$BENCH_TMP/summary-$QUEUE.txt" '
		function row(k, label, v, fmt, op, target,   ok, verdict) {
			ok = op == ">=" ? v >= target + 0 : v <= target + 0
			verdict = ok ? "met" : "NOT met"
			printf "  %-55s " fmt "    %s %-6s %s\n", label, v, op, target, verdict
			printf "%s|%s|%s %s|" fmt "|||%s\n", k, label, op, target, v, verdict >>sumfile
		}
		BEGIN {
			n = split(line, parts, /[{},]/)
			for (i = 1; i <= n; i++) if (split(parts[i], kv, ":") == 2) { gsub(/"/, "", kv[1]); v[kv[1]] = kv[2] }
			row("drain_queue", "drain: queue rate / single-id updates, completed calls", v["queue_over_baseline"], "%.3f", ">=", "0.70")
			row("drain_drain", "drain: drain rate / single-id updates, completed calls", v["drain_over_baseline"], "%.3f", ">=", "0.50")
			if (queue == "redis") row("drain_bytes", "drain: Redis memory per queued update, bytes", v["redis_bytes_per_update"], "%.0f", "<=", 600)
		}'
	fi

	if [ -n "${BENCH_SAVE:-}" ]; then
		cp "$RAW" "$BENCH_SAVE.$QUEUE"
		log "raw loadgen lines saved to $BENCH_SAVE.$QUEUE"
	fi
	bench_stop
}

QUEUES=${QUEUES:-memory redis}
for q in $QUEUES; do
	suite "$q"
done
bench_stop_redis

# Both queues side by side: the medians over all rounds (drain: its one run).
echo
echo "== side by side: median over all rounds (min-max), vs target"
files=()
for q in $QUEUES; do files+=("$BENCH_TMP/summary-$q.txt"); done
awk -v queues="$QUEUES" '
FNR == 1 { qi++ }
{
	split($0, f, "|"); k = f[1]; label[k] = f[2]
	cell[k, qi] = f[4] (f[5] != "" ? " (" f[5] "-" f[6] ")" : ""); tgt[k, qi] = f[3]; verdict[k, qi] = f[7]
}
END {
	nq = split(queues, q, " ")
	nk = split("rps cpu batch reject signed signedkey idem drain_queue drain_drain drain_bytes", keys, " ")
	printf "  %-55s %-7s %-22s %-20s %s\n", "ratio", "queue", "median (min-max)", "target", "verdict"
	for (j = 1; j <= nk; j++) {
		k = keys[j]; first = 1
		if (!(k in label)) continue
		for (i = 1; i <= nq; i++) {
			if (!((k, i) in cell)) continue
			printf "  %-55s %-7s %-22s %-20s %s\n", first ? label[k] : "", q[i], cell[k, i], tgt[k, i], verdict[k, i]
			first = 0
		}
	}
}' "${files[@]}"
exit 0
