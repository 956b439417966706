//! The unauthenticated operational routes.
use coffer_tests::{client::Api, harness};

#[test]
fn healthz_reports_ok_and_the_crate_version() {
    let server = harness::shared();
    let reply = Api::anonymous(server).get("/healthz");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["status"], "ok");
    assert_eq!(reply.body["version"], env!("CARGO_PKG_VERSION"));
}
