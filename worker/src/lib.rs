//! Coffer's Worker: the entry points, nothing else.
//!
//! Modules import in one direction only (`tidy_tests.rs` checks it):
//! `lib` → [`http`] (serve: request id, log line, error rendering, CORS) →
//! [`router`] (the route table, dispatch) → `routes` (handlers; `sweep`,
//! the scheduled handler, sits beside them) → `archive` (the audit archive,
//! and the audit event's JSON both use) → `access` (the one gate to a
//! record; `refresh`, OAuth2 token refresh, beside it) → `context` (`Ctx`,
//! `Caller`, `Reply`) → `auth`, `keyring`, `keys` → `store` → `random` → `error` →
//! `env`, `faults`, `plain_vars`, `web_fetch`, `web_url` → `log` →
//! `coffer-core`.
extern crate alloc;

use worker::{event, Context, Date, Env, Request, Result, ScheduleContext, ScheduledEvent};

mod access;
mod archive;
mod auth;
mod context;
mod env;
mod error;
#[cfg(feature = "fault-injection")]
mod faults;
mod http;
mod keyring;
mod keys;
mod log;
#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod plain_vars;
mod random;
mod refresh;
mod router;
mod routes;
mod store;
mod sweep;
#[cfg(test)]
mod tidy_tests;
mod web_fetch;
mod web_url;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    env::warn_once_about_secrets_in_plain_vars();
    http::serve(req, env).await
}

/// The cron in `wrangler.toml` (locally: `GET /__scheduled` under
/// `wrangler dev --test-scheduled`): expiry, rewrap, orphan and token
/// refresh sweeps.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    env::warn_once_about_secrets_in_plain_vars();
    let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
    sweep::run(&env, now_ms).await;
}
