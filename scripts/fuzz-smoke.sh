#!/usr/bin/env bash
# Smoke-runs every cargo-fuzz target of fuzz/ for a few seconds each (CI).
#
#   scripts/fuzz-smoke.sh                # FUZZ_SECONDS=10 per target
#   FUZZ_SECONDS=60 scripts/fuzz-smoke.sh
#   FUZZ_TOOLCHAIN=nightly-2026-01-01 scripts/fuzz-smoke.sh
#
# Targets are taken from `cargo fuzz list`, so targets added to fuzz/Cargo.toml are picked up
# without editing this script. Works from a clean clone: installs cargo-fuzz if it is missing
# (the nightly toolchain itself must be installed). Fails on the first crash, which cargo-fuzz
# saves under fuzz/artifacts/<target>/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-10}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo +"$toolchain" --version >/dev/null 2>&1; then
    echo "fuzz-smoke: the $toolchain toolchain is required (rustup toolchain install $toolchain)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
mapfile -t targets < <(cargo +"$toolchain" fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found in fuzz/Cargo.toml" >&2
    exit 1
fi

start=$SECONDS
for target in "${targets[@]}"; do
    echo "fuzz-smoke: $target for ${seconds}s" >&2
    mkdir -p "corpus/$target"
    cargo +"$toolchain" fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
echo "fuzz-smoke: ${#targets[@]} targets passed in $((SECONDS - start))s" >&2
