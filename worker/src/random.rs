//! The Worker's one source of randomness: the platform's CSPRNG (Web
//! Crypto's `getRandomValues`, through `getrandom`) behind `rand_core`'s
//! `OsRng`. Ids, blob nonces and the core's sealing all draw from it.
use rand_core::{OsRng, RngCore as _};
use uuid::Uuid;

use crate::error::ApiError;

/// The generator to hand the core's `seal` and `rewrap`.
pub(crate) fn rng() -> OsRng {
    OsRng
}

/// Fills `bytes`; a platform that cannot is an internal error, never a panic.
pub(crate) fn fill(bytes: &mut [u8]) -> Result<(), ApiError> {
    OsRng
        .try_fill_bytes(bytes)
        .map_err(|error| ApiError::internal(format!("randomness unavailable: {error}")))
}

/// A random UUID v4 (request ids, audit event ids, credential ids).
pub(crate) fn uuid() -> Result<Uuid, ApiError> {
    let mut bytes = [0u8; 16];
    fill(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// A fresh nonce for a secret write's KV key (64 random bits, hex).
pub(crate) fn blob_nonce() -> Result<String, ApiError> {
    let mut bytes = [0u8; 8];
    fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
