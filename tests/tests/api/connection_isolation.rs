//! Tenant isolation across both surfaces for one record: the owner, a
//! tenant it is shared with, and a stranger, before and after the share is
//! revoked and after the record is deleted; and records crossing surfaces.
use coffer_tests::{
    assertions::{assert_connection_error, assert_error, assert_timestamp},
    client::{Api, Reply},
    fixtures::{api_for, create_credential, credential_body, tenant, token, TokenBuilder, ROLES},
    harness::{self, Server},
};
use serde_json::{json, Value};
use uuid::Uuid;

const INTEGRATION: &str = "hubspot";

/// What one tenant sees of one record, route by route.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    connection_credentials: u16,
    connection_metadata: u16,
    connection_listed: bool,
    details: u16,
    read: u16,
    patch: u16,
    delete: u16,
}

/// Every page of `GET /connection` for `api`, following cursors.
fn list_all(api: &Api<'_>, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/connection?limit=100{query}&cursor={cursor}"),
            None => format!("/connection?limit=100{query}"),
        };
        let reply = api.get(&path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        items.extend(reply.body["data"].as_array().expect("data").iter().cloned());
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return items,
        }
    }
}

/// Tries every route on `id` as an admin of `acting` and records the
/// statuses, keeping every reply in `seen_bodies`. PATCH and DELETE are
/// tried only when `mutate` (they would change or remove an owned record).
fn observe(
    server: &Server,
    acting: Uuid,
    id: &str,
    mutate: bool,
    seen_bodies: &mut Vec<String>,
) -> Seen {
    let connection = Api::new(server, token(acting, "integration_admin"));
    let credentials = api_for(server, acting, "integration_admin");
    let mut keep = |reply: Reply| -> u16 {
        let headers: Vec<String> = reply
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value:?}"))
            .collect();
        seen_bodies.push(format!("{}\n{}", headers.join("\n"), reply.text));
        reply.status
    };
    let connection_credentials = keep(connection.get(&format!("/connection/{id}/credentials")));
    let connection_metadata = keep(connection.get(&format!("/connection/{id}")));
    let listed = list_all(&connection, "");
    keep(Reply {
        status: 200,
        headers: Default::default(),
        text: Value::Array(listed.clone()).to_string(),
        body: Value::Null,
    });
    let connection_listed = listed.iter().any(|item| item["connection_id"] == id);
    let details = keep(credentials.get(&format!(
        "/api/v1/credentials/{INTEGRATION}/details?credentialId={id}"
    )));
    let read = keep(credentials.get(&format!(
        "/api/v1/credentials/{INTEGRATION}?credentialId=cred-{id}"
    )));
    let (patch, delete) = if mutate {
        let patch = keep(credentials.patch(
            &format!("/api/v1/credentials/cred-{id}"),
            &json!({"description": format!("touched by {acting}")}),
        ));
        let delete = keep(credentials.delete(&format!("/api/v1/credentials/cred-{id}")));
        (patch, delete)
    } else {
        (0, 0)
    };
    Seen {
        connection_credentials,
        connection_metadata,
        connection_listed,
        details,
        read,
        patch,
        delete,
    }
}

const HIDDEN: Seen = Seen {
    connection_credentials: 404,
    connection_metadata: 404,
    connection_listed: false,
    details: 404,
    read: 404,
    patch: 404,
    delete: 404,
};

#[test]
fn isolation_matrix_across_both_surfaces() {
    let server = harness::shared();
    let (owner, other, stranger) = (tenant(), tenant(), tenant());
    let secrets = ["iso-access-7c1f9e", "iso-refresh-2b8d44"];
    let editor = api_for(server, owner, "integration_editor");
    let id = create_credential(
        &editor,
        &credential_body(
            INTEGRATION,
            "Isolation",
            json!({"accessToken": secrets[0], "refreshToken": secrets[1]}),
        ),
    );
    let owner_admin = Api::new(server, token(owner, "integration_admin"));
    assert_eq!(
        owner_admin
            .put(&format!("/connection/{id}/shares/{other}"))
            .status,
        200
    );
    let mut foreign_bodies = Vec::new();
    let mut owner_bodies = Vec::new();

    // Shared.
    let owner_seen = observe(server, owner, &id, false, &mut owner_bodies);
    assert_eq!(
        owner_seen,
        Seen {
            connection_credentials: 200,
            connection_metadata: 200,
            connection_listed: true,
            details: 200,
            read: 200,
            patch: 0,
            delete: 0,
        }
    );
    let shared_seen = observe(server, other, &id, true, &mut foreign_bodies);
    assert_eq!(
        shared_seen,
        Seen {
            connection_credentials: 403,
            connection_metadata: 200,
            connection_listed: true,
            details: 200,
            read: 403,
            patch: 403,
            delete: 403,
        }
    );
    assert_eq!(
        observe(server, stranger, &id, true, &mut foreign_bodies),
        HIDDEN
    );
    // The owner may still change it; the refused changes changed nothing.
    let patched = editor.patch(
        &format!("/api/v1/credentials/cred-{id}"),
        &json!({"description": "by the owner"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["data"]["description"], "by the owner");
    let meta = owner_admin.get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["version"], 2, "{}", meta.text);
    assert_eq!(meta.body["data"]["description"], "by the owner");

    // The shared tenant's refused secret reads are in the owner's log.
    let audit = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}&limit=100"));
    assert_eq!(audit.status, 200, "{}", audit.text);
    let denied = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| {
            e["action"] == "credential.read_secret"
                && e["outcome"] == "denied"
                && e["actorTenantId"] == other.to_string()
        })
        .count();
    assert_eq!(denied, 2, "{}", audit.text);

    // After the share is revoked, the shared tenant is a stranger.
    assert_eq!(
        owner_admin
            .delete(&format!("/connection/{id}/shares/{other}"))
            .status,
        204
    );
    assert_eq!(
        observe(server, other, &id, true, &mut foreign_bodies),
        HIDDEN
    );
    assert_eq!(
        observe(server, stranger, &id, true, &mut foreign_bodies),
        HIDDEN
    );
    let owner_seen = observe(server, owner, &id, false, &mut owner_bodies);
    assert_eq!(owner_seen.connection_credentials, 200);
    assert!(owner_seen.connection_listed);

    // After the record is deleted, nobody sees it, on either surface.
    assert_eq!(
        owner_admin
            .put(&format!("/connection/{id}/shares/{other}"))
            .status,
        200
    );
    let deleted = api_for(server, owner, "integration_admin")
        .delete(&format!("/api/v1/credentials/cred-{id}"));
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(observe(server, owner, &id, true, &mut owner_bodies), HIDDEN);
    assert_eq!(
        observe(server, other, &id, true, &mut foreign_bodies),
        HIDDEN
    );
    assert_eq!(
        observe(server, stranger, &id, true, &mut foreign_bodies),
        HIDDEN
    );
    // Its shares went with it.
    assert_connection_error(
        &owner_admin.get(&format!("/connection/{id}/shares")),
        404,
        &format!("Connection with ID {id} not found"),
    );

    // No secret byte ever reached the shared tenant or the stranger.
    assert!(foreign_bodies.len() > 40, "{}", foreign_bodies.len());
    for body in &foreign_bodies {
        for secret in secrets {
            assert!(!body.contains(secret), "{secret} leaked in {body}");
        }
    }
    // The owner did read it (so the scan above looks at the right strings).
    assert!(owner_bodies.iter().any(|body| body.contains(secrets[0])));
}

#[test]
fn no_secret_reaches_a_shared_or_foreign_tenant_on_any_route() {
    let server = harness::shared();
    let (owner, other, stranger) = (tenant(), tenant(), tenant());
    let secret = "leak-scan-9f3e1a0b";
    let editor = api_for(server, owner, "integration_editor");
    let mut ids = Vec::new();
    for (n, status) in ["active", "inactive", "revoked", "active"]
        .iter()
        .enumerate()
    {
        let id = create_credential(
            &editor,
            &credential_body(
                INTEGRATION,
                &format!("Leak {n}"),
                json!({"k": format!("{secret}-{n}")}),
            ),
        );
        if *status != "active" {
            let reply = editor.patch(
                &format!("/api/v1/credentials/cred-{id}"),
                &json!({"status": status}),
            );
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        ids.push(id);
    }
    let owner_admin = Api::new(server, token(owner, "integration_admin"));
    for id in &ids[..3] {
        assert_eq!(
            owner_admin
                .put(&format!("/connection/{id}/shares/{other}"))
                .status,
            200
        );
    }
    let mut bodies = Vec::new();
    for acting in [other, stranger] {
        for role in ROLES {
            let connection = Api::new(server, token(acting, role));
            let credentials = api_for(server, acting, role);
            for id in &ids {
                for reply in [
                    connection.get(&format!("/connection/{id}/credentials")),
                    connection.get(&format!("/connection/{id}")),
                    connection.get(&format!("/connection/{id}/shares")),
                    connection.put(&format!("/connection/{id}/shares/{}", tenant())),
                    connection.delete(&format!("/connection/{id}/shares/{owner}")),
                    credentials.get(&format!(
                        "/api/v1/credentials/{INTEGRATION}/details?credentialId={id}"
                    )),
                    credentials.get(&format!(
                        "/api/v1/credentials/{INTEGRATION}?credentialId={id}"
                    )),
                    credentials.patch(
                        &format!("/api/v1/credentials/cred-{id}"),
                        &json!({"status": "active"}),
                    ),
                ] {
                    bodies.push(reply.text);
                }
            }
            for reply in [
                connection.get("/connection?limit=100"),
                connection.get(&format!("/connection?integration_id={INTEGRATION}")),
                credentials.get(&format!("/api/v1/credentials/{INTEGRATION}")),
                credentials.get(&format!("/api/v1/credentials/{INTEGRATION}/details")),
                credentials.get("/api/v1/credentials?limit=100"),
                credentials.get("/api/v1/audit?limit=100"),
            ] {
                bodies.push(reply.text);
            }
        }
    }
    for body in &bodies {
        assert!(!body.contains(secret), "secret leaked: {body}");
    }
    // Still intact for the owner: nothing the others did changed a record.
    let reply = Api::new(server, token(owner, "integration_user"))
        .get(&format!("/connection/{}/credentials", ids[0]));
    assert_eq!(
        reply.body["data"]["credentials"],
        json!({"k": format!("{secret}-0")})
    );
    for id in &ids {
        let meta = owner_admin.get(&format!("/connection/{id}"));
        let expected_version = if id == &ids[0] || id == &ids[3] { 1 } else { 2 };
        assert_eq!(
            meta.body["data"]["version"], expected_version,
            "{}",
            meta.text
        );
    }
}

#[test]
fn a_record_made_on_api_v1_reads_the_same_on_connection_and_back() {
    let server = harness::shared();
    let owner = tenant();
    let editor = api_for(server, owner, "integration_editor");
    let created = editor.post(
        "/api/v1/credentials",
        &json!({
            "integrationId": "zendesk",
            "credentialName": "Zendesk",
            "description": "first",
            "authType": "api_key",
            "scopes": ["read"],
            "metadata": {"a": 1},
            "credentials": {"apiKey": "cross-v1"},
        }),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let details = &created.body["data"];
    let id = coffer_tests::fixtures::bare_id(&details["id"]);
    let connection = Api::new(server, token(owner, "integration_user"));

    let meta = connection.get(&format!("/connection/{id}"));
    assert_eq!(meta.status, 200, "{}", meta.text);
    let data = &meta.body["data"];
    let pairs = [
        ("integrationId", "integration_id"),
        ("credentialName", "name"),
        ("description", "description"),
        ("authType", "auth_type"),
        ("scopes", "scopes"),
        ("tokenEndpoint", "token_endpoint"),
        ("authorizationEndpoint", "authorization_endpoint"),
        ("metadata", "metadata"),
        ("status", "status"),
        ("expiresAt", "expires_at"),
        ("isExpired", "is_expired"),
        ("createdAt", "created_at"),
        ("createdBy", "created_by"),
        ("updatedAt", "updated_at"),
        ("updatedBy", "updated_by"),
        ("lastAccessedAt", "last_accessed_at"),
        ("accessCount", "access_count"),
    ];
    for (camel, snake) in pairs {
        assert_eq!(details[camel], data[snake], "{camel} / {snake}");
    }
    assert_eq!(data["owner_tenant_id"], details["tenant"]["id"]);
    let read = connection.get(&format!("/connection/{id}/credentials"));
    assert_eq!(
        read.body["data"]["credentials"],
        json!({"apiKey": "cross-v1"})
    );

    // Changes on /api/v1 show on /connection at once.
    let before = assert_timestamp(&data["updated_at"], "updated_at");
    std::thread::sleep(core::time::Duration::from_millis(5));
    let patched = editor.patch(
        &format!("/api/v1/credentials/cred-{id}"),
        &json!({
            "credentialName": "Zendesk EU",
            "description": "second",
            "scopes": ["read", "write"],
            "metadata": {"b": 2},
            "tokenEndpoint": "https://zendesk.example.com/token",
        }),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let meta = connection.get(&format!("/connection/{id}"));
    let data = &meta.body["data"];
    assert_eq!(data["name"], "Zendesk EU");
    assert_eq!(data["description"], "second");
    assert_eq!(data["scopes"], json!(["read", "write"]));
    assert_eq!(data["metadata"], json!({"b": 2}));
    assert_eq!(data["token_endpoint"], "https://zendesk.example.com/token");
    assert_eq!(data["version"], 2);
    assert_eq!(meta.header("etag"), Some("\"2\""));
    assert!(assert_timestamp(&data["updated_at"], "updated_at") > before);
    // A new secret on /api/v1 is the one /connection serves.
    let rotated = editor.patch(
        &format!("/api/v1/credentials/cred-{id}"),
        &json!({"credentials": {"apiKey": "cross-v2"}}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let read = connection.get(&format!("/connection/{id}/credentials"));
    assert_eq!(
        read.body,
        json!({"data": {"connection_id": id, "credentials": {"apiKey": "cross-v2"}}})
    );
    assert_eq!(read.header("etag"), Some("\"3\""));

    // Reads are counted across surfaces: two on /connection so far.
    let details_path = format!("/api/v1/credentials/zendesk/details?credentialId={id}");
    let counted = editor.get(&details_path);
    assert_eq!(counted.body["data"]["accessCount"], 2, "{}", counted.text);
    let last = counted.body["data"]["lastAccessedAt"].clone();
    assert_timestamp(&last, "lastAccessedAt");
    let v1_read = api_for(server, owner, "integration_user")
        .get(&format!("/api/v1/credentials/zendesk?credentialId={id}"));
    assert_eq!(v1_read.status, 200, "{}", v1_read.text);
    assert_eq!(
        v1_read.body["data"]["credentials"],
        json!({"apiKey": "cross-v2"})
    );
    let meta = connection.get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["access_count"], 3, "{}", meta.text);
    assert_eq!(
        meta.body["data"]["last_accessed_at"],
        v1_read.body["data"]["lastAccessedAt"]
    );
    assert!(
        assert_timestamp(&meta.body["data"]["last_accessed_at"], "last")
            >= assert_timestamp(&last, "last")
    );
    // Reads leave the version alone.
    assert_eq!(meta.body["data"]["version"], 3);
    let listed = list_all(&connection, "&integration_id=zendesk");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], meta.body["data"]);
}

#[test]
fn connection_list_owner_shared_foreign_wrong_role_and_bad_token() {
    let server = harness::shared();
    let (owner, other, stranger) = (tenant(), tenant(), tenant());
    let editor = api_for(server, owner, "integration_editor");
    let own = create_credential(
        &editor,
        &credential_body("asana", "Own", json!({"k": "list-own"})),
    );
    let kept = create_credential(
        &editor,
        &credential_body("asana", "Kept", json!({"k": "list-kept"})),
    );
    let theirs = create_credential(
        &api_for(server, other, "integration_editor"),
        &credential_body("asana", "Theirs", json!({"k": "list-theirs"})),
    );
    let owner_admin = Api::new(server, token(owner, "integration_admin"));
    assert_eq!(
        owner_admin
            .put(&format!("/connection/{own}/shares/{other}"))
            .status,
        200
    );
    let ids = |api: &Api<'_>| -> Vec<(String, bool)> {
        list_all(api, "")
            .iter()
            .map(|item| {
                (
                    item["connection_id"].as_str().expect("id").to_string(),
                    item["shared"].as_bool().expect("shared"),
                )
            })
            .collect()
    };
    for role in ROLES {
        let owner_list = ids(&Api::new(server, token(owner, role)));
        assert_eq!(
            owner_list,
            [(kept.clone(), false), (own.clone(), false)],
            "{role}"
        );
        let other_list = ids(&Api::new(server, token(other, role)));
        assert_eq!(
            other_list,
            [(theirs.clone(), false), (own.clone(), true)],
            "{role}"
        );
        assert_eq!(ids(&Api::new(server, token(stranger, role))), []);
    }
    // Items carry metadata only.
    let reply = Api::new(server, token(other, "integration_viewer")).get("/connection");
    assert!(!reply.text.contains("list-own") && !reply.text.contains("list-theirs"));
    assert_eq!(reply.body["next_cursor"], Value::Null, "{}", reply.text);
    // No contract role: 403; bad tokens: 401 and 400.
    let no_role = TokenBuilder::new(owner, "integration_viewer")
        .claim("roles", json!(["guest"]))
        .sign();
    assert_connection_error(
        &Api::new(server, no_role).get("/connection"),
        403,
        "You do not have access to this resource",
    );
    assert_connection_error(
        &Api::anonymous(server).get("/connection"),
        401,
        "Authentication header is missing, or token is invalid/expired.",
    );
    assert_connection_error(
        &Api::new(server, "x.y").get("/connection"),
        400,
        "Invalid JWT format",
    );
    // The credentials surface's list shows own records only.
    let v1 = api_for(server, other, "integration_viewer").get("/api/v1/credentials?limit=100");
    assert_eq!(v1.status, 200, "{}", v1.text);
    let v1_ids: Vec<&str> = v1.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(v1_ids, [format!("cred-{theirs}")]);
}

#[test]
fn credentials_surface_refusals_keep_their_envelope() {
    let server = harness::shared();
    let (owner, other, stranger) = (tenant(), tenant(), tenant());
    let id = create_credential(
        &api_for(server, owner, "integration_editor"),
        &credential_body(INTEGRATION, "Envelope", json!({"k": "envelope-secret"})),
    );
    coffer_tests::fixtures::share(server, owner, &id, other);
    let shared = api_for(server, other, "integration_admin");
    let foreign = api_for(server, stranger, "integration_admin");
    let read = format!("/api/v1/credentials/{INTEGRATION}?credentialId={id}");
    let one = format!("/api/v1/credentials/cred-{id}");
    assert_error(&shared.get(&read), 403, "INSUFFICIENT_PERMISSIONS");
    assert_error(&foreign.get(&read), 404, "CREDENTIAL_NOT_FOUND");
    assert_error(
        &shared.patch(&one, &json!({"description": "x"})),
        403,
        "INSUFFICIENT_PERMISSIONS",
    );
    assert_error(
        &foreign.patch(&one, &json!({"description": "x"})),
        404,
        "CREDENTIAL_NOT_FOUND",
    );
    assert_error(&shared.delete(&one), 403, "INSUFFICIENT_PERMISSIONS");
    assert_error(&foreign.delete(&one), 404, "CREDENTIAL_NOT_FOUND");
    // A shared record under another integration's path is not found.
    let wrong = format!("/api/v1/credentials/other-integration/details?credentialId={id}");
    assert_error(&shared.get(&wrong), 404, "CREDENTIAL_NOT_FOUND");
}
