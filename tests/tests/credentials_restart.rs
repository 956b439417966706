//! Credentials survive a restart of `wrangler dev` (same local state).
use coffer_tests::{
    assertions::assert_not_logged,
    fixtures::{api_for, tenant, TokenBuilder},
    harness::Server,
};
use serde_json::json;

#[test]
fn records_secrets_and_audit_survive_a_restart() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let secret = json!({"accessToken": "restart-at-1", "refreshToken": "restart-rt-2"});
    let metadata = json!({"region": "eu-west", "big": 9007199254740993_u64});
    let (id, before, request_id) = {
        let creator = TokenBuilder::new(owner, "integration_admin")
            .claim("tenant_name", json!("Example Restarts Inc"))
            .sign();
        let api = coffer_tests::client::Api::new(&server, creator)
            .header("x-tenantid", owner.to_string());
        let created = api.post(
            "/api/v1/credentials",
            &json!({
                "integrationId": "persisted",
                "credentialName": "Persisted",
                "description": "kept across restarts",
                "scopes": ["read"],
                "metadata": metadata,
                "expiresAt": "2099-01-01T00:00:00.000Z",
                "credentials": secret,
            }),
        );
        assert_eq!(created.status, 201, "{}", created.text);
        let read = api.get("/api/v1/credentials/persisted");
        assert_eq!(read.status, 200, "{}", read.text);
        let id = created.body["data"]["id"].as_str().expect("id").to_string();
        let request_id = read
            .header("x-request-id")
            .expect("x-request-id")
            .to_string();
        (id, read.body["data"].clone(), request_id)
    };

    server.restart();

    let api = api_for(&server, owner, "integration_admin");
    let details = api.get(&format!(
        "/api/v1/credentials/persisted/details?credentialId={id}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert!(
        details.text.contains("\"big\":9007199254740993"),
        "{}",
        details.text
    );
    let mut expected = before.clone();
    expected
        .as_object_mut()
        .expect("object")
        .remove("credentials");
    assert_eq!(
        details.body["data"], expected,
        "metadata changed over the restart"
    );
    assert_eq!(
        details.body["data"]["tenant"]["name"],
        "Example Restarts Inc"
    );

    let read = api.get(&format!("/api/v1/credentials/persisted?credentialId={id}"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentials"], secret);
    assert_eq!(read.body["data"]["accessCount"], 2);
    assert_eq!(read.body["data"]["version"], 1);

    let list = api.get("/api/v1/credentials");
    assert_eq!(list.body["data"]["items"][0]["id"], id.as_str());
    let audit = api.get("/api/v1/audit");
    let items = audit.body["data"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "create, read, read: {}", audit.text);
    assert!(items.iter().any(|e| e["requestId"] == request_id.as_str()));
    // The change after the restart works too (the key ring is the same).
    let rotated = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": {"accessToken": "restart-at-3"}}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_not_logged(&server, &["restart-at-1", "restart-rt-2", "restart-at-3"]);
}
