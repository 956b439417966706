#!/usr/bin/env bash
# Mutation testing with cargo-mutants: every mutant of the code under test
# must make a test fail. Fails on any missed mutant that is not listed, with
# a one-line reason, in mutants-exclusions.txt (equivalent mutants only), and
# on any listed mutant that is no longer missed (so the list stays honest).
#
#   scripts/mutants.sh security  the six security files of core/src (make test)
#   scripts/mutants.sh core      every file of core/src
#   scripts/mutants.sh worker    the Worker's pure modules with native tests
#   scripts/mutants.sh all       core and worker (make mutants)
#
# MUTANTS_JOBS (default 2) build directories run in parallel; each is a copy
# of the tree. Results land in target/mutants/<set>/mutants.out/.
# MUTANTS_ITERATE=1 re-tests only what the previous run of the set did not
# catch, and mutants new since (cargo mutants --iterate): for the loop of
# writing tests, not for CI.
set -euo pipefail
cd "$(dirname "$0")/.."

sets=${1:-all}
[ "$sets" = all ] && sets="core worker"
jobs=${MUTANTS_JOBS:-2}
exclusions=mutants-exclusions.txt

say() { printf 'mutants: %s\n' "$*" >&2; }

# The listed mutants: "<file>: <description>" (no line numbers, which move).
listed() {
  sed -e 's/[[:space:]]\{2,\}#.*$//' -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$exclusions"
}

status=0
for set in $sets; do
  files=()
  case $set in
    security)
      package=coffer-core
      for name in policy lifecycle principal envelope keyring claims; do
        files+=(-f "core/src/$name.rs")
      done
      ;;
    core)
      package=coffer-core
      files+=(-f 'core/src/*.rs')
      ;;
    worker)
      # Only modules whose tests are native and pure. `from_env` in cors.rs
      # needs the Workers runtime (`Env`); the black-box CORS tests in
      # tests/tests/ops.rs cover it.
      package=coffer-worker
      files+=(-f worker/src/http/cors.rs -f worker/src/store/page.rs -f worker/src/store/guesses.rs)
      files+=(--exclude-re 'cors\.rs:.*\bfrom_env\b')
      ;;
    *)
      say "unknown set $set (security, core, worker or all)"
      exit 1
      ;;
  esac
  out=target/mutants/$set
  mkdir -p "$out"
  say "$set: cargo mutants -p $package ${files[*]} -j $jobs"
  start=$SECONDS
  code=0
  # --gitignore: leave node_modules, .venv, fuzz/target and the like out of
  # the build directories. The baseline run checks that the tests pass first.
  iterate=()
  [ -n "${MUTANTS_ITERATE:-}" ] && iterate=(--iterate)
  cargo mutants --package "$package" "${files[@]}" --jobs "$jobs" --gitignore=true \
    --no-shuffle --output "$out" --colors=never "${iterate[@]}" || code=$?
  # 0: all caught; 2: some missed; 3: some timed out. Anything else (a
  # failing baseline, a usage error) is a failure of its own.
  case $code in 0 | 2 | 3) ;; *) say "$set: cargo mutants exited with $code"; exit "$code" ;; esac
  results=$out/mutants.out
  count() { if [ -f "$results/$1.txt" ]; then grep -c . "$results/$1.txt" || true; else echo 0; fi; }
  say "$set: $(count caught) caught, $(count missed) missed, $(count unviable) unviable, $(count timeout) timeouts in $((SECONDS - start)) s"
  if [ "$(count timeout)" -gt 0 ]; then
    # A mutant that hangs the tests is detected, if slowly.
    say "$set: timed out (counted as caught):"
    sed 's/^/  /' "$results/timeout.txt" >&2
  fi
  missed=$(sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /' "$results/missed.txt" 2>/dev/null | sort -u)
  unlisted=$(comm -23 <(printf '%s\n' "$missed" | sed '/^$/d') <(listed | sort -u))
  if [ -n "$unlisted" ]; then
    say "$set: missed mutants: add a test that catches each (or, only if it is equivalent, list it in $exclusions with a reason):"
    sed 's/^/  /' <<<"$unlisted" >&2
    status=1
  fi
  # Listed mutants of the files this set mutated must still be missed.
  mutated=$(cat "$results/caught.txt" "$results/missed.txt" "$results/unviable.txt" "$results/timeout.txt" 2>/dev/null |
    sed -E 's/^([^:]+):.*/\1/' | sort -u)
  stale=$(comm -13 <(printf '%s\n' "$missed" | sed '/^$/d') <(listed | sort -u) |
    while IFS= read -r entry; do
      grep -qxF "${entry%%: *}" <<<"$mutated" && printf '%s\n' "$entry"
    done || true)
  if [ -n "$stale" ]; then
    say "$set: listed in $exclusions but caught now (remove them):"
    sed 's/^/  /' <<<"$stale" >&2
    status=1
  fi
done
exit $status
