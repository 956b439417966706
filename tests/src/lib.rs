//! Black-box tests for Coffer: a real `wrangler dev` (workerd with local D1
//! and KV), started and torn down by [`harness`], driven over HTTP.
//!
//! Test binaries live in `tests/tests/`, one per API surface. Tests in one
//! binary share one server and never depend on each other's data: each
//! makes its own tenants with [`fixtures::Tenant::new`].
pub mod browser;
pub mod client;
pub mod fixtures;
pub mod harness;
pub mod idp;
pub mod peer;
pub mod recorder;
