//! Crypto-shredding a tenant (issue 16): `DELETE /api/v1/tenant` destroys
//! the tenant's keys in the batch that marks it deleted; from then on its
//! records are not found, tenant-level routes answer 410, shares it granted
//! stop working, the sweep removes its rows and blobs, one `tenant.delete`
//! event is kept, and a D1 restored from before the deletion, beside the
//! current KV, opens nothing.
use std::fs;

use coffer_tests::{
    assertions::assert_error,
    client::Api,
    fixtures::{api_for, bare_id, run_sweeps, share, sweep_summaries, tenant},
    harness::{root, Server},
};
use serde_json::json;
use uuid::Uuid;

fn create(api: &Api<'_>, integration: &str, secret: &str) -> String {
    let reply = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": integration, "credentialName": "S", "credentials": {"apiKey": secret}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    bare_id(&reply.body["data"]["id"])
}

fn delete_tenant(api: &Api<'_>, confirm: Option<&str>) -> coffer_tests::client::Reply {
    let api = match confirm {
        Some(value) => api.clone().header("x-confirm-tenant-deletion", value),
        None => api.clone(),
    };
    api.delete("/api/v1/tenant")
}

#[test]
fn deleting_a_tenant_shreds_its_secrets_everywhere() {
    let mut server = Server::start(&[]);
    let (doomed, friend, bystander) = (tenant(), tenant(), tenant());
    let admin = api_for(&server, doomed, "integration_admin");
    let shared_id = create(&admin, "shred", "shred-secret-shared");
    let other_id = create(&admin, "shred", "shred-secret-other");
    // An earlier version too, so both tables and both blobs are covered.
    let reply = admin.patch(
        &format!("/api/v1/credentials/{other_id}"),
        &json!({"credentials": {"apiKey": "shred-secret-other-2"}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    share(&server, doomed, &shared_id, friend);
    assert_eq!(
        api_for(&server, friend, "integration_admin")
            .get(&format!("/connection/{shared_id}"))
            .status,
        200
    );
    // Another tenant's data is untouched by all of this.
    let kept = create(
        &api_for(&server, bystander, "integration_admin"),
        "shred",
        "bystander-secret",
    );

    // The backup: D1 and KV as they are before the deletion.
    server.stop();
    let backup = root()
        .join("target")
        .join("shred-backup")
        .join(Uuid::new_v4().simple().to_string());
    server.copy_state(&backup);
    server.start_again();
    let admin = api_for(&server, doomed, "integration_admin");
    let friend_api = api_for(&server, friend, "integration_admin");

    // Refused without the confirmation, with a wrong one, or below admin.
    assert_error(&delete_tenant(&admin, None), 400, "INVALID_PARAMETERS");
    assert_error(
        &delete_tenant(&admin, Some(&Uuid::new_v4().to_string())),
        400,
        "INVALID_PARAMETERS",
    );
    for role in [
        "integration_viewer",
        "integration_user",
        "integration_editor",
    ] {
        let reply = delete_tenant(&api_for(&server, doomed, role), Some(&doomed.to_string()));
        assert_eq!(reply.status, 403, "{role}: {}", reply.text);
    }
    assert_eq!(admin.get(&format!("/connection/{shared_id}")).status, 200);

    let reply = delete_tenant(&admin, Some(&doomed.to_string()));
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.body["data"]["tenantId"], doomed.to_string());

    // Records: not found, on both surfaces, metadata and secrets alike.
    for id in [&shared_id, &other_id] {
        for path in [
            format!("/api/v1/credentials/shred?credentialId={id}"),
            format!("/api/v1/credentials/shred/details?credentialId={id}"),
            format!("/api/v1/credentials/{id}/versions"),
            format!("/connection/{id}"),
            format!("/connection/{id}/credentials"),
        ] {
            let reply = admin.get(&path);
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
            assert!(!reply.text.contains("shred-secret"), "{path}");
        }
    }
    assert_eq!(admin.get("/api/v1/credentials/shred").status, 404);
    // Tenant-level routes: 410 TENANT_DELETED.
    assert_error(&admin.get("/api/v1/credentials"), 410, "TENANT_DELETED");
    assert_error(&admin.get("/api/v1/audit"), 410, "TENANT_DELETED");
    assert_error(
        &admin.post(
            "/api/v1/credentials",
            &json!({"integrationId": "shred", "credentialName": "S", "credentials": {"apiKey": "x"}}),
        ),
        410,
        "TENANT_DELETED",
    );
    assert_error(
        &admin.post("/api/v1/tenant/keys/rotate", &json!({})),
        410,
        "TENANT_DELETED",
    );
    assert_error(
        &delete_tenant(&admin, Some(&doomed.to_string())),
        410,
        "TENANT_DELETED",
    );
    assert_eq!(admin.get("/connection").status, 410);
    // The share it granted stops working at once.
    for path in [
        format!("/connection/{shared_id}"),
        format!("/connection/{shared_id}/credentials"),
    ] {
        let reply = friend_api.get(&path);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
    }
    let listed = friend_api.get("/connection");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert!(!listed.text.contains(&shared_id), "{}", listed.text);

    // A D1 restored from before the deletion, beside today's KV, before
    // any sweep ran (the blobs are all still in KV): the rows, the wrapped
    // data keys and the wrapped tenant key are back, yet no secret opens,
    // because the tenant's KV half was deleted with the deletion.
    server.stop();
    let after = backup.with_extension("after");
    server.copy_state(&after);
    server.restore_d1(&backup);
    server.start_again();
    let restored = api_for(&server, doomed, "integration_admin");
    for id in [&shared_id, &other_id] {
        // The row is back (metadata reads), the secret is not.
        let details = restored.get(&format!(
            "/api/v1/credentials/shred/details?credentialId={id}"
        ));
        assert_eq!(details.status, 200, "the restored row: {}", details.text);
        let reply = restored.get(&format!("/api/v1/credentials/shred?credentialId={id}"));
        assert_eq!(reply.status, 500, "{}", reply.text);
        assert_eq!(reply.body["error"]["code"], "INTERNAL_ERROR");
        assert!(!reply.text.contains("shred-secret"), "{}", reply.text);
    }
    let reply = restored.get(&format!(
        "/api/v1/credentials/shred?credentialId={other_id}&secretVersion=1"
    ));
    assert_ne!(reply.status, 200, "{}", reply.text);
    assert!(!reply.text.contains("shred-secret"), "{}", reply.text);
    // Back to the real D1.
    server.stop();
    server.restore_d1(&after);
    server.start_again();
    let admin = api_for(&server, doomed, "integration_admin");
    assert_error(&admin.get("/api/v1/credentials"), 410, "TENANT_DELETED");

    // The sweep removes rows and blobs, and logs a summary.
    run_sweeps(&server);
    let summary = sweep_summaries(&server, "shred", 1)
        .last()
        .cloned()
        .expect("a shred summary");
    assert_eq!(summary["purged"], 1, "{summary}");
    assert_eq!(summary["records_removed"], 2, "{summary}");
    assert_eq!(summary["versions_removed"], 1, "{summary}");
    assert_eq!(summary["blobs_removed"], 3, "{summary}");
    run_sweeps(&server);
    let again = sweep_summaries(&server, "shred", 2)
        .last()
        .cloned()
        .expect("a shred summary");
    assert_eq!(again["tenants"], 0, "idempotent: {again}");
    // The bystander is untouched.
    let reply = api_for(&server, bystander, "integration_user")
        .get(&format!("/api/v1/credentials/shred?credentialId={kept}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"],
        "bystander-secret"
    );

    // Only the tenant.delete event is kept (the API answers 410, so look
    // at D1 itself, with the server stopped).
    server.stop();
    let events = server.d1(&format!(
        "SELECT action FROM audit_events WHERE tenant_id = '{doomed}'"
    ));
    assert_eq!(events, json!([{"action": "tenant.delete"}]), "{events}");

    let _ = fs::remove_dir_all(&backup);
    let _ = fs::remove_dir_all(&after);
}
