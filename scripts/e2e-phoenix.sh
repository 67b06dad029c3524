#!/usr/bin/env bash
# Opt-in end-to-end check against Arize Phoenix (heavy: not part of scripts/test.sh).
#
#   scripts/e2e-phoenix.sh            # installs Phoenix into .venv-phoenix and Chromium if missing
#
# 1. starts a real Phoenix server on loopback;
# 2. runs `llmtap demo` with OTLP pointed at it (and the OpenInference compatibility keys on, so
#    Phoenix shows span kinds, tokens and messages in its own terms);
# 3. reads the spans back through Phoenix's REST API and checks every parent link against the
#    demo's own JSONL;
# 4. records a second run to JSONL only and sends the file with `llmtap push`, the README's
#    "A UI without Docker" path, and checks it the same way;
# 5. takes a screenshot of the trace view with headless Chromium: docs/phoenix-demo-trace.png.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '\033[1me2e-phoenix:\033[0m %s\n' "$*" >&2; }

PHOENIX_VERSION="20.26.1"
PORT="${PHOENIX_PORT:-16006}"
VENV="$ROOT/.venv-phoenix"
WORK="$(mktemp -d)"
SHOT="$ROOT/docs/phoenix-demo-trace.png"
PROJECT="llmtap-demo"

if [[ ! -x "$VENV/bin/phoenix" ]]; then
    say "installing arize-phoenix==$PHOENIX_VERSION into .venv-phoenix"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "arize-phoenix==$PHOENIX_VERSION"
fi
CHROMIUM="$(command -v chromium || command -v chromium-browser || true)"
if [[ -z "$CHROMIUM" ]]; then
    say "installing Debian chromium"
    apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
    CHROMIUM="$(command -v chromium)"
fi

say "building llmtap"
cargo build --locked -q -p llmtap-cli
LLMTAP="$ROOT/target/debug/llmtap"

say "starting Phoenix on 127.0.0.1:$PORT"
PHOENIX_WORKING_DIR="$WORK/phoenix" PHOENIX_HOST=127.0.0.1 PHOENIX_PORT="$PORT" \
    PHOENIX_GRPC_PORT="$((PORT + 1))" "$VENV/bin/phoenix" serve >"$WORK/phoenix.log" 2>&1 &
PHOENIX_PID=$!
trap 'kill $PHOENIX_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { cat "$WORK/phoenix.log"; exit 1; }

say "running llmtap demo with OTLP to Phoenix"
(
    cd "$WORK"
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PORT" \
    OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf" \
    OTEL_METRICS_EXPORTER="none" \
    OTEL_SERVICE_NAME="llmtap-demo" \
    OTEL_RESOURCE_ATTRIBUTES="openinference.project.name=$PROJECT" \
    LLMTAP_COMPAT="openinference" \
    "$LLMTAP" demo --no-color --jsonl "$WORK/demo.jsonl"
)

# Prints the trace id after checking that Phoenix project $1 holds every span of the last trace
# in JSONL file $2 with the same parents.
check_phoenix() {
"$VENV/bin/python" - "$PORT" "$1" "$2" <<'PY'
import json, sys, time, urllib.request

port, project, jsonl = sys.argv[1], sys.argv[2], sys.argv[3]
ours = {}
for line in open(jsonl):
    for rs in json.loads(line).get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for s in ss.get("spans", []):
                ours[s["spanId"]] = (s.get("parentSpanId") or None, s["traceId"], s["name"])
# The demo file is appended to per run; this run's trace is the last one written.
trace_id = list(ours.values())[-1][1]
ours = {k: v for k, v in ours.items() if v[1] == trace_id}

deadline = time.time() + 30
theirs = {}
while time.time() < deadline:
    url = f"http://127.0.0.1:{port}/v1/projects/{project}/spans?limit=1000"
    try:
        data = json.load(urllib.request.urlopen(url))["data"]
    except Exception:
        data = []
    theirs = {s["context"]["span_id"]: (s.get("parent_id"), s["context"]["trace_id"], s["name"])
              for s in data if s["context"]["trace_id"] == trace_id}
    if len(theirs) >= len(ours):
        break
    time.sleep(1)

assert len(ours) == 7, f"expected 7 demo spans in the JSONL, found {len(ours)}"
assert set(theirs) == set(ours), f"Phoenix has {sorted(theirs)}, we wrote {sorted(ours)}"
for span_id, (parent, _, name) in ours.items():
    assert theirs[span_id][0] == parent, f"{name}: Phoenix parent {theirs[span_id][0]} != {parent}"
    assert theirs[span_id][2] == name
roots = [k for k, v in ours.items() if v[0] is None]
assert len(roots) == 1, roots
depth = lambda k: 0 if ours[k][0] is None else 1 + depth(ours[k][0])
assert max(depth(k) for k in ours) == 2, "three levels"
print(trace_id)
print(f"Phoenix returned all {len(theirs)} spans of trace {trace_id} with the same parents", file=sys.stderr)
PY
}

say "reading the spans back through Phoenix's REST API"
TRACE_ID="$(check_phoenix "$PROJECT" "$WORK/demo.jsonl")"

say "recording a run to JSONL only, then llmtap push of the file into Phoenix"
(
    cd "$WORK"
    env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
        OTEL_METRICS_EXPORTER="none" \
        OTEL_SERVICE_NAME="llmtap-push" \
        OTEL_RESOURCE_ATTRIBUTES="openinference.project.name=$PROJECT-push" \
        LLMTAP_COMPAT="openinference" \
        "$LLMTAP" demo --no-color --jsonl "$WORK/pushed.jsonl" >/dev/null
    "$LLMTAP" push "$WORK/pushed.jsonl" --endpoint "http://127.0.0.1:$PORT"
)
check_phoenix "$PROJECT-push" "$WORK/pushed.jsonl" >/dev/null

say "taking a screenshot of the trace view"
PROJECT_ID="$(curl -fsS "http://127.0.0.1:$PORT/v1/projects" | "$VENV/bin/python" -c "
import json, sys
print(next(p['id'] for p in json.load(sys.stdin)['data'] if p['name'] == '$PROJECT'))")"
mkdir -p "$(dirname "$SHOT")"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/chromium" --hide-scrollbars --window-size=1600,1000 \
    --virtual-time-budget=20000 --screenshot="$SHOT" \
    "http://127.0.0.1:$PORT/projects/$PROJECT_ID/traces/$TRACE_ID" >/dev/null 2>&1
test -s "$SHOT"
say "OK: Phoenix holds the demo's agent tree, sent live and by llmtap push; screenshot in ${SHOT#"$ROOT"/}"
