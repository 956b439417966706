//! Test-only fault switches, compiled in only with the `fault-injection`
//! feature (`scripts/build-worker.sh faults`); the release build that
//! `wrangler deploy` ships has none of this, and a test checks its `.wasm`.
//!
//! Some races are real but their windows are a few milliseconds wide under
//! `wrangler dev`. A switch widens one on request, so a test can hit it
//! every time instead of now and then.

/// `x-coffer-fault-commit-delay-ms: N`: a create or an update waits `N` ms
/// (at most [`MAX_DELAY_MS`]) just before its D1 commit, after any new
/// blob's KV put. Widens the window between the put and the commit (the
/// orphan sweep) and between loading a record and writing it (a rewrap).
pub(crate) const COMMIT_DELAY_HEADER: &str = "x-coffer-fault-commit-delay-ms";

/// The longest delay a switch accepts.
pub(crate) const MAX_DELAY_MS: u32 = 5_000;

/// The delay a request asked for, if any.
pub(crate) fn commit_delay_ms(header: Option<String>) -> u32 {
    header
        .and_then(|value| value.trim().parse::<u32>().ok())
        .map_or(0, |ms| ms.min(MAX_DELAY_MS))
}

/// Waits `ms` milliseconds (nothing for 0).
pub(crate) async fn pause(ms: u32) {
    if ms > 0 {
        worker::Delay::from(core::time::Duration::from_millis(u64::from(ms))).await;
    }
}

/// `x-coffer-fault-panic` (any value): the request panics before it is
/// routed, as a bug would, so a test can check what the client gets and
/// that the isolate serves the next request (the release build turns a
/// panic into a trap, `scripts/build-worker.sh`).
pub(crate) const PANIC_HEADER: &str = "x-coffer-fault-panic";

/// Panics if the request asked for it.
#[expect(clippy::panic, reason = "the switch exists to panic")]
pub(crate) fn panic_if_asked(header: Option<String>) {
    if header.is_some() {
        panic!("fault injection: {PANIC_HEADER}");
    }
}

/// `x-coffer-fault-clock-offset-ms: N`: the request runs `N` ms away from
/// the real clock (at most [`MAX_CLOCK_OFFSET_MS`] either way), so a test
/// can make audit events as old as the archive needs without writing a row
/// itself: the Worker writes them, dated by its own (shifted) clock.
pub(crate) const CLOCK_OFFSET_HEADER: &str = "x-coffer-fault-clock-offset-ms";

/// 400 days.
pub(crate) const MAX_CLOCK_OFFSET_MS: i64 = 400 * 86_400_000;

/// The clock offset a request asked for, if any.
pub(crate) fn clock_offset_ms(header: Option<String>) -> i64 {
    header
        .and_then(|value| value.trim().parse::<i64>().ok())
        .map_or(0, |ms| ms.clamp(-MAX_CLOCK_OFFSET_MS, MAX_CLOCK_OFFSET_MS))
}

/// `COFFER_FAULT_ARCHIVE_CRASH=put|readback|delete` (a variable: a sweep
/// has no request): the archive sweep stops dead right after that step of
/// its first object, as a run killed there would, so a test can check what
/// the next run makes of it.
pub(crate) const ARCHIVE_CRASH_VAR: &str = "COFFER_FAULT_ARCHIVE_CRASH";

/// Whether the sweep was told to stop after `step`.
pub(crate) fn archive_crashes_after(env: &worker::Env, step: &str) -> bool {
    env.var(ARCHIVE_CRASH_VAR)
        .map(|value| value.to_string() == step)
        .unwrap_or(false)
}
