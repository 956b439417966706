//! The connection surface, `/connection`, black-box.
use coffer_tests::{
    client::Api,
    fixtures::{tenant, token},
    harness,
};
use serde_json::json;

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
