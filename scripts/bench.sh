#!/usr/bin/env bash
# llmtap benchmarks: llmtap proxy vs no proxy vs nginx, on this machine, in one run.
# Installs wrk and nginx (Debian packages) if missing, builds release once, runs the harness
# pinned with taskset, prints the table and writes target/bench/latest.json (+ latest.txt).
#
#   scripts/bench.sh                 # full run (~3 minutes on 2 cores)
#   scripts/bench.sh --seconds 3     # any `llmtap-bench run` flag is passed through
#   SKIP_BUILD=1 scripts/bench.sh    # reuse target/release binaries
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
  --client-cores "$client_cores" --proxy-cores "$proxy_cores" "$@"
