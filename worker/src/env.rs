//! Names of bindings and variables, once.
use core::sync::atomic::{AtomicBool, Ordering};

/// D1 database: the source of truth for metadata, shares and audit events.
pub(crate) const DB: &str = "DB";
/// KV namespace holding sealed secret blobs under immutable, versioned keys.
pub(crate) const SECRETS: &str = "SECRETS";
/// KV namespace holding cached JWKS documents.
pub(crate) const CACHE: &str = "CACHE";
/// R2 bucket: audit events moved out of D1 after the retention window.
pub(crate) const AUDIT: &str = "AUDIT";
/// The static assets binding (the console's files and the OpenAPI document).
pub(crate) const ASSETS: &str = "ASSETS";
/// Var: days an audit event stays in D1 before the sweep archives it (default 30).
pub(crate) const AUDIT_RETENTION_DAYS: &str = "COFFER_AUDIT_RETENTION_DAYS";
/// Var: archive objects (of at most 1,000 events) the sweep writes per run (default 100).
pub(crate) const AUDIT_ARCHIVE_OBJECTS_PER_RUN: &str = "COFFER_AUDIT_ARCHIVE_OBJECTS_PER_RUN";
/// Secret: master keys, `kid:base64(32 bytes)` comma-separated, first active.
pub(crate) const COFFER_KEYS: &str = "COFFER_KEYS";
/// Var: seconds an unreferenced KV blob is kept before the orphan sweep removes it.
pub(crate) const BLOB_RETENTION_SECONDS: &str = "COFFER_BLOB_RETENTION_SECONDS";
/// Var: secret versions kept per record, the current one included (default 10).
pub(crate) const SECRET_VERSIONS_KEPT: &str = "COFFER_SECRET_VERSIONS_KEPT";
/// Var: comma-separated origins allowed to call the API from a browser.
pub(crate) const CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";
/// Var: a decrypted read refreshes an OAuth2 token expiring within this
/// many seconds (default 60).
pub(crate) const REFRESH_SKEW_SECONDS: &str = "COFFER_REFRESH_SKEW_SECONDS";
/// Var: the sweep refreshes tokens expiring within this many seconds
/// (default 600).
pub(crate) const REFRESH_AHEAD_SECONDS: &str = "COFFER_REFRESH_AHEAD_SECONDS";
/// Var: how long a read waits for another refresher's result, in
/// milliseconds (default 5000).
pub(crate) const REFRESH_WAIT_MS: &str = "COFFER_REFRESH_WAIT_MS";
/// Var: `"true"` lets token endpoints be plain `http` on loopback hosts
/// (local development and tests); otherwise only `https` is called.
pub(crate) const REFRESH_ALLOW_LOOPBACK_HTTP: &str = "COFFER_REFRESH_ALLOW_LOOPBACK_HTTP";
/// Var: which requests get a log line (`all`; `errors`: status 400 and up;
/// `failures`, the default: 500 and up).
pub(crate) const REQUEST_LOG: &str = "COFFER_REQUEST_LOG";

/// Which requests get their JSON log line (`COFFER_REQUEST_LOG`). Errors
/// of the Worker itself (sweeps, config, a 5xx's internal reason) are logged
/// always.
///
/// The default logs only 5xx answers: the platform's own invocation logs
/// already record every request's method, URL, status and duration, the
/// audit trail records every decrypted read, write and refusal on a record,
/// and a console line per request is the largest fixed cost of a request
/// under `wrangler dev` (about half of a 404's time). `errors` adds the 4xx
/// answers with their reason (a refused token's claim rule, for one); `all`
/// adds every request with its D1 and KV round trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestLog {
    All,
    Errors,
    Failures,
}

impl RequestLog {
    /// The configured level; unset, empty or unknown: `failures`.
    pub(crate) fn from_env(env: &worker::Env) -> Self {
        Self::parse(env.var(REQUEST_LOG).map(|v| v.to_string()).ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Self {
        match value {
            Some("all") => Self::All,
            Some("errors") => Self::Errors,
            _ => Self::Failures,
        }
    }

    /// Whether a request answered with `status` is logged.
    pub(crate) fn logs(self, status: u16) -> bool {
        match self {
            Self::All => true,
            Self::Errors => status >= 400,
            Self::Failures => status >= 500,
        }
    }
}

/// Secrets that the `wrangler.toml` this Worker was built with puts in
/// plain `[vars]`, comma-separated (see `plain_vars.rs` and `build.rs`).
const SECRETS_IN_PLAIN_VARS: &str = env!("COFFER_SECRETS_IN_VARS");

/// Logs one warning per isolate for each secret found in plain `[vars]`:
/// it still works, but its value sits in the repository and in the
/// dashboard's plain-text settings.
pub(crate) fn warn_once_about_secrets_in_plain_vars() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if SECRETS_IN_PLAIN_VARS.is_empty() || WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    for name in SECRETS_IN_PLAIN_VARS.split(',') {
        crate::log::json(
            crate::log::Console::Warn,
            &serde_json::json!({
                "level": "warn",
                "event": "secret_in_plain_vars",
                "variable": name,
                "message": "set it with `wrangler secret put` and remove it from [vars]",
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::RequestLog;

    #[test]
    fn request_log_defaults_to_server_errors_only() {
        for (value, level) in [
            (None, RequestLog::Failures),
            (Some(""), RequestLog::Failures),
            (Some("verbose"), RequestLog::Failures),
            (Some("failures"), RequestLog::Failures),
            (Some("errors"), RequestLog::Errors),
            (Some("all"), RequestLog::All),
        ] {
            assert_eq!(RequestLog::parse(value), level, "{value:?}");
        }
        assert!(!RequestLog::Failures.logs(404));
        assert!(RequestLog::Failures.logs(500));
        assert!(RequestLog::Errors.logs(401));
        assert!(!RequestLog::Errors.logs(200));
        assert!(RequestLog::All.logs(200));
    }
}
