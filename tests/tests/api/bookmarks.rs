//! D1 sessions (issue 17): every response of a request that reached D1
//! carries the session's bookmark in `x-coffer-bookmark`; sent back, it
//! starts the next request's session at least that new; a malformed one is
//! ignored with a logged reason, never a 500.
//!
//! Locally `wrangler dev` has one database and no replicas, so these tests
//! pin the protocol (the header, its round trip, reads after writes with
//! it, the refusal of garbage), not replica lag.
use coffer_tests::{
    client::{Api, Reply},
    fixtures::{api_for, tenant, token},
    harness::shared,
};
use serde_json::json;

const HEADER: &str = "x-coffer-bookmark";

fn bookmark(reply: &Reply) -> String {
    reply
        .header(HEADER)
        .unwrap_or_else(|| panic!("no {HEADER} on {} {}", reply.status, reply.text))
        .to_string()
}

#[test]
fn every_route_that_reaches_d1_answers_with_a_bookmark() {
    let server = shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let created = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "bookmarks", "credentialName": "B", "credentials": {"k": "bookmark-secret"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    bookmark(&created);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    let bare = id.trim_start_matches("cred-").to_string();
    let conn = Api::new(server, token(owner, "integration_admin"));
    let replies = [
        api.get(&format!("/api/v1/credentials/bookmarks/details?credentialId={id}")),
        api.get(&format!("/api/v1/credentials/bookmarks?credentialId={id}")),
        api.get("/api/v1/credentials"),
        api.get("/api/v1/audit"),
        api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"description": "changed"}),
        ),
        conn.get(&format!("/connection/{bare}")),
        conn.get(&format!("/connection/{bare}/credentials")),
        conn.get("/connection"),
        conn.get(&format!("/connection/{bare}/shares")),
        // A 404 that reached D1 carries one too.
        api.get("/api/v1/credentials/bookmarks/details?credentialId=cred-00000000-0000-4000-8000-000000000000"),
    ];
    for reply in &replies {
        assert!(reply.status < 500, "{}", reply.text);
        bookmark(reply);
    }
}

#[test]
fn a_bookmark_round_trips_and_a_read_with_it_sees_the_write() {
    let server = shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let created = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "bookmarks-ryw", "credentialName": "Before", "credentials": {"k": "ryw-secret"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    let after_create = bookmark(&created);
    let details = format!("/api/v1/credentials/bookmarks-ryw/details?credentialId={id}");

    let read = api
        .clone()
        .header(HEADER, after_create.clone())
        .get(&details);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentialName"], "Before");
    // The session continues from the bookmark sent: never older.
    let echoed = bookmark(&read);
    assert!(echoed >= after_create, "{echoed} older than {after_create}");

    let patched = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentialName": "After"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let after_patch = bookmark(&patched);
    assert!(after_patch > after_create, "a write moves the bookmark on");
    let read = api
        .clone()
        .header(HEADER, after_patch.clone())
        .get(&details);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body["data"]["credentialName"], "After",
        "read-your-writes"
    );
    assert_eq!(read.body["data"]["version"], 2);
    let list = api
        .clone()
        .header(HEADER, after_patch)
        .get("/api/v1/credentials?integrationId=bookmarks-ryw");
    assert_eq!(list.body["data"]["items"][0]["credentialName"], "After");
}

#[test]
fn malformed_bookmarks_are_ignored_with_a_logged_reason() {
    let server = shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let created = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "bookmarks-bad", "credentialName": "B", "credentials": {"k": "bad-bookmark-secret"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    for bad in [
        "not a bookmark",
        "first-primary",
        "ZZZZ-0000-0000",
        "00000085--0000024c",
        &"ab-".repeat(200),
    ] {
        let with = api.clone().header(HEADER, bad);
        for reply in [
            with.get(&format!(
                "/api/v1/credentials/bookmarks-bad/details?credentialId={id}"
            )),
            with.get(&format!(
                "/api/v1/credentials/bookmarks-bad?credentialId={id}"
            )),
            with.get("/api/v1/credentials"),
        ] {
            assert_eq!(reply.status, 200, "{bad:?}: {}", reply.text);
            let served = bookmark(&reply);
            assert_ne!(served, bad, "a malformed bookmark is not echoed");
            let request_id = reply
                .header("x-request-id")
                .expect("request id")
                .to_string();
            let log = server.log_through(&request_id);
            let reason = log.lines().any(|line| {
                line.contains(&request_id)
                    && line.contains("bookmark_ignored")
                    && line.contains("reason")
            });
            assert!(reason, "{bad:?}: no logged reason for request {request_id}");
        }
    }
}
