//! The OpenAPI document against the running Worker: the served
//! `/openapi.json` must be a valid OpenAPI 3.1 document
//! (`openapi-spec-validator`), and Schemathesis, fuzzing every operation
//! with a valid admin token, must find no 5xx and no response that the
//! document does not describe (status, content type, body schema).
//!
//! Both tools come from the pinned `requirements-test.txt`, installed into
//! `.venv` by `scripts/setup.sh test`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Instant,
};

use coffer_tests::{
    client::Api,
    fixtures::{self, api_for, create_credential, share},
    harness::{self, Server},
};
use serde_json::json;
use uuid::Uuid;

/// Test cases per operation in the fuzzing phase: enough to reach every
/// documented status of every operation, few enough for CI (the whole run,
/// about 2,000 requests, takes about 25 s).
const MAX_EXAMPLES: &str = "100";

/// A fixed seed keeps CI reproducible; `COFFER_CONTRACT_SEED` explores
/// others.
const DEFAULT_SEED: &str = "20240327";

/// The checks that make the document a contract: no server errors, and
/// every response's status, content type and body as documented.
const CHECKS: &str = "not_a_server_error,status_code_conformance,\
                      content_type_conformance,response_schema_conformance";

fn venv_tool(name: &str) -> PathBuf {
    let path = harness::root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup.sh test` (it installs requirements-test.txt into .venv)",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"))
}

fn assert_success(what: &str, output: &Output, server: &Server) {
    if output.status.success() {
        return;
    }
    let log = server.log();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    panic!(
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- last server log lines ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    );
}

/// Records for the fuzzed operations to find: one to read (and share), one
/// to patch and one to delete, so that a `revoked` status or a deletion
/// from one operation does not starve the others of 200s; plus a record
/// another tenant shares with this one.
struct Seeded {
    read_integration: &'static str,
    read_id: String,
    patch_id: String,
    delete_id: String,
}

fn seed(server: &Server, tenant: Uuid) -> Seeded {
    let admin = api_for(server, tenant, "integration_admin");
    let full = |integration: &str, name: &str| {
        json!({
            "integrationId": integration,
            "credentialName": name,
            "description": "Seeded for the contract test",
            "authType": "oauth2_bearer",
            "scopes": ["read", "write"],
            "tokenEndpoint": "https://instance.example.com/oauth_token.do",
            "authorizationEndpoint": "https://instance.example.com/oauth_auth.do",
            "metadata": {"environment": "test"},
            "expiresAt": "2999-01-01T00:00:00.000Z",
            "credentials": {"accessToken": "contract-access", "refreshToken": "contract-refresh"},
        })
    };
    let read_integration = "contract-read";
    let read_id = create_credential(&admin, &full(read_integration, "Read me"));
    let patch_id = create_credential(&admin, &full("contract-patch", "Patch me"));
    let delete_id = create_credential(&admin, &full("contract-delete", "Delete me"));
    // A decrypted read, so `lastAccessedAt` is set and the audit log has a
    // read event.
    let read = admin.get(&format!("/api/v1/credentials/{read_integration}"));
    assert_eq!(read.status, 200, "seed read: {}", read.text);
    share(server, tenant, &read_id, Uuid::new_v4());
    // A record owned elsewhere and shared with this tenant.
    let other = fixtures::tenant();
    let other_admin = api_for(server, other, "integration_admin");
    let foreign = create_credential(&other_admin, &full("contract-shared", "Shared in"));
    share(server, other, &foreign, tenant);
    Seeded {
        read_integration,
        read_id,
        patch_id,
        delete_id,
    }
}

/// Schemathesis's configuration: fixed values for the path parameters that
/// must name a seeded record (everything else is generated).
fn schemathesis_config(dir: &Path, seeded: &Seeded) -> PathBuf {
    let config = format!(
        r#"[parameters]
"path.connection_id" = "{read_id}"

# Half the generated `credentialId`s name the seeded record, in both forms.
[dictionaries.records]
values = ["cred-{read_id}", "{read_id}"]

[[operations]]
include-operation-id = "getCredential"
parameters = {{ "path.id" = "{read_integration}", "query.credentialId" = {{ dictionary = "records", probability = 0.5 }} }}

[[operations]]
include-operation-id = "getCredentialDetails"
parameters = {{ "path.integrationId" = "{read_integration}", "query.credentialId" = {{ dictionary = "records", probability = 0.5 }} }}

[[operations]]
include-operation-id = "listAuditEvents"
parameters = {{ "query.credentialId" = {{ dictionary = "records", probability = 0.5 }} }}

[[operations]]
include-operation-id = "updateCredential"
parameters = {{ "path.id" = "cred-{patch_id}" }}

[[operations]]
include-operation-id = "deleteCredential"
parameters = {{ "path.id" = "cred-{delete_id}" }}
"#,
        read_id = seeded.read_id,
        read_integration = seeded.read_integration,
        patch_id = seeded.patch_id,
        delete_id = seeded.delete_id,
    );
    let path = dir.join("schemathesis.toml");
    fs::write(&path, config).expect("write schemathesis.toml");
    path
}

#[test]
fn the_served_document_is_valid_and_the_worker_conforms_to_it() {
    let server = harness::shared();
    let validator = venv_tool("openapi-spec-validator");
    let schemathesis = venv_tool("st");
    let dir = harness::root()
        .join("target")
        .join("contract")
        .join(Uuid::new_v4().simple().to_string());
    fs::create_dir_all(&dir).expect("create the contract test's directory");

    // The document as served, validated as OpenAPI 3.1.
    let served = Api::anonymous(server).get("/openapi.json");
    assert_eq!(served.status, 200, "{}", served.text);
    let document = dir.join("openapi.json");
    fs::write(&document, &served.text).expect("write the served document");
    let output = run(Command::new(&validator).arg(&document));
    assert_success("openapi-spec-validator", &output, server);

    let tenant = fixtures::tenant();
    let seeded = seed(server, tenant);
    let config = schemathesis_config(&dir, &seeded);
    let token = fixtures::token(tenant, "integration_admin");
    let seed = std::env::var("COFFER_CONTRACT_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let started = Instant::now();
    let output = run(Command::new(&schemathesis)
        .current_dir(&dir)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", &seed])
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .arg("--no-color")
        // Every request and response, kept when the run fails.
        .args(["--report", "har"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("x-tenantid: {tenant}")]));
    println!(
        "schemathesis (seed {seed}) took {:.0?}:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout)
    );
    assert_success(
        &format!(
            "schemathesis (HAR in {})",
            dir.join("schemathesis-report").display()
        ),
        &output,
        server,
    );
    let _ = fs::remove_dir_all(&dir);
}

/// workers-rs reads a method it does not know as GET; the document has no
/// such operations, so the Worker must answer 405 (with `Allow`) rather
/// than run a GET handler, here a decrypted read.
#[test]
fn a_method_the_document_does_not_name_is_405_not_a_get() {
    let server = harness::shared();
    let tenant = fixtures::tenant();
    let admin = api_for(server, tenant, "integration_admin");
    let id = create_credential(
        &admin,
        &fixtures::credential_body("contract-method", "Method", json!({"token": "t"})),
    );
    let query = reqwest::Method::from_bytes(b"QUERY").expect("a valid method token");
    for (path, allow) in [
        ("/healthz".to_string(), "GET"),
        (format!("/connection/{id}/credentials"), "GET"),
        (format!("/api/v1/credentials/{id}"), "GET, PATCH, DELETE"),
    ] {
        let reply = admin.send(query.clone(), &path, None);
        assert_eq!(reply.status, 405, "QUERY {path}: {}", reply.text);
        assert_eq!(reply.header("allow"), Some(allow), "QUERY {path}");
    }
    let read = admin.get("/api/v1/credentials/contract-method");
    assert_eq!(read.body["data"]["accessCount"], 1, "{}", read.text);
}
