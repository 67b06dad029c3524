#!/usr/bin/env bash
# Benchmark: `llmtap stats` on a 1 GiB OTLP/JSON lines file must stay under 200 MiB of peak
# memory. Generates the file (varied models, agents, sessions, latencies, errors and captured
# content, in the proxy's attribute shape), runs `stats` under `/usr/bin/time -v` and prints
# the peak RSS and wall time. A benchmark, not a test: it prints what one run measured.
#
#   scripts/bench-stats.sh [SIZE_MIB] [GROUP_BY]     defaults: 1024, agent
#
# Env: LLMTAP_BIN (skip the release build), BENCH_DIR (where the file goes; default a temp dir,
# removed at exit), LIMIT_MIB (pass/fail bound, default 200).
set -euo pipefail

size_mib="${1:-1024}"
group_by="${2:-agent}"
limit_mib="${LIMIT_MIB:-200}"
root="$(cd "$(dirname "$0")/.." && pwd)"

if [[ ! -x /usr/bin/time ]]; then
  echo "bench-stats: /usr/bin/time (GNU time) is required" >&2
  exit 1
fi

bin="${LLMTAP_BIN:-}"
if [[ -z "$bin" ]]; then
  echo "bench-stats: building llmtap (release)…" >&2
  cargo build --release -p llmtap-cli --manifest-path "$root/Cargo.toml" >&2
  bin="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/llmtap"
fi

dir="${BENCH_DIR:-}"
if [[ -z "$dir" ]]; then
  dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' EXIT
fi
file="$dir/big.jsonl"

echo "bench-stats: writing ${size_mib} MiB to $file…" >&2
python3 - "$file" "$size_mib" <<'PY'
import json, random, sys

path, size_mib = sys.argv[1], int(sys.argv[2])
target = size_mib * 1024 * 1024
rng = random.Random(42)
models = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "gemini-2.5-flash"]
agents = ["orchestrator", "researcher-web", "researcher-papers", "fact-checker", "writer"]
base = 1_780_000_000 * 10**9  # 2026-05-28

def s(v): return {"stringValue": v}
def i(v): return {"intValue": str(v)}

def span(n):
    model = models[n % len(models)]
    dur = int(rng.lognormvariate(6.0, 0.9) * 1e6)  # median ~400 ms
    start = base + n * 50_000_000
    failed = n % 97 == 0
    attrs = [
        {"key": "gen_ai.operation.name", "value": s("chat")},
        {"key": "gen_ai.provider.name", "value": s("openai")},
        {"key": "gen_ai.request.model", "value": s(model)},
        {"key": "gen_ai.agent.name", "value": s(agents[n % len(agents)])},
        {"key": "gen_ai.conversation.id", "value": s("session-%d" % (n % 500))},
        {"key": "server.address", "value": s("api.openai.com")},
        {"key": "gen_ai.request.stream", "value": {"boolValue": True}},
        {"key": "gen_ai.input.messages", "value": s(json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "question %d " % n + "lorem ipsum " * rng.randint(20, 120)}]}]))},
    ]
    if failed:
        attrs.append({"key": "error.type", "value": s("rate_limit_exceeded")})
        attrs.append({"key": "http.response.status_code", "value": i(429)})
    else:
        out = rng.randint(5, 800)
        attrs += [
            {"key": "gen_ai.response.model", "value": s(model + "-2026-01-01")},
            {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [s("stop")]}}},
            {"key": "gen_ai.response.time_to_first_chunk", "value": {"doubleValue": dur / 1e9 * rng.uniform(0.05, 0.4)}},
            {"key": "gen_ai.usage.input_tokens", "value": i(rng.randint(10, 4000))},
            {"key": "gen_ai.usage.output_tokens", "value": i(out)},
            {"key": "gen_ai.usage.cache_read.input_tokens", "value": i(rng.randint(0, 10))},
            {"key": "gen_ai.output.messages", "value": s(json.dumps([{"role": "assistant", "finish_reason": "stop", "parts": [
                {"type": "text", "content": "answer %d " % n + "dolor sit " * rng.randint(10, 100)}]}]))},
        ]
    return {
        "traceId": "%032x" % (n // 7 + 1), "spanId": "%016x" % (n + 1), "name": "chat " + model,
        "kind": 3, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + dur),
        "attributes": attrs, "status": {"code": 2} if failed else {},
    }

written, n = 0, 0
with open(path, "w") as f:
    while written < target:
        spans = [span(n + k) for k in range(8)]
        n += 8
        line = json.dumps({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": s("llmtap-proxy")}]},
            "scopeSpans": [{"scope": {"name": "llmtap-proxy"}, "spans": spans}]}]},
            separators=(",", ":")) + "\n"
        f.write(line)
        written += len(line)
print("bench-stats: %d spans in %d bytes" % (n, written), file=sys.stderr)
PY

echo "bench-stats: llmtap stats --by $group_by" >&2
timing="$dir/time.txt"
/usr/bin/time -v "$bin" stats "$file" --by "$group_by" > "$dir/stats.txt" 2> "$timing"
cat "$dir/stats.txt"
peak_kib="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$timing")"
wall="$(awk -F': ' '/Elapsed \(wall clock\) time/ {print $2}' "$timing")"
bytes="$(stat -c %s "$file")"
peak_mib=$((peak_kib / 1024))
echo
echo "file:      $((bytes / 1024 / 1024)) MiB"
echo "wall time: $wall"
echo "peak RSS:  ${peak_mib} MiB (limit ${limit_mib} MiB)"
if ((peak_mib >= limit_mib)); then
  echo "bench-stats: FAIL peak RSS ${peak_mib} MiB >= ${limit_mib} MiB" >&2
  exit 1
fi
