#!/usr/bin/env bash
# The one test command (README): installs what the end-to-end tests need, then runs every test.
#
#   - a Python venv at .venv with the real `openai` and `anthropic` clients and the `rotel`
#     OpenTelemetry collector (scripts/e2e/requirements.txt, exact pins);
#   - the real Node `openai` client in scripts/e2e/node_modules (package-lock.json, `npm ci`);
#   - then `cargo test --workspace --locked`, and the secret-corpus test once more against an
#     `llmtap` built without dev-dependencies (the release's `regex` features).
#
# Outside CI a missing prerequisite makes the tests that need it print a visible SKIP line;
# with CI=true they fail instead, so an install problem here stops the run loudly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '\033[1mtest.sh:\033[0m %s\n' "$*" >&2; }
in_ci() { [[ "${CI:-}" == "true" || "${CI:-}" == "1" ]]; }
missing() {
    if in_ci; then
        say "FAIL: $* (CI=true: e2e prerequisites are required)"
        exit 1
    fi
    say "SKIP: $* — the tests that need it will print SKIP"
}

# --- Python clients + rotel collector -------------------------------------------------------
PY="${PYTHON:-python3}"
if command -v "$PY" >/dev/null 2>&1; then
    if [[ ! -x .venv/bin/python ]]; then
        say "creating .venv"
        "$PY" -m venv .venv || missing "python venv could not be created"
    fi
    if [[ -x .venv/bin/python ]]; then
        stamp=.venv/.llmtap-requirements
        if ! cmp -s scripts/e2e/requirements.txt "$stamp" 2>/dev/null; then
            say "installing Python clients and rotel into .venv"
            if .venv/bin/python -m pip install --quiet --disable-pip-version-check \
                -r scripts/e2e/requirements.txt; then
                cp scripts/e2e/requirements.txt "$stamp"
            else
                missing "pip install -r scripts/e2e/requirements.txt failed"
            fi
        fi
        export LLMTAP_PYTHON="$ROOT/.venv/bin/python"
        rotel_bin="$(ls "$ROOT"/.venv/lib/python3*/site-packages/rotel/rotel-agent 2>/dev/null | head -n1 || true)"
        if [[ -n "$rotel_bin" ]]; then
            chmod +x "$rotel_bin" 2>/dev/null || true
            export LLMTAP_ROTEL_BIN="$rotel_bin"
        else
            missing "rotel-agent not found in .venv"
        fi
    fi
else
    missing "$PY not found"
fi

# --- Node client ----------------------------------------------------------------------------
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    if [[ ! -f scripts/e2e/node_modules/openai/package.json ]] \
        || ! cmp -s scripts/e2e/package-lock.json scripts/e2e/node_modules/.package-lock.json 2>/dev/null; then
        say "installing the Node openai client (npm ci)"
        (cd scripts/e2e && npm ci --no-audit --no-fund --loglevel=error) \
            || missing "npm ci in scripts/e2e failed"
    fi
    export LLMTAP_NODE_MODULES="$ROOT/scripts/e2e/node_modules"
else
    missing "node/npm not found"
fi

command -v curl >/dev/null 2>&1 || missing "curl not found"

# --- Tests ----------------------------------------------------------------------------------
say "cargo test --workspace --locked"
cargo test --workspace --locked "$@"

# --- Redaction in the shipped feature set ---------------------------------------------------
# `cargo test` unifies dev-dependency features into every crate it builds (proptest turns on
# regex-syntax's `unicode-case`), so a redaction pattern can compile in tests and not in the
# release binary. `cargo build` leaves dev-dependencies out: the binary built here has the
# release's features, and the secret-corpus test runs the proxy from it (a built-in pattern
# that does not compile there stops it at start-up, and the test fails).
say "secret corpus against llmtap built with the release's features"
target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --locked -p llmtap-cli --bin llmtap
cp "$target_dir/debug/llmtap" "$target_dir/llmtap-shipped-features"
LLMTAP_SHIPPED_BIN="$target_dir/llmtap-shipped-features" \
    cargo test --locked -p llmtap-cli --test redaction
