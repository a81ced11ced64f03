#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time: the template parser, key rendering,
# the codec's decode and the glob matcher. Not part of scripts/test.sh (too slow); run it before a
# release, or after touching one of those parts.
#
#   scripts/fuzz.sh              # each target for 30 s
#   scripts/fuzz.sh 5            # each target for 5 s
#   scripts/fuzz.sh 60 glob_match codec_decode   # only these targets, 60 s each
#
# Installs cargo-fuzz (`cargo install cargo-fuzz`) if it is missing. Uses the nightly toolchain
# when rustup has one; otherwise the stable one with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs
# `-Z sanitizer`). A crash leaves its input in fuzz/artifacts/<target>/ and fails the script;
# the corpus grows in fuzz/corpus/<target>/ (both ignored by git).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(template_parse key_render codec_decode glob_match)
fi

say() { printf '==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz
fi

toolchain=()
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    say "no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
fi

# The fuzz crate is its own workspace: keep its builds apart from the main target directory.
export CARGO_TARGET_DIR="$PWD/fuzz/target"

for target in "${targets[@]}"; do
    say "fuzzing $target for ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    cargo "${toolchain[@]}" fuzz run "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
say "all ${#targets[@]} targets ran ${seconds}s each without a crash"
