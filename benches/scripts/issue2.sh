#!/usr/bin/env bash
# Issue 2 benchmarks, one command: cached segment serving (agent vs nginx, same wrk run),
# playlist rewrite throughput (criterion, against a line-copy baseline from the same run), and
# agent memory with a full segment cache. Prints a markdown report on stdout.
#
#   bash benches/scripts/issue2.sh            # from the workspace root
#
# Needs: cargo, nginx (Debian `nginx-light`), wrk, curl, jq, taskset, awk.
# Everything listens on 127.0.0.1 only; every load run is bounded in time; every process the
# script starts is stopped by its pid on exit.
#
# Knobs (environment):
#   CARGO_TARGET_DIR  build directory (cargo's own default when unset)
#   ROUNDS=3          alternating wrk rounds per server (each round runs both servers)
#   DURATION=10s      wrk duration per run;  CONNS=16 wrk connections;  WRK_THREADS=2
#   SEGMENTS=20       distinct files in the wrk rotation;  SEG_BYTES=409600 (400 KiB)
#   SERVER_CPU=0      core for the server under test (nginx: 1 worker; agent: 1 tokio worker)
#   CLIENT_CPU=1      core for wrk
#   MEM_SEGMENTS=700  distinct segments fetched to fill the cache (700 x 400 KiB > 256 MiB)
#   CACHE_BYTES="256 MiB"  agent segment cache budget in the memory run
#   SKIP_SERVE=0 SKIP_PLAYLIST=0 SKIP_MEMORY=0   set to 1 to skip a part
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
WRK_THREADS=${WRK_THREADS:-2}
SEGMENTS=${SEGMENTS:-20}
SEG_BYTES=${SEG_BYTES:-409600}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
MEM_SEGMENTS=${MEM_SEGMENTS:-700}
CACHE_BYTES=${CACHE_BYTES:-256 MiB}
SKIP_SERVE=${SKIP_SERVE:-0}
SKIP_PLAYLIST=${SKIP_PLAYLIST:-0}
SKIP_MEMORY=${SKIP_MEMORY:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
AGENT_BIN=$TARGET/release/hivecast-agent

log() { echo "issue2: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for tool in cargo nginx wrk curl jq taskset awk; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install nginx-light wrk curl jq util-linux)"
done

WORK=$(mktemp -d /tmp/hivecast-issue2.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port (the kernel picks it; nginx cannot report a port-0 bind).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

# Polls an HTTP URL until it answers (bounded: 10 s).
wait_http() {
    local url=$1 i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
        sleep 0.1
    done
    die "$url did not come up"
}

# Starts an agent in the background; sets AGENT_PID, AGENT_LISTEN, AGENT_ADMIN from its
# readiness line. Extra arguments go before the command (e.g. taskset -c 0, env VAR=x).
start_agent() {
    local out=$WORK/agent.$RANDOM.out i line=""
    "$@" "$AGENT_BIN" run --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --allow-origin "http://127.0.0.1:$NGX_PORT" >"$out" 2>"$out.err" &
    AGENT_PID=$!
    PIDS+=("$AGENT_PID")
    for i in $(seq 1 200); do
        line=$(grep -m1 '^hivecast-agent ready' "$out" || true)
        [ -n "$line" ] && break
        kill -0 "$AGENT_PID" 2>/dev/null || die "agent exited: $(cat "$out.err")"
        sleep 0.05
    done
    [ -n "$line" ] || die "agent not ready after 10 s"
    AGENT_LISTEN=$(sed -E 's/.*listen=([^ ]+).*/\1/' <<<"$line")
    AGENT_ADMIN=$(sed -E 's/.*admin=([^ ]+).*/\1/' <<<"$line")
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

metric() { # metric ADMIN NAME -> value summed over label sets
    curl -s --max-time 5 "http://$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f", s }'
}

# ---------------------------------------------------------------------------------------------
log "building the agent (release) into $TARGET"
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p hivecast-agent --bin hivecast-agent) ||
    die "agent build failed"

log "generating test files in $WORK/www"
mkdir -p "$WORK/www/mem" "$WORK/nginx"
for i in $(seq 0 $((SEGMENTS - 1))); do
    head -c "$SEG_BYTES" /dev/urandom >"$WORK/www/$(printf 'seg_%02d.ts' "$i")"
done
if [ "$SKIP_MEMORY" != 1 ]; then
    head -c $((MEM_SEGMENTS * SEG_BYTES)) /dev/urandom |
        split -b "$SEG_BYTES" -d -a 4 --additional-suffix=.ts - "$WORK/www/mem/seg_"
fi
chmod -R a+rX "$WORK/www"

NGX_PORT=$(free_port)
NGX_CONF=$WORK/nginx/nginx.conf
cat >"$NGX_CONF" <<EOF
# Baseline and origin: one worker, static files from disk (page cache) with sendfile.
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
$( [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);" )
events { worker_connections 1024; }
http {
    types { video/mp2t ts; }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    access_log off;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=2000 inactive=60s;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGX_PORT;
        root $WORK/www;
    }
}
EOF
taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx" -c "$NGX_CONF" -e "$WORK/nginx/error.log" &
NGX_PID=$!
PIDS+=("$NGX_PID")
wait_http "http://127.0.0.1:$NGX_PORT/seg_00.ts"
log "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$NGX_PORT (pid $NGX_PID, core $SERVER_CPU)"

REPORT=$WORK/report.md
: >"$REPORT"
{
    echo "### Issue 2 benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "Command: \`bash benches/scripts/issue2.sh\` (ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS" \
        "WRK_THREADS=$WRK_THREADS SEGMENTS=$SEGMENTS SEG_BYTES=$SEG_BYTES MEM_SEGMENTS=$MEM_SEGMENTS)"
    echo
} >>"$REPORT"

# ---------------------------------------------------------------------------------------------
if [ "$SKIP_SERVE" != 1 ]; then
    cat >"$WORK/rotate.lua" <<'EOF'
-- Rotates through N files under a prefix; prints one machine-readable line at the end.
local paths = {}
local i = 0
function init(args)
    local prefix, n = args[1], tonumber(args[2])
    for k = 0, n - 1 do
        paths[#paths + 1] = string.format("%sseg_%02d.ts", prefix, k)
    end
    i = math.random(0, n - 1)
end
function request()
    i = (i % #paths) + 1
    return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT requests=%d bytes=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\n",
        summary.requests, summary.bytes, summary.duration,
        latency:percentile(50), latency:percentile(99),
        e.connect + e.read + e.write + e.status + e.timeout))
end
EOF
    # The agent under test: one tokio worker on the same core as nginx's single worker.
    start_agent env TOKIO_WORKER_THREADS=1 HIVECAST_AGENT__LOG__LEVEL=warn taskset -c "$SERVER_CPU"
    SERVE_PID=$AGENT_PID
    MIRROR="/http/127.0.0.1:$NGX_PORT/"
    log "agent on $AGENT_LISTEN (pid $SERVE_PID, core $SERVER_CPU, 1 worker); warming its cache"
    for i in $(seq 0 $((SEGMENTS - 1))); do
        f=$(printf 'seg_%02d.ts' "$i")
        curl -s --max-time 10 -o "$WORK/got.ts" "http://$AGENT_LISTEN$MIRROR$f"
        cmp -s "$WORK/got.ts" "$WORK/www/$f" || die "agent served different bytes for $f"
    done
    origin_before=$(metric "$AGENT_ADMIN" hivecast_agent_origin_requests_total)

    RESULTS=$WORK/serve.tsv
    HZ=$(getconf CLK_TCK)
    # utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
    cpu_ticks() { sed -E 's/.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
    NGX_WORKER=$(awk '{ print $1 }' "/proc/$NGX_PID/task/$NGX_PID/children")
    [ -n "$NGX_WORKER" ] || die "no nginx worker process found"
    run_wrk() { # run_wrk NAME SERVER_PID BASEURL PREFIX
        local out t0 t1
        t0=$(cpu_ticks "$2")
        out=$(taskset -c "$CLIENT_CPU" timeout 120 wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" \
            -s "$WORK/rotate.lua" "$3" -- "$4" "$SEGMENTS" 2>&1) || die "wrk failed: $out"
        t1=$(cpu_ticks "$2")
        local r
        r=$(grep '^RESULT' <<<"$out") || die "no wrk result: $out"
        echo "$1 $r" | awk -v ticks=$((t1 - t0)) -v hz="$HZ" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            s = v["duration_us"] / 1e6
            cpu = ticks / hz
            printf "%s\t%.1f\t%.1f\t%.2f\t%.2f\t%d\t%.0f\t%.1f\n", $1, v["requests"] / s, v["bytes"] / s / 1e6,
                v["p50_us"] / 1000, v["p99_us"] / 1000, v["errors"], 100 * cpu / s,
                (v["requests"] > 0 ? 1e6 * cpu / v["requests"] : 0)
        }' >>"$RESULTS"
        log "$(tail -1 "$RESULTS")"
    }
    for r in $(seq 1 "$ROUNDS"); do
        # Alternate the order so drift in machine load does not favour one server.
        if [ $((r % 2)) = 1 ]; then
            run_wrk nginx "$NGX_WORKER" "http://127.0.0.1:$NGX_PORT" /
            run_wrk agent "$SERVE_PID" "http://$AGENT_LISTEN" "$MIRROR"
        else
            run_wrk agent "$SERVE_PID" "http://$AGENT_LISTEN" "$MIRROR"
            run_wrk nginx "$NGX_WORKER" "http://127.0.0.1:$NGX_PORT" /
        fi
    done
    origin_after=$(metric "$AGENT_ADMIN" hivecast_agent_origin_requests_total)
    stop_pid "$SERVE_PID"
    {
        echo "#### 1. Cached segment serving: agent vs nginx"
        echo
        echo "$SEGMENTS files of $SEG_BYTES bytes (random, \`.ts\`), \`wrk -t$WRK_THREADS -c$CONNS -d$DURATION\` on core $CLIENT_CPU" \
            "rotating through them; server on core $SERVER_CPU (nginx: 1 worker, sendfile; agent: release build," \
            "\`TOKIO_WORKER_THREADS=1\`, cache warmed). Rounds alternate the order. Origin requests by the" \
            "agent during the wrk runs: $((origin_after - origin_before)) (all cache hits). Server CPU = utime + stime" \
            "of the nginx worker / agent process over the run (/proc/PID/stat); 100 % = the server's core saturated."
        echo
        echo "| round | server | req/s | MB/s | p50 ms | p99 ms | errors | server CPU % | server CPU µs/req |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ r = int((NR + 1) / 2); printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r, $1, $2, $3, $4, $5, $6, $7, $8 }' "$RESULTS"
        echo
        awk -F'\t' '
            { if ($1 == "nginx") { n[++a] = $2; nc[a] = $8 } else { g[++b] = $2; gc[b] = $8 } }
            function median(x, k,   i, j, t) {
                for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
                return (k % 2) ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2
            }
            END {
                for (i = 1; i <= a; i++) q[i] = g[i] / n[i]
                s = ""; for (i = 1; i <= a; i++) s = s sprintf("%s%.2f", (i > 1 ? ", " : ""), q[i])
                printf "**Ratio agent/nginx (req/s): median of per-round ratios %.2f** (rounds: %s);" \
                    " medians %.0f vs %.0f req/s. Accept >= 0.9, goal 1.2.\n", median(q, a), s, median(g, b), median(n, a)
                for (i = 1; i <= a; i++) c[i] = (gc[i] > 0 ? nc[i] / gc[i] : 0)
                printf "\nCPU efficiency, nginx µs/req ÷ agent µs/req (higher = agent cheaper): median %.2f.\n", median(c, a)
            }' "$RESULTS"
        echo
    } >>"$REPORT"
fi

# ---------------------------------------------------------------------------------------------
if [ "$SKIP_PLAYLIST" != 1 ]; then
    log "running the playlist_rewrite criterion bench (builds the bench profile)"
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET timeout 3000 cargo bench -q -p hivecast-bench --bench playlist_rewrite) \
        >"$WORK/criterion.out" 2>&1 || die "criterion bench failed: $(tail -20 "$WORK/criterion.out")"
    crit() { # crit NAME -> "MB/s" from the median time and the throughput bytes
        local d=$TARGET/criterion/playlist/$1/new
        jq -n --slurpfile e "$d/estimates.json" --slurpfile b "$d/benchmark.json" \
            '($b[0].throughput.Bytes) / ($e[0].median.point_estimate / 1e9) / 1e6 | . * 10 | round / 10'
    }
    bytes_of() { jq '.throughput.Bytes' "$TARGET/criterion/playlist/$1/new/benchmark.json"; }
    {
        echo "#### 2. Playlist rewrite, 40,000 segments (criterion, median)"
        echo
        echo "Baseline (same run): UTF-8 check + split at LF + copy every line (\`baseline_line_copy_*\`)."
        echo
        echo "| playlist | input bytes | rewrite MB/s | baseline MB/s | rewrite / baseline | parse MB/s |"
        echo "|---|---:|---:|---:|---:|---:|"
        for kind in relative absolute; do
            rw=$(crit "rewrite_${kind}_40k")
            base=$(crit "baseline_line_copy_${kind}_40k")
            parse="–"
            [ "$kind" = relative ] && parse=$(crit parse_relative_40k)
            awk -v k="$kind" -v n="$(bytes_of "rewrite_${kind}_40k")" -v r="$rw" -v b="$base" -v p="$parse" \
                'BEGIN { printf "| %s URIs | %d | %.1f | %.1f | %.3f | %s |\n", k, n, r, b, r / b, p }'
        done
        echo
    } >>"$REPORT"
fi

# ---------------------------------------------------------------------------------------------
if [ "$SKIP_MEMORY" != 1 ]; then
    # A fresh agent with the default runtime (all cores), as deployed.
    start_agent env HIVECAST_AGENT__LOG__LEVEL=warn "HIVECAST_AGENT__CACHE__MAX_BYTES=$CACHE_BYTES"
    MEM_PID=$AGENT_PID
    curl -s --max-time 5 -o /dev/null "http://$AGENT_LISTEN/"
    curl -s --max-time 5 -o /dev/null "http://$AGENT_ADMIN/metrics"
    rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$MEM_PID/status"; } # kB
    rss_empty=$(rss VmRSS)
    log "agent (memory run) on $AGENT_LISTEN pid $MEM_PID: empty VmRSS ${rss_empty} kB; fetching $MEM_SEGMENTS segments"
    : >"$WORK/fill.cfg"
    for f in "$WORK"/www/mem/seg_*.ts; do
        printf 'url = "http://%s/http/127.0.0.1:%s/mem/%s"\noutput = "/dev/null"\n' \
            "$AGENT_LISTEN" "$NGX_PORT" "$(basename "$f")" >>"$WORK/fill.cfg"
    done
    ok=$(timeout 300 curl -s --no-progress-meter --parallel --parallel-max 4 --max-time 30 -K "$WORK/fill.cfg" -w '%{http_code}\n' 2>/dev/null | grep -c '^200$' || true)
    [ "$ok" = "$MEM_SEGMENTS" ] || die "only $ok of $MEM_SEGMENTS fills answered 200"
    rss_full=$(rss VmRSS)
    hwm=$(rss VmHWM)
    cached=$(metric "$AGENT_ADMIN" hivecast_agent_cache_bytes)
    evicted=$(metric "$AGENT_ADMIN" hivecast_agent_cache_evictions_total)
    stop_pid "$MEM_PID"
    {
        echo "#### 3. Agent memory with a full segment cache"
        echo
        echo "Fresh agent (release, default runtime), cache budget $CACHE_BYTES; $MEM_SEGMENTS distinct segments of" \
            "$SEG_BYTES bytes fetched through it (4 at a time), so the cache is full and has evicted." \
            "**Overhead = RSS_full − RSS_empty − cached bytes** (memory beyond the cached bodies" \
            "themselves; cached bytes from \`hivecast_agent_cache_bytes\`). RSS from \`/proc/PID/status\`."
        echo
        awk -v e="$rss_empty" -v f="$rss_full" -v h="$hwm" -v c="$cached" -v ev="$evicted" 'BEGIN {
            mb = 1e6
            printf "| figure | value |\n|---|---:|\n"
            printf "| VmRSS empty | %.1f MB |\n", e * 1024 / mb
            printf "| VmRSS full | %.1f MB |\n", f * 1024 / mb
            printf "| VmHWM (peak) | %.1f MB |\n", h * 1024 / mb
            printf "| cached bytes | %.1f MB (%d evictions) |\n", c / mb, ev
            printf "| **overhead (RSS)** | **%.1f MB** (limit 30 MB) |\n", (f * 1024 - e * 1024 - c) / mb
            printf "| overhead at peak (HWM) | %.1f MB |\n", (h * 1024 - e * 1024 - c) / mb
        }'
        echo
    } >>"$REPORT"
fi

cat "$REPORT"
