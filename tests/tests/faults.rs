//! Faults: the server killed in the middle of a burst of writes, a secret
//! whose stored material is missing or mismatched, and misconfigured D1 and
//! KV bindings. Each test runs a server of its own, since each breaks it.
extern crate alloc;

use alloc::collections::{BTreeMap, BTreeSet};
use core::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};
use std::{thread, time::Instant};

use coffer_tests::{
    assertions::{assert_connection_error, assert_error, assert_not_logged},
    client::{Api, Reply},
    fixtures::{
        api_for, bare_id, create_credential, credential_body, tenant, token, COFFER_KEYS, KEY_ID,
    },
    harness::Server,
};
use serde_json::{json, Value};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Helpers.

/// Asserts that no string of `leaks` appears in the reply's body.
fn assert_no_leak(reply: &Reply, leaks: &[&str]) {
    for leaked in leaks {
        assert!(
            !reply.text.contains(leaked),
            "a {} body leaks {leaked:?}: {}",
            reply.status,
            reply.text
        );
    }
}

/// The base64 master key of the test servers' `COFFER_KEYS`.
fn master_key() -> &'static str {
    COFFER_KEYS.split_once(':').expect("kid:key").1
}

/// What workerd logs for a panic: the trap, and the message of a build
/// that keeps panic messages.
const PANIC_MARKERS: [&str; 2] = ["panicked at", "RuntimeError: unreachable"];

/// Asserts that the Worker never panicked (a panic in wasm is a trap,
/// logged by workerd as `RuntimeError: unreachable`, and by a build with
/// panic messages as `panicked at`), once the log holds the
/// line of the last request made (lines arrive asynchronously; a log
/// without request lines fails, since it would hide a panic too).
fn assert_no_panic(server: &Server) {
    let log = server.log_through_last_request();
    for marker in PANIC_MARKERS {
        assert!(
            !log.contains(marker),
            "the server log shows a panic ({marker:?})"
        );
    }
}

/// The audit event of `request_id` in the owner's log, as the owner admin
/// reads it through the API.
fn audit_event(admin: &Api<'_>, credential: &str, request_id: &str) -> Value {
    let audit = admin.get(&format!(
        "/api/v1/audit?credentialId={credential}&limit=100"
    ));
    assert_eq!(audit.status, 200, "{}", audit.text);
    audit.body["data"]["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .find(|event| event["requestId"] == request_id)
        .unwrap_or_else(|| panic!("no audit event for request {request_id}: {}", audit.text))
        .clone()
}

fn request_id(reply: &Reply) -> String {
    reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id on {} {}", reply.status, reply.text))
        .to_string()
}

// ---------------------------------------------------------------------------
// 1. SIGKILL in the middle of a burst of writes.

/// Writer threads in the burst.
const WRITERS: usize = 4;
/// Writes each writer attempts; the kill comes long before they are done.
const WRITES_PER_WRITER: usize = 100;
/// Acknowledged writes (all writers together) after which the group is killed.
const KILL_AFTER: usize = 200;
/// The integration every burst record belongs to.
const BURST_INTEGRATION: &str = "faults-burst";

/// The secret value a write tagged `tag` sends; its name is `Fault <tag>`,
/// so a record whose name and secret disagree was half-written.
fn burst_secret(tag: &str) -> String {
    format!("fault-secret-{tag}")
}

#[derive(Debug, Clone)]
enum BurstOp {
    Create,
    Patch(String),
}

/// An acknowledged record of one writer: its newest acknowledged tag and
/// how many PATCHes were acknowledged.
#[derive(Debug, Clone)]
struct Acked {
    tag: String,
    patches: i64,
}

/// What one writer saw.
#[derive(Debug, Default)]
struct WriterLog {
    /// Records this writer created (acknowledged), by bare id.
    records: BTreeMap<String, Acked>,
    /// The write without an answer (or with an error answer) once the kill
    /// had begun: in flight at the kill, so it may or may not have landed.
    unknown: Option<(BurstOp, String)>,
    /// Writes acknowledged.
    acked: usize,
}

/// One writer: creates records and PATCHes new secrets into its own ones,
/// sequentially, so at most one of its writes is in flight at the kill.
/// Any failure before the kill is a bug; the first one after ends it.
fn burst_writer(
    base: &str,
    bearer: &str,
    owner: Uuid,
    writer: usize,
    acked: &AtomicUsize,
    killing: &AtomicBool,
) -> WriterLog {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("build HTTP client");
    let mut log = WriterLog::default();
    let mut mine: Vec<String> = Vec::new();
    for n in 0..WRITES_PER_WRITER {
        let tag = format!("w{writer}-{n}");
        let secret = json!({"token": burst_secret(&tag)});
        let name = format!("Fault {tag}");
        // Offset by writer, so that at the kill some writers are creating
        // while others are patching.
        let (op, request) = if (n + writer).is_multiple_of(3) || mine.is_empty() {
            let body = credential_body(BURST_INTEGRATION, &name, secret);
            let request = client
                .post(format!("{base}/api/v1/credentials"))
                .json(&body);
            (BurstOp::Create, request)
        } else {
            let id = mine[(n * 7) % mine.len()].clone();
            let body = json!({"credentialName": name, "credentials": secret});
            let request = client
                .patch(format!("{base}/api/v1/credentials/{id}"))
                .json(&body);
            (BurstOp::Patch(id), request)
        };
        let outcome = request
            .bearer_auth(bearer)
            .header("x-tenantid", owner.to_string())
            .send()
            .and_then(|response| {
                let status = response.status().as_u16();
                response.text().map(|text| (status, text))
            });
        let expected_status = match op {
            BurstOp::Create => 201,
            BurstOp::Patch(_) => 200,
        };
        match outcome {
            Ok((status, text)) if status == expected_status => {
                let body: Value = serde_json::from_str(&text).expect("JSON success body");
                let data = &body["data"];
                match &op {
                    BurstOp::Create => {
                        let id = bare_id(&data["id"]);
                        assert_eq!(data["version"], 1, "{text}");
                        log.records.insert(
                            id.clone(),
                            Acked {
                                tag: tag.clone(),
                                patches: 0,
                            },
                        );
                        mine.push(id);
                    }
                    BurstOp::Patch(id) => {
                        let record = log.records.get_mut(id).expect("a record of this writer");
                        record.tag.clone_from(&tag);
                        record.patches += 1;
                        // Only this writer changes this record.
                        assert_eq!(data["version"], record.patches + 1, "{text}");
                    }
                }
                log.acked += 1;
                acked.fetch_add(1, Ordering::SeqCst);
            }
            other if killing.load(Ordering::SeqCst) => {
                // An error answer or none at all once the kill began: the
                // outcome is unknown.
                let _ = other;
                log.unknown = Some((op, tag));
                break;
            }
            Ok((status, text)) => panic!("write {tag} failed before the kill: {status} {text}"),
            Err(error) => panic!("write {tag} failed before the kill: {error}"),
        }
    }
    log
}

#[test]
fn sigkill_mid_burst_loses_no_acknowledged_write_and_leaves_nothing_half_written() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let bearer = token(owner, "integration_admin");
    let base = server.url("");
    let acked = AtomicUsize::new(0);
    let killing = AtomicBool::new(false);

    let logs: Vec<WriterLog> = thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (base, bearer, acked, killing) = (&base, &bearer, &acked, &killing);
                scope.spawn(move || burst_writer(base, bearer, owner, writer, acked, killing))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(300);
        while acked.load(Ordering::SeqCst) < KILL_AFTER
            && !handles.iter().all(thread::ScopedJoinHandle::is_finished)
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(2));
        }
        killing.store(true, Ordering::SeqCst);
        // SIGKILL to wrangler, node and workerd at once: no grace at all.
        server.stop_with(true);
        handles
            .into_iter()
            .map(|handle| handle.join().expect("writer thread"))
            .collect()
    });
    let total_acked: usize = logs.iter().map(|log| log.acked).sum();
    assert!(
        total_acked >= KILL_AFTER,
        "the burst stalled before the kill: {total_acked} writes acknowledged"
    );
    assert!(
        total_acked < WRITERS * WRITES_PER_WRITER,
        "the kill came after the burst, not in its middle"
    );

    // What the test knows: acknowledged records, and per record the secret
    // of a PATCH in flight at the kill; creates in flight, by tag.
    let mut acked_records: BTreeMap<String, Acked> = BTreeMap::new();
    let mut patch_in_flight: BTreeMap<String, String> = BTreeMap::new();
    let mut creates_in_flight: BTreeSet<String> = BTreeSet::new();
    for log in &logs {
        acked_records.extend(log.records.clone());
        match &log.unknown {
            Some((BurstOp::Create, tag)) => {
                creates_in_flight.insert(tag.clone());
            }
            Some((BurstOp::Patch(id), tag)) => {
                patch_in_flight.insert(id.clone(), tag.clone());
            }
            None => {}
        }
    }
    eprintln!(
        "killed after {total_acked} acknowledged writes ({} records); in flight: {} creates, {} patches",
        acked_records.len(),
        creates_in_flight.len(),
        patch_in_flight.len()
    );

    server.restart();

    // Through the API, before any decrypted read (which would add audit
    // events): the records that survived, with their versions.
    let api = api_for(&server, owner, "integration_admin");
    let mut listed: BTreeMap<String, i64> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/credentials?limit=100&cursor={cursor}"),
            None => "/api/v1/credentials?limit=100".to_string(),
        };
        let page = api.get(&path);
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.body["data"]["items"].as_array().expect("items") {
            let version = item["version"].as_i64().expect("version");
            listed.insert(bare_id(&item["id"]), version);
        }
        match page.body["data"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }

    // Every record has exactly the audit events of the writes it went
    // through (the row and its event are one D1 batch), and no event names
    // a record that is not there.
    let mut event_counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/audit?limit=100&cursor={cursor}"),
            None => "/api/v1/audit?limit=100".to_string(),
        };
        let page = api.get(&path);
        assert_eq!(page.status, 200, "{}", page.text);
        for event in page.body["data"]["items"].as_array().expect("audit items") {
            let credential = bare_id(&event["credentialId"]);
            assert!(
                listed.contains_key(&credential),
                "an audit event of a record that is not there: {event}"
            );
            assert_eq!(event["outcome"], "success", "{event}");
            let action = event["action"].as_str().expect("action").to_string();
            *event_counts.entry((credential, action)).or_default() += 1;
        }
        match page.body["data"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    for (id, version) in &listed {
        let count = |action: &str| {
            event_counts
                .get(&(id.clone(), action.to_string()))
                .copied()
                .unwrap_or(0)
        };
        assert_eq!(count("credential.create"), 1, "create events of {id}");
        assert_eq!(
            count("credential.update"),
            version - 1,
            "update events of {id} (version {version})"
        );
    }

    // Every acknowledged record is there; any other is a create that was
    // in flight, at most one per such create.
    for id in acked_records.keys() {
        assert!(listed.contains_key(id), "acknowledged record {id} was lost");
    }
    let extra = listed.len() - acked_records.len();
    assert!(
        extra <= creates_in_flight.len(),
        "{extra} records nobody was told about, {} creates in flight",
        creates_in_flight.len()
    );
    let listed: BTreeSet<String> = listed.into_keys().collect();

    // Every listed record is whole: details and both decrypted reads answer,
    // with a secret the test sent, matching its name and version.
    let mut landed_creates = BTreeSet::new();
    let mut landed_patches = 0;
    for id in &listed {
        // tag -> the version the record has if that write is the newest.
        let mut allowed: BTreeMap<String, i64> = BTreeMap::new();
        match acked_records.get(id) {
            Some(record) => {
                allowed.insert(record.tag.clone(), record.patches + 1);
                if let Some(tag) = patch_in_flight.get(id) {
                    allowed.insert(tag.clone(), record.patches + 2);
                }
            }
            None => {
                for tag in &creates_in_flight {
                    allowed.insert(tag.clone(), 1);
                }
            }
        }
        let details = api.get(&format!(
            "/api/v1/credentials/{BURST_INTEGRATION}/details?credentialId={id}"
        ));
        assert_eq!(details.status, 200, "details of {id}: {}", details.text);
        let read = api.get(&format!(
            "/api/v1/credentials/{BURST_INTEGRATION}?credentialId={id}"
        ));
        assert_eq!(read.status, 200, "decrypted read of {id}: {}", read.text);
        let secret = read.body["data"]["credentials"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no secret for {id}: {}", read.text));
        let tag = secret
            .strip_prefix("fault-secret-")
            .unwrap_or_else(|| panic!("{id} has a secret the test never sent: {secret}"));
        let version = allowed.get(tag).unwrap_or_else(|| {
            panic!(
                "{id} has secret {secret}, expected one of {allowed:?} (acknowledged or in flight)"
            )
        });
        assert_eq!(read.body["data"]["version"], *version, "{}", read.text);
        assert_eq!(
            read.body["data"]["credentialName"],
            format!("Fault {tag}"),
            "name and secret of {id} come from different writes"
        );
        assert_eq!(
            details.body["data"]["credentialName"],
            format!("Fault {tag}")
        );
        let connection = api.get(&format!("/connection/{id}/credentials"));
        assert_eq!(connection.status, 200, "{}", connection.text);
        assert_eq!(connection.body["data"]["credentials"]["token"], secret);
        if !acked_records.contains_key(id) {
            assert!(
                landed_creates.insert(tag.to_string()),
                "one in-flight create landed twice: {tag}"
            );
        } else if patch_in_flight.get(id).is_some_and(|t| t == tag) {
            landed_patches += 1;
        }
    }
    eprintln!(
        "in flight and landed anyway: {} creates, {landed_patches} patches",
        landed_creates.len()
    );
    assert_no_panic(&server);
}

// ---------------------------------------------------------------------------
// 2. Stored secret material missing or mismatched.

#[test]
fn a_missing_blob_is_an_opaque_500_on_both_surfaces_audited_and_contained() {
    let server = Server::start(&[]);
    let owner = tenant();
    let admin = api_for(&server, owner, "integration_admin");
    let victim = create_credential(
        &admin,
        &credential_body("vanish", "Victim", json!({"token": "vanish-victim-1"})),
    );
    let bystander = create_credential(
        &admin,
        &credential_body(
            "vanish",
            "Bystander",
            json!({"token": "vanish-bystander-2"}),
        ),
    );
    // Fault injection: the victim's blob is deleted out of band, as a lost
    // KV value would be; no API can do that. Its wrapped key is read only so
    // that the leak checks below can look for it.
    let prefix = format!("secret/v1/{owner}/{victim}/");
    let keys = server.blob_keys(&prefix);
    assert_eq!(keys.len(), 1, "the victim's one blob: {keys:?}");
    let key = keys.first().expect("one key").clone();
    let wrapped_dek = server.d1(&format!(
        "SELECT wrapped_dek FROM credentials WHERE id = '{victim}'"
    ))[0]["wrapped_dek"]
        .as_str()
        .expect("wrapped_dek")
        .to_string();
    server.wrangler_cli(&["kv", "key", "delete", "--binding", "SECRETS", &key]);
    assert!(server.blob_keys(&prefix).is_empty(), "the blob is gone");

    let leaks = [
        "vanish-victim-1",
        "vanish-bystander-2",
        KEY_ID,
        master_key(),
        wrapped_dek.as_str(),
        "secret/v1/",
    ];
    let read = admin.get(&format!("/api/v1/credentials/vanish?credentialId={victim}"));
    assert_error(&read, 500, "INTERNAL_ERROR");
    assert_no_leak(&read, &leaks);
    let connection = admin.get(&format!("/connection/{victim}/credentials"));
    assert_connection_error(&connection, 500, "Internal server error");
    assert_no_leak(&connection, &leaks);

    // Both failures are in the owner's audit log, as errors.
    for reply in [&read, &connection] {
        let event = audit_event(&admin, &victim, &request_id(reply));
        assert_eq!(event["action"], "credential.read_secret", "{event}");
        assert_eq!(event["outcome"], "error", "{event}");
        assert_eq!(event["credentialId"], format!("cred-{victim}"), "{event}");
    }
    // Metadata stays readable and the failures were not counted as reads.
    let details = admin.get(&format!(
        "/api/v1/credentials/vanish/details?credentialId={victim}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["accessCount"], 0, "{}", details.text);
    let metadata = admin.get(&format!("/connection/{victim}"));
    assert_eq!(metadata.status, 200, "{}", metadata.text);

    // The rest of the tenant is unaffected.
    let other = admin.get(&format!(
        "/api/v1/credentials/vanish?credentialId={bystander}"
    ));
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        other.body["data"]["credentials"]["token"],
        "vanish-bystander-2"
    );
    let other = admin.get(&format!("/connection/{bystander}/credentials"));
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        other.body["data"]["credentials"]["token"],
        "vanish-bystander-2"
    );
    let list = admin.get("/api/v1/credentials?integrationId=vanish");
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        list.body["data"]["items"].as_array().expect("items").len(),
        2,
        "{}",
        list.text
    );
    assert_no_leak(&list, &leaks);

    // A new secret version heals the record.
    let healed = admin.patch(
        &format!("/api/v1/credentials/{victim}"),
        &json!({"credentials": {"token": "vanish-victim-3"}}),
    );
    assert_eq!(healed.status, 200, "{}", healed.text);
    let read = admin.get(&format!("/api/v1/credentials/vanish?credentialId={victim}"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentials"]["token"], "vanish-victim-3");
    assert_not_logged(
        &server,
        &[
            "vanish-victim-1",
            "vanish-bystander-2",
            "vanish-victim-3",
            master_key(),
            wrapped_dek.as_str(),
        ],
    );
    assert_no_panic(&server);
}

#[test]
fn another_records_wrapped_dek_is_an_opaque_500_audited_and_contained() {
    let server = Server::start(&[]);
    let owner = tenant();
    let admin = api_for(&server, owner, "integration_admin");
    let victim = create_credential(
        &admin,
        &credential_body("swapped", "Victim", json!({"token": "swap-victim-1"})),
    );
    let bystander = create_credential(
        &admin,
        &credential_body("swapped", "Bystander", json!({"token": "swap-bystander-2"})),
    );
    // Fault injection: the victim's row gets another record's wrapped key,
    // written out of band (tampered storage); no API can do that. The keys
    // are read to make the swap and to look for them in bodies and logs.
    let dek_of = |id: &str| {
        server.d1(&format!(
            "SELECT wrapped_dek FROM credentials WHERE id = '{id}'"
        ))[0]["wrapped_dek"]
            .as_str()
            .expect("wrapped_dek")
            .to_string()
    };
    let (victim_dek, bystander_dek) = (dek_of(&victim), dek_of(&bystander));
    assert_ne!(
        victim_dek, bystander_dek,
        "each record has a key of its own"
    );
    // A well-formed wrapped key under the same master key, of another
    // record: it must not open the victim's blob.
    server.d1(&format!(
        "UPDATE credentials SET wrapped_dek = '{bystander_dek}' WHERE id = '{victim}'"
    ));

    let leaks = [
        "swap-victim-1",
        "swap-bystander-2",
        KEY_ID,
        master_key(),
        victim_dek.as_str(),
        bystander_dek.as_str(),
        "secret/v1/",
    ];
    let read = admin.get(&format!(
        "/api/v1/credentials/swapped?credentialId={victim}"
    ));
    assert_error(&read, 500, "INTERNAL_ERROR");
    assert_no_leak(&read, &leaks);
    let connection = admin.get(&format!("/connection/{victim}/credentials"));
    assert_connection_error(&connection, 500, "Internal server error");
    assert_no_leak(&connection, &leaks);
    for reply in [&read, &connection] {
        let event = audit_event(&admin, &victim, &request_id(reply));
        assert_eq!(event["action"], "credential.read_secret", "{event}");
        assert_eq!(event["outcome"], "error", "{event}");
    }
    let details = admin.get(&format!(
        "/api/v1/credentials/swapped/details?credentialId={victim}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["accessCount"], 0, "{}", details.text);
    assert_no_leak(&details, &leaks);

    let other = admin.get(&format!(
        "/api/v1/credentials/swapped?credentialId={bystander}"
    ));
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        other.body["data"]["credentials"]["token"],
        "swap-bystander-2"
    );
    let other = admin.get(&format!("/connection/{bystander}/credentials"));
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        other.body["data"]["credentials"]["token"],
        "swap-bystander-2"
    );
    assert_not_logged(
        &server,
        &[
            "swap-victim-1",
            "swap-bystander-2",
            master_key(),
            victim_dek.as_str(),
            bystander_dek.as_str(),
        ],
    );
    assert_no_panic(&server);
}

// ---------------------------------------------------------------------------
// 3. Misconfigured bindings.

/// Renames the D1 binding, as a deploy with a typo in `wrangler.toml` would.
fn rename_d1(config: &mut toml::Table) {
    let databases = config
        .get_mut("d1_databases")
        .and_then(toml::Value::as_array_mut)
        .expect("d1_databases");
    let database = databases[0].as_table_mut().expect("a database table");
    assert_eq!(
        database.get("binding").and_then(toml::Value::as_str),
        Some("DB")
    );
    database.insert("binding".into(), "DB_MISSING".into());
}

/// Removes the D1 binding altogether.
fn remove_d1(config: &mut toml::Table) {
    assert!(config.remove("d1_databases").is_some(), "d1_databases");
}

/// Renames the `SECRETS` KV binding (the JWKS cache stays).
fn rename_secrets(config: &mut toml::Table) {
    let namespaces = config
        .get_mut("kv_namespaces")
        .and_then(toml::Value::as_array_mut)
        .expect("kv_namespaces");
    let secrets = namespaces
        .iter_mut()
        .filter_map(toml::Value::as_table_mut)
        .find(|table| table.get("binding").and_then(toml::Value::as_str) == Some("SECRETS"))
        .expect("the SECRETS namespace");
    secrets.insert("binding".into(), "SECRETS_MISSING".into());
}

/// Every route that touches storage answers 503 in the surface's format,
/// without the secret.
fn assert_everything_unavailable(server: &Server, owner: Uuid, id: &str, secret: &str) {
    let api = api_for(server, owner, "integration_admin");
    let health = Api::anonymous(server).get("/healthz");
    assert_error(&health, 503, "SERVICE_UNAVAILABLE");
    let credentials_surface = [
        api.get(&format!("/api/v1/credentials/outage?credentialId={id}")),
        api.get("/api/v1/credentials/outage"),
        api.get(&format!(
            "/api/v1/credentials/outage/details?credentialId={id}"
        )),
        api.get("/api/v1/credentials"),
        api.get("/api/v1/audit"),
        api.post(
            "/api/v1/credentials",
            &credential_body("outage", "During", json!({"token": "outage-new-2"})),
        ),
        api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"credentials": {"token": "outage-new-3"}}),
        ),
        api.delete(&format!("/api/v1/credentials/{id}")),
    ];
    for reply in &credentials_surface {
        assert_error(reply, 503, "SERVICE_UNAVAILABLE");
        assert_no_leak(
            reply,
            &[secret, "outage-new-2", "outage-new-3", master_key()],
        );
    }
    let connection_surface = [
        api.get(&format!("/connection/{id}/credentials")),
        api.get(&format!("/connection/{id}")),
        api.get("/connection"),
        api.get(&format!("/connection/{id}/shares")),
    ];
    for reply in &connection_surface {
        assert_connection_error(reply, 503, "Service unavailable");
        assert_no_leak(reply, &[secret, master_key()]);
    }
}

/// After the outage, with the binding back: the record is as it was
/// (nothing was read, written or deleted meanwhile) and readable.
fn assert_untouched_and_readable(server: &Server, owner: Uuid, id: &str, secret: &str) {
    let api = api_for(server, owner, "integration_admin");
    let list = api.get("/api/v1/credentials");
    assert_eq!(list.status, 200, "{}", list.text);
    let items = list.body["data"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "nothing was created: {}", list.text);
    assert_eq!(items[0]["version"], 1, "nothing was changed: {}", list.text);
    assert_eq!(
        items[0]["accessCount"], 0,
        "nothing was read: {}",
        list.text
    );
    let audit = api.get("/api/v1/audit");
    assert_eq!(audit.status, 200, "{}", audit.text);
    let actions: Vec<&Value> = audit.body["data"]["items"]
        .as_array()
        .expect("audit items")
        .iter()
        .map(|event| &event["action"])
        .collect();
    assert_eq!(actions, [&json!("credential.create")], "{}", audit.text);
    let read = api.get(&format!("/api/v1/credentials/outage?credentialId={id}"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentials"]["token"], secret);
    assert_eq!(read.body["data"]["accessCount"], 1, "{}", read.text);
}

#[test]
fn d1_unbound_is_a_503_on_both_surfaces_and_healthz_and_never_a_secret() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let secret = "outage-d1-secret-1";
    let id = create_credential(
        &api_for(&server, owner, "integration_editor"),
        &credential_body("outage", "Outage", json!({"token": secret})),
    );
    for edit in [rename_d1 as fn(&mut toml::Table), remove_d1] {
        server.restart_with_config(&[], edit);
        assert_everything_unavailable(&server, owner, &id, secret);
    }
    server.restart_with(&[]);
    assert_untouched_and_readable(&server, owner, &id, secret);
    assert_not_logged(&server, &[secret, "outage-new-2", "outage-new-3"]);
    assert_no_panic(&server);
}

#[test]
fn secrets_kv_unbound_fails_reads_and_writes_503_and_writes_nothing() {
    let mut server = Server::start(&[]);
    let owner = tenant();
    let secret = "outage-kv-secret-1";
    let id = create_credential(
        &api_for(&server, owner, "integration_editor"),
        &credential_body("outage", "Outage", json!({"token": secret})),
    );
    let keys_before = server.blob_keys("secret/v1/");
    server.restart_with_config(&[], rename_secrets);
    let api = api_for(&server, owner, "integration_admin");
    let health = Api::anonymous(&server).get("/healthz");
    assert_error(&health, 503, "SERVICE_UNAVAILABLE");
    // Metadata does not need KV, so only what does is asserted.
    let credentials_surface = [
        api.get(&format!("/api/v1/credentials/outage?credentialId={id}")),
        api.get("/api/v1/credentials/outage"),
        api.post(
            "/api/v1/credentials",
            &credential_body("outage", "During", json!({"token": "outage-new-2"})),
        ),
        api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"credentials": {"token": "outage-new-3"}}),
        ),
    ];
    for reply in &credentials_surface {
        assert_error(reply, 503, "SERVICE_UNAVAILABLE");
        assert_no_leak(
            reply,
            &[secret, "outage-new-2", "outage-new-3", master_key()],
        );
    }
    let read = api.get(&format!("/connection/{id}/credentials"));
    assert_connection_error(&read, 503, "Service unavailable");
    assert_no_leak(&read, &[secret, master_key()]);
    server.restart_with(&[]);
    // Out of band, before any request: no blob was added or removed. No API
    // shows a blob that no record names, so this reads KV (read only).
    assert_eq!(server.blob_keys("secret/v1/"), keys_before);
    assert_untouched_and_readable(&server, owner, &id, secret);
    assert_not_logged(&server, &[secret, "outage-new-2", "outage-new-3"]);
    assert_no_panic(&server);
}

// ---------------------------------------------------------------------------
// 5. A panic.

/// A bug that panics mid-request (the fault build's `x-coffer-fault-panic`
/// switch, before routing): the client gets a 500 that shows no secret,
/// workerd logs the trap, and the isolate is set up again, so the next
/// requests are served, with the same secret.
#[test]
fn a_panic_is_a_500_and_the_next_request_is_served() {
    let server = Server::start_with_faults(&[]);
    let owner = tenant();
    let admin = api_for(&server, owner, "integration_admin");
    let secret = "panic-secret-1";
    let id = create_credential(
        &admin,
        &credential_body("panic", "Panic", json!({"token": secret})),
    );
    let read = format!("/api/v1/credentials/panic?credentialId=cred-{id}");
    // Warm: the isolate has opened the secret and remembers its blob.
    assert_eq!(admin.get(&read).status, 200);
    let crashed = api_for(&server, owner, "integration_admin")
        .header("x-coffer-fault-panic", "1")
        .get(&read);
    assert_eq!(crashed.status, 500, "{}", crashed.text);
    assert_no_leak(&crashed, &[secret, master_key()]);
    for attempt in 0..3 {
        let again = admin.get(&read);
        assert_eq!(
            again.status, 200,
            "read {attempt} after the panic: {}",
            again.text
        );
        assert_eq!(again.body["data"]["credentials"]["token"], secret);
    }
    let connection = admin.get(&format!("/connection/{id}/credentials"));
    assert_eq!(connection.status, 200, "{}", connection.text);
    let log = server.log_through_last_request();
    assert!(
        PANIC_MARKERS.iter().any(|marker| log.contains(marker)),
        "workerd logs the panic"
    );
    assert_not_logged(&server, &[secret]);
}
