//! Names of bindings and variables, once.
use core::sync::atomic::{AtomicBool, Ordering};

/// D1 database: the source of truth for metadata, shares and audit events.
pub(crate) const DB: &str = "DB";
/// KV namespace holding sealed secret blobs under immutable, versioned keys.
pub(crate) const SECRETS: &str = "SECRETS";
/// KV namespace holding cached JWKS documents.
pub(crate) const CACHE: &str = "CACHE";
/// Secret: master keys, `kid:base64(32 bytes)` comma-separated, first active.
pub(crate) const COFFER_KEYS: &str = "COFFER_KEYS";
/// Var: seconds an unreferenced KV blob is kept before the orphan sweep removes it.
pub(crate) const BLOB_RETENTION_SECONDS: &str = "COFFER_BLOB_RETENTION_SECONDS";
/// Var: comma-separated origins allowed to call the API from a browser.
pub(crate) const CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";

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
        worker::console_warn!(
            "{}",
            serde_json::json!({
                "level": "warn",
                "event": "secret_in_plain_vars",
                "variable": name,
                "message": "set it with `wrangler secret put` and remove it from [vars]",
            })
        );
    }
}
