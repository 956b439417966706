//! Names of bindings and variables, once.

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
