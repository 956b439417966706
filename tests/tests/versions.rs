//! Secret versions (issue 16): each secret change keeps the previous
//! version, up to `COFFER_SECRET_VERSIONS_KEPT`; versions are listed, read,
//! rolled back and destroyed, each audited; the connection surface always
//! serves the current version.
use coffer_tests::{
    assertions::assert_error,
    client::{Api, Reply},
    fixtures::{api_for, bare_id, share, tenant},
    harness::Server,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// Three versions kept in all, so the cap is reached quickly.
const KEPT: &str = "3";

fn server() -> Server {
    Server::start(&[("COFFER_SECRET_VERSIONS_KEPT", KEPT)])
}

fn create(api: &Api<'_>, secret: &str) -> String {
    let reply = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "versions", "credentialName": "V", "credentials": {"apiKey": secret}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    bare_id(&reply.body["data"]["id"])
}

fn patch_secret(api: &Api<'_>, id: &str, secret: &str) -> Reply {
    api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": {"apiKey": secret}}),
    )
}

fn versions(api: &Api<'_>, id: &str) -> Vec<Value> {
    let reply = api.get(&format!("/api/v1/credentials/{id}/versions"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"]["items"]
        .as_array()
        .expect("items")
        .clone()
}

fn numbers(items: &[Value]) -> Vec<u64> {
    items
        .iter()
        .map(|item| item["secretVersion"].as_u64().expect("secretVersion"))
        .collect()
}

fn read_version(api: &Api<'_>, id: &str, version: u64) -> Reply {
    api.get(&format!(
        "/api/v1/credentials/versions?credentialId={id}&secretVersion={version}"
    ))
}

fn audit(api: &Api<'_>, id: &str) -> Vec<Value> {
    let reply = api.get(&format!("/api/v1/audit?credentialId={id}&limit=100"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"]["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[test]
fn versions_are_kept_capped_listed_read_rolled_back_and_destroyed() {
    let server = server();
    let owner = tenant();
    let admin = api_for(&server, owner, "integration_admin");
    let id = create(&admin, "v-one");
    let one = versions(&admin, &id);
    assert_eq!(numbers(&one), vec![1]);
    assert_eq!(one[0]["current"], true);
    assert_eq!(one[0]["destroyed"], false);
    assert!(one[0]["createdAt"].is_string());
    assert_eq!(one[0]["createdBy"]["email"], "ada@example.com");

    // A metadata change keeps no version; a secret change keeps the old one.
    let reply = admin.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentialName": "renamed"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(numbers(&versions(&admin, &id)), vec![1]);
    assert_eq!(patch_secret(&admin, &id, "v-three").status, 200);
    let listed = versions(&admin, &id);
    assert_eq!(numbers(&listed), vec![3, 1], "newest first");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[1]["current"], false);
    assert!(
        !listed.iter().any(|v| v.to_string().contains("v-one")),
        "metadata only"
    );

    // An earlier version reads back; the current one is the ordinary read.
    let reply = read_version(&admin, &id, 1);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["credentials"]["apiKey"], "v-one");
    assert_eq!(reply.body["data"]["secretVersion"], 1);
    let reply = read_version(&admin, &id, 3);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["credentials"]["apiKey"], "v-three");
    assert_error(
        &read_version(&admin, &id, 2),
        404,
        "SECRET_VERSION_NOT_FOUND",
    );
    assert_error(
        &read_version(&admin, &id, 99),
        404,
        "SECRET_VERSION_NOT_FOUND",
    );
    let reply = admin.get(&format!(
        "/api/v1/credentials/versions?credentialId={id}&secretVersion=zero"
    ));
    assert_eq!(reply.status, 400, "{}", reply.text);

    // The cap: three in all, the oldest dropped by the write past it.
    assert_eq!(patch_secret(&admin, &id, "v-four").status, 200);
    assert_eq!(numbers(&versions(&admin, &id)), vec![4, 3, 1]);
    assert_eq!(patch_secret(&admin, &id, "v-five").status, 200);
    assert_eq!(numbers(&versions(&admin, &id)), vec![5, 4, 3]);
    assert_error(
        &read_version(&admin, &id, 1),
        404,
        "SECRET_VERSION_NOT_FOUND",
    );

    // Rollback to 3: a new version 6 with version 3's secret; history grows.
    let reply = admin.post(
        &format!("/api/v1/credentials/{id}/rollback"),
        &json!({"secretVersion": 3}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["secretVersion"], 6);
    assert_eq!(reply.header("etag"), Some("\"6\""));
    assert_eq!(numbers(&versions(&admin, &id)), vec![6, 5, 4]);
    let current = admin.get(&format!("/api/v1/credentials/versions?credentialId={id}"));
    assert_eq!(current.status, 200, "{}", current.text);
    assert_eq!(current.body["data"]["credentials"]["apiKey"], "v-three");
    // The connection surface serves the current version.
    let reply = admin.get(&format!("/connection/{id}/credentials"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.text.contains("v-three"), "{}", reply.text);

    // Destroy 5: listed as destroyed, unreadable, not a rollback target.
    let reply = admin.delete(&format!("/api/v1/credentials/{id}/versions/5"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    let listed = versions(&admin, &id);
    assert_eq!(numbers(&listed), vec![6, 5, 4]);
    assert_eq!(listed[1]["destroyed"], true);
    assert_eq!(listed[2]["destroyed"], false);
    assert_error(
        &read_version(&admin, &id, 5),
        404,
        "SECRET_VERSION_NOT_FOUND",
    );
    let reply = admin.post(
        &format!("/api/v1/credentials/{id}/rollback"),
        &json!({"secretVersion": 5}),
    );
    assert_error(&reply, 404, "SECRET_VERSION_NOT_FOUND");
    assert_error(
        &admin.delete(&format!("/api/v1/credentials/{id}/versions/5")),
        404,
        "SECRET_VERSION_NOT_FOUND",
    );
    // The current version cannot be destroyed.
    assert_error(
        &admin.delete(&format!("/api/v1/credentials/{id}/versions/6")),
        409,
        "SECRET_VERSION_CURRENT",
    );
    // Version 4 still reads.
    let reply = read_version(&admin, &id, 4);
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"], "v-four",
        "{}",
        reply.text
    );

    // The audit trail names what happened, with the versions.
    let events = audit(&admin, &id);
    let find = |action: &str, version: u64| {
        events.iter().any(|e| {
            e["action"] == action && e["secretVersion"] == version && e["outcome"] == "success"
        })
    };
    assert!(find("credential.read_secret", 1), "{events:?}");
    assert!(find("credential.read_secret", 4), "{events:?}");
    assert!(find("credential.rollback", 3), "{events:?}");
    assert!(find("credential.destroy_version", 5), "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "credential.destroy_version")
            .count(),
        1,
        "a refused destroy leaves no event: {events:?}"
    );
    // Versioned reads are counted like any decrypted read.
    let details = admin.get(&format!(
        "/api/v1/credentials/versions/details?credentialId={id}"
    ));
    let reads = events
        .iter()
        .filter(|e| e["action"] == "credential.read_secret" && e["outcome"] == "success")
        .count();
    assert_eq!(
        details.body["data"]["accessCount"], reads,
        "{}",
        details.text
    );
}

#[test]
fn rollback_honours_if_match_and_roles() {
    let server = server();
    let owner = tenant();
    let admin = api_for(&server, owner, "integration_admin");
    let id = create(&admin, "r-one");
    assert_eq!(patch_secret(&admin, &id, "r-two").status, 200);
    let body = json!({"secretVersion": 1});
    let path = format!("/api/v1/credentials/{id}/rollback");
    let stale = admin.clone().header("if-match", "\"1\"").post(&path, &body);
    assert_error(&stale, 412, "PRECONDITION_FAILED");
    let fresh = admin.clone().header("if-match", "\"2\"").post(&path, &body);
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    assert_eq!(fresh.body["data"]["secretVersion"], 3);
    for (role, status) in [("integration_viewer", 403), ("integration_user", 403)] {
        let reply = api_for(&server, owner, role).post(&path, &body);
        assert_eq!(reply.status, status, "{role}: {}", reply.text);
    }
    let editor = api_for(&server, owner, "integration_editor").post(&path, &body);
    assert_eq!(editor.status, 200, "{}", editor.text);
    for bad in [
        json!({}),
        json!({"secretVersion": 0}),
        json!({"secretVersion": "1"}),
        json!({"secretVersion": 1, "other": 1}),
    ] {
        let reply = admin.post(&path, &bad);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
    }
    // Destroy needs admin.
    let reply = api_for(&server, owner, "integration_editor")
        .delete(&format!("/api/v1/credentials/{id}/versions/1"));
    assert_eq!(reply.status, 403, "{}", reply.text);
}

/// Every new route for the owner, a tenant the record is shared with, and
/// a stranger, each with every role: owners by role, the shared tenant
/// forbidden (versions are the owner's), the stranger not found.
#[test]
fn the_isolation_matrix_covers_the_version_routes() {
    let server = server();
    let (owner, shared, stranger) = (tenant(), tenant(), tenant());
    let admin = api_for(&server, owner, "integration_admin");
    let id = create(&admin, "m-one");
    assert_eq!(patch_secret(&admin, &id, "m-two").status, 200);
    share(&server, owner, &id, shared);
    let roles = [
        ("integration_viewer", 0),
        ("integration_user", 1),
        ("integration_editor", 2),
        ("integration_admin", 3),
    ];
    // (route, needed rank for the owner)
    type Call = fn(&Api<'_>, &str) -> Reply;
    let calls: [(&str, usize, Call); 4] = [
        ("list versions", 0, |api, id| {
            api.get(&format!("/api/v1/credentials/{id}/versions"))
        }),
        ("read version", 1, |api, id| {
            api.get(&format!(
                "/api/v1/credentials/versions?credentialId={id}&secretVersion=1"
            ))
        }),
        ("rollback", 2, |api, id| {
            api.post(
                &format!("/api/v1/credentials/{id}/rollback"),
                &json!({"secretVersion": 1}),
            )
        }),
        ("destroy version", 3, |api, id| {
            api.delete(&format!("/api/v1/credentials/{id}/versions/999"))
        }),
    ];
    for (name, needed, call) in calls {
        for (role, rank) in roles {
            let owner_reply = call(&api_for(&server, owner, role), &id);
            if rank >= needed {
                // Destroying an unknown version is the one 404 an allowed
                // caller gets here.
                let expected = if name == "destroy version" { 404 } else { 200 };
                assert_eq!(
                    owner_reply.status, expected,
                    "{name}, owner {role}: {}",
                    owner_reply.text
                );
            } else {
                assert_eq!(
                    owner_reply.status, 403,
                    "{name}, owner {role}: {}",
                    owner_reply.text
                );
            }
            let shared_reply = call(&api_for(&server, shared, role), &id);
            assert_eq!(
                shared_reply.status, 403,
                "{name}, shared {role}: {}",
                shared_reply.text
            );
            assert!(
                !shared_reply.text.contains("m-one"),
                "{name}, shared {role}"
            );
            let stranger_reply = call(&api_for(&server, stranger, role), &id);
            // A route with a body checks the role before the record (the
            // body is read only for a caller who could ever succeed), as
            // PATCH does: a stranger below the role gets 403, learning
            // nothing of the record either way.
            let expected = if name == "rollback" && rank < needed {
                403
            } else {
                404
            };
            assert_eq!(
                stranger_reply.status, expected,
                "{name}, stranger {role}: {}",
                stranger_reply.text
            );
            assert!(
                !stranger_reply.text.contains("m-one"),
                "{name}, stranger {role}"
            );
        }
    }
    // A random id is as unknown as a stranger's.
    let reply = admin.get(&format!("/api/v1/credentials/{}/versions", Uuid::new_v4()));
    assert_eq!(reply.status, 404, "{}", reply.text);
}
