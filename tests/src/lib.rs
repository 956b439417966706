//! Black-box tests for Coffer: a real `wrangler dev` (workerd with local D1
//! and KV), started and torn down by [`harness`], driven over HTTP.
//!
//! The suites that only need the shared server are modules of one test
//! binary, `tests/tests/api/` (one `wrangler dev` for all of them); suites
//! that start servers of their own are binaries beside it. Tests never
//! depend on each other's data: each makes its own tenants
//! ([`fixtures::tenant`]).
extern crate alloc;

pub mod assertions;
pub mod browser;
pub mod capacity;
pub mod client;
pub mod fixtures;
pub mod harness;
pub mod idp;
pub mod oauth;
pub mod peer;
pub mod recorder;
