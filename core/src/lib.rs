//! Coffer's core: every decision about who may see what, and every byte of
//! crypto, without I/O.
//!
//! # Invariants
//!
//! - `no_std` + `alloc`: the crate never touches a clock, an RNG, the network
//!   or storage. Time and randomness are parameters, so the same tests run
//!   natively and in browsers.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(all(test, target_arch = "wasm32"))]
mod browser;
mod id;
mod principal;

pub use id::{CredentialId, IdError, Role, TenantId};
pub use principal::{NotATenantOfToken, Principal};

/// The crate version, reported by `/healthz`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn version_is_semver() {
        assert_eq!(super::VERSION.split('.').count(), 3);
    }
}
