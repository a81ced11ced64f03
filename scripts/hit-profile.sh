#!/usr/bin/env bash
# Instructions per hit of each contender, counted by callgrind (repeatable on a busy machine,
# unlike wall time): each contender runs with 0 and with $HITS reads over the same warm entries,
# and the difference divided by $HITS is its cost per hit. Ratios are against the first contender.
#
#   scripts/hit-profile.sh                  # L1 contenders, 20,000 hits each
#   HITS=3000 scripts/hit-profile.sh l2_raw_get_decode l2_tiercache_get   # client side of L2 hits
#   HITS=300 scripts/hit-profile.sh l2_raw_mget_decode_100 l2_tiercache_get_many_100  # per batch of 100
#   HIT_PROFILE_JSON=out.json scripts/hit-profile.sh ...                  # also write the figures
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 1; }
hits=${HITS:-20000}
contenders=("$@")
((${#contenders[@]})) || contenders=(raw_moka_arc moka_sync_string moka_sync_l1_config tiercache_attribute_arc tiercache_get_or_load tiercache_attribute cached_cached)
cargo build --quiet --release -p tiercache-benches --bin hit-profile
bin="${CARGO_TARGET_DIR:-target}/release/hit-profile"
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
    awk '/^summary:/ {print $2}' "$out"
    rm -f "$out"
}
base=""
rows=()
printf '%-26s %14s %8s\n' contender "instr/hit" "ratio"
for c in "${contenders[@]}"; do
    per=$((($(count "$c" "$hits") - $(count "$c" 0)) / hits))
    [[ -n $base ]] || base=$per
    printf '%-26s %14d %7.2fx\n' "$c" "$per" "$(awk -v a="$per" -v b="$base" 'BEGIN {print a / b}')"
    rows+=("{\"contender\":\"$c\",\"instructions\":$per}")
done
if [[ -n "${HIT_PROFILE_JSON:-}" ]]; then
    mkdir -p "$(dirname "$HIT_PROFILE_JSON")"
    (IFS=,; printf '{"hits":%d,"rows":[%s]}\n' "$hits" "${rows[*]}") >"$HIT_PROFILE_JSON"
fi
