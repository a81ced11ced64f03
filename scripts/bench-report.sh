#!/usr/bin/env bash
# Runs the criterion micro-benchmarks (package tiercache-benches, sources in benches/) and
# regenerates BENCHMARKS.md from criterion's estimates. Every figure in BENCHMARKS.md comes from
# this run; never edit it by hand.
#
#   scripts/bench-report.sh            # quick mode (BENCH_QUICK=1): ~10 samples, 1 s each
#   scripts/bench-report.sh --full     # fuller criterion settings (slower, less noise)
#
# Environment:
#   BENCHES            space-separated subset of benches to run (default: all ten). The report
#                      only shows results written by this run.
#   CARGO_TARGET_DIR   honoured (criterion writes to <target>/criterion).
#   REDIS_SERVER_BIN   redis-server binary for the Redis benches (default: redis-server on PATH).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode=quick
case "${1:-}" in
--full) mode=full ;;
--quick | "") ;;
*)
    echo "usage: $0 [--quick|--full]" >&2
    exit 2
    ;;
esac

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
command -v redis-server >/dev/null 2>&1 || [[ -n "${REDIS_SERVER_BIN:-}" ]] || {
    echo "redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER_BIN" >&2
    exit 1
}

read -r -a benches <<<"${BENCHES:-l1_hit l2_hit batch tls cluster keys_codec single_flight macro_overhead backplane fleet}"
target_dir="${CARGO_TARGET_DIR:-target}"
since=$(date +%s)
commands=()

for bench in "${benches[@]}"; do
    if [[ $mode == quick ]]; then
        cmd="BENCH_QUICK=1 cargo bench -p tiercache-benches --bench $bench"
    else
        cmd="cargo bench -p tiercache-benches --bench $bench"
    fi
    printf '==> %s\n' "$cmd"
    if [[ $mode == quick ]]; then
        BENCH_QUICK=1 cargo bench -p tiercache-benches --bench "$bench"
    else
        env -u BENCH_QUICK cargo bench -p tiercache-benches --bench "$bench"
    fi
    commands+=(--command "$cmd")
done

# Instruction counts (callgrind): the figures a noisy machine cannot move.
if command -v valgrind >/dev/null 2>&1; then
    extra_dir="$target_dir/criterion/tiercache-extra"
    printf '==> %s\n' "scripts/hit-profile.sh (L1 hits, then the client side of L2 hits)"
    HIT_PROFILE_JSON="$extra_dir/hit_profile_l1.json" scripts/hit-profile.sh
    HITS=3000 HIT_PROFILE_JSON="$extra_dir/hit_profile_l2.json" scripts/hit-profile.sh \
        l2_raw_get_decode l2_tiercache_get l2_tiercache_get_or_load l2_tiercache_get_no_l1
    commands+=(--command "scripts/hit-profile.sh" --command "HITS=3000 scripts/hit-profile.sh l2_raw_get_decode l2_tiercache_get l2_tiercache_get_or_load l2_tiercache_get_no_l1")
else
    printf '==> %s\n' "valgrind not found: no instruction counts (apt-get install valgrind)"
fi

# What an L1 really holds against its budget (dhat counts the live heap).
printf '==> %s\n' "l1-footprint (heap an L1 holds against its budget)"
cargo build --quiet --release -p tiercache-benches --bin l1-footprint
L1_FOOTPRINT_JSON="$target_dir/criterion/tiercache-extra/l1_footprint.json" "$target_dir/release/l1-footprint"
commands+=(--command "cargo run --release -p tiercache-benches --bin l1-footprint")

printf '==> %s\n' "regenerating BENCHMARKS.md"
cargo run --quiet --release -p tiercache-benches --bin bench-report -- \
    --target-dir "$target_dir" --out BENCHMARKS.md --since "$since" --mode "$mode" "${commands[@]}"
