#!/usr/bin/env bash
# Runs every test of the workspace: the one command for developers and CI.
#
#   scripts/test.sh            # from anywhere inside or outside the repo
#
# Needs only a Rust toolchain on a Debian-like machine: installs redis-server
# with apt-get if it is missing (the integration tests start their own
# throwaway servers on free loopback ports; see tests/harness.rs). The catalog
# tests also run on PostgreSQL: the server at DATABASE_URL, else the one on
# 127.0.0.1:5432 when it accepts connections, else a throwaway cluster this
# script starts (installing Debian's postgresql package if needed) and stops
# at exit. Uses
# cargo-nextest when installed, plain `cargo test` otherwise. Doctests always
# run through `cargo test --doc` (nextest does not run them).
#
# Environment:
#   CI                 when set, builds go to $CARGO_TARGET_DIR, by default
#                      ~/.cache/tiercache-target (outside the clone, reused).
#   REDIS_SERVER_BIN   redis-server binary to use instead of the one on PATH.
#   DATABASE_URL       PostgreSQL server for the catalog tests (each test
#                      creates and drops a database of its own there), e.g.
#                      postgres://postgres@127.0.0.1:5432/postgres.
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

# --- PostgreSQL ---------------------------------------------------------------
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "error: not root and no sudo: cannot run $*" >&2
        return 1
    fi
}

pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/$1" ]]; then
            echo "$dir/$1"
            return 0
        fi
    done
    command -v "$1"
}

# Whether a PostgreSQL server answers at $1 (a URL).
pg_answers() {
    command -v psql >/dev/null 2>&1 || return 1
    psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

pg_tmp=""
pg_ctl_bin=""
stop_postgres() {
    if [[ -n "$pg_tmp" ]]; then
        say "stopping the throwaway PostgreSQL"
        "${pg_run[@]}" "$pg_ctl_bin" -D "$pg_tmp/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_tmp"
    fi
}

if [[ -n "${DATABASE_URL:-}" ]]; then
    say "using DATABASE_URL (the catalog tests create their databases there)"
elif pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
    say "using the PostgreSQL on 127.0.0.1:5432"
else
    if [[ -z "$(pg_bin initdb 2>/dev/null)" ]]; then
        say "PostgreSQL not found: installing it with apt-get"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
    fi
    initdb_bin="$(pg_bin initdb)"
    pg_ctl_bin="$(pg_bin pg_ctl)"
    pg_tmp="$(mktemp -d "${TMPDIR:-/tmp}/tiercache-pg.XXXXXX")"
    # initdb refuses to run as root: run the cluster as the postgres user then.
    pg_run=()
    if [[ "$(id -u)" -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$pg_tmp"
        pg_run=(runuser -u postgres --)
    fi
    trap stop_postgres EXIT
    pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)"
    say "starting a throwaway PostgreSQL in $pg_tmp on 127.0.0.1:$pg_port"
    "${pg_run[@]}" "$initdb_bin" -D "$pg_tmp/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$pg_tmp/initdb.log" 2>&1 ||
        { cat "$pg_tmp/initdb.log" >&2; exit 1; }
    # A test database, not a durable one: no fsync.
    "${pg_run[@]}" "$pg_ctl_bin" -D "$pg_tmp/data" -l "$pg_tmp/server.log" -w \
        -o "-p $pg_port -k $pg_tmp -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$pg_tmp/server.log" >&2; exit 1; }
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
fi
say "PostgreSQL: $(psql "$DATABASE_URL" -Atqc 'SHOW server_version' 2>/dev/null || echo '(psql not available to ask)')"

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
