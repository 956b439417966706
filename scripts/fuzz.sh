#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ once, then runs each for the given
# number of seconds (default 20), two at a time. Fails if any target finds a
# crash; the input is saved under fuzz/artifacts/<target>/ and reproduces
# with `cargo +nightly fuzz run -s none <target> artifacts/<target>/<file>`
# (from fuzz/). Debug assertions and overflow checks are on (fuzz/Cargo.toml).
#
#   scripts/fuzz.sh [seconds]
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written: what
# the fuzzer finds goes to a scratch directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-20}
jobs=${FUZZ_JOBS:-2}
# libFuzzer's coverage instrumentation needs nightly `-Z` flags. No
# AddressSanitizer by default: the core denies `unsafe_code`, and ASan cut
# throughput about tenfold (13k against 170k runs/s on `bodies`). For a
# deeper look at the dependencies' unsafe code: FUZZ_SANITIZER=address.
sanitizer=${FUZZ_SANITIZER:-none}

# The machine's nightly toolchain when there is one; otherwise stable with
# RUSTC_BOOTSTRAP=1, which accepts the same `-Z` flags (no toolchain can be
# downloaded here). FUZZ_STABLE=1 forces the fallback.
toolchain=()
if [ -z "${FUZZ_STABLE:-}" ] && rustup toolchain list | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  echo "fuzz: no nightly toolchain; building with stable and RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
fi

triple=$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')
cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer"
mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

run() { # target
  local target=$1 log="$scratch/$1.log"
  mkdir -p "$scratch/$target" "artifacts/$target"
  if "target/$triple/release/$target" -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
      "$scratch/$target" "corpus/$target" >"$log" 2>&1; then
    printf 'fuzz: %-16s ok, %s runs\n' "$target" \
      "$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  else
    printf 'fuzz: %-16s FAILED (full log: fuzz/artifacts/%s/fuzz.log)\n' "$target" "$target"
    cp "$log" "artifacts/$target/fuzz.log"
    grep -m1 -A6 'panicked at' "$log" || true
    grep -E 'ERROR: libFuzzer|Test unit written' "$log" || tail -n 20 "$log"
    return 1
  fi
}

failed=0
running=0
for target in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run "$target" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done

if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target crashed; see fuzz/artifacts/" >&2
  exit 1
fi
