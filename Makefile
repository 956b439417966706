# The two commands a newcomer needs: `make dev` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
export PATH := $(HOME)/.cargo/bin:$(PATH)

WRANGLER := node_modules/.bin/wrangler
STATE ?= .wrangler/state
PORT ?= 8787

.PHONY: setup dev build build-unlocked build-faults migrate test lint unit e2e browser-test token bench bench-realms load fuzz fuzz-long mutants mutants-security capacity measure-storage

setup:
	scripts/setup.sh dev

## Install what is needed, apply migrations and serve on 127.0.0.1:$(PORT).
dev: setup migrate
	@echo "Coffer Console: http://127.0.0.1:$(PORT)/console/"
	@echo "Sign in with a token from: make -s token TENANT=$$(cat /proc/sys/kernel/random/uuid) ROLES=integration_admin"
	$(WRANGLER) dev --local --ip 127.0.0.1 --port $(PORT) --persist-to $(STATE)

migrate:
	$(WRANGLER) d1 migrations apply DB --local --persist-to $(STATE)

build:
	mkdir -p target && flock target/.coffer-build.lock $(MAKE) --no-print-directory build-unlocked

build-unlocked:
	scripts/build-worker.sh release

## The test-only build with fault switches (never deployed; see build-worker.sh).
build-faults:
	mkdir -p target && flock target/.coffer-build.lock scripts/build-worker.sh faults

## Install what is needed and run every test tier.
test:
	scripts/setup.sh test
	$(MAKE) --no-print-directory lint build build-faults unit e2e browser-test fuzz mutants-security

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --workspace --exclude coffer-tests --all-targets --target wasm32-unknown-unknown -- -D warnings

## Native tests only: the core, the Worker's pure modules and the test
## tools' own logic; no server, no build of the Worker.
unit:
	cargo test --workspace --exclude coffer-tests
	cargo test -p coffer-tests --lib --bins

## The black-box tier against real `wrangler dev` servers; prints how many
## servers it launched (target/wrangler-tests/launches.log).
e2e: build build-faults
	mkdir -p target/wrangler-tests && rm -f target/wrangler-tests/launches.log
	COFFER_SKIP_BUILD=1 cargo test -p coffer-tests --no-fail-fast --test '*'
	@printf 'wrangler dev launches: '; wc -l < target/wrangler-tests/launches.log

# The core's tests compiled to wasm, once per browser.
browser-test:
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=$$(command -v chromedriver) \
	  cargo test -p coffer-core --target wasm32-unknown-unknown
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner GECKODRIVER=$$(command -v geckodriver) \
	  cargo test -p coffer-core --target wasm32-unknown-unknown

# Every cargo-fuzz target in fuzz/ for 20 s each (nightly toolchain).
fuzz:
	scripts/fuzz.sh 20

## Every fuzz target for 10 minutes each, two at a time.
fuzz-long:
	scripts/fuzz.sh 600

## Mutation testing of all of the core and the Worker's pure modules: fails
## on any missed mutant not listed in mutants-exclusions.txt.
mutants:
	scripts/setup.sh test
	scripts/mutants.sh all

# The six security files of the core (part of `make test`).
mutants-security:
	scripts/mutants.sh security

## Throughput and latency per route as ratios of /healthz (BENCH_SECONDS=10);
## with PEER=<dir of a wrangler project>, Coffer against that Worker side by
## side, alternating, as ratios per route (BENCH_ROUNDS=3), after
## BENCH_WARMUP=3 s of uncounted warm-up per route and server.
bench:
	scripts/setup.sh bench
	$(MAKE) --no-print-directory build
	COFFER_SKIP_BUILD=1 COFFER_WRANGLER_LOG_LEVEL=warn PEER="$(PEER)" cargo run -q --release -p coffer-tests --bin bench
	@printf 'gzip: '; gzip -9 -c worker/build/index_bg.wasm | wc -c

## Details with HS256, RS256, ES256 and EdDSA tokens, per build, alternating
## builds round by round (BENCH_BUILDS=dirA,dirB BENCH_ROUNDS=3 BENCH_SECONDS=10).
bench-realms:
	scripts/setup.sh bench
	$(MAKE) --no-print-directory build
	COFFER_SKIP_BUILD=1 COFFER_WRANGLER_LOG_LEVEL=warn cargo run -q --release -p coffer-tests --bin bench-realms

## Mixed load and soak against one server, checked against a model of truth
## (LOAD_SECONDS=180 LOAD_TENANTS=20 LOAD_CONCURRENCY=1,2,4,8,16,32 LOAD_SEED=42).
load:
	scripts/setup.sh bench
	$(MAKE) --no-print-directory build
	COFFER_SKIP_BUILD=1 COFFER_WRANGLER_LOG_LEVEL=warn cargo run -q --release -p coffer-tests --bin load

## One D1 database under a workload, with and without the audit archive:
## size over time and the day each limit is reached (docs/capacity.md).
TENANTS ?= 1000
RECORDS ?= 20
READS ?= 100
RETENTION ?= 30
DAYS ?= 365
capacity:
	@cargo run -q -p coffer-tests --bin capacity -- --tenants $(TENANTS) --records-per-tenant $(RECORDS) \
	  --reads-per-second $(READS) --retention-days $(RETENTION) --days $(DAYS)

## The sizes the capacity model uses, measured through the API on a local
## server (MEASURE_RECORDS=2000 MEASURE_READS=10000); needs sqlite3.
measure-storage:
	$(MAKE) --no-print-directory build
	COFFER_SKIP_BUILD=1 cargo run -q --release -p coffer-tests --bin measure-storage

## Mint a dev token: make token TENANT=<uuid> ROLES=integration_admin
token:
	@cargo run -q -p coffer-tests --bin mint-token -- --tenant "$(TENANT)" --roles "$(ROLES)"
