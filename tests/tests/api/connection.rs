//! The connection surface, `/connection`, black-box.
//!
//! This binary covers the seed's responses of
//! `GET /connection/{connection_id}/credentials`
//! (`seeds/connection-credentials.txt`) with exact bodies, and the surface's
//! `x-api-version` handling; `connection_*.rs` cover metadata, shares,
//! isolation and pages.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use coffer_tests::{
    assertions::{assert_api_version, assert_connection_error, assert_unprocessable},
    client::{Api, Reply},
    fixtures::{
        api_for, create_credential, credential_body, now, tenant, token, TokenBuilder, ROLES,
    },
    harness::{self, Server},
};
use serde_json::json;
use uuid::Uuid;

#[test]
fn owner_reads_credentials_shared_tenant_sees_metadata_only() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let admin =
        Api::new(server, token(owner, "integration_admin")).header("x-tenantid", owner.to_string());
    let created = admin.post(
        "/api/v1/credentials",
        &json!({
            "integrationId": "github",
            "credentialName": "GitHub App",
            "credentials": {"apiKey": "ghp-conn-smoke-987"},
        }),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"]
        .as_str()
        .expect("id")
        .trim_start_matches("cred-")
        .to_string();

    let owner_conn = Api::new(server, token(owner, "integration_admin"));
    let read = owner_conn.get(&format!("/connection/{id}/credentials"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(
        read.body,
        json!({"data": {"connection_id": id, "credentials": {"apiKey": "ghp-conn-smoke-987"}}})
    );
    assert_eq!(read.header("x-api-version"), Some("2024-03-27"));

    let shared = Api::new(server, token(other, "integration_admin"));
    assert_eq!(shared.get(&format!("/connection/{id}")).status, 404);
    let granted = owner_conn.put(&format!("/connection/{id}/shares/{other}"));
    assert_eq!(granted.status, 200, "{}", granted.text);
    assert_eq!(granted.body["data"]["tenant_id"], other.to_string());

    let meta = shared.get(&format!("/connection/{id}"));
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert_eq!(meta.body["data"]["shared"], true);
    assert_eq!(meta.body["data"]["owner_tenant_id"], owner.to_string());
    assert!(!meta.text.contains("ghp-conn-smoke-987"));

    let denied = shared.get(&format!("/connection/{id}/credentials"));
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert_eq!(
        denied.body,
        json!({"error": {"code": 403, "message": "You do not have access to this resource"}})
    );

    let listed = shared.get("/connection");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));

    assert_eq!(
        owner_conn
            .delete(&format!("/connection/{id}/shares/{other}"))
            .status,
        204
    );
    assert_eq!(shared.get(&format!("/connection/{id}")).status, 404);
    let bad = owner_conn.get("/connection/not-a-uuid/credentials");
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.body["error"]["loc"], json!(["path", "connection_id"]));
}

const UNAUTHENTICATED: &str = "Authentication header is missing, or token is invalid/expired.";
const FORBIDDEN: &str = "You do not have access to this resource";

/// Creates a record owned by `owner` with `secret` and returns its bare id.
fn create(server: &Server, owner: Uuid, integration: &str, secret: serde_json::Value) -> String {
    let editor = api_for(server, owner, "integration_editor");
    create_credential(&editor, &credential_body(integration, "Seed case", secret))
}

fn not_found(id: &str) -> String {
    format!("Connection with ID {id} not found")
}

/// Tokens that are not JWTs at all: not three non-empty base64url segments,
/// or a header that is not a JSON object.
fn not_jwts() -> Vec<String> {
    let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
    let signature = URL_SAFE_NO_PAD.encode(b"signature");
    vec![
        "abc".into(),
        "a.b".into(),
        "a..c".into(),
        ".b.c".into(),
        "a.b.c.d".into(),
        format!(
            "{}.{claims}.{signature}",
            URL_SAFE_NO_PAD.encode(b"not json")
        ),
        format!("{}.{claims}.{signature}", URL_SAFE_NO_PAD.encode(b"[1,2]")),
        format!(
            "{}.{claims}.{signature}",
            URL_SAFE_NO_PAD.encode(b"\"HS256\"")
        ),
        format!("!!!.{claims}.{signature}"),
    ]
}

#[test]
fn seed_200_is_exactly_connection_id_and_credentials_for_a_user() {
    let server = harness::shared();
    let owner = tenant();
    let secret = json!({"accessToken": "at-seed-200", "refreshToken": "rt-seed-200", "n": 7});
    let id = create(server, owner, "slack", secret.clone());
    for role in &ROLES[1..] {
        let reply =
            Api::new(server, token(owner, role)).get(&format!("/connection/{id}/credentials"));
        assert_eq!(reply.status, 200, "{role}: {}", reply.text);
        assert_eq!(
            reply.body,
            json!({"data": {"connection_id": id, "credentials": secret}}),
            "{role}"
        );
        assert_api_version(&reply);
        assert_eq!(reply.header("etag"), Some("\"1\""), "{role}");
        // A decrypted secret is never kept by a cache on the way.
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{role}");
        assert!(reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"));
    }
    // Ids are accepted in any case and rendered lowercase; an explicit
    // x-tenantid naming the token's own tenant and an explicit version
    // change nothing.
    let upper = id.to_uppercase();
    let reply = Api::new(server, token(owner, "integration_user"))
        .header("x-tenantid", owner.to_string().to_uppercase())
        .header("x-api-version", "2024-03-27")
        .get(&format!("/connection/{upper}/credentials"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["connection_id"], id);
    // Three reads above plus this one, counted on the record.
    let meta =
        Api::new(server, token(owner, "integration_viewer")).get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["access_count"], 4, "{}", meta.text);
}

#[test]
fn seed_200_through_a_further_tenant_of_the_token() {
    let server = harness::shared();
    let (home, owner) = (tenant(), tenant());
    let id = create(
        server,
        owner,
        "jira",
        json!({"apiKey": "further-tenant-key"}),
    );
    let token = TokenBuilder::new(home, "integration_user")
        .claim("tenants", json!([owner.to_string()]))
        .sign();
    let acting = Api::new(server, token.clone()).header("x-tenantid", owner.to_string());
    let reply = acting.get(&format!("/connection/{id}/credentials"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    // Acting for the home tenant, the same token is a stranger.
    let home_reply = Api::new(server, token).get(&format!("/connection/{id}/credentials"));
    assert_connection_error(&home_reply, 404, &not_found(&id));
}

#[test]
fn seed_400_invalid_jwt_format_for_a_token_that_is_not_a_jwt() {
    let server = harness::shared();
    let owner = tenant();
    let id = create(server, owner, "github", json!({"apiKey": "not-a-jwt-case"}));
    let paths = [
        format!("/connection/{id}/credentials"),
        format!("/connection/{id}"),
        "/connection".to_string(),
        format!("/connection/{id}/shares"),
    ];
    for bad in not_jwts() {
        for path in &paths {
            let reply = Api::new(server, bad.clone()).get(path);
            assert_connection_error(&reply, 400, "Invalid JWT format");
        }
        // The credentials surface answers the same token with a 401.
        let reply = api_for(server, owner, "integration_admin")
            .token(bad.clone())
            .get(&format!("/api/v1/credentials/github?credentialId={id}"));
        assert_eq!(reply.status, 401, "{bad:?}: {}", reply.text);
        assert_eq!(reply.body["error"]["code"], "AUTHENTICATION_FAILED");
    }
}

#[test]
fn seed_401_for_missing_expired_and_badly_signed_tokens() {
    let server = harness::shared();
    let owner = tenant();
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "unauthenticated-case"}),
    );
    let path = format!("/connection/{id}/credentials");
    let expired = TokenBuilder::new(owner, "integration_admin")
        .claim("iat", json!(now() - 7200))
        .claim("exp", json!(now() - 3600))
        .sign();
    let not_yet = TokenBuilder::new(owner, "integration_admin")
        .claim("nbf", json!(now() + 3600))
        .sign();
    let badly_signed = TokenBuilder::new(owner, "integration_admin").sign_with("another secret");
    let no_tenant = TokenBuilder::new(owner, "integration_admin")
        .without("tenant_id")
        .sign();
    let no_exp = TokenBuilder::new(owner, "integration_admin")
        .without("exp")
        .sign();
    let mut tampered = token(owner, "integration_admin");
    tampered.push('A');
    let cases = [
        ("missing header", Api::anonymous(server)),
        ("expired", Api::new(server, expired)),
        ("not yet valid", Api::new(server, not_yet)),
        ("bad signature", Api::new(server, badly_signed)),
        ("tampered signature", Api::new(server, tampered)),
        ("no tenant_id", Api::new(server, no_tenant)),
        ("no exp", Api::new(server, no_exp)),
    ];
    for (what, api) in &cases {
        for path in [path.as_str(), &format!("/connection/{id}"), "/connection"] {
            let reply = api.get(path);
            assert_eq!(reply.status, 401, "{what} {path}: {}", reply.text);
            assert_connection_error(&reply, 401, UNAUTHENTICATED);
        }
    }
    // A scheme other than Bearer is no token at all.
    let basic = server.url(&path);
    let reply = reqwest::blocking::Client::new()
        .get(basic)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .expect("send");
    assert_eq!(reply.status().as_u16(), 401);
    assert_eq!(reply.headers()["x-api-version"], "2024-03-27");
}

#[test]
fn seed_403_for_a_shared_tenant_whatever_its_role_and_for_a_viewer_owner() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "forbidden-case-secret"}),
    );
    coffer_tests::fixtures::share(server, owner, &id, other);
    let path = format!("/connection/{id}/credentials");
    for role in ROLES {
        let reply = Api::new(server, token(other, role)).get(&path);
        assert_connection_error(&reply, 403, FORBIDDEN);
    }
    // The owner tenant with too low a role: a viewer, or no contract role.
    let viewer = Api::new(server, token(owner, "integration_viewer")).get(&path);
    assert_connection_error(&viewer, 403, FORBIDDEN);
    let no_role = TokenBuilder::new(owner, "integration_admin")
        .claim("roles", json!(["offline_access"]))
        .sign();
    assert_connection_error(&Api::new(server, no_role).get(&path), 403, FORBIDDEN);
    // None of those reads was counted, and each is in the owner's log as
    // a denied secret read.
    let meta =
        Api::new(server, token(owner, "integration_viewer")).get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["access_count"], 0, "{}", meta.text);
    assert_eq!(meta.body["data"]["last_accessed_at"], json!(null));
    let events = read_secret_events(server, owner, &id);
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(
        events.iter().all(|e| e["outcome"] == "denied"),
        "{events:?}"
    );
    let by_other = events
        .iter()
        .filter(|e| e["actorTenantId"] == other.to_string())
        .count();
    assert_eq!(by_other, 4);
}

/// The `credential.read_secret` events of `id` in `owner`'s audit log.
fn read_secret_events(server: &Server, owner: Uuid, id: &str) -> Vec<serde_json::Value> {
    let reply = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}&limit=100"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", reply.text))
        .iter()
        .filter(|e| e["action"] == "credential.read_secret")
        .cloned()
        .collect()
}

#[test]
fn seed_404_is_the_same_for_a_stranger_and_a_missing_record() {
    let server = harness::shared();
    let (owner, stranger) = (tenant(), tenant());
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "not-found-case-secret"}),
    );
    let missing = Uuid::new_v4().to_string();
    for role in ROLES {
        let api = Api::new(server, token(stranger, role));
        let hidden = api.get(&format!("/connection/{id}/credentials"));
        assert_connection_error(&hidden, 404, &not_found(&id));
        let absent = api.get(&format!("/connection/{missing}/credentials"));
        assert_connection_error(&absent, 404, &not_found(&missing));
        // Same headers too: neither carries an ETag that would leak a version.
        assert_eq!(hidden.header("etag"), None);
        assert_eq!(absent.header("etag"), None);
    }
    // A stranger's attempts are nobody's business: not in the owner's log.
    assert_eq!(
        read_secret_events(server, owner, &id),
        Vec::<serde_json::Value>::new()
    );
    // The owner asking for a record that does not exist gets the same.
    let reply = Api::new(server, token(owner, "integration_admin"))
        .get(&format!("/connection/{missing}/credentials"));
    assert_connection_error(&reply, 404, &not_found(&missing));
    // An id in capitals is named in lowercase.
    let upper = missing.to_uppercase();
    let reply = Api::new(server, token(owner, "integration_admin"))
        .get(&format!("/connection/{upper}/credentials"));
    assert_connection_error(&reply, 404, &not_found(&missing));
}

#[test]
fn seed_409_for_inactive_and_revoked_records() {
    let server = harness::shared();
    let owner = tenant();
    let secret = "inactive-case-secret-5150";
    let id = create(server, owner, "github", json!({"apiKey": secret}));
    let editor = api_for(server, owner, "integration_editor");
    let user = Api::new(server, token(owner, "integration_user"));
    let path = format!("/connection/{id}/credentials");
    let set_status = |status: &str| {
        let reply = editor.patch(
            &format!("/api/v1/credentials/cred-{id}"),
            &json!({"status": status}),
        );
        assert_eq!(reply.status, 200, "PATCH status {status}: {}", reply.text);
    };

    set_status("inactive");
    let reply = user.get(&path);
    assert_connection_error(&reply, 409, &format!("Connection {id} is not active"));
    assert!(!reply.text.contains(secret));
    let meta = user.get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["status"], "inactive", "{}", meta.text);

    let denied = read_secret_events(server, owner, &id);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["outcome"], "denied");

    set_status("active");
    assert_eq!(user.get(&path).status, 200);

    set_status("revoked");
    for _ in 0..2 {
        let reply = user.get(&path);
        assert_connection_error(&reply, 409, &format!("Connection {id} is not active"));
    }
    // Revoked is final: it cannot be reactivated, and the secret stays unserved.
    let reactivate = editor.patch(
        &format!("/api/v1/credentials/cred-{id}"),
        &json!({"status": "active"}),
    );
    // The contract's refusal of a transition out of `revoked`: 400
    // INVALID_PARAMETERS naming `status`.
    coffer_tests::assertions::assert_invalid(&reactivate, "status");
    assert_connection_error(
        &user.get(&path),
        409,
        &format!("Connection {id} is not active"),
    );
    // A shared tenant is refused for what it is (403), a stranger learns
    // nothing (404), whatever the status.
    let other = tenant();
    coffer_tests::fixtures::share(server, owner, &id, other);
    let shared = Api::new(server, token(other, "integration_admin")).get(&path);
    assert_connection_error(&shared, 403, FORBIDDEN);
    let stranger = Api::new(server, token(tenant(), "integration_admin")).get(&path);
    assert_connection_error(&stranger, 404, &not_found(&id));
}

#[test]
fn expired_records_still_serve_their_secret() {
    let server = harness::shared();
    let owner = tenant();
    let editor = api_for(server, owner, "integration_editor");
    let mut body = credential_body("github", "Expired", json!({"refreshToken": "rt-expired"}));
    body["expiresAt"] = json!("2020-01-01T00:00:00.000Z");
    let id = create_credential(&editor, &body);
    let user = Api::new(server, token(owner, "integration_user"));
    let reply = user.get(&format!("/connection/{id}/credentials"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["data"]["credentials"],
        json!({"refreshToken": "rt-expired"})
    );
    let meta = user.get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["status"], "expired", "{}", meta.text);
    assert_eq!(meta.body["data"]["is_expired"], true);
}

#[test]
fn seed_422_for_a_path_id_that_is_not_a_uuid() {
    let server = harness::shared();
    let owner = tenant();
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "unprocessable-case"}),
    );
    let admin = Api::new(server, token(owner, "integration_admin"));
    let bad_ids = [
        "not-a-uuid".to_string(),
        "123".to_string(),
        format!("cred-{id}"),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("{id}0"),
        id[..35].to_string(),
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz".to_string(),
        "%20".to_string(),
    ];
    for bad in &bad_ids {
        for path in [
            format!("/connection/{bad}/credentials"),
            format!("/connection/{bad}"),
            format!("/connection/{bad}/shares"),
        ] {
            let reply = admin.get(&path);
            assert_unprocessable(&reply, ["path", "connection_id"]);
        }
        let put = admin.put(&format!("/connection/{bad}/shares/{}", tenant()));
        assert_unprocessable(&put, ["path", "connection_id"]);
        let delete = admin.delete(&format!("/connection/{bad}/shares/{}", tenant()));
        assert_unprocessable(&delete, ["path", "connection_id"]);
    }
}

#[test]
fn seed_422_for_a_malformed_x_api_version_and_400_for_an_unsupported_one() {
    let server = harness::shared();
    let owner = tenant();
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "version-case-secret"}),
    );
    let paths = [
        format!("/connection/{id}/credentials"),
        format!("/connection/{id}"),
        "/connection".to_string(),
        format!("/connection/{id}/shares"),
    ];
    let with = |version: &str| {
        Api::new(server, token(owner, "integration_admin")).header("x-api-version", version)
    };
    for malformed in [
        "yesterday",
        "2024-3-27",
        "2024-02-30",
        "20240327",
        "2024-03-27T00:00:00Z",
        "",
    ] {
        for path in &paths {
            let reply = with(malformed).get(path);
            assert_unprocessable(&reply, ["header", "x-api-version"]);
            assert!(!reply.text.contains("version-case-secret"));
        }
    }
    for unsupported in ["2023-01-01", "2024-03-28", "2099-12-31"] {
        for path in &paths {
            let reply = with(unsupported).get(path);
            assert_eq!(reply.status, 400, "{unsupported} {path}: {}", reply.text);
            assert_error_shape(&reply, 400);
            assert_api_version(&reply);
            assert!(!reply.text.contains("version-case-secret"));
        }
    }
    for path in &paths {
        assert_eq!(with("2024-03-27").get(path).status, 200, "{path}");
    }
}

#[test]
fn seed_422_for_a_non_uuid_x_tenantid_and_403_for_a_foreign_one() {
    let server = harness::shared();
    let owner = tenant();
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "tenant-header-case"}),
    );
    let paths = [
        format!("/connection/{id}/credentials"),
        format!("/connection/{id}"),
        "/connection".to_string(),
        format!("/connection/{id}/shares"),
    ];
    for path in &paths {
        for bad in [
            "not-a-tenant",
            "123",
            "cred-00000000-0000-4000-8000-000000000000",
        ] {
            let reply = Api::new(server, token(owner, "integration_admin"))
                .header("x-tenantid", bad)
                .get(path);
            assert_unprocessable(&reply, ["header", "x-tenantid"]);
        }
        // A well-formed tenant that is not one of the token's: 403, even
        // when it is the record's owner.
        let foreign = Api::new(server, token(tenant(), "integration_admin"))
            .header("x-tenantid", owner.to_string())
            .get(path);
        assert_connection_error(&foreign, 403, FORBIDDEN);
    }
}

/// `{"error": {"code": status, "message": <non-empty>}}` and nothing else.
fn assert_error_shape(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let error = reply.body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("no error object: {}", reply.text));
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "{}", reply.text);
    assert_eq!(
        reply.body.as_object().map(|o| o.len()),
        Some(1),
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], status, "{}", reply.text);
    assert!(!reply.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .is_empty());
}

#[test]
fn every_connection_response_carries_the_served_api_version() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let id = create(
        server,
        owner,
        "github",
        json!({"apiKey": "echo-case-secret"}),
    );
    let admin = Api::new(server, token(owner, "integration_admin"));
    let mut replies: Vec<Reply> = vec![
        admin.get(&format!("/connection/{id}/credentials")),
        admin.get(&format!("/connection/{id}")),
        admin.get("/connection"),
        admin.get(&format!("/connection/{id}/shares")),
        admin.put(&format!("/connection/{id}/shares/{other}")),
        admin.delete(&format!("/connection/{id}/shares/{other}")),
        Api::new(server, "abc").get(&format!("/connection/{id}/credentials")),
        Api::anonymous(server).get(&format!("/connection/{id}/credentials")),
        Api::new(server, token(owner, "integration_viewer"))
            .get(&format!("/connection/{id}/credentials")),
        Api::new(server, token(other, "integration_admin"))
            .get(&format!("/connection/{id}/credentials")),
        admin.get("/connection/nope/credentials"),
        admin
            .clone()
            .header("x-api-version", "yesterday")
            .get("/connection"),
        admin
            .clone()
            .header("x-api-version", "2023-01-01")
            .get("/connection"),
        admin.get("/connection?limit=0"),
        admin.post(&format!("/connection/{id}/credentials"), &json!({})),
        admin.get(&format!("/connection/{id}/credentials/extra")),
    ];
    let editor = api_for(server, owner, "integration_editor");
    let patched = editor.patch(
        &format!("/api/v1/credentials/cred-{id}"),
        &json!({"status": "inactive"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    replies.push(admin.get(&format!("/connection/{id}/credentials")));
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 204, 400, 401, 403, 404, 422, 422, 400, 422, 405, 404, 409]
    );
    for reply in &replies {
        assert_api_version(reply);
    }
    // The wrong method names the allowed one.
    assert_eq!(replies[14].header("allow"), Some("GET"));
    // The credentials surface is not versioned this way.
    let details = editor.get(&format!(
        "/api/v1/credentials/github/details?credentialId={id}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.header("x-api-version"), None);
}
