#!/usr/bin/env bash
# Installs everything Coffer needs, offline but for the Rust, npm, Python and
# Debian registries. Idempotent: every step is skipped when the pinned version
# is already there, so a warm run takes a second or two.
#
#   scripts/setup.sh dev    toolchain for building and serving the Worker
#   scripts/setup.sh test   the above, plus browsers and drivers for the tests
#   scripts/setup.sh bench  the dev toolchain plus wrk
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-dev}
WORKER_BUILD_VERSION=0.8.7
GECKODRIVER_VERSION=0.37.1
# The CLI must match the wasm-bindgen in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)

say() { printf 'setup: %s\n' "$*" >&2; }

cargo_installed() { # name version
  cargo install --list | grep -qx "$1 v$2:"
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# The Worker's build rebuilds the standard library (scripts/build-worker.sh).
if ! rustup component list --installed | grep -qx rust-src; then
  say "adding the rust-src component"
  rustup component add rust-src
fi

# npm ci wipes node_modules, so only run it when the lock file changed.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.coffer-lock 2>/dev/null)" != "$lock_sum" ]; then
  say "npm ci (wrangler, binaryen, esbuild)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.coffer-lock
fi

if ! cargo_installed wasm-bindgen-cli "$WASM_BINDGEN_VERSION"; then
  # Not --locked: one of the CLI's locked dependencies has been yanked.
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
if ! cargo_installed worker-build "$WORKER_BUILD_VERSION"; then
  say "installing worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

apt_install() {
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  say "apt-get install $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if [ "$mode" = bench ] && ! command -v wrk >/dev/null; then
  apt_install wrk
fi

if [ "$mode" = test ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v firefox-esr >/dev/null || missing+=(firefox-esr)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
  if ! cargo_installed geckodriver "$GECKODRIVER_VERSION"; then
    say "installing geckodriver $GECKODRIVER_VERSION"
    cargo install geckodriver --version "$GECKODRIVER_VERSION" --locked
  fi
  # cargo-fuzz for scripts/fuzz.sh, which builds with the nightly toolchain.
  CARGO_FUZZ_VERSION=0.13.2
  if ! cargo_installed cargo-fuzz "$CARGO_FUZZ_VERSION"; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
  # cargo-mutants for scripts/mutants.sh (make mutants, and the security
  # core's mutants in make test).
  CARGO_MUTANTS_VERSION=27.1.0
  if ! cargo_installed cargo-mutants "$CARGO_MUTANTS_VERSION"; then
    say "installing cargo-mutants $CARGO_MUTANTS_VERSION"
    cargo install cargo-mutants --version "$CARGO_MUTANTS_VERSION" --locked
  fi
  # openapi-spec-validator and schemathesis for the contract test, pinned in
  # requirements-test.txt; pip runs only when that file changed.
  req_sum=$(sha256sum requirements-test.txt | cut -d' ' -f1)
  if [ "$(cat .venv/.coffer-requirements 2>/dev/null)" != "$req_sum" ]; then
    say "pip install -r requirements-test.txt into .venv"
    [ -x .venv/bin/python ] || python3 -m venv .venv || { apt_install python3-venv; python3 -m venv .venv; }
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
    echo "$req_sum" > .venv/.coffer-requirements
  fi
fi

if [ ! -f .dev.vars ]; then
  say "writing .dev.vars with a fresh HS256 secret and master key"
  umask 077
  {
    echo "# Local secrets for wrangler dev; see .dev.vars.example. Never commit."
    # 32 random bytes as 44 base64 characters: the HMAC key is the value's
    # UTF-8 bytes, and the Worker refuses fewer than 32.
    echo "AUTH_HS256_SECRET=$(head -c 32 /dev/urandom | base64 -w0)"
    echo "COFFER_KEYS=dev-$(date +%Y%m%d):$(head -c 32 /dev/urandom | base64 -w0)"
  } > .dev.vars
else
  # An older .dev.vars may hold a secret the Worker now refuses.
  hs256_secret=$(sed -n "s/^AUTH_HS256_SECRET=//p" .dev.vars | tail -n 1 | tr -d "\"'")
  if [ -n "$hs256_secret" ] && [ "$(printf %s "$hs256_secret" | wc -c)" -lt 32 ]; then
    say "warning: AUTH_HS256_SECRET in .dev.vars is shorter than 32 bytes; every authenticated request will fail until it is replaced"
  fi
fi
