//! The connection surface's metadata (`GET /connection/{id}`) and share
//! management (`/connection/{id}/shares[/{tenant_id}]`), black-box.
use coffer_tests::{
    assertions::{
        assert_api_version, assert_connection_error, assert_timestamp, assert_unprocessable,
    },
    client::{Api, Reply},
    fixtures::{
        api_for, create_credential, tenant, token, TokenBuilder, CONNECTION_METADATA_FIELDS, ROLES,
    },
    harness::{self, Server},
};
use serde_json::{json, Value};
use uuid::Uuid;

const FORBIDDEN: &str = "You do not have access to this resource";

fn not_found(id: &str) -> String {
    format!("Connection with ID {id} not found")
}

/// A record with every optional field set, owned by `owner`.
fn create_full(server: &Server, owner: Uuid, secret: &str) -> String {
    let editor = api_for(server, owner, "integration_editor");
    create_credential(
        &editor,
        &json!({
            "integrationId": "salesforce",
            "credentialName": "Salesforce prod",
            "description": "The production org",
            "authType": "oauth2_bearer",
            "scopes": ["api", "refresh_token"],
            "tokenEndpoint": "https://login.example.com/token",
            "authorizationEndpoint": "https://login.example.com/authorize",
            "metadata": {"region": "eu", "owner": "ada@example.com"},
            "expiresAt": "2999-01-01T00:00:00.000Z",
            "credentials": {"accessToken": secret, "refreshToken": format!("{secret}-refresh")},
        }),
    )
}

fn admin(server: &Server, owner: Uuid) -> Api<'_> {
    Api::new(server, token(owner, "integration_admin"))
}

/// Asserts a metadata object has exactly the contract's fields.
fn assert_metadata_fields(data: &Value) {
    let object = data
        .as_object()
        .unwrap_or_else(|| panic!("metadata is not an object: {data}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = CONNECTION_METADATA_FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{data}");
    for key in keys {
        assert!(
            key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{key} is not snake_case"
        );
    }
}

#[test]
fn metadata_for_the_owner_and_a_shared_tenant_never_the_secret() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let secret = "meta-case-secret-4242";
    let id = create_full(server, owner, secret);
    let owner_view =
        Api::new(server, token(owner, "integration_viewer")).get(&format!("/connection/{id}"));
    assert_eq!(owner_view.status, 200, "{}", owner_view.text);
    assert_api_version(&owner_view);
    assert_eq!(owner_view.header("etag"), Some("\"1\""));
    let data = &owner_view.body["data"];
    assert_metadata_fields(data);
    assert_eq!(owner_view.body.as_object().map(|o| o.len()), Some(1));
    assert_eq!(data["connection_id"], id);
    assert_eq!(data["integration_id"], "salesforce");
    assert_eq!(data["name"], "Salesforce prod");
    assert_eq!(data["description"], "The production org");
    assert_eq!(data["auth_type"], "oauth2_bearer");
    assert_eq!(data["scopes"], json!(["api", "refresh_token"]));
    assert_eq!(data["token_endpoint"], "https://login.example.com/token");
    assert_eq!(
        data["authorization_endpoint"],
        "https://login.example.com/authorize"
    );
    assert_eq!(
        data["metadata"],
        json!({"region": "eu", "owner": "ada@example.com"})
    );
    assert_eq!(data["status"], "active");
    assert_eq!(data["expires_at"], "2999-01-01T00:00:00.000Z");
    assert_eq!(data["is_expired"], false);
    assert_timestamp(&data["created_at"], "created_at");
    assert_timestamp(&data["updated_at"], "updated_at");
    assert_eq!(data["created_by"]["name"], "Ada Example");
    assert_eq!(data["created_by"]["email"], "ada@example.com");
    assert_eq!(data["last_accessed_at"], Value::Null);
    assert_eq!(data["access_count"], 0);
    assert_eq!(data["version"], 1);
    assert_eq!(data["owner_tenant_id"], owner.to_string());
    assert_eq!(data["shared"], false);
    assert!(!owner_view.text.contains(secret));
    assert!(owner_view.body["data"].get("credentials").is_none());

    admin(server, owner).put(&format!("/connection/{id}/shares/{other}"));
    for role in ROLES {
        let shared = Api::new(server, token(other, role)).get(&format!("/connection/{id}"));
        assert_eq!(shared.status, 200, "{role}: {}", shared.text);
        assert_metadata_fields(&shared.body["data"]);
        assert_eq!(shared.body["data"]["shared"], true);
        assert_eq!(shared.body["data"]["owner_tenant_id"], owner.to_string());
        assert!(!shared.text.contains(secret), "{role}");
        // Everything but `shared` is what the owner sees.
        let mut owner_data = owner_view.body["data"].clone();
        owner_data["shared"] = json!(true);
        assert_eq!(shared.body["data"], owner_data, "{role}");
    }
    // A further tenant of the owner's token, picked with x-tenantid, is the owner.
    let multi = TokenBuilder::new(tenant(), "integration_viewer")
        .claim("tenants", json!([owner.to_string()]))
        .sign();
    let reply = Api::new(server, multi)
        .header("x-tenantid", owner.to_string())
        .get(&format!("/connection/{id}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["shared"], false);
}

#[test]
fn metadata_wrong_role_foreign_tenant_and_bad_token() {
    let server = harness::shared();
    let (owner, stranger) = (tenant(), tenant());
    let id = create_full(server, owner, "meta-matrix-secret");
    let path = format!("/connection/{id}");
    for role in ROLES {
        let reply = Api::new(server, token(stranger, role)).get(&path);
        assert_connection_error(&reply, 404, &not_found(&id));
    }
    let no_role = TokenBuilder::new(owner, "integration_viewer")
        .claim("roles", json!([]))
        .sign();
    assert_connection_error(&Api::new(server, no_role).get(&path), 403, FORBIDDEN);
    let badly_signed = TokenBuilder::new(owner, "integration_admin").sign_with("wrong");
    assert_connection_error(
        &Api::new(server, badly_signed).get(&path),
        401,
        "Authentication header is missing, or token is invalid/expired.",
    );
    assert_connection_error(
        &Api::new(server, "a.b").get(&path),
        400,
        "Invalid JWT format",
    );
    let missing = Uuid::new_v4().to_string();
    assert_connection_error(
        &admin(server, owner).get(&format!("/connection/{missing}")),
        404,
        &not_found(&missing),
    );
}

fn share_body(reply: &Reply, id: &str, tenant: Uuid) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_api_version(reply);
    let data = &reply.body["data"];
    let mut keys: Vec<&str> = data
        .as_object()
        .unwrap_or_else(|| panic!("share is not an object: {}", reply.text))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["connection_id", "granted_at", "granted_by", "tenant_id"],
        "{}",
        reply.text
    );
    assert_eq!(reply.body.as_object().map(|o| o.len()), Some(1));
    assert_eq!(data["connection_id"], id);
    assert_eq!(data["tenant_id"], tenant.to_string());
    assert_timestamp(&data["granted_at"], "granted_at");
    assert!(data["granted_by"].as_str().is_some_and(|s| !s.is_empty()));
    data.clone()
}

#[test]
fn put_is_idempotent_delete_is_204_and_the_list_shows_both() {
    let server = harness::shared();
    let (owner, first, second) = (tenant(), tenant(), tenant());
    let id = create_full(server, owner, "share-idem-secret");
    let sub = Uuid::new_v4().to_string();
    let owner_admin = Api::new(
        server,
        TokenBuilder::new(owner, "integration_admin")
            .claim("sub", json!(sub))
            .sign(),
    );
    let grant = owner_admin.put(&format!("/connection/{id}/shares/{first}"));
    let granted = share_body(&grant, &id, first);
    assert_eq!(granted["granted_by"], sub);
    std::thread::sleep(core::time::Duration::from_millis(20));
    // Again, by another admin: the same grant, same time and grantor.
    let again = admin(server, owner).put(&format!("/connection/{id}/shares/{first}"));
    assert_eq!(share_body(&again, &id, first), granted);
    // A tenant id in capitals names the same tenant.
    let upper = first.to_string().to_uppercase();
    let capitals = owner_admin.put(&format!("/connection/{id}/shares/{upper}"));
    assert_eq!(share_body(&capitals, &id, first), granted);

    let grant_second = owner_admin.put(&format!("/connection/{id}/shares/{second}"));
    let second_share = share_body(&grant_second, &id, second);

    let list = owner_admin.get(&format!("/connection/{id}/shares"));
    assert_eq!(list.status, 200, "{}", list.text);
    assert_api_version(&list);
    assert_eq!(
        list.body.as_object().map(|o| o.len()),
        Some(1),
        "{}",
        list.text
    );
    assert_eq!(list.body["data"], json!([granted, second_share]));

    // Share changes leave the record's version alone.
    let meta = owner_admin.get(&format!("/connection/{id}"));
    assert_eq!(meta.body["data"]["version"], 1, "{}", meta.text);

    let revoke = owner_admin.delete(&format!("/connection/{id}/shares/{first}"));
    assert_eq!(revoke.status, 204, "{}", revoke.text);
    assert!(revoke.text.is_empty(), "{}", revoke.text);
    assert_api_version(&revoke);
    let again = owner_admin.delete(&format!("/connection/{id}/shares/{first}"));
    assert_eq!(again.status, 204, "{}", again.text);
    let never = owner_admin.delete(&format!("/connection/{id}/shares/{}", tenant()));
    assert_eq!(never.status, 204, "{}", never.text);
    let list = owner_admin.get(&format!("/connection/{id}/shares"));
    assert_eq!(list.body, json!({"data": [second_share]}));

    // A fresh grant after a revoke is a new grant.
    std::thread::sleep(core::time::Duration::from_millis(5));
    let regrant = owner_admin.put(&format!("/connection/{id}/shares/{first}"));
    let regranted = share_body(&regrant, &id, first);
    assert!(
        assert_timestamp(&regranted["granted_at"], "regrant")
            >= assert_timestamp(&granted["granted_at"], "grant")
    );
    // An empty list is still a list.
    let lonely = create_full(server, owner, "share-empty-secret");
    let empty = owner_admin.get(&format!("/connection/{lonely}/shares"));
    assert_eq!(empty.body, json!({"data": []}), "{}", empty.text);
}

#[test]
fn sharing_with_the_owner_or_a_malformed_tenant_is_422() {
    let server = harness::shared();
    let owner = tenant();
    let id = create_full(server, owner, "share-422-secret");
    let owner_admin = admin(server, owner);
    let upper = owner.to_string().to_uppercase();
    for target in [owner.to_string(), upper] {
        let reply = owner_admin.put(&format!("/connection/{id}/shares/{target}"));
        assert_unprocessable(&reply, ["path", "tenant_id"]);
    }
    for bad in [
        "not-a-tenant",
        "123",
        "cred-x",
        "00000000-0000-0000-0000-00000000000g",
    ] {
        let put = owner_admin.put(&format!("/connection/{id}/shares/{bad}"));
        assert_unprocessable(&put, ["path", "tenant_id"]);
        let delete = owner_admin.delete(&format!("/connection/{id}/shares/{bad}"));
        assert_unprocessable(&delete, ["path", "tenant_id"]);
    }
    let list = owner_admin.get(&format!("/connection/{id}/shares"));
    assert_eq!(list.body, json!({"data": []}), "{}", list.text);
}

#[test]
fn share_routes_owner_shared_foreign_wrong_role_and_bad_token() {
    let server = harness::shared();
    let (owner, other, stranger, target) = (tenant(), tenant(), tenant(), tenant());
    let id = create_full(server, owner, "share-matrix-secret");
    admin(server, owner).put(&format!("/connection/{id}/shares/{other}"));
    let list = format!("/connection/{id}/shares");
    let one = format!("/connection/{id}/shares/{target}");
    type Call = fn(&Api<'_>, &str) -> Reply;
    let calls: [(&String, Call); 3] = [
        (&list, |api, path| api.get(path)),
        (&one, |api, path| api.put(path)),
        (&one, |api, path| api.delete(path)),
    ];
    for (path, call) in calls {
        // Shared tenant, any role: 403.
        for role in ROLES {
            let reply = call(&Api::new(server, token(other, role)), path);
            assert_connection_error(&reply, 403, FORBIDDEN);
        }
        // A stranger, any role: 404.
        for role in ROLES {
            let reply = call(&Api::new(server, token(stranger, role)), path);
            assert_connection_error(&reply, 404, &not_found(&id));
        }
        // The owner below admin: 403.
        for role in &ROLES[..3] {
            let reply = call(&Api::new(server, token(owner, role)), path);
            assert_connection_error(&reply, 403, FORBIDDEN);
        }
        // Bad tokens.
        assert_connection_error(
            &call(&Api::anonymous(server), path),
            401,
            "Authentication header is missing, or token is invalid/expired.",
        );
        assert_connection_error(
            &call(&Api::new(server, "abc"), path),
            400,
            "Invalid JWT format",
        );
        // A missing record: 404 for the owner's admin too.
        let missing = Uuid::new_v4().to_string();
        let reply = call(&admin(server, owner), &path.replace(&id, &missing));
        assert_connection_error(&reply, 404, &not_found(&missing));
    }
    // None of the refused changes happened: only the owner's grant is there.
    let shares = admin(server, owner).get(&list);
    assert_eq!(shares.status, 200, "{}", shares.text);
    let tenants: Vec<&str> = shares.body["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["tenant_id"].as_str())
        .collect();
    assert_eq!(tenants, [other.to_string()]);
    // The owner's admin may grant and revoke.
    assert_eq!(admin(server, owner).put(&one).status, 200);
    assert_eq!(admin(server, owner).delete(&one).status, 204);
}

#[test]
fn if_match_is_honoured_on_share_changes() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let id = create_full(server, owner, "share-if-match-secret");
    let path = format!("/connection/{id}/shares/{other}");
    let stale = admin(server, owner).header("if-match", "\"7\"");
    let reply = stale.put(&path);
    assert_eq!(reply.status, 412, "{}", reply.text);
    assert_api_version(&reply);
    assert_eq!(
        admin(server, owner)
            .get(&format!("/connection/{id}/shares"))
            .body,
        json!({"data": []})
    );
    let current = admin(server, owner).header("if-match", "\"1\"");
    assert_eq!(current.put(&path).status, 200);
    assert_eq!(stale.delete(&path).status, 412);
    assert_eq!(current.delete(&path).status, 204);
}

#[test]
fn grant_and_revoke_take_effect_on_the_very_next_request() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let secret = "next-request-secret";
    let id = create_full(server, owner, secret);
    let owner_admin = admin(server, owner);
    let viewer = Api::new(server, token(other, "integration_admin"));
    let path = format!("/connection/{id}");
    let listed = |api: &Api<'_>| -> bool {
        let reply = api.get("/connection?limit=100");
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"]
            .as_array()
            .expect("list")
            .iter()
            .any(|item| item["connection_id"] == id.as_str())
    };
    let details = format!("/api/v1/credentials/salesforce/details?credentialId={id}");
    let other_api = api_for(server, other, "integration_viewer");
    for round in 0..3 {
        assert_eq!(viewer.get(&path).status, 404, "round {round}");
        assert!(!listed(&viewer));
        assert_eq!(other_api.get(&details).status, 404);
        assert_eq!(
            owner_admin
                .put(&format!("/connection/{id}/shares/{other}"))
                .status,
            200
        );
        let reply = viewer.get(&path);
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text);
        assert!(listed(&viewer));
        assert_eq!(other_api.get(&details).status, 200);
        assert_eq!(
            viewer.get(&format!("/connection/{id}/credentials")).status,
            403
        );
        assert_eq!(
            owner_admin
                .delete(&format!("/connection/{id}/shares/{other}"))
                .status,
            204
        );
        assert_connection_error(&viewer.get(&path), 404, &not_found(&id));
        assert_connection_error(
            &viewer.get(&format!("/connection/{id}/credentials")),
            404,
            &not_found(&id),
        );
    }
}

/// The owner's audit events for `id`, newest first.
fn audit_events(server: &Server, owner: Uuid, id: &str) -> Vec<Value> {
    let reply = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}&limit=100"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", reply.text))
        .clone()
}

#[test]
fn share_changes_are_audited_in_the_owners_log() {
    let server = harness::shared();
    let (owner, other) = (tenant(), tenant());
    let id = create_full(server, owner, "share-audit-secret");
    let sub = Uuid::new_v4().to_string();
    let owner_admin = Api::new(
        server,
        TokenBuilder::new(owner, "integration_admin")
            .claim("sub", json!(sub))
            .sign(),
    );
    assert_eq!(
        owner_admin
            .put(&format!("/connection/{id}/shares/{other}"))
            .status,
        200
    );
    assert_eq!(
        owner_admin
            .delete(&format!("/connection/{id}/shares/{other}"))
            .status,
        204
    );
    // A refused change by the shared tenant is not an owner's share event.
    Api::new(server, token(other, "integration_admin"))
        .put(&format!("/connection/{id}/shares/{}", tenant()));

    let events = audit_events(server, owner, &id);
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        ["share.revoke", "share.grant", "credential.create"],
        "{events:?}"
    );
    for event in &events[..2] {
        assert_eq!(event["outcome"], "success");
        assert_eq!(event["credentialId"], format!("cred-{id}"));
        assert_eq!(event["actor"]["id"], sub);
        assert_eq!(event["actorTenantId"], owner.to_string());
        assert!(event["requestId"].as_str().is_some_and(|s| !s.is_empty()));
        assert_timestamp(&event["at"], "audit at");
    }
    // The shared tenant's own log has none of it.
    let theirs = api_for(server, other, "integration_admin").get("/api/v1/audit?limit=100");
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_eq!(theirs.body["data"]["items"], json!([]), "{}", theirs.text);
}
