//! The key hierarchy (issue 16): master key → tenant key → data key.
//! Master rotation rewraps tenant keys only (its D1 statements follow the
//! number of tenants, not of records), legacy records from the previous
//! build migrate under tenant keys with no read failing, and a tenant-key
//! rotation under concurrent writes loses nothing. Each test runs its own
//! server, because sweeps act on the whole store.
extern crate alloc;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::Instant,
};

use coffer_tests::{
    client::{Api, Reply},
    fixtures::{api_for, run_sweeps, sweep_summaries, tenant, COFFER_KEYS},
    harness::{root, Server},
};
use serde_json::{json, Value};
use uuid::Uuid;

/// A second master key (base64 of 32 bytes 0x21..=0x40).
const KEY_B: &str = "test-k2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=";
/// A third master key (base64 of 32 bytes 0x41..=0x60).
const KEY_C: &str = "test-k3:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2A=";

fn create(api: &Api<'_>, integration: &str, secret: &str) -> String {
    let reply = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": integration, "credentialName": "Keys", "credentials": {"apiKey": secret}}),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["data"]["id"].as_str().expect("id").to_string()
}

fn read(api: &Api<'_>, integration: &str, id: &str) -> Reply {
    api.get(&format!(
        "/api/v1/credentials/{integration}?credentialId={id}"
    ))
}

fn assert_opens(api: &Api<'_>, integration: &str, id: &str, secret: &str) {
    let reply = read(api, integration, id);
    assert_eq!(reply.status, 200, "{id}: {}", reply.text);
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"], secret,
        "{id}: {}",
        reply.text
    );
}

/// Records of several tenants: `(tenant, id, secret)`.
fn populate(server: &Server, tenants: &[Uuid], per_tenant: usize) -> Vec<(Uuid, String, String)> {
    let mut records = Vec::new();
    for &owner in tenants {
        let api = api_for(server, owner, "integration_admin");
        for n in 0..per_tenant {
            let secret = format!("hierarchy-{n}-{}", Uuid::new_v4());
            let id = create(&api, "keys", &secret);
            records.push((owner, id, secret));
        }
    }
    records
}

/// The last summary of `sweep` after `runs` runs in all.
fn last_summary(server: &Server, sweep: &str, runs: usize) -> Value {
    sweep_summaries(server, sweep, runs)
        .last()
        .cloned()
        .expect("a summary")
}

#[test]
fn master_rotation_rewraps_tenant_keys_only_while_reads_go_on() {
    const READERS: usize = 3;
    let mut server = Server::start(&[]);
    let tenants: Vec<Uuid> = (0..3).map(|_| tenant()).collect();
    let records = populate(&server, &tenants, 6);

    // Step 1: the new master key goes first; old tenant keys still open.
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{COFFER_KEYS}"))]);
    let late_tenant = tenant();
    let late = populate(&server, &[late_tenant], 1);

    // Step 2: the rotation sweep, with readers running before, during and
    // after it.
    let stop = AtomicBool::new(false);
    let (failures, reads) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (started, ended) = thread::scope(|scope| {
        for worker in 0..READERS {
            let (stop, failures, reads, server, records) =
                (&stop, &failures, &reads, &server, &records);
            scope.spawn(move || {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    let (owner, id, secret) = &records[n % records.len()];
                    let reply = read(&api_for(server, *owner, "integration_user"), "keys", id);
                    if reply.status != 200
                        || reply.body["data"]["credentials"]["apiKey"] != **secret
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += READERS;
                }
            });
        }
        while reads.load(Ordering::Relaxed) < 2 * READERS {
            thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        run_sweeps(&server);
        let ended = Instant::now();
        let after = reads.load(Ordering::Relaxed) + 2 * READERS;
        while reads.load(Ordering::Relaxed) < after {
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        (started, ended)
    });
    assert_eq!(failures.load(Ordering::Relaxed), 0, "reads failed");
    assert!(ended > started);
    // One statement per tenant key: the three tenants of the old key (the
    // late tenant's key was born under the new one).
    let summary = last_summary(&server, "rewrap", 1);
    assert_eq!(summary["tenant_keys_rewrapped"], 3, "{summary}");
    assert_eq!(summary["remaining"], 0, "{summary}");
    assert_eq!(summary["legacy"], 0, "{summary}");

    // Step 3: the old master key is removed; every record opens.
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    for (owner, id, secret) in records.iter().chain(&late) {
        assert_opens(
            &api_for(&server, *owner, "integration_user"),
            "keys",
            id,
            secret,
        );
    }
    // Idempotent: a second pass has nothing to do.
    run_sweeps(&server);
    let summary = last_summary(&server, "rewrap", 2);
    assert_eq!(summary["tenant_keys_rewrapped"], 0, "{summary}");
    assert_eq!(summary["remaining"], 0, "{summary}");
}

/// The D1 statements of a master rotation follow the tenants, not the
/// records: ten times the records cost the same; more tenants cost more,
/// one statement each.
#[test]
fn master_rotation_costs_statements_per_tenant_not_per_record() {
    let mut server = Server::start(&[]);
    let tenants: Vec<Uuid> = (0..3).map(|_| tenant()).collect();
    populate(&server, &tenants, 2);
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{COFFER_KEYS}"))]);
    run_sweeps(&server);
    let few = last_summary(&server, "rewrap", 1);
    assert_eq!(few["tenant_keys_rewrapped"], 3, "{few}");

    // Ten times the records, same tenants, rotated again.
    populate(&server, &tenants, 18);
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_C},{KEY_B}"))]);
    run_sweeps(&server);
    let many = last_summary(&server, "rewrap", 2);
    assert_eq!(many["tenant_keys_rewrapped"], 3, "{many}");
    assert_eq!(
        many["d1_statements"], few["d1_statements"],
        "more records changed the cost: {few} then {many}"
    );

    // Twice the tenants: three more statements, one per new tenant.
    let more: Vec<Uuid> = (0..3).map(|_| tenant()).collect();
    populate(&server, &more, 1);
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{KEY_C}"))]);
    run_sweeps(&server);
    let wider = last_summary(&server, "rewrap", 3);
    assert_eq!(wider["tenant_keys_rewrapped"], 6, "{wider}");
    let cost = |s: &Value| s["d1_statements"].as_u64().expect("d1_statements");
    assert_eq!(cost(&wider), cost(&many) + 3, "{many} then {wider}");
    println!(
        "master rotation D1 statements: 3 tenants × 2 records {}, 3 × 20 {}, 6 × ≤20 {}",
        cost(&few),
        cost(&many),
        cost(&wider)
    );
}

/// For the README's numbers: `COFFER_MEASURE=10x1000` creates that many
/// tenants × records and prints the D1 statements of the master rotation
/// (the rewrap sweep's summary). Run with `--ignored`; minutes long.
#[test]
#[ignore = "a measurement, not a test: COFFER_MEASURE=10x1000"]
fn measure_master_rotation_statements() {
    let spec = std::env::var("COFFER_MEASURE").unwrap_or_else(|_| "10x1000".into());
    let (tenants, records) = spec
        .split_once('x')
        .and_then(|(t, r)| Some((t.parse::<usize>().ok()?, r.parse::<usize>().ok()?)))
        .expect("COFFER_MEASURE=<tenants>x<records>");
    let mut server = Server::start(&[]);
    let owners: Vec<Uuid> = (0..tenants).map(|_| tenant()).collect();
    thread::scope(|scope| {
        for &owner in &owners {
            let server = &server;
            scope.spawn(move || populate(server, &[owner], records));
        }
    });
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{COFFER_KEYS}"))]);
    let mut runs = 0;
    let mut statements = 0;
    loop {
        run_sweeps(&server);
        runs += 1;
        let summary = last_summary(&server, "rewrap", runs);
        statements += summary["d1_statements"].as_u64().expect("d1_statements");
        if summary["remaining"] == 0 {
            println!(
                "master rotation, {tenants} tenants × {records} records: {statements} D1 statements in {runs} sweep run(s); last summary {summary}"
            );
            break;
        }
    }
}

/// Where the state written by the previous build is kept: a tarball of its
/// local D1 and KV, and what it holds.
fn legacy_fixture() -> (PathBuf, PathBuf) {
    let dir = root().join("tests").join("fixtures");
    (
        dir.join("legacy-state.tar.gz"),
        dir.join("legacy-state.json"),
    )
}

/// Writes the legacy fixture with the build before the key hierarchy:
/// `scripts/legacy-fixture.sh` builds that commit and runs this with
/// `COFFER_WORKER_BUILD` and `COFFER_MIGRATIONS_DIR` pointing at it.
#[test]
#[ignore = "writes tests/fixtures/legacy-state.*; run by scripts/legacy-fixture.sh"]
fn write_legacy_fixture() {
    assert!(
        std::env::var_os("COFFER_WORKER_BUILD").is_some()
            && std::env::var_os("COFFER_MIGRATIONS_DIR").is_some(),
        "run through scripts/legacy-fixture.sh"
    );
    let mut server = Server::start(&[]);
    let (a, b) = (tenant(), tenant());
    let mut records = Vec::new();
    for (owner, count) in [(a, 5), (b, 3)] {
        let api = api_for(&server, owner, "integration_admin");
        for n in 0..count {
            let secret = format!("legacy-{n}-{}", Uuid::new_v4());
            let id = create(&api, "legacy", &secret);
            records.push(json!({"tenant": owner.to_string(), "id": id, "secret": secret}));
        }
    }
    // A record whose secret was replaced twice (secret version 3).
    let api = api_for(&server, a, "integration_admin");
    let id = records[0]["id"].as_str().expect("id").to_string();
    let mut secret = String::new();
    for n in 0..2 {
        secret = format!("legacy-patched-{n}-{}", Uuid::new_v4());
        let reply = api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"credentials": {"apiKey": secret}}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    records[0]["secret"] = json!(secret);
    server.stop();
    let (tarball, manifest) = legacy_fixture();
    fs::create_dir_all(tarball.parent().expect("dir")).expect("fixtures dir");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(server.state_dir())
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    fs::write(
        &manifest,
        serde_json::to_string_pretty(&json!({
            "description": "Local D1 and KV state written through the API by the build before the key hierarchy (data keys wrapped under the master key test-k1 directly); see write_legacy_fixture in tests/tests/key_hierarchy.rs. Never regenerate it with a later build.",
            "records": records,
        }))
        .expect("json"),
    )
    .expect("write manifest");
}

fn unpack(tarball: &Path) -> PathBuf {
    let dir = root()
        .join("target")
        .join("legacy-state")
        .join(Uuid::new_v4().simple().to_string());
    fs::create_dir_all(&dir).expect("dir");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("tar");
    assert!(status.success());
    dir
}

/// A database and KV written by the previous build (data keys directly
/// under the master key) keep working on this build; the migration sweep
/// moves them under tenant keys in bounded batches while readers run, and
/// afterwards a master rotation and the removal of the old master key
/// leave every secret readable.
#[test]
fn records_of_the_previous_build_migrate_under_tenant_keys() {
    let (tarball, manifest) = legacy_fixture();
    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(&manifest).expect("legacy manifest"))
            .expect("manifest JSON");
    let records: Vec<(Uuid, String, String)> = manifest["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                Uuid::parse_str(r["tenant"].as_str().expect("tenant")).expect("uuid"),
                r["id"].as_str().expect("id").to_string(),
                r["secret"].as_str().expect("secret").to_string(),
            )
        })
        .collect();
    let state = unpack(&tarball);
    let mut server = Server::start_on_state(&[], &state);
    let _ = fs::remove_dir_all(&state);

    // Before any sweep: every legacy record opens, metadata and secret.
    for (owner, id, secret) in &records {
        assert_opens(
            &api_for(&server, *owner, "integration_user"),
            "legacy",
            id,
            secret,
        );
    }
    // A secret change of a legacy record is sealed under the tenant key;
    // the replaced legacy version is kept and still opens.
    let (owner, id, old_secret) = records[1].clone();
    let api = api_for(&server, owner, "integration_admin");
    let reply = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": {"apiKey": "after-the-hierarchy"}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_opens(&api, "legacy", &id, "after-the-hierarchy");
    let versions = api.get(&format!("/api/v1/credentials/{id}/versions"));
    assert_eq!(versions.status, 200, "{}", versions.text);
    let earlier = versions.body["data"]["items"][1]["secretVersion"]
        .as_u64()
        .expect("an earlier version");
    let reply = api.get(&format!(
        "/api/v1/credentials/legacy?credentialId={id}&secretVersion={earlier}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"],
        old_secret.as_str()
    );

    // The migration sweep, readers running throughout.
    let stop = AtomicBool::new(false);
    let (failures, reads) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let current: Vec<(Uuid, String, String)> = records
        .iter()
        .map(|(o, i, s)| {
            let s = if *i == id {
                "after-the-hierarchy".to_string()
            } else {
                s.clone()
            };
            (*o, i.clone(), s)
        })
        .collect();
    thread::scope(|scope| {
        for worker in 0..2 {
            let (stop, failures, reads, server, current) =
                (&stop, &failures, &reads, &server, &current);
            scope.spawn(move || {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    let (owner, id, secret) = &current[n % current.len()];
                    let reply = read(&api_for(server, *owner, "integration_user"), "legacy", id);
                    if reply.status != 200
                        || reply.body["data"]["credentials"]["apiKey"] != **secret
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += 2;
                }
            });
        }
        while reads.load(Ordering::Relaxed) < 4 {
            thread::sleep(Duration::from_millis(5));
        }
        run_sweeps(&server);
        let after = reads.load(Ordering::Relaxed) + 4;
        while reads.load(Ordering::Relaxed) < after {
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads failed during the migration"
    );
    let summary = last_summary(&server, "migrate", 1);
    // Every current legacy data key but the one replaced above, plus that
    // record's kept legacy version.
    assert_eq!(summary["migrated"], records.len(), "{summary}");
    assert_eq!(summary["remaining"], 0, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");

    // Now a master rotation covers everything: rotate, remove the old key.
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{COFFER_KEYS}"))]);
    run_sweeps(&server);
    let rotated = last_summary(&server, "rewrap", 2);
    assert_eq!(rotated["remaining"], 0, "{rotated}");
    assert_eq!(rotated["legacy"], 0, "{rotated}");
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    for (owner, id, secret) in &current {
        assert_opens(
            &api_for(&server, *owner, "integration_user"),
            "legacy",
            id,
            secret,
        );
    }
    let reply = api_for(&server, owner, "integration_user").get(&format!(
        "/api/v1/credentials/legacy?credentialId={id}&secretVersion={earlier}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["data"]["credentials"]["apiKey"],
        old_secret.as_str()
    );
}

/// A tenant-key rotation while writers keep replacing secrets: every
/// rotation call and write succeeds, the rotation completes (resuming over
/// calls), and afterwards every record opens to its last written secret,
/// also once the master key is rotated and the old one removed.
#[test]
fn tenant_key_rotation_under_concurrent_writes_loses_nothing() {
    const RECORDS: usize = 12;
    const WRITERS: usize = 3;
    let mut server = Server::start(&[]);
    let owner = tenant();
    let admin = api_for(&server, owner, "integration_admin");
    let ids: Vec<String> = (0..RECORDS)
        .map(|n| create(&admin, "rotate", &format!("initial-{n}")))
        .collect();
    let latest: Vec<std::sync::Mutex<String>> = (0..RECORDS)
        .map(|n| std::sync::Mutex::new(format!("initial-{n}")))
        .collect();
    let stop = AtomicBool::new(false);
    let write_failures = AtomicUsize::new(0);
    let seed: u64 = std::env::var("COFFER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(Uuid::new_v4().as_fields().1));
    let versions = thread::scope(|scope| {
        for worker in 0..WRITERS {
            let (stop, write_failures, ids, latest, server) =
                (&stop, &write_failures, &ids, &latest, &server);
            scope.spawn(move || {
                let api = api_for(server, owner, "integration_editor");
                let mut n = worker + usize::try_from(seed % 7).unwrap_or(0);
                let mut count = 0;
                while !stop.load(Ordering::Relaxed) || count < 3 {
                    let i = n % ids.len();
                    // One writer per record at a time: hold its slot.
                    let Ok(mut slot) = latest[i].try_lock() else {
                        n += 1;
                        continue;
                    };
                    let secret = format!("w{worker}-{count}-{}", Uuid::new_v4());
                    let reply = api.patch(
                        &format!("/api/v1/credentials/{}", ids[i]),
                        &json!({"credentials": {"apiKey": secret}}),
                    );
                    if reply.status == 200 {
                        *slot = secret;
                    } else {
                        write_failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("write failed (seed {seed}): {}", reply.text);
                    }
                    count += 1;
                    n += WRITERS;
                }
            });
        }
        let mut versions = Vec::new();
        // Two rotations back to back, each resumed until complete.
        for _ in 0..2 {
            loop {
                let reply = admin.post("/api/v1/tenant/keys/rotate", &json!({}));
                assert!(
                    reply.status == 200 || reply.status == 202,
                    "rotate (seed {seed}): {}",
                    reply.text
                );
                if reply.body["data"]["complete"] == true {
                    versions.push(reply.body["data"]["tenantKeyVersion"].clone());
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        versions
    });
    assert_eq!(
        write_failures.load(Ordering::Relaxed),
        0,
        "writes failed (seed {seed})"
    );
    assert_eq!(versions, vec![json!(2), json!(3)], "seed {seed}");
    let reader = api_for(&server, owner, "integration_user");
    for (id, secret) in ids.iter().zip(&latest) {
        let secret = secret.lock().expect("lock").clone();
        assert_opens(&reader, "rotate", id, &secret);
    }
    // The tenant key (version 3) moves with a master rotation too.
    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{COFFER_KEYS}"))]);
    run_sweeps(&server);
    let summary = last_summary(&server, "rewrap", 1);
    assert_eq!(summary["tenant_keys_rewrapped"], 1, "{summary}");
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    let reader = api_for(&server, owner, "integration_user");
    for (id, secret) in ids.iter().zip(&latest) {
        let secret = secret.lock().expect("lock").clone();
        assert_opens(&reader, "rotate", id, &secret);
    }
}

/// A viewer or user may not rotate; an admin of another tenant rotates its
/// own key, never this one's.
#[test]
fn tenant_key_rotation_is_for_admins_of_the_tenant() {
    let server = Server::start(&[]);
    let owner = tenant();
    let id = create(
        &api_for(&server, owner, "integration_admin"),
        "rotate",
        "s-1",
    );
    for role in [
        "integration_viewer",
        "integration_user",
        "integration_editor",
    ] {
        let reply = api_for(&server, owner, role).post("/api/v1/tenant/keys/rotate", &json!({}));
        assert_eq!(reply.status, 403, "{role}: {}", reply.text);
    }
    let stranger = tenant();
    let reply = api_for(&server, stranger, "integration_admin")
        .post("/api/v1/tenant/keys/rotate", &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["tenantKeyVersion"], 2);
    // The owner's key was not touched: its first rotation makes version 2.
    let reply =
        api_for(&server, owner, "integration_admin").post("/api/v1/tenant/keys/rotate", &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["data"]["tenantKeyVersion"], 2);
    assert_eq!(reply.body["data"]["rewrapped"], 1);
    assert_opens(
        &api_for(&server, owner, "integration_user"),
        "rotate",
        &id,
        "s-1",
    );
}
