//! Coffer's core: every decision about who may see what, and every byte of
//! crypto, without I/O.
//!
//! The worker loads, the core decides, the worker stores. Everything here is
//! a pure function of its arguments, so the same unit tests run natively and
//! in browsers (`wasm-bindgen-test`).
//!
//! # Invariants
//!
//! - `no_std` + `alloc`: the crate never touches a clock, an RNG, the network
//!   or storage. Time (`now: Timestamp`) and randomness
//!   (`rng: &mut (impl RngCore + CryptoRng)`) are parameters.
//! - Its dependency tree holds no `worker`, `wasm-bindgen` or `js-sys`.
//! - Parsing is the only way to build a validated value: [`TenantId`],
//!   [`CredentialId`], [`IntegrationId`], [`ApiVersion`], [`Timestamp`],
//!   [`Keyring`]. A [`Principal`] exists only after claim validation, which
//!   includes checking that its issuer may speak for every tenant it names
//!   ([`TenantScope`]).
//! - Each limit of the contract is stated once, in [`limits`].
//! - Policy checks visibility before role: a stranger learns nothing
//!   ([`Denial::NotVisible`]) whatever its role; see [`decide`].
//! - Every failure to open a sealed secret is the one opaque
//!   [`OpenError::Undecryptable`]. Plaintext secrets and key bytes live in
//!   buffers wiped on drop (`zeroize`), and no `Debug` impl prints them.
//! - Errors are `#[non_exhaustive]` enums per concern whose `Display` is a
//!   lowercase phrase without a trailing period, fit to show a client.
//!
//! # Envelope encryption and the key hierarchy
//!
//! Three layers of AES-256-GCM keys:
//!
//! ```text
//! master key (KEK, COFFER_KEYS)       one per deployment, in the Worker's secrets
//!  └─ tenant key (32 random bytes)    one per tenant and version, wrapped under a KEK, in D1
//!      └─ data-key key (32 bytes)     one per tenant and version, wrapped under the tenant key, in KV
//!          └─ data key (DEK)          one per secret version, wrapped under the data-key key, in D1
//!              └─ sealed blob         the secret's compact JSON under the DEK, in KV
//! ```
//!
//! Each secret version is sealed under a fresh random 256-bit DEK and a
//! random 96-bit nonce ([`seal_with_tenant_key`]); the DEK is wrapped under
//! the tenant's data-key key ([`TenantKey`], the unwrapped form), which is
//! wrapped under the tenant key (the "KV half"), itself wrapped under the
//! active KEK of the [`Keyring`] ([`new_tenant_key`], [`open_tenant_key`]).
//! Master-key rotation ([`rewrap_tenant_key`]) rewraps tenant keys only, so
//! its cost follows the number of tenants, not of secrets; tenant-key
//! rotation ([`rewrap_data_key`]) rewraps that tenant's DEKs; blobs never
//! change.
//!
//! Crypto-shredding destroys a tenant's keys in both stores. The two
//! halves of a tenant's key material live apart: the tenant key in D1, the
//! data-key key in KV. A D1 copy from before the deletion (a backup, Time
//! Travel) brings back the tenant key but not the KV half; KV as it is now
//! holds no half. So neither a restored D1 beside today's KV, nor today's
//! D1 beside anything, unwraps a single DEK.
//!
//! Records written before the hierarchy have their DEK wrapped under a KEK
//! directly (wrapped DEK format `0x01`): [`open`] and [`rewrap`] still read
//! them, and [`migrate_data_key`] moves them under a tenant key (`0x02`).
//!
//! Both formats start with a format byte so that a new format can be
//! introduced beside the old one and old rows read until rewritten; an
//! unknown format byte fails to open like any other damage. Integers are
//! big-endian; `‖` is concatenation.
//!
//! **Changing a format.** Every stored secret was sealed by some earlier
//! build, and only a write or a rewrap ever replaces it. So a change to
//! either layout, its AAD or its algorithms is a *new* format byte with its
//! own writer, and the reader of every older byte stays. The golden vectors
//! in `core/tests/vectors/` (blobs and wrapped DEKs sealed by the format
//! `0x01` code, with their keys) are checked by `tests/golden_vectors.rs`
//! natively and in browsers: they are never regenerated, and a new format
//! adds a file of its own beside them.
//!
//! ## Sealed blob, format `0x01` (KV)
//!
//! ```text
//! offset  length  field
//! 0       1       format = 0x01
//! 1       12      nonce (random)
//! 13      n       AES-256-GCM ciphertext of the secret's compact JSON, under the DEK
//! 13+n    16      GCM tag
//! AAD = "coffer/secret" ‖ 0x01 ‖ tenant uuid (16) ‖ credential uuid (16) ‖ version (u64, 8)
//! ```
//!
//! Length: 29 + n bytes, n ≤ 65 536.
//!
//! ## Wrapped DEK, format `0x01` (D1)
//!
//! ```text
//! offset  length  field
//! 0       1       format = 0x01
//! 1       1       k = length of the key id, 1..=64
//! 2       k       key id, ASCII [A-Za-z0-9._-]
//! 2+k     12      nonce (random)
//! 14+k    32      AES-256-GCM ciphertext of the DEK, under the KEK named by the key id
//! 46+k    16      GCM tag
//! AAD = "coffer/dek" ‖ 0x01 ‖ k ‖ key id ‖ tenant uuid (16) ‖ credential uuid (16) ‖ version (u64, 8)
//! ```
//!
//! Length: 62 + k bytes. The key id is inside the wrapped DEK (so it opens
//! without the D1 column) and inside its AAD (so it cannot be edited to
//! point at another key).
//!
//! ## Wrapped tenant key, format `0x01` (D1)
//!
//! ```text
//! offset  length  field
//! 0       1       format = 0x01
//! 1       1       k = length of the key id, 1..=64
//! 2       k       id of the KEK, ASCII [A-Za-z0-9._-]
//! 2+k     4       tenant-key version (u32)
//! 6+k     12      nonce (random)
//! 18+k    32      AES-256-GCM ciphertext of the tenant key, under the KEK
//! 50+k    16      GCM tag
//! AAD = "coffer/tenant-key" ‖ 0x01 ‖ k ‖ key id ‖ tenant uuid (16) ‖ tenant-key version (u32, 4)
//! ```
//!
//! Length: 66 + k bytes. The key id and version are inside the wrap (so it
//! opens without its D1 columns) and inside the AAD (so neither can be
//! edited, nor the wrap moved to another tenant or version).
//!
//! ## KV half, format `0x01` (KV): the data-key key under the tenant key
//!
//! ```text
//! offset  length  field
//! 0       1       format = 0x01
//! 1       4       tenant-key version (u32)
//! 5       12      nonce (random)
//! 17      32      AES-256-GCM ciphertext of the data-key key, under the tenant key
//! 49      16      GCM tag
//! AAD = "coffer/tenant-kv-key" ‖ 0x01 ‖ tenant uuid (16) ‖ tenant-key version (u32, 4)
//! ```
//!
//! Length: 65 bytes.
//!
//! ## Wrapped DEK, format `0x02` (D1): under a tenant's data-key key
//!
//! ```text
//! offset  length  field
//! 0       1       format = 0x02
//! 1       4       tenant-key version (u32)
//! 5       12      nonce (random)
//! 17      32      AES-256-GCM ciphertext of the DEK, under the data-key key
//! 49      16      GCM tag
//! AAD = "coffer/dek" ‖ 0x02 ‖ tenant-key version (u32, 4) ‖ tenant uuid (16) ‖ credential uuid (16) ‖ version (u64, 8)
//! ```
//!
//! Length: 65 bytes. The tenant comes from the [`Binding`], so a DEK opens
//! only under its own tenant's key of the version it names.
//!
//! The [`Binding`] (tenant, credential, version) in both AADs means a blob
//! or wrapped key copied to another record, tenant or version fails to
//! open. The distinct labels (and format bytes) keep the AADs of the
//! layers from ever coinciding.
//!
//! Nonce budget: NIST SP 800-38D §8.3 allows 2^32 random 96-bit nonces per
//! key. A DEK encrypts once; a KEK once per tenant key wrapped or rewrapped
//! (and, for legacy rows, per DEK); a tenant key once per secret version
//! of its tenant or rewrap, so rotate it well before four billion of those.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod api_version;
#[cfg(all(test, target_arch = "wasm32"))]
mod browser;
mod claims;
mod envelope;
mod exact;
mod id;
mod keyring;
mod lifecycle;
mod policy;
mod principal;
mod refresh;
mod tenant_key;
mod tenant_scope;
mod validate;
mod version;

pub use api_version::{ApiVersion, ApiVersionError};
pub use claims::{ClaimError, ClaimRules, IdentityClaims, TokenClaims, LEEWAY_SECONDS};
pub use envelope::{
    open, rewrap, seal, wrapped_kid, Binding, OpenError, Rewrapped, SealError, Sealed,
};
pub use id::{CredentialId, IdError, IntegrationId, Role, TenantId};
pub use keyring::{Keyring, KeyringError};
pub use lifecycle::{
    check_secret_servable, check_transition, effective_status, is_expired, NotActive, Status,
    Timestamp, TimestampError, TransitionError,
};
pub use policy::{admit, decide, Action, Denial, Forbidden, Relation};
pub use principal::{NotATenantOfToken, Principal};
pub use tenant_key::{
    data_key_tenant_version, migrate_data_key, new_tenant_key, open_tenant_key,
    open_with_tenant_key, rewrap_data_key, rewrap_tenant_key, seal_with_tenant_key,
    tenant_key_header, TenantKey, WrappedTenantKey,
};
/// OAuth2 token refresh: grants, token requests and responses, backoff, lease.
pub mod oauth {
    pub use crate::refresh::{
        after_failure, backoff_ms, check_endpoint, clean_message, client_auth, grant_for,
        lease_until, merge_secret, new_expiry, parse_token_response, plan, secret_strings,
        token_request, ClientAuth, Failure, Grant, Plan, RefreshError, State, TokenRequest, Tokens,
        BACKOFF_BASE_MS, BACKOFF_MAX_MS, LEASE_MS, MAX_ERROR_MESSAGE_CHARS,
        MAX_TOKEN_RESPONSE_BYTES, TOKEN_TIMEOUT_MS,
    };
}
pub use tenant_scope::TenantScope;
pub use validate::{
    compact_json_len, limits, parse_page_limit, validate_body_size, validate_description,
    validate_metadata, validate_name, validate_scopes, validate_secret, AuthType, Unit,
    ValidationError,
};
pub use version::{Version, VersionError};

/// Re-exported so the worker implements the same `rand_core` traits that
/// [`seal`] and [`rewrap`] take (rand_core 0.6).
pub use rand_core::{CryptoRng, RngCore};
/// Re-exported so callers name the same `Zeroizing` that [`open`] and
/// [`validate_secret`] return.
pub use zeroize::Zeroizing;

/// The crate version, reported by `/healthz`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A SemVer 2.0.0 numeric identifier (§2, §9): digits, no leading zero.
    fn numeric_identifier(text: &str) -> Option<u64> {
        let leading_zero = text.len() > 1 && text.starts_with('0');
        if text.is_empty() || leading_zero || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    }

    /// Dot-separated identifiers of `[0-9A-Za-z-]` (§9, §10); numeric
    /// ones in a pre-release have no leading zero.
    fn identifiers(text: &str, pre_release: bool) -> bool {
        text.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !(pre_release
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && id.len() > 1
                    && id.starts_with('0'))
        })
    }

    /// Parses `MAJOR.MINOR.PATCH[-pre-release][+build]` per SemVer 2.0.0.
    fn parse_semver(version: &str) -> Option<(u64, u64, u64)> {
        let (version, build) = match version.split_once('+') {
            Some((version, build)) => (version, Some(build)),
            None => (version, None),
        };
        let (core, pre_release) = match version.split_once('-') {
            Some((core, pre_release)) => (core, Some(pre_release)),
            None => (version, None),
        };
        if !pre_release.is_none_or(|text| identifiers(text, true))
            || !build.is_none_or(|text| identifiers(text, false))
        {
            return None;
        }
        let mut numbers = core.split('.').map(numeric_identifier);
        match (
            numbers.next(),
            numbers.next(),
            numbers.next(),
            numbers.next(),
        ) {
            (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) => {
                Some((major, minor, patch))
            }
            _ => None,
        }
    }

    #[test]
    fn the_semver_parser_knows_good_from_bad() {
        for good in [
            "0.1.0",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0+20130313144700",
            "10.20.30-rc-1+build.5",
        ] {
            assert!(parse_semver(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "0.1",
            "0.1.0.0",
            "01.1.0",
            "0.1.x",
            "0.1.0-",
            "0.1.0-01",
            "0.1.0+",
            "0.1.0-a..b",
            " 0.1.0",
            "v0.1.0",
        ] {
            assert!(parse_semver(bad).is_none(), "{bad}");
        }
    }

    /// `/healthz` reports the version; deployments compare it.
    #[test]
    fn version_is_semver() {
        let parsed = parse_semver(super::VERSION);
        let expected = (
            env!("CARGO_PKG_VERSION_MAJOR").parse().ok(),
            env!("CARGO_PKG_VERSION_MINOR").parse().ok(),
            env!("CARGO_PKG_VERSION_PATCH").parse().ok(),
        );
        assert_eq!(
            parsed.map(|(major, minor, patch)| (Some(major), Some(minor), Some(patch))),
            Some(expected),
            "{}",
            super::VERSION
        );
    }
}
