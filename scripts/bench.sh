#!/usr/bin/env bash
# llmtap benchmarks: llmtap proxy vs no proxy vs nginx vs the gateways a user would pick instead
# (LiteLLM proxy, Portkey's gateway), on this machine, in one run.
# Installs wrk and nginx (Debian packages) if missing, and the peers from their registries into
# target/bench/peers (once; pinned versions below), builds release once, runs the harness pinned
# with taskset, prints the table and writes target/bench/latest.json (+ latest.txt).
# A peer that cannot be installed or started is reported as `SKIP: <peer>: <reason>` and the
# run goes on without it.
#
#   scripts/bench.sh                 # full run (~10 minutes on 2 cores, plus installs)
#   scripts/bench.sh --seconds 3     # any `llmtap-bench run` flag is passed through
#   SKIP_BUILD=1 scripts/bench.sh    # reuse target/release binaries
#   SKIP_PEERS=1 scripts/bench.sh    # direct, llmtap and nginx only
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
export PATH="$PATH:/usr/sbin"

# The peers. Versions pinned: each is a release that installs from the registries as they are
# (litellm 1.108.6+ pins companion packages that PyPI does not carry, or not yet).
LITELLM_VERSION=1.108.5
OTEL_PY_VERSION=1.45.2
PORTKEY_VERSION=1.15.2
peers=target/bench/peers
peer_args=()
skip() { echo "SKIP: $1" >&2; peer_args+=(--skipped "$1"); }
if [ "${SKIP_PEERS:-0}" != 1 ]; then
  mkdir -p "$peers"
  venv="$peers/venv"
  marker="$venv/.llmtap-bench-litellm-$LITELLM_VERSION-otel-$OTEL_PY_VERSION"
  if [ ! -e "$marker" ]; then
    echo "installing litellm[proxy]==$LITELLM_VERSION into $venv (PyPI; log: $peers/pip.log)" >&2
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv; } >"$peers/apt.log" 2>&1 || true
    fi
    rm -rf "$venv"
    if python3 -m venv "$venv" >"$peers/pip.log" 2>&1 &&
      "$venv/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION" \
        "opentelemetry-api==$OTEL_PY_VERSION" "opentelemetry-sdk==$OTEL_PY_VERSION" \
        "opentelemetry-exporter-otlp-proto-http==$OTEL_PY_VERSION" >>"$peers/pip.log" 2>&1; then
      touch "$marker"
    fi
  fi
  if [ -e "$marker" ] && [ -x "$venv/bin/litellm" ]; then
    peer_args+=(--litellm "$venv/bin/litellm")
  else
    skip "litellm: pip install of litellm[proxy]==$LITELLM_VERSION failed ($(tail -n 1 "$peers/pip.log" 2>/dev/null))"
  fi

  portkey="$peers/portkey"
  entry="$portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
  marker="$portkey/.llmtap-bench-portkey-$PORTKEY_VERSION"
  if ! command -v npm >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm; } >"$peers/apt.log" 2>&1 || true
  fi
  if [ ! -e "$marker" ] && command -v npm >/dev/null; then
    echo "installing @portkey-ai/gateway@$PORTKEY_VERSION into $portkey (npm; log: $peers/npm.log)" >&2
    mkdir -p "$portkey"
    if npm install --prefix "$portkey" --no-audit --no-fund "@portkey-ai/gateway@$PORTKEY_VERSION" >"$peers/npm.log" 2>&1; then
      touch "$marker"
    fi
  fi
  if [ -e "$marker" ] && [ -f "$entry" ] && command -v node >/dev/null; then
    peer_args+=(--portkey "$entry" --node "$(command -v node)")
  elif ! command -v node >/dev/null; then
    skip "portkey: no node/npm (apt-get install nodejs npm failed)"
  else
    skip "portkey: npm install of @portkey-ai/gateway@$PORTKEY_VERSION failed ($(tail -n 1 "$peers/npm.log" 2>/dev/null))"
  fi
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -p llmtap-cli -p llmtap-bench
fi

# 1,000 slow streams need ~2 fds each in the proxy and in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cores=$(nproc)
if [ "$cores" -ge 2 ]; then
  client_cores=0; proxy_cores=1
else
  client_cores=0; proxy_cores=0
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# This process is the load generator and the in-process OTLP sink: pinned with the upstream and wrk.
exec taskset -c "$client_cores" target/release/llmtap-bench run \
  --llmtap target/release/llmtap \
  --client-cores "$client_cores" --proxy-cores "$proxy_cores" ${peer_args[@]+"${peer_args[@]}"} "$@"
