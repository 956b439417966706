//! Operations: a lost master key, the scheduled sweeps, CORS, and the
//! log staying free of secrets and tokens. Each test runs its own server,
//! because sweeps act on the whole store.
extern crate alloc;

use core::time::Duration;
use std::thread;

use coffer_tests::{
    client::{Api, Reply},
    fixtures::{run_sweeps, sweep_summaries, tenant, token, COFFER_KEYS},
    harness::Server,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// A second master key (base64 of 32 bytes 0x21..=0x40).
const KEY_B: &str = "test-k2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=";

fn create(api: &Api<'_>, integration: &str, secret: &str, extra: Value) -> String {
    let mut body = json!({
        "integrationId": integration,
        "credentialName": "Ops Test",
        "credentials": {"apiKey": secret},
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let reply = api.post("/api/v1/credentials", &body);
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["data"]["id"].as_str().expect("id").to_string()
}

fn read(api: &Api<'_>, integration: &str, id: &str) -> Reply {
    api.get(&format!(
        "/api/v1/credentials/{integration}?credentialId={id}"
    ))
}

fn bare(id: &str) -> &str {
    id.trim_start_matches("cred-")
}

// Master-key rotation end to end (readers running, the old key removed,
// its cost per tenant) is in key_hierarchy.rs.

#[test]
fn a_record_whose_key_is_gone_fails_opaquely_and_is_skipped_by_the_sweep() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let api_token = token(owner, "integration_admin");
    let id = {
        let api = Api::new(&server, api_token.clone()).header("x-tenantid", owner.to_string());
        create(&api, "lost-key", "lost-key-secret-value", json!({}))
    };
    // The operator removed the old key too early.
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    let api = Api::new(&server, api_token).header("x-tenantid", owner.to_string());
    let reply = read(&api, "lost-key", &id);
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body["error"]["code"], "INTERNAL_ERROR");
    assert!(!reply.text.contains("lost-key-secret-value"));
    run_sweeps(&server);
    let summary = sweep_summaries(&server, "rewrap", 1);
    assert!(
        summary
            .iter()
            .any(|s| s["failed"] == 1 && s["remaining"] == 1),
        "{summary:?} {}",
        server
            .log()
            .lines()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The key comes back: the record opens, so the sweep left its wrap alone.
    server.restart_with(&[("COFFER_KEYS", COFFER_KEYS)]);
    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let reply = read(&api, "lost-key", &id);
    assert_eq!(
        reply.status, 200,
        "an undecryptable key is never rewritten: {}",
        reply.text
    );
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"],
        "lost-key-secret-value"
    );
}

#[test]
fn expiry_sweep_stores_expired_and_the_secret_stays_readable() {
    let server = Server::start(&[]);
    let owner = tenant();
    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let past = create(
        &api,
        "expiry",
        "expiry-secret-one",
        json!({"expiresAt": "2020-01-01T00:00:00.000Z"}),
    );
    let future = create(
        &api,
        "expiry",
        "expiry-secret-two",
        json!({"expiresAt": "2999-01-01T00:00:00.000Z"}),
    );
    run_sweeps(&server);
    run_sweeps(&server);
    let summaries = sweep_summaries(&server, "expire", 2);
    assert_eq!(
        summaries[0]["expired"], 1,
        "only the past record: {summaries:?}"
    );
    assert_eq!(summaries[1]["expired"], 0, "idempotent: {summaries:?}");
    let reply = read(&api, "expiry", &future);
    assert_eq!(reply.body["data"]["status"], "active", "{}", reply.text);
    let reply = read(&api, "expiry", &past);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["status"], "expired");
    assert_eq!(reply.body["data"]["isExpired"], true);
    // Clearing the expiry makes the record active again.
    let patched = api.patch(
        &format!("/api/v1/credentials/{past}"),
        &json!({"expiresAt": null}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["data"]["status"], "active");
    let listed = api.get("/api/v1/credentials?integrationId=expiry&status=active");
    assert_eq!(
        listed.body["data"]["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        listed.text
    );
}

/// Restarts `server` with its D1 binding pointed at an empty database (no
/// tables), makes `count` creates fail there after their blobs reached KV,
/// and restarts it on the real database with `vars`. Fault injection: the
/// orphans are written by the Worker itself, with its own write times, as
/// a D1 outage between the KV put and the commit would leave them.
fn orphan_blobs_by_failed_creates(
    server: &mut Server,
    owner: Uuid,
    count: usize,
    vars: &[(&str, &str)],
) {
    server.restart_with_config(vars, |config| {
        if let Some(toml::Value::Array(databases)) = config.get_mut("d1_databases") {
            if let Some(toml::Value::Table(db)) = databases.first_mut() {
                db.insert(
                    "database_id".into(),
                    "00000000-0000-0000-0000-0000000000ff".into(),
                );
            }
        }
    });
    // That database has the tenant tables but no `credentials`: the seal
    // finds (creates) a tenant key, the blob goes to KV, then the commit
    // fails. Storage no API can make, so it is made out of band.
    server.wrangler_cli(&["d1", "migrations", "apply", "DB"]);
    server.d1("DROP TABLE credentials");
    let api =
        Api::new(server, token(owner, "integration_admin")).header("x-tenantid", owner.to_string());
    for n in 0..count {
        // A GET first, which wrangler dev's proxy retries on its own: after
        // the seconds the CLI took, its idle connection to the Worker may be
        // closed, and a POST on it gets the proxy's 503 "restarted
        // mid-request" (workers-sdk#14641) that a retry could not tell from
        // a create that reached KV.
        let _ = api.get("/no/such/route");
        let reply = api.post(
            "/api/v1/credentials",
            &json!({"integrationId": "orphans", "credentialName": "Lost",
                    "credentials": {"apiKey": format!("orphaned-secret-{n}")}}),
        );
        assert_eq!(reply.status, 500, "the commit fails: {}", reply.text);
    }
    server.restart_with(vars);
}

#[test]
fn orphan_sweep_removes_unreferenced_blobs_past_retention_only() {
    let hour = [("COFFER_BLOB_RETENTION_SECONDS", "3600")];
    let mut server = Server::start(&hour);
    let owner = tenant();
    let live = {
        let api = Api::new(&server, token(owner, "integration_admin"))
            .header("x-tenantid", owner.to_string());
        let id = create(&api, "orphans", "orphan-test-first-secret", json!({}));
        // A secret change keeps the first secret version: both blobs
        // stay referenced.
        let patched = api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"credentials": {"apiKey": "orphan-test-live-secret"}}),
        );
        assert_eq!(patched.status, 200, "{}", patched.text);
        id
    };
    orphan_blobs_by_failed_creates(&mut server, owner, 2, &hour);

    // Young orphans stay while the retention window lasts.
    run_sweeps(&server);
    let first = sweep_summaries(&server, "orphans", 1);
    assert_eq!(first[0]["removed"], 0, "{first:?}");
    assert_eq!(first[0]["kept_young"], 2, "{first:?}");
    assert_eq!(first[0]["scanned"], 4, "{first:?}");

    // Past the window they go, and only they.
    thread::sleep(Duration::from_millis(2100));
    server.restart_with(&[("COFFER_BLOB_RETENTION_SECONDS", "1")]);
    run_sweeps(&server);
    run_sweeps(&server);
    // The log holds every run since the first start.
    let summaries = sweep_summaries(&server, "orphans", 3);
    assert_eq!(summaries[1]["removed"], 2, "{summaries:?}");
    assert_eq!(summaries[1]["scanned"], 4, "{summaries:?}");
    assert_eq!(summaries[2]["removed"], 0, "idempotent: {summaries:?}");
    assert_eq!(summaries[2]["scanned"], 2, "{summaries:?}");
    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let reply = read(&api, "orphans", &live);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"],
        "orphan-test-live-secret"
    );
}

#[test]
fn orphan_sweep_spares_young_blobs_even_with_a_short_window() {
    let vars = [("COFFER_BLOB_RETENTION_SECONDS", "30")];
    let mut server = Server::start(&vars);
    let owner = tenant();
    orphan_blobs_by_failed_creates(&mut server, owner, 1, &vars);
    run_sweeps(&server);
    let summaries = sweep_summaries(&server, "orphans", 1);
    assert_eq!(summaries[0]["kept_young"], 1, "{summaries:?}");
    assert_eq!(summaries[0]["removed"], 0, "{summaries:?}");
}

#[test]
fn orphan_sweep_keeps_and_counts_blobs_of_unknown_age() {
    let server = Server::start(&[("COFFER_BLOB_RETENTION_SECONDS", "0")]);
    let owner = tenant();
    // Fault injection: a blob with no write time, as builds before the
    // data-safety fix wrote them. Its age cannot be told, so it stays.
    let unknown = format!("secret/v1/{owner}/{}/1", Uuid::new_v4());
    server.wrangler_cli(&[
        "kv",
        "key",
        "put",
        "--binding",
        "SECRETS",
        &unknown,
        "bytes-of-unknown-age",
    ]);
    run_sweeps(&server);
    run_sweeps(&server);
    let summaries = sweep_summaries(&server, "orphans", 2);
    for summary in &summaries {
        assert_eq!(summary["removed"], 0, "{summaries:?}");
        assert_eq!(summary["unknown_age"], 1, "{summaries:?}");
    }
    let keys = server.blob_keys(&unknown);
    assert!(keys.contains(&unknown), "the blob is still there: {keys:?}");
}

#[test]
fn cors_exposes_responses_to_allowed_origins_only() {
    let server = Server::start(&[("CORS_ALLOWED_ORIGINS", "https://admin.example.com")]);
    let owner = tenant();
    let preflight = |origin: &str| {
        Api::anonymous(&server)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header(
                "access-control-request-headers",
                "authorization, x-tenantid",
            )
            .send(Method::OPTIONS, "/api/v1/credentials", None)
    };
    let allowed = preflight("https://admin.example.com");
    assert_eq!(allowed.status, 204, "{}", allowed.text);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    let methods = allowed
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert!(allowed
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .contains("x-tenantid"));
    assert_eq!(allowed.header("access-control-allow-credentials"), None);

    let refused = preflight("https://evil.example.com");
    assert_ne!(refused.status, 204);
    assert_eq!(refused.header("access-control-allow-origin"), None);

    let api = Api::new(&server, token(owner, "integration_admin"))
        .header("x-tenantid", owner.to_string());
    let id = create(&api, "cors", "cors-secret-value", json!({}));
    let from = |origin: &str| {
        api.clone()
            .header("origin", origin)
            .get(&format!("/api/v1/credentials/cors?credentialId={id}"))
    };
    let ok = from("https://admin.example.com");
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    assert!(ok
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .contains("etag"));
    let foreign = from("https://evil.example.com");
    assert_eq!(
        foreign.header("access-control-allow-origin"),
        None,
        "a browser withholds this response"
    );
}

#[test]
fn log_lines_are_structured_and_free_of_secrets_and_tokens() {
    let server = Server::start(&[]);
    let (owner, other) = (tenant(), tenant());
    let admin_token = token(owner, "integration_admin");
    let stranger_token = token(other, "integration_user");
    let api = Api::new(&server, admin_token.clone()).header("x-tenantid", owner.to_string());
    let secret = format!("log-scan-secret-{}", Uuid::new_v4());
    let id = create(&api, "logs", &secret, json!({}));
    assert_eq!(read(&api, "logs", &id).status, 200);
    let patched_secret = format!("log-scan-rotated-{}", Uuid::new_v4());
    let patched = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": {"apiKey": patched_secret}}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(
        Api::new(&server, stranger_token.clone())
            .get(&format!("/connection/{}/credentials", bare(&id)))
            .status,
        404
    );
    assert_eq!(
        Api::new(&server, format!("{admin_token}x"))
            .get(&format!("/connection/{}/credentials", bare(&id)))
            .status,
        401
    );
    assert_eq!(
        api.post(
            "/api/v1/credentials",
            &json!({"credentials": {"apiKey": secret}})
        )
        .status,
        400
    );
    assert_eq!(
        Api::new(&server, admin_token.clone())
            .get(&format!("/connection/{}/credentials", bare(&id)))
            .status,
        200
    );

    // Waits until the last request's line is in the log (lines arrive
    // asynchronously), so the scan covers every request made above.
    let log = server.log_through_last_request();
    for needle in [
        secret.as_str(),
        patched_secret.as_str(),
        admin_token.as_str(),
        stranger_token.as_str(),
        coffer_tests::fixtures::HS256_SECRET,
        COFFER_KEYS.split(':').nth(1).unwrap_or("?"),
    ] {
        assert!(!log.contains(needle), "the log contains a secret or token");
    }
    // Token signatures alone must not appear either.
    let signature = admin_token.rsplit('.').next().unwrap_or("?");
    assert!(!log.contains(signature));

    let lines: Vec<Value> = server
        .log_entries()
        .into_iter()
        .filter(|entry| entry.get("request_id").is_some() && entry.get("status").is_some())
        .collect();
    assert!(lines.len() >= 6, "one JSON line per request: {lines:?}");
    let read_line = lines
        .iter()
        .find(|l| l["route"] == "CredentialRead")
        .expect("a line for the decrypted read");
    assert_eq!(read_line["tenant"], owner.to_string());
    assert_eq!(read_line["status"], 200);
    assert!(read_line["duration_ms"].is_number());
    let failed = lines
        .iter()
        .find(|l| l["status"] == 401)
        .expect("a line for the 401");
    assert!(failed["request_id"]
        .as_str()
        .is_some_and(|id| id.len() == 36));
}

/// `COFFER_REQUEST_LOG=errors` keeps the log line of error answers only
/// (a production setting that cuts log volume); the default logs all.
#[test]
fn request_log_errors_logs_only_error_answers() {
    let server = Server::start(&[("COFFER_REQUEST_LOG", "errors")]);
    let fine = Api::anonymous(&server).get("/healthz");
    assert_eq!(fine.status, 200, "{}", fine.text);
    let missing = Api::anonymous(&server).get("/no/such/route");
    assert_eq!(missing.status, 404, "{}", missing.text);
    // Lines arrive in order: once the 404's is there, the 200's would be too.
    let log = server.log_through(missing.header("x-request-id").expect("request id"));
    let fine_id = fine.header("x-request-id").expect("request id");
    assert!(
        !log.lines()
            .any(|line| line.contains(fine_id) && line.contains("\"status\":200")),
        "a 200 was logged at COFFER_REQUEST_LOG=errors"
    );
}
