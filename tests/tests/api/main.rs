//! The black-box suites that need nothing but the shared server
//! ([`coffer_tests::harness::shared`]), as modules of one test binary, so
//! one `wrangler dev` serves them all. Each test makes its own tenants and
//! never depends on another's data.
//!
//! Suites that start servers of their own (other variables, the
//! fault-injection build, restarts, a quiet server for counting) stay
//! binaries of their own beside this directory.
extern crate alloc;

mod bodies;
mod bookmarks;
mod connection;
mod connection_isolation;
mod connection_pages;
mod connection_shares;
mod contract;
mod credentials;
mod credentials_errors;
mod credentials_load;
mod credentials_matrix;
mod health;
