//! The credentials surface, `/api/v1/credentials`, black-box.
use coffer_tests::{
    client::Api,
    fixtures::{tenant, token},
    harness,
};
use serde_json::json;

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
}
