#!/usr/bin/env bash
# Instructions per call, counted by valgrind's callgrind: the proxy-cost figure the shared
# machine's speed moves least (wall-clock and CPU-time figures here move by ±30 % from minute to
# minute; repeated counts on an idle machine agree within ~3 %). Run it on an idle machine: the
# code paths taken depend on timing, and a busy machine adds ~15 %. User-space instructions only
# — the kernel's TCP work, the same for every proxy, is not counted — so it measures what each
# proxy's own code costs.
#
# For each path: the proxy starts under callgrind with instrumentation off, takes a warm-up
# (connection pools, lazy statics), then counts instructions over a fixed number of calls sent
# by `llmtap-bench rate` (open loop, a rate the slowed-down proxy keeps up with), and prints the
# total divided by the calls. Paths:
#   nginx            plain reverse proxy (`proxy_pass`, buffering off, 1 worker)
#   llmtap-forward   llmtap on a path it forwards without recording (hyper server + client)
#   llmtap           a recorded chat call, content captured, JSONL on (the benchmarked default)
#   llmtap+otlp      the same with OTLP/HTTP forwarding to a local sink
#
#   scripts/bench-instructions.sh                # builds release once, ~4 minutes after that
#   SKIP_BUILD=1 scripts/bench-instructions.sh   # reuse target/release binaries
#   LLMTAP=path/to/llmtap scripts/bench-instructions.sh   # count another build (A/B)
#   CALLS=4000 scripts/bench-instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
export PATH="$PATH:/usr/sbin"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p llmtap-cli -p llmtap-bench
fi
llmtap=${LLMTAP:-target/release/llmtap}
bench=target/release/llmtap-bench
calls=${CALLS:-2000}
settle=7
rate=250
seconds=$(( (calls + rate - 1) / rate ))
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 150); do
    python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
    sleep 0.2
  done
  echo "nothing listens on port $1" >&2
  return 1
}

up_port=$(free_port)
"$bench" upstream --listen "127.0.0.1:$up_port" >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_port "$up_port"

sink_port=$(free_port)
# The OTLP sink: answers 200 to every export (the bytes are counted by the full benchmark).
python3 - "$sink_port" >"$work/sink.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)
wait_port "$sink_port"

# count NAME PORT URL_PATH CMD...: instructions per call of one path (run with the environment
# in the `run_env` array: valgrind must be the process that execs the proxy).
run_env=(env)
count() {
  local name=$1 port=$2 path=$3
  shift 3
  local out="$work/$name.callgrind"
  "${run_env[@]}" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$@" \
    >"$work/$name.log" 2>&1 &
  local vg=$!
  pids+=("$vg")
  wait_port "$port"
  local url="http://127.0.0.1:$port$path"
  "$bench" rate --url "$url" --rps 200 --seconds 2 >/dev/null
  # Spans leave in batches (every 5 s at the latest, OTEL_BSP_SCHEDULE_DELAY): let the warm-up's
  # go out before counting, and the counted calls' go out before the count stops, so the
  # export work counted is exactly the counted calls'.
  sleep "$settle"
  callgrind_control -i on "$vg" >/dev/null
  "$bench" rate --url "$url" --rps "$rate" --seconds "$seconds" >"$work/$name.rate.json"
  sleep "$settle"
  callgrind_control -i off "$vg" >/dev/null
  callgrind_control -d "$vg" >/dev/null
  kill -INT "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  python3 - "$name" "$work/$name.rate.json" "$out" <<'PY'
import glob, json, sys
name, rate, out = sys.argv[1:4]
r = json.load(open(rate))
calls, errors = r["latency"]["n"], r["errors"]
# Only the counted phase is instrumented: the parts' totals (the dump, then the exit) add up to it.
total = sum(
    next((int(l.split()[1]) for l in open(p) if l.startswith("totals:")), 0)
    for p in glob.glob(out + "*")
)
print(json.dumps({"path": name, "calls": calls, "errors": errors,
                  "instructions": total, "per_call": round(total / max(calls, 1))}))
PY
}

results="$work/results.jsonl"
nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  tcp_nodelay on; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$up_port; keepalive 256; }
  server {
    listen 127.0.0.1:$nginx_port; client_max_body_size 0;
    proxy_request_buffering off; proxy_buffering off;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
count nginx "$nginx_port" /v1/chat/completions \
  nginx -p "$work/nginx" -c "$work/nginx.conf" -e "$work/nginx/error.log" >>"$results"

for variant in llmtap-forward llmtap llmtap+otlp; do
  port=$(free_port)
  dir="$work/$variant"
  mkdir -p "$dir"
  path=/v1/chat/completions
  [ "$variant" = llmtap-forward ] && path=/v1/not-a-model-route
  run_env=(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  [ "$variant" = llmtap+otlp ] && run_env+=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port")
  count "$variant" "$port" "$path" "$llmtap" proxy --listen "127.0.0.1:$port" \
    --upstream-openai "http://127.0.0.1:$up_port" --jsonl "$dir/traces.jsonl" >>"$results"
done

python3 - "$results" "$llmtap" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = next((r["per_call"] for r in rows if r["path"] == "nginx"), None)
print(f"instructions per call (callgrind, user space; {sys.argv[2]})")
print(f"{'path':<16} {'calls':>6} {'errors':>6} {'instr/call':>12} {'× nginx':>8}")
for r in rows:
    ratio = f"{r['per_call'] / base:.2f}" if base else "n/a"
    print(f"{r['path']:<16} {r['calls']:>6} {r['errors']:>6} {r['per_call']:>12,} {ratio:>8}")
PY
