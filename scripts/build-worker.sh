#!/usr/bin/env bash
# Builds the console (scripts/build-console.sh), then the Worker with
# worker-build, offline: WASM_BINDGEN_BIN, WASM_OPT_BIN and ESBUILD_BIN
# stop it from downloading wasm-bindgen and wasm-opt (scripts/setup.sh installs all three at pinned versions). The
# one place the build command is written: the Makefile and wrangler.toml's
# [build] both call it.
#
#   scripts/build-worker.sh          release build into worker/build: what
#                                    `wrangler deploy` ships
#   scripts/build-worker.sh faults   the same with the `fault-injection`
#                                    feature (test-only switches that widen
#                                    race windows) into worker/build-faults,
#                                    with a target dir of its own so the two
#                                    builds do not relink each other
set -euo pipefail
# The console's static files first (console/dist, the `[assets]` directory):
# the Worker embeds console/index.html, and `wrangler deploy` uploads both.
"$(dirname "$0")/build-console.sh"
cd "$(dirname "$0")/../worker"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN=../node_modules/.bin/wasm-opt
export ESBUILD_BIN=../node_modules/.bin/esbuild
# The standard library is rebuilt with the Worker (`-Zbuild-std`, from the
# `rust-src` component scripts/setup.sh adds), for size: a panic becomes the
# trap it already ended in (`-Cpanic=immediate-abort`: no panic message
# formatting, which wasm32-unknown-unknown has nowhere to print anyway), and
# std's own `optimize_for_size` choices. 29 KB gzipped smaller than the
# prebuilt std (README, "Size"). These are nightly switches of the pinned
# stable toolchain: RUSTC_BOOTSTRAP=1 unlocks them for this build only,
# as scripts/fuzz.sh does for cargo-fuzz; lint and unit builds use plain
# stable.
# Two more, for what the traps leave behind: no source locations for panics
# (`-Zlocation-detail=none`: a trap prints none anyway), and derived `Debug`
# printing the type or variant name only (`-Zfmt-debug=shallow`: the log's
# `route` is a variant name; the `{:?}` in error logs print JavaScript
# values, whose `Debug` is not derived). 1.9 KB gzipped (README, "Size").
export RUSTC_BOOTSTRAP=1
export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
export CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=shallow"
case "${1:-release}" in
  release) out=build; worker-build --release ;;
  faults)
    out=build-faults
    CARGO_TARGET_DIR=../target/faults worker-build --release --out-dir "$out" . --features fault-injection ;;
  *) echo "usage: $0 [release|faults]" >&2; exit 2 ;;
esac

# worker-build runs wasm-opt with --debuginfo, which keeps the name section
# (about 45 KB gzipped); Cargo's `strip` would break wasm-bindgen's
# post-processing. Drop it, and the producers section, after the fact, in
# a second `-Os` pass (worker-build's is `-O`, which is binaryen's `-Os`):
# without the names it finds 2.4 KB gzipped more, at the same speed in
# `make bench` (README, "Size"). Same features as worker-build.
# COFFER_KEEP_NAMES=1 keeps the names, for a CPU profile whose frames
# name Rust functions (README, "Benchmarks and the performance budget").
wasm="$out/index_bg.wasm"
[ -n "${COFFER_KEEP_NAMES:-}" ] && exit 0
"$WASM_OPT_BIN" "$wasm" -o "$wasm.stripped" -Os --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling
mv "$wasm.stripped" "$wasm"
