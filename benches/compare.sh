#!/usr/bin/env bash
# hookpipe (durable embedded store, default settings) against nginx + nchan
# (in-memory store), side by side in one sitting, with one load generator:
# `hookpipe bench`. Prints a markdown table of the figures and their ratios.
#
#   benches/compare.sh            # full runs (a few minutes)
#   QUICK=1 benches/compare.sh    # small runs, to check the script works
#
# Installs nginx + libnginx-mod-nchan when missing (Debian). Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light libnginx-mod-nchan
fi
cargo build --release --bin hookpipe
HP=target/release/hookpipe
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# --- nginx + nchan -----------------------------------------------------------
nport=$(free_port)
mkdir -p "$work/nchan"
sed -e "s|@PORT@|$nport|; s|@DIR@|$work/nchan|g" benches/nchan/nginx.conf.in > "$work/nchan/nginx.conf"
nginx -c "$work/nchan/nginx.conf" -p "$work/nchan" &
nmaster=$!
pids+=($nmaster)
wait_http "http://127.0.0.1:$nport/pub?id=probe"
nchan_pids() { { echo "$nmaster"; pgrep -P "$nmaster"; } | paste -sd, -; }

# --- hookpipe ----------------------------------------------------------------
hport=$(free_port)
"$HP" serve --listen "127.0.0.1:$hport" --data-dir "$work/hookpipe" 2>"$work/hookpipe.log" &
hpid=$!
pids+=($hpid)
wait_http "http://127.0.0.1:$hport/healthz"

if [ -n "${QUICK:-}" ]; then
    N_INGEST=20000; N_FAN=2000; N_CHAN=10000; LAT_DUR=3s; IDLE=500; ROUNDS=${ROUNDS:-1}
else
    N_INGEST=300000; N_FAN=20000; N_CHAN=100000; LAT_DUR=10s; IDLE=10000; ROUNDS=${ROUNDS:-3}
fi

# run NAME ARGS... : one scenario against both servers, alternating, ROUNDS
# times; results in $work/NAME.{hookpipe,nchan}.R.json. On a shared 2-core
# machine one run of a scenario varies by 10-30% (p99 by 2x), so the table
# reports each server's median over the rounds and lists every run.
run() {
    local name=$1; shift
    for r in $(seq 1 "$ROUNDS"); do
        "$HP" bench --url "http://127.0.0.1:$hport" --target hookpipe --json --fail-on-loss "$@" > "$work/$name.hookpipe.$r.json"
        "$HP" bench --url "http://127.0.0.1:$nport" --target nchan --json --fail-on-loss "$@" > "$work/$name.nchan.$r.json"
    done
}
# Memory first, on fresh servers (nginx recycles what earlier runs allocated): the server's RSS growth per idle WebSocket subscriber.
"$HP" bench --url "http://127.0.0.1:$hport" --target hookpipe --json --idle-subscribers "$IDLE" --channels 100 \
    --server-pid "$hpid" > "$work/idle.hookpipe.json"
# nginx runs a master and one worker per core: sum them all.
"$HP" bench --url "http://127.0.0.1:$nport" --target nchan --json --idle-subscribers "$IDLE" --channels 100 \
    --server-pid "$(nchan_pids)" > "$work/idle.nchan.json"

run ingest   --publishers 32 --subscribers 0 --messages "$N_INGEST"
run fanout   --publishers 8 --subscribers 100 --messages "$N_FAN"
run channels --publishers 32 --channels 1000 --subscribers 1 --messages "$N_CHAN"
run latency  --publishers 8 --subscribers 100 --rate 500 --duration "$LAT_DUR"
python3 - "$work" "$ROUNDS" <<'EOF'
import json, sys, os, statistics
w, rounds = sys.argv[1], int(sys.argv[2])
def load(path):
    with open(os.path.join(w, path)) as f:
        return json.load(f)
def runs(name, who):
    if name == "idle":
        return [load(f"idle.{who}.json")]
    return [load(f"{name}.{who}.{r}.json") for r in range(1, rounds + 1)]
rows = [
    ("ingest publishes/s (32 publishers, no subscribers)", "ingest", lambda j: j["publishes_per_sec"], True),
    ("fan-out deliveries/s (1 channel, 100 subscribers)", "fanout", lambda j: j["deliveries_per_sec"], True),
    ("deliveries/s (1000 channels x 1 subscriber)", "channels", lambda j: j["deliveries_per_sec"], True),
    ("p99 latency ms (500 publishes/s, 100 subscribers)", "latency", lambda j: j["latency_ms"]["p99"], False),
    ("server bytes per idle WebSocket subscriber", "idle", lambda j: j["per_subscriber_bytes"], False),
]
def show(xs):
    return " / ".join(f"{x:,.2f}" if x < 100 else f"{x:,.0f}" for x in xs)
print(f"Medians of {rounds} alternating run(s) per scenario; every run in brackets.")
print()
print("| measure | hookpipe | nchan | hookpipe/nchan | target met |")
print("|---|---|---|---|---|")
for label, name, get, higher_better in rows:
    hs = [get(j) for j in runs(name, "hookpipe")]
    ns = [get(j) for j in runs(name, "nchan")]
    h, n = statistics.median(hs), statistics.median(ns)
    ratio = h / n if n else float("inf")
    met = (h >= n) if higher_better else (h <= n)
    cell = lambda m, xs: show([m]) + (f" [{show(xs)}]" if len(xs) > 1 else "")
    print(f"| {label} | {cell(h, hs)} | {cell(n, ns)} | {ratio:.2f} | {'yes' if met else 'no'} |")
for name in ("ingest", "fanout", "channels", "latency"):
    for who in ("hookpipe", "nchan"):
        for j in runs(name, who):
            if j.get("lost") or j.get("duplicates"):
                print(f"LOSS in {name}/{who}: lost={j.get('lost')} duplicates={j.get('duplicates')}")
EOF
