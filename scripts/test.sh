#!/usr/bin/env bash
# Runs every test of the workspace: the one command for developers and CI.
#
#   scripts/test.sh            # from anywhere inside or outside the repo
#
# Needs only a Rust toolchain on a Debian-like machine: installs redis-server
# with apt-get if it is missing (the integration tests start their own
# throwaway servers on free loopback ports; see tests/harness.rs). Uses
# cargo-nextest when installed, plain `cargo test` otherwise. Doctests always
# run through `cargo test --doc` (nextest does not run them).
#
# Environment:
#   CI                 when set, builds go to $CARGO_TARGET_DIR, by default
#                      ~/.cache/tiercache-target (outside the clone, reused).
#   REDIS_SERVER_BIN   redis-server binary to use instead of the one on PATH.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*"; }
run() {
    say "$*"
    "$@"
}

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

if [[ -n "${CI:-}" ]]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tiercache-target}"
fi
say "repo root: $(pwd)"
say "cargo target dir: ${CARGO_TARGET_DIR:-target (default)}"

# --- redis-server -----------------------------------------------------------
if [[ -n "${REDIS_SERVER_BIN:-}" ]]; then
    say "using REDIS_SERVER_BIN=$REDIS_SERVER_BIN"
elif ! command -v redis-server >/dev/null 2>&1; then
    say "redis-server not found: installing it with apt-get"
    if [[ "$(id -u)" -eq 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        say "error: not root and no sudo; install redis-server or set REDIS_SERVER_BIN" >&2
        exit 1
    fi
    run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
fi
say "redis-server: $("${REDIS_SERVER_BIN:-redis-server}" --version)"

# --- tests ------------------------------------------------------------------
# Every suite runs even if an earlier one failed; the exit status reports all.
failed=()

if cargo nextest --version >/dev/null 2>&1; then
    # Doctests first, so nextest's summary is the closing line.
    run cargo test --workspace --doc || failed+=("doctests")
    run cargo nextest run --workspace --no-fail-fast || failed+=("cargo nextest")
else
    say "cargo-nextest not installed: falling back to cargo test (includes doctests)"
    run cargo test --workspace --no-fail-fast || failed+=("cargo test")
fi

if ((${#failed[@]})); then
    say "FAILED: ${failed[*]}" >&2
    exit 1
fi
