//! The JWKS cache's KV layout: one record per realm in the `CACHE`
//! namespace, under a versioned key so a format change never reads an old
//! record. What a record holds is `auth::jwks`'s business.
use worker::Env;

use super::Io;
use crate::env;

fn key(realm: &str) -> String {
    format!("jwks:v1:{realm}")
}

/// The cached record of `realm`, if any; one KV read, counted in `io`.
///
/// # Errors
///
/// The binding or the KV read failed (the reason, for the log).
pub(crate) async fn get(env: &Env, io: &Io, realm: &str) -> Result<Option<String>, String> {
    let kv = Io::kv_binding(env, env::CACHE)
        .map_err(|error| format!("KV {} unavailable: {error}", env::CACHE))?;
    io.get_text(&kv, &key(realm))
        .await
        .map_err(|e| e.to_string())
}

/// Stores `realm`'s record for `ttl_seconds` (KV refuses less than 60);
/// one KV write, counted in `io`.
///
/// # Errors
///
/// The binding or the KV write failed (the reason, for the log).
pub(crate) async fn put(
    env: &Env,
    io: &Io,
    realm: &str,
    record: String,
    ttl_seconds: u64,
) -> Result<(), String> {
    let kv = Io::kv_binding(env, env::CACHE)?;
    io.put_text(&kv, &key(realm), record, ttl_seconds.max(60))
        .await
        .map_err(|e| e.to_string())
}
