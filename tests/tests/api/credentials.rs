//! The credentials surface, `/api/v1/credentials`, black-box: success
//! shapes against the seed (`seeds/credential-details.txt`), ids, the
//! lifecycle, `If-Match`, delete, and D1's sharp edges (NULL, undefined,
//! integers above 2^53).
//!
//! Errors are in `credentials_errors.rs`, the role × tenant matrix in
//! `credentials_matrix.rs`, concurrency, pagination and a tampered blob in
//! `credentials_load.rs`, a restart in `credentials_restart.rs`.

use alloc::collections::BTreeSet;

use coffer_tests::{
    assertions::{assert_error, assert_invalid, assert_not_logged, assert_timestamp},
    client::{Api, Reply},
    fixtures::{
        api_for, bare_id, create_credential, credential_body, now, storage_server, tenant, token,
        TokenBuilder, SEED_DETAIL_FIELDS,
    },
    harness,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// The keys of `data`: the seed's fields plus `version`, which the
/// contract's Records list names (and `credentials` on a decrypted read).
fn assert_detail_keys(data: &Value, with_secret: bool) {
    let keys: BTreeSet<&str> = data
        .as_object()
        .unwrap_or_else(|| panic!("data is not an object: {data}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected: BTreeSet<&str> = SEED_DETAIL_FIELDS.into_iter().collect();
    expected.insert("version");
    // Token refresh state (issue 14): `null` for records that do not refresh.
    expected.insert("refresh");
    if with_secret {
        expected.insert("credentials");
    }
    assert_eq!(keys, expected, "{data}");
}

/// The success envelope: `{"success": true, "message", "data", "timestamp"}`.
fn assert_success(reply: &Reply, status: u16) -> &Value {
    assert_eq!(reply.status, status, "{}", reply.text);
    let keys: BTreeSet<&str> = reply
        .body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {}", reply.text))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["success", "message", "data", "timestamp"]),
        "{}",
        reply.text
    );
    assert_eq!(reply.body["success"], true);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{}",
        reply.text
    );
    let at = assert_timestamp(&reply.body["timestamp"], "envelope timestamp");
    assert!(
        (at - now() * 1000).abs() < 120_000,
        "timestamp {at} is not now"
    );
    &reply.body["data"]
}

fn etag(reply: &Reply) -> Option<&str> {
    reply.header("etag")
}

fn is_lower_uuid(text: &str) -> bool {
    Uuid::parse_str(text).is_ok_and(|uuid| uuid.hyphenated().to_string() == text)
}

#[test]
fn create_then_details_then_decrypted_read() {
    let server = harness::shared();
    let owner = tenant();
    let api =
        Api::new(server, token(owner, "integration_admin")).header("x-tenantid", owner.to_string());
    let created = api.post(
        "/api/v1/credentials",
        &json!({
            "integrationId": "servicenow-prod-001",
            "credentialName": "ServiceNow Production",
            "credentials": {"accessToken": "at-smoke-123", "refreshToken": "rt-smoke-456"},
        }),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    assert!(!created.text.contains("at-smoke-123"));

    let details = api.get("/api/v1/credentials/servicenow-prod-001/details");
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["id"], id.as_str());
    assert!(!details.text.contains("at-smoke-123"));

    let read = api.get("/api/v1/credentials/servicenow-prod-001");
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body["data"]["credentials"]["accessToken"],
        "at-smoke-123"
    );
    assert_eq!(read.body["data"]["accessCount"], 1);
    assert_not_logged(server, &["at-smoke-123", "rt-smoke-456"]);
}

#[test]
fn every_success_shape_matches_the_seed_field_by_field() {
    let server = harness::shared();
    let owner = tenant();
    let creator = TokenBuilder::new(owner, "integration_admin")
        .claim("name", json!("Grace Example"))
        .claim("email", json!("grace@example.com"))
        .claim("tenant_name", json!("Example Widgets Ltd"));
    let creator_sub = creator.claims()["sub"].clone();
    let api = Api::new(server, creator.sign()).header("x-tenantid", owner.to_string());
    let secret = json!({"accessToken": "at-shape-7f3a", "refreshToken": "rt-shape-91bc"});
    let metadata = json!({
        "environment": "production",
        "instanceUrl": "https://instance.example.com",
        "version": "tokyo",
    });
    let before = now() * 1000;
    let created = api.post(
        "/api/v1/credentials",
        &json!({
            "integrationId": "servicenow-prod-001",
            "credentialName": "ServiceNow Production",
            "description": "OAuth credentials for the production instance",
            "authType": "oauth2_bearer",
            "scopes": ["read", "write"],
            "tokenEndpoint": "https://instance.example.com/oauth_token.do",
            "authorizationEndpoint": "https://instance.example.com/oauth_auth.do",
            "metadata": metadata,
            "expiresAt": "2099-07-10T14:15:00.000Z",
            "credentials": secret,
        }),
    );
    let data = assert_success(&created, 201).clone();
    assert_eq!(etag(&created), Some("\"1\""));
    assert_detail_keys(&data, false);
    let rendered = data["id"].as_str().expect("id");
    let id = bare_id(&data["id"]);
    assert!(is_lower_uuid(&id), "id {rendered}");
    assert_eq!(
        Uuid::parse_str(&id).expect("uuid").get_version_num(),
        4,
        "ids are UUID v4"
    );
    assert_eq!(data["integrationId"], "servicenow-prod-001");
    assert_eq!(data["credentialName"], "ServiceNow Production");
    assert_eq!(
        data["description"],
        "OAuth credentials for the production instance"
    );
    assert_eq!(data["authType"], "oauth2_bearer");
    assert_eq!(data["scopes"], json!(["read", "write"]));
    assert_eq!(
        data["tokenEndpoint"],
        "https://instance.example.com/oauth_token.do"
    );
    assert_eq!(
        data["authorizationEndpoint"],
        "https://instance.example.com/oauth_auth.do"
    );
    assert_eq!(data["metadata"], metadata);
    assert_eq!(data["status"], "active");
    assert_eq!(data["expiresAt"], "2099-07-10T14:15:00.000Z");
    assert_eq!(data["isExpired"], false);
    let created_at = assert_timestamp(&data["createdAt"], "createdAt");
    assert!(
        created_at >= before - 2000 && created_at <= now() * 1000 + 2000,
        "createdAt {created_at} is not now"
    );
    let person = json!({"id": creator_sub, "name": "Grace Example", "email": "grace@example.com"});
    assert_eq!(data["createdBy"], person);
    assert_eq!(data["updatedAt"], data["createdAt"]);
    assert_eq!(data["updatedBy"], person);
    assert_eq!(data["lastAccessedAt"], Value::Null);
    assert_eq!(data["accessCount"], 0);
    assert_eq!(data["version"], 1);
    assert_eq!(
        data["tenant"],
        json!({"id": owner.to_string(), "name": "Example Widgets Ltd"})
    );
    assert!(!created.text.contains("at-shape-7f3a"));

    // Details: the same object, read back.
    let details = api.get("/api/v1/credentials/servicenow-prod-001/details");
    let shown = assert_success(&details, 200);
    assert_eq!(shown, &data);
    assert_eq!(etag(&details), Some("\"1\""));

    // Decrypted read: the same plus `credentials`, counted.
    let read = api.get("/api/v1/credentials/servicenow-prod-001");
    let with_secret = assert_success(&read, 200).clone();
    assert_detail_keys(&with_secret, true);
    assert_eq!(with_secret["credentials"], secret);
    assert_eq!(with_secret["accessCount"], 1);
    let accessed = assert_timestamp(&with_secret["lastAccessedAt"], "lastAccessedAt");
    assert!(accessed >= created_at);
    assert_eq!(etag(&read), Some("\"1\""), "reads leave the version alone");
    for field in SEED_DETAIL_FIELDS {
        if !matches!(field, "accessCount" | "lastAccessedAt") {
            assert_eq!(with_secret[field], data[field], "{field}");
        }
    }

    // Details afterwards: the read is counted, the secret still absent.
    let after = api.get(&format!(
        "/api/v1/credentials/servicenow-prod-001/details?credentialId={rendered}"
    ));
    let after_data = assert_success(&after, 200);
    assert_eq!(after_data["accessCount"], 1);
    assert_eq!(after_data["lastAccessedAt"], with_secret["lastAccessedAt"]);
    assert_eq!(after_data["version"], 1);

    // List: items of the same shape, and nextCursor.
    let list = api.get("/api/v1/credentials");
    let page = assert_success(&list, 200);
    let keys: BTreeSet<&str> = page
        .as_object()
        .expect("page")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["items", "nextCursor"]));
    assert_eq!(page["nextCursor"], Value::Null);
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_detail_keys(&items[0], false);
    assert_eq!(&items[0], after_data);

    assert!(!details.text.contains("at-shape-7f3a"));
    assert!(!list.text.contains("at-shape-7f3a"));
    assert!(!after.text.contains("rt-shape-91bc"));
    assert_not_logged(server, &["at-shape-7f3a", "rt-shape-91bc"]);
}

#[test]
fn tenant_name_is_null_without_the_creators_claim_and_stays_the_creators() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &api,
        &credential_body("hubspot", "HubSpot", json!({"apiKey": "hs-k-1"})),
    );
    let details = api.get(&format!(
        "/api/v1/credentials/hubspot/details?credentialId={id}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(
        details.body["data"]["tenant"],
        json!({"id": owner.to_string(), "name": null})
    );

    // A later editor's token with another tenant_name does not rename it.
    let named = TokenBuilder::new(owner, "integration_editor")
        .claim("tenant_name", json!("Example Widgets Ltd"))
        .sign();
    let editor = Api::new(server, named).header("x-tenantid", owner.to_string());
    let patched = editor.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentialName": "HubSpot CRM"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["data"]["tenant"]["name"], Value::Null);
}

#[test]
fn credential_id_is_accepted_bare_prefixed_and_in_any_case() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &api,
        &credential_body("salesforce", "Salesforce", json!({"token": "sf-tok-1"})),
    );
    let rendered = format!("cred-{id}");
    let forms = [
        id.clone(),
        rendered.clone(),
        id.to_uppercase(),
        rendered.to_uppercase(),
        format!("Cred-{}", id.to_uppercase()),
    ];
    for form in &forms {
        let details = api.get(&format!(
            "/api/v1/credentials/salesforce/details?credentialId={form}"
        ));
        assert_eq!(details.status, 200, "{form}: {}", details.text);
        assert_eq!(details.body["data"]["id"], rendered.as_str(), "{form}");
        let read = api.get(&format!(
            "/api/v1/credentials/salesforce?credentialId={form}"
        ));
        assert_eq!(read.status, 200, "{form}: {}", read.text);
        assert_eq!(read.body["data"]["id"], rendered.as_str(), "{form}");
        let audit = api.get(&format!("/api/v1/audit?credentialId={form}"));
        assert_eq!(audit.status, 200, "{form}: {}", audit.text);
        let items = audit.body["data"]["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{form}");
        assert!(
            items.iter().all(|e| e["credentialId"] == rendered.as_str()),
            "{form}: {}",
            audit.text
        );
    }
    // The write routes take the path id in any form as well.
    let patched = api.patch(
        &format!("/api/v1/credentials/{}", rendered.to_uppercase()),
        &json!({"description": "upper-case path id"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["data"]["id"], rendered.as_str());
    let deleted = api.delete(&format!("/api/v1/credentials/{}", id.to_uppercase()));
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_not_logged(server, &["sf-tok-1"]);
}

#[test]
fn details_without_credential_id_picks_the_newest_active_record() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let older = create_credential(
        &api,
        &credential_body("jira", "Jira old", json!({"k": "j-1"})),
    );
    let newer = create_credential(
        &api,
        &credential_body("jira", "Jira new", json!({"k": "j-2"})),
    );
    let details = api.get("/api/v1/credentials/jira/details");
    assert_eq!(details.body["data"]["id"], format!("cred-{newer}"));
    // The newest is made inactive: the older active one is chosen.
    let patched = api.patch(
        &format!("/api/v1/credentials/{newer}"),
        &json!({"status": "inactive"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let details = api.get("/api/v1/credentials/jira/details");
    assert_eq!(details.body["data"]["id"], format!("cred-{older}"));
    let read = api.get("/api/v1/credentials/jira");
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentials"], json!({"k": "j-1"}));
    // None active: the newest of all.
    let patched = api.patch(
        &format!("/api/v1/credentials/{older}"),
        &json!({"status": "inactive"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let details = api.get("/api/v1/credentials/jira/details");
    assert_eq!(details.body["data"]["id"], format!("cred-{newer}"));
    assert_eq!(details.body["data"]["status"], "inactive");
    // A credentialId of another integration is not found under this one.
    let other = create_credential(
        &api,
        &credential_body("zendesk", "Zendesk", json!({"k": "z"})),
    );
    let wrong = api.get(&format!(
        "/api/v1/credentials/jira/details?credentialId={other}"
    ));
    assert_error(&wrong, 404, "CREDENTIAL_NOT_FOUND");
    let wrong = api.get(&format!("/api/v1/credentials/jira?credentialId={other}"));
    if wrong.status == 500 {
        let rid = wrong.header("x-request-id").unwrap_or("?").to_string();
        for l in server.log().lines() {
            if l.contains(&rid) || l.contains("rror") {
                eprintln!("LOG {l}");
            }
        }
    }
    assert_error(&wrong, 404, "CREDENTIAL_NOT_FOUND");
}

#[test]
fn patch_with_if_match_changes_fields_and_increments_the_etag() {
    let guard = storage_server();
    let server: &harness::Server = &guard;
    let owner = tenant();
    let admin = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &admin,
        &credential_body("github", "GitHub", json!({"token": "ghp-old-0001"})),
    );
    let created_at = admin
        .get(&format!(
            "/api/v1/credentials/github/details?credentialId={id}"
        ))
        .body["data"]["createdAt"]
        .clone();

    let editor_token = TokenBuilder::new(owner, "integration_editor")
        .claim("name", json!("Linus Example"))
        .claim("email", json!("linus@example.com"));
    let editor_sub = editor_token.claims()["sub"].clone();
    let editor = Api::new(server, editor_token.sign())
        .header("x-tenantid", owner.to_string())
        .header("if-match", "\"1\"");
    let patched = editor.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({
            "credentialName": "GitHub Enterprise",
            "description": "Org-wide token",
            "scopes": ["repo"],
            "tokenEndpoint": "https://github.example.com/token",
            "authorizationEndpoint": "https://github.example.com/authorize",
            "metadata": {"org": "example"},
            "expiresAt": "2098-01-02T03:04:05.678Z",
        }),
    );
    let data = assert_success(&patched, 200).clone();
    assert_eq!(etag(&patched), Some("\"2\""));
    assert_detail_keys(&data, false);
    assert_eq!(data["version"], 2);
    assert_eq!(data["credentialName"], "GitHub Enterprise");
    assert_eq!(data["description"], "Org-wide token");
    assert_eq!(data["scopes"], json!(["repo"]));
    assert_eq!(data["tokenEndpoint"], "https://github.example.com/token");
    assert_eq!(
        data["authorizationEndpoint"],
        "https://github.example.com/authorize"
    );
    assert_eq!(data["metadata"], json!({"org": "example"}));
    assert_eq!(data["expiresAt"], "2098-01-02T03:04:05.678Z");
    assert_eq!(data["createdAt"], created_at);
    assert!(
        assert_timestamp(&data["updatedAt"], "updatedAt")
            >= assert_timestamp(&created_at, "createdAt")
    );
    assert_eq!(
        data["updatedBy"],
        json!({"id": editor_sub, "name": "Linus Example", "email": "linus@example.com"})
    );
    assert_ne!(data["createdBy"], data["updatedBy"]);

    // The same If-Match again is stale now.
    let stale = editor.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentialName": "Stale write"}),
    );
    assert_error(&stale, 412, "PRECONDITION_FAILED");
    let details = admin.get(&format!(
        "/api/v1/credentials/github/details?credentialId={id}"
    ));
    assert_eq!(details.body["data"]["credentialName"], "GitHub Enterprise");
    assert_eq!(details.body["data"]["version"], 2);
    assert_eq!(etag(&details), Some("\"2\""));

    // metadata is replaced whole; the secret gets a new version and the old
    // blob is destroyed.
    let rotate = admin.clone().header("if-match", "\"2\"").patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"metadata": {"team": "platform"}, "credentials": {"token": "ghp-new-0002"}}),
    );
    assert_eq!(rotate.status, 200, "{}", rotate.text);
    assert_eq!(etag(&rotate), Some("\"3\""));
    assert_eq!(rotate.body["data"]["metadata"], json!({"team": "platform"}));
    assert!(!rotate.text.contains("ghp-new-0002"));
    let read = admin.get(&format!("/api/v1/credentials/github?credentialId={id}"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body["data"]["credentials"],
        json!({"token": "ghp-new-0002"})
    );
    // The replaced secret is kept as an earlier version (issue 16), its
    // blob with it; which blobs KV holds no API shows, so this reads KV out
    // of band: a read-only check, done while no request is in flight
    // (`storage_server`).
    let keys = server.blob_keys(&format!("secret/v1/{owner}/{id}/"));
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Two blobs: secret version 1, kept, and 3, current (`<version>.<nonce>`).
    assert_eq!(names.len(), 2, "{keys:?}");
    assert!(
        names[0].starts_with(&format!("secret/v1/{owner}/{id}/1.")),
        "{keys:?}"
    );
    assert!(
        names[1].starts_with(&format!("secret/v1/{owner}/{id}/3.")),
        "{keys:?}"
    );

    // A weak tag never matches (RFC 9110 §13.1.1, strong comparison); `*`
    // matches any current record.
    let weak = admin.clone().header("if-match", "W/\"3\"").patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"description": "weak tag"}),
    );
    assert_eq!(weak.status, 412, "{}", weak.text);
    let star = admin.clone().header("if-match", "*").patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"description": "star"}),
    );
    assert_eq!(star.status, 200, "{}", star.text);
    assert_eq!(etag(&star), Some("\"4\""));
    assert_not_logged(server, &["ghp-old-0001", "ghp-new-0002"]);
}

#[test]
fn delete_honours_if_match_and_leaves_nothing_behind() {
    let guard = storage_server();
    let server: &harness::Server = &guard;
    let owner = tenant();
    let grantee = tenant();
    let admin = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &admin,
        &credential_body("slack", "Slack", json!({"botToken": "xoxb-del-4242"})),
    );
    // Shared through the API, and seen by the grantee before the delete.
    coffer_tests::fixtures::share(server, owner, &id, grantee);
    let grantee_admin = api_for(server, grantee, "integration_admin");
    let grantee_connections = Api::new(server, token(grantee, "integration_admin"));
    let before = grantee_admin.get(&format!(
        "/api/v1/credentials/slack/details?credentialId={id}"
    ));
    assert_eq!(
        before.status, 200,
        "the grantee sees the share: {}",
        before.text
    );
    let before = grantee_connections.get(&format!("/connection/{id}"));
    assert_eq!(before.status, 200, "{}", before.text);
    assert_eq!(before.body["data"]["shared"], true, "{}", before.text);
    let rename = admin.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentialName": "Slack bot"}),
    );
    assert_eq!(etag(&rename), Some("\"2\""));

    let stale = admin
        .clone()
        .header("if-match", "\"1\"")
        .delete(&format!("/api/v1/credentials/{id}"));
    assert_error(&stale, 412, "PRECONDITION_FAILED");
    let still = admin.get(&format!("/api/v1/credentials/slack?credentialId={id}"));
    assert_eq!(
        still.status, 200,
        "a refused delete deleted: {}",
        still.text
    );

    let deleted = admin
        .clone()
        .header("if-match", "\"2\"")
        .delete(&format!("/api/v1/credentials/cred-{id}"));
    let data = assert_success(&deleted, 200);
    assert_eq!(data["id"], format!("cred-{id}"));
    assert!(!deleted.text.contains("xoxb-del-4242"));

    for path in [
        format!("/api/v1/credentials/slack/details?credentialId={id}"),
        format!("/api/v1/credentials/slack?credentialId={id}"),
    ] {
        let gone = admin.get(&path);
        assert_error(&gone, 404, "CREDENTIAL_NOT_FOUND");
    }
    let gone = admin.get("/api/v1/credentials/slack/details");
    assert_error(&gone, 404, "CREDENTIAL_NOT_FOUND");
    let again = admin.delete(&format!("/api/v1/credentials/{id}"));
    assert_error(&again, 404, "CREDENTIAL_NOT_FOUND");
    let patch = admin.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentialName": "ghost"}),
    );
    assert_error(&patch, 404, "CREDENTIAL_NOT_FOUND");

    let user = Api::new(server, token(owner, "integration_user"));
    let connection = user.get(&format!("/connection/{id}/credentials"));
    assert_eq!(connection.status, 404, "{}", connection.text);
    assert_eq!(
        connection.body,
        json!({"error": {"code": 404, "message": format!("Connection with ID {id} not found")}})
    );

    // The former grantee sees nothing of it, on either surface.
    for path in [
        format!("/api/v1/credentials/slack/details?credentialId={id}"),
        format!("/api/v1/credentials/slack?credentialId={id}"),
    ] {
        let gone = grantee_admin.get(&path);
        assert_error(&gone, 404, "CREDENTIAL_NOT_FOUND");
    }
    let not_found =
        json!({"error": {"code": 404, "message": format!("Connection with ID {id} not found")}});
    for path in [
        format!("/connection/{id}"),
        format!("/connection/{id}/credentials"),
    ] {
        let gone = grantee_connections.get(&path);
        assert_eq!(gone.status, 404, "{path}: {}", gone.text);
        assert_eq!(gone.body, not_found, "{path}");
    }
    let listed = grantee_connections.get("/connection?limit=100");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"], json!([]), "{}", listed.text);

    // A record re-created under the same integration is a new record, and
    // not shared: the grantee cannot reach it and it has no shares.
    let again_id = create_credential(
        &admin,
        &credential_body("slack", "Slack again", json!({"botToken": "xoxb-del-4343"})),
    );
    assert_ne!(again_id, id);
    let hidden = grantee_admin.get(&format!(
        "/api/v1/credentials/slack/details?credentialId={again_id}"
    ));
    assert_error(&hidden, 404, "CREDENTIAL_NOT_FOUND");
    let hidden = grantee_connections.get(&format!("/connection/{again_id}"));
    assert_eq!(hidden.status, 404, "{}", hidden.text);
    let listed = grantee_connections.get("/connection?limit=100");
    assert_eq!(listed.body["data"], json!([]), "{}", listed.text);
    let shares = Api::new(server, token(owner, "integration_admin"))
        .get(&format!("/connection/{again_id}/shares"));
    assert_eq!(shares.status, 200, "{}", shares.text);
    assert_eq!(shares.body, json!({"data": []}), "{}", shares.text);

    // The secret material is gone too. No API can tell (every read is a 404
    // already), so this one check lists KV out of band: a read-only check,
    // done while no request is in flight (`storage_server`).
    let keys = server.blob_keys(&format!("secret/v1/{owner}/{id}/"));
    assert!(keys.is_empty(), "blob left behind: {keys:?}");

    let audit = admin.get(&format!("/api/v1/audit?credentialId={id}"));
    assert_eq!(audit.status, 200, "{}", audit.text);
    assert_eq!(
        audit.body["data"]["items"][0]["action"],
        "credential.delete"
    );
    assert_eq!(audit.body["data"]["items"][0]["outcome"], "success");
    assert_eq!(
        audit.body["data"]["items"][0]["requestId"],
        deleted.header("x-request-id").expect("x-request-id")
    );
    assert_not_logged(server, &["xoxb-del-4242"]);
}

#[test]
fn inactive_and_revoked_refuse_the_secret_and_revoked_is_final() {
    let server = harness::shared();
    let owner = tenant();
    let admin = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &admin,
        &credential_body("okta", "Okta", json!({"clientSecret": "okta-cs-5150"})),
    );
    let read_path = format!("/api/v1/credentials/okta?credentialId={id}");
    let details_path = format!("/api/v1/credentials/okta/details?credentialId={id}");
    let path = format!("/api/v1/credentials/{id}");

    let inactive = admin.patch(&path, &json!({"status": "inactive"}));
    assert_eq!(inactive.status, 200, "{}", inactive.text);
    assert_eq!(inactive.body["data"]["status"], "inactive");
    let refused = admin.get(&read_path);
    assert_error(&refused, 409, "CREDENTIAL_NOT_ACTIVE");
    assert!(!refused.text.contains("okta-cs-5150"));
    let details = admin.get(&details_path);
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["status"], "inactive");
    assert_eq!(
        details.body["data"]["accessCount"], 0,
        "a refused read is not counted"
    );

    let active = admin.patch(&path, &json!({"status": "active"}));
    assert_eq!(active.status, 200, "{}", active.text);
    let served = admin.get(&read_path);
    assert_eq!(served.status, 200, "{}", served.text);
    assert_eq!(
        served.body["data"]["credentials"]["clientSecret"],
        "okta-cs-5150"
    );

    let revoked = admin.patch(&path, &json!({"status": "revoked"}));
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.body["data"]["status"], "revoked");
    let refused = admin.get(&read_path);
    assert_error(&refused, 409, "CREDENTIAL_NOT_ACTIVE");
    let details = admin.get(&details_path);
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["status"], "revoked");

    for status in ["active", "inactive"] {
        let back = admin.patch(&path, &json!({"status": status}));
        assert_invalid(&back, "status");
    }
    // `expired` is never set by hand.
    let other = create_credential(
        &admin,
        &credential_body("okta", "Okta 2", json!({"k": "o2"})),
    );
    let expired = admin.patch(
        &format!("/api/v1/credentials/{other}"),
        &json!({"status": "expired"}),
    );
    assert_invalid(&expired, "status");
    // Even a new secret does not bring a revoked record back. The contract
    // refuses only status transitions out of `revoked`; a PATCH of the
    // secret alone is a PATCH like any other (200 with the details, version
    // 4 → 5), and the record stays revoked.
    let rotated = admin.patch(
        &path,
        &json!({"credentials": {"clientSecret": "okta-cs-6160"}}),
    );
    let data = assert_success(&rotated, 200);
    assert_eq!(data["status"], "revoked", "{}", rotated.text);
    assert_eq!(data["version"], 5, "{}", rotated.text);
    assert_eq!(etag(&rotated), Some("\"5\""));
    assert!(!rotated.text.contains("okta-cs-6160"));
    let refused = admin.get(&read_path);
    assert_error(&refused, 409, "CREDENTIAL_NOT_ACTIVE");
    assert!(!refused.text.contains("okta-cs-6160"));
    let details = admin.get(&details_path);
    assert_eq!(details.body["data"]["status"], "revoked");

    // Refused reads of a visible record are audited as denied.
    let audit = admin.get(&format!("/api/v1/audit?credentialId={id}&limit=100"));
    let items = audit.body["data"]["items"].as_array().expect("items");
    let denied = items
        .iter()
        .filter(|e| e["action"] == "credential.read_secret" && e["outcome"] == "denied")
        .count();
    assert_eq!(denied, 3, "{}", audit.text);
    assert_not_logged(server, &["okta-cs-5150", "okta-cs-6160"]);
}

#[test]
fn expired_on_create_is_flagged_and_still_served_until_cleared() {
    let server = harness::shared();
    let owner = tenant();
    let admin = api_for(server, owner, "integration_admin");
    let mut body = credential_body(
        "google-workspace",
        "Google Workspace",
        json!({"refreshToken": "g-rt-expired-77"}),
    );
    body["expiresAt"] = json!("2020-01-01T00:00:00.000Z");
    let created = admin.post("/api/v1/credentials", &body);
    assert_eq!(created.status, 201, "{}", created.text);
    let id = bare_id(&created.body["data"]["id"]);
    assert_eq!(created.body["data"]["status"], "expired");
    assert_eq!(created.body["data"]["isExpired"], true);
    assert_eq!(
        created.body["data"]["expiresAt"],
        "2020-01-01T00:00:00.000Z"
    );

    let read = admin.get(&format!(
        "/api/v1/credentials/google-workspace?credentialId={id}"
    ));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body["data"]["credentials"]["refreshToken"],
        "g-rt-expired-77"
    );
    assert_eq!(read.body["data"]["status"], "expired");
    assert_eq!(read.body["data"]["isExpired"], true);
    // Without credentialId the expired record is still found (and served).
    let read = admin.get("/api/v1/credentials/google-workspace");
    assert_eq!(read.status, 200, "{}", read.text);

    let expired = admin.get("/api/v1/credentials?status=expired");
    let ids: Vec<&Value> = expired.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| &item["id"])
        .collect();
    assert_eq!(ids, [&json!(format!("cred-{id}"))]);
    let active = admin.get("/api/v1/credentials?status=active");
    assert_eq!(active.body["data"]["items"], json!([]), "{}", active.text);

    let cleared = admin.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"expiresAt": null}),
    );
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.body["data"]["expiresAt"], Value::Null);
    assert_eq!(cleared.body["data"]["isExpired"], false);
    assert_eq!(cleared.body["data"]["status"], "active");
    // The stored expiry is gone too, not only the rendered one: the status
    // filter, which the list evaluates on the stored values, moves it.
    let ids_with = |status: &str| -> Vec<Value> {
        let reply = admin.get(&format!(
            "/api/v1/credentials?integrationId=google-workspace&status={status}"
        ));
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].clone())
            .collect()
    };
    assert_eq!(ids_with("active"), [json!(format!("cred-{id}"))]);
    assert_eq!(ids_with("expired"), Vec::<Value>::new());
    let details = admin.get(&format!(
        "/api/v1/credentials/google-workspace/details?credentialId={id}"
    ));
    assert_eq!(
        details.body["data"]["expiresAt"],
        Value::Null,
        "{}",
        details.text
    );
    assert_eq!(details.body["data"]["isExpired"], false, "{}", details.text);
    // An inactive record past its expiry reads inactive, not expired.
    let mut body = credential_body("google-workspace", "Old", json!({"k": "g-old"}));
    body["expiresAt"] = json!("2021-06-30T12:00:00.000Z");
    let old = create_credential(&admin, &body);
    let inactive = admin.patch(
        &format!("/api/v1/credentials/{old}"),
        &json!({"status": "inactive"}),
    );
    assert_eq!(inactive.body["data"]["status"], "inactive");
    assert_eq!(inactive.body["data"]["isExpired"], true);
    assert_not_logged(server, &["g-rt-expired-77"]);
}

#[test]
fn absent_optional_fields_come_back_as_json_nulls() {
    let server = harness::shared();
    let owner = tenant();
    let admin = api_for(server, owner, "integration_admin");
    let created = admin.post(
        "/api/v1/credentials",
        &credential_body("minimal", "Minimal", json!({"k": "min-secret-1"})),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    // Before any read, details render what was stored: JSON nulls (a stored
    // text "null" or "undefined" would come back as a string).
    let details = admin.get("/api/v1/credentials/minimal/details");
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["lastAccessedAt"], Value::Null);
    assert_eq!(details.body["data"]["accessCount"], 0);
    let read = admin.get("/api/v1/credentials/minimal");
    let list = admin.get("/api/v1/credentials");
    for (what, reply, data) in [
        ("create", &created, &created.body["data"]),
        ("details", &details, &details.body["data"]),
        ("read", &read, &read.body["data"]),
        ("list", &list, &list.body["data"]["items"][0]),
    ] {
        assert!(!reply.text.contains("undefined"), "{what}: {}", reply.text);
        let object = data
            .as_object()
            .unwrap_or_else(|| panic!("{what}: {}", reply.text));
        for field in [
            "description",
            "tokenEndpoint",
            "authorizationEndpoint",
            "expiresAt",
        ] {
            assert_eq!(object.get(field), Some(&Value::Null), "{what}.{field}");
        }
        assert_eq!(data["tenant"]["name"], Value::Null, "{what}");
        assert_eq!(data["authType"], "custom", "{what}");
        assert_eq!(data["scopes"], json!([]), "{what}");
        assert_eq!(data["metadata"], json!({}), "{what}");
        assert_eq!(data["isExpired"], false, "{what}");
    }
    assert!(
        created.text.contains("\"description\":null"),
        "{}",
        created.text
    );
    assert_not_logged(server, &["min-secret-1"]);
}

#[test]
fn patch_null_clears_and_absent_leaves_alone() {
    let server = harness::shared();
    let owner = tenant();
    let admin = api_for(server, owner, "integration_admin");
    let mut body = credential_body("asana", "Asana", json!({"pat": "asana-pat-31"}));
    body["description"] = json!("Project tracker");
    body["tokenEndpoint"] = json!("https://app.example.com/token");
    body["authorizationEndpoint"] = json!("https://app.example.com/auth");
    body["expiresAt"] = json!("2097-05-05T05:05:05.005Z");
    let id = create_credential(&admin, &body);
    let path = format!("/api/v1/credentials/{id}");

    // Absent fields are left alone (undefined is not null).
    let renamed = admin.patch(&path, &json!({"credentialName": "Asana prod"}));
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let data = &renamed.body["data"];
    assert_eq!(data["description"], "Project tracker");
    assert_eq!(data["tokenEndpoint"], "https://app.example.com/token");
    assert_eq!(data["expiresAt"], "2097-05-05T05:05:05.005Z");

    let cleared = admin.patch(
        &path,
        &json!({"description": null, "expiresAt": null, "tokenEndpoint": null}),
    );
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    let data = &cleared.body["data"];
    assert_eq!(data["description"], Value::Null);
    assert_eq!(data["expiresAt"], Value::Null);
    assert_eq!(data["tokenEndpoint"], Value::Null);
    assert_eq!(
        data["authorizationEndpoint"],
        "https://app.example.com/auth"
    );
    assert_eq!(data["credentialName"], "Asana prod");
    let details = admin.get(&format!(
        "/api/v1/credentials/asana/details?credentialId={id}"
    ));
    assert_eq!(details.body["data"], cleared.body["data"]);
    assert!(!details.text.contains("undefined"));
    // Non-nullable fields refuse null, naming the field.
    for field in [
        "credentialName",
        "scopes",
        "metadata",
        "credentials",
        "status",
    ] {
        let refused = admin.patch(&path, &json!({ field: null }));
        assert_invalid(&refused, field);
    }
    assert_not_logged(server, &["asana-pat-31"]);
}

#[test]
fn integers_above_2_pow_53_round_trip_exactly() {
    let server = harness::shared();
    let owner = tenant();
    let admin = api_for(server, owner, "integration_admin");
    // Written by hand so no client-side number handling can interfere.
    let raw = r#"{"integrationId":"bignum","credentialName":"Big numbers","metadata":{"big":9007199254740993,"neg":-9007199254740993,"max":18446744073709551615},"credentials":{"n":9007199254740993,"tag":"bignum-secret-1"}}"#;
    let created = admin.send(
        Method::POST,
        "/api/v1/credentials",
        Some(("application/json", raw.as_bytes().to_vec())),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let metadata =
        r#""metadata":{"big":9007199254740993,"max":18446744073709551615,"neg":-9007199254740993}"#;
    let metadata_unsorted =
        r#""metadata":{"big":9007199254740993,"neg":-9007199254740993,"max":18446744073709551615}"#;
    let has_metadata = |text: &str| text.contains(metadata) || text.contains(metadata_unsorted);
    assert!(has_metadata(&created.text), "{}", created.text);
    let details = admin.get("/api/v1/credentials/bignum/details");
    assert!(has_metadata(&details.text), "{}", details.text);
    let read = admin.get("/api/v1/credentials/bignum");
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(has_metadata(&read.text), "{}", read.text);
    assert!(
        read.text.contains(r#""n":9007199254740993"#),
        "{}",
        read.text
    );
    let list = admin.get("/api/v1/credentials?integrationId=bignum");
    assert!(has_metadata(&list.text), "{}", list.text);

    // And through a PATCH of both.
    let id = bare_id(&created.body["data"]["id"]);
    let patch = r#"{"metadata":{"big":9007199254740995},"credentials":{"n":-9007199254740995}}"#;
    let patched = admin.send(
        Method::PATCH,
        &format!("/api/v1/credentials/{id}"),
        Some(("application/json", patch.as_bytes().to_vec())),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert!(
        patched
            .text
            .contains(r#""metadata":{"big":9007199254740995}"#),
        "{}",
        patched.text
    );
    let read = admin.get("/api/v1/credentials/bignum");
    assert!(
        read.text
            .contains(r#""credentials":{"n":-9007199254740995}"#),
        "{}",
        read.text
    );
    assert_not_logged(server, &["bignum-secret-1"]);
}

#[test]
fn audit_events_carry_the_contract_fields_newest_first() {
    let server = harness::shared();
    let owner = tenant();
    let shared_with = tenant();
    let admin_token = TokenBuilder::new(owner, "integration_admin")
        .claim("name", json!("Margaret Example"))
        .claim("email", json!("margaret@example.com"));
    let admin_sub = admin_token.claims()["sub"].clone();
    let admin = Api::new(server, admin_token.sign()).header("x-tenantid", owner.to_string());
    let created = admin.post(
        "/api/v1/credentials",
        &credential_body("workday", "Workday", json!({"password": "wd-pass-808"})),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = bare_id(&created.body["data"]["id"]);
    let read = admin.get("/api/v1/credentials/workday");
    assert_eq!(read.status, 200, "{}", read.text);
    let patched = admin.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"description": "HR system"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    // Metadata reads are not logged.
    let details = admin.get("/api/v1/credentials/workday/details");
    assert_eq!(details.status, 200);
    // A viewer's refused decrypted read is logged as denied.
    let viewer = TokenBuilder::new(owner, "integration_viewer").without("email");
    let viewer_sub = viewer.claims()["sub"].clone();
    let viewer = Api::new(server, viewer.sign()).header("x-tenantid", owner.to_string());
    let denied = viewer.get("/api/v1/credentials/workday");
    assert_error(&denied, 403, "INSUFFICIENT_PERMISSIONS");
    // A shared tenant's refused read is logged in the owner's log.
    coffer_tests::fixtures::share(server, owner, &id, shared_with);
    let shared = api_for(server, shared_with, "integration_admin");
    let denied_shared = shared.get(&format!("/api/v1/credentials/workday?credentialId={id}"));
    assert_error(&denied_shared, 403, "INSUFFICIENT_PERMISSIONS");

    let audit = admin.get("/api/v1/audit");
    let page = assert_success(&audit, 200);
    assert_eq!(page["nextCursor"], Value::Null);
    let items = page["items"].as_array().expect("items");
    let actions: Vec<(&str, &str)> = items
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("credential."))
        })
        .map(|e| {
            (
                e["action"].as_str().expect("action"),
                e["outcome"].as_str().expect("outcome"),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("credential.read_secret", "denied"),
            ("credential.read_secret", "denied"),
            ("credential.update", "success"),
            ("credential.read_secret", "success"),
            ("credential.create", "success"),
        ],
        "{}",
        audit.text
    );
    let expected_keys = BTreeSet::from([
        "id",
        "at",
        "action",
        "outcome",
        "credentialId",
        "actor",
        "actorTenantId",
        "requestId",
    ]);
    let mut event_ids = BTreeSet::new();
    let mut previous_at = i64::MAX;
    for event in items {
        let keys: BTreeSet<&str> = event
            .as_object()
            .expect("event")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, expected_keys, "{event}");
        let at = assert_timestamp(&event["at"], "at");
        assert!(at <= previous_at, "not newest first: {}", audit.text);
        previous_at = at;
        assert!(event_ids.insert(event["id"].to_string()), "duplicate id");
        assert_eq!(event["credentialId"], format!("cred-{id}"));
        let actor_keys: BTreeSet<&str> = event["actor"]
            .as_object()
            .expect("actor")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(actor_keys, BTreeSet::from(["id", "name", "email"]));
    }
    let by_request = |reply: &Reply| -> &Value {
        let request_id = reply.header("x-request-id").expect("x-request-id");
        items
            .iter()
            .find(|e| e["requestId"] == request_id)
            .unwrap_or_else(|| panic!("no event for request {request_id}: {}", audit.text))
    };
    let event = by_request(&created);
    assert_eq!(event["action"], "credential.create");
    assert_eq!(
        event["actor"],
        json!({"id": admin_sub, "name": "Margaret Example", "email": "margaret@example.com"})
    );
    assert_eq!(event["actorTenantId"], owner.to_string());
    assert_eq!(by_request(&read)["action"], "credential.read_secret");
    assert_eq!(by_request(&patched)["action"], "credential.update");
    let event = by_request(&denied);
    assert_eq!(event["outcome"], "denied");
    assert_eq!(event["actor"]["id"], viewer_sub);
    assert_eq!(event["actor"]["email"], Value::Null);
    let event = by_request(&denied_shared);
    assert_eq!(event["outcome"], "denied");
    assert_eq!(event["actorTenantId"], shared_with.to_string());
    assert!(
        items
            .iter()
            .all(|e| e["requestId"] != details.header("x-request-id").expect("id")),
        "a metadata read was audited"
    );
    // The shared tenant's own log does not hold the owner's events.
    let theirs = shared.get("/api/v1/audit");
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(theirs.body["data"]["items"], json!([]), "{}", theirs.text);

    // Paging the log: limit 2, then the rest, with the cursor.
    let first = admin.get("/api/v1/audit?limit=2");
    let first_items = first.body["data"]["items"].as_array().expect("items");
    assert_eq!(first_items.len(), 2);
    let cursor = first.body["data"]["nextCursor"].as_str().expect("cursor");
    let rest = admin.get(&format!("/api/v1/audit?limit=100&cursor={cursor}"));
    assert_eq!(rest.status, 200, "{}", rest.text);
    let mut all: Vec<Value> = first_items.clone();
    all.extend(
        rest.body["data"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .cloned(),
    );
    assert_eq!(&all, items);
    assert_eq!(rest.body["data"]["nextCursor"], Value::Null);
    // A log cursor is bound to its filters.
    let reused = admin.get(&format!("/api/v1/audit?credentialId={id}&cursor={cursor}"));
    assert_invalid(&reused, "cursor");
    assert_not_logged(server, &["wd-pass-808"]);
}

#[test]
fn secrets_round_trip_in_the_order_sent_and_envelopes_follow_the_seed() {
    let server = harness::shared();
    let owner = tenant();
    let api =
        Api::new(server, token(owner, "integration_admin")).header("x-tenantid", owner.to_string());
    let body = r#"{"integrationId":"order","credentialName":"Order","credentials":{"zeta":"z-1","alpha":[3,1,2],"mid":{"y":1,"b":2}}}"#;
    let created = api.send(
        Method::POST,
        "/api/v1/credentials",
        Some(("application/json", body.as_bytes().to_vec())),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(
        created.text.starts_with(r#"{"success":true,"message":"#),
        "{}",
        created.text
    );
    assert!(
        created.text.contains(r#""data":{"id":"cred-"#),
        "{}",
        created.text
    );
    let read = api.get("/api/v1/credentials/order");
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(
        read.text
            .contains(r#""credentials":{"zeta":"z-1","alpha":[3,1,2],"mid":{"y":1,"b":2}}"#),
        "the secret comes back exactly as sent: {}",
        read.text
    );
    assert!(read.text.ends_with(r#""}"#) && read.text.contains(r#","timestamp":""#));
}
