#!/usr/bin/env bash
# Builds the `patchmix_core` wheel (core/python) with maturin, installs it into a venv, and runs
# its pytest suite: fmt and clippy of the binding crate, the wheel build, then pytest with the
# CLI-parity cases required (they compare with `target/debug/patchmix`, which
# `cargo test --workspace` builds; this script builds it if it is missing).
#
# The venv lives in target/py-core (reused between runs). The original-code comparison
# (tests/test_original.py) runs when torch, einops and PATCHMIX_ORIGINAL are present and is
# skipped, saying why, otherwise; CI does not install torch.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/py-core
manifest=core/python/Cargo.toml

cargo fmt --manifest-path "$manifest" --check
cargo clippy --manifest-path "$manifest" --all-targets -- -D warnings

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.9,<2" "pytest>=8" "hypothesis>=6" numpy

rm -rf target/wheels
"$venv/bin/maturin" build --release --quiet -m "$manifest" -o target/wheels
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    target/wheels/patchmix_core-*.whl

[ -x target/debug/patchmix ] || cargo build -p patchmix-train --bin patchmix
PATCHMIX_BIN="${PATCHMIX_BIN:-$PWD/target/debug/patchmix}" PATCHMIX_REQUIRE_CLI=1 \
    "$venv/bin/python" -m pytest -q -rs core/python/tests
