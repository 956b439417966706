//! The audit archive (issue 17): events older than the retention window
//! move from D1 to the local R2 bucket of `wrangler dev`, per tenant and
//! UTC day, and come back through the API unchanged.
//!
//! Old events are made the only legitimate way, through the API: the
//! test-only build (`make build-faults`) honours
//! `x-coffer-fault-clock-offset-ms`, which runs a request on a shifted
//! clock, so the Worker itself writes events dated weeks ago. No test
//! writes a row. Each test runs its own server: the sweep acts on the
//! whole store.
extern crate alloc;

use alloc::collections::BTreeMap;
use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use coffer_tests::{
    client::Api,
    fixtures::{now, run_sweeps, sweep_summaries, tenant, TokenBuilder},
    harness::Server,
};
use serde_json::{json, Value};
use uuid::Uuid;

const DAY_MS: i64 = 86_400_000;
/// Events per archive object at most (`worker/src/archive.rs`).
const OBJECT_EVENTS: u64 = 1_000;

/// Requests as `tenant` with `role`, `days_ago` days in the past: the token
/// is valid at that time and the Worker's clock is shifted to it.
fn api_at<'s>(server: &'s Server, tenant: Uuid, role: &str, days_ago: i64) -> Api<'s> {
    let then = now() - days_ago * 86_400;
    let token = TokenBuilder::new(tenant, role)
        .claim("iat", json!(then))
        .claim("exp", json!(then + 3_600))
        .sign();
    Api::new(server, token)
        .header("x-tenantid", tenant.to_string())
        .header(
            "x-coffer-fault-clock-offset-ms",
            (-days_ago * DAY_MS).to_string(),
        )
}

/// Creates a record `days_ago` and reads its secret `reads` times: 1 +
/// `reads` audit events of that time. Returns the record's id.
fn events_at(server: &Server, tenant: Uuid, days_ago: i64, reads: usize) -> String {
    let api = api_at(server, tenant, "integration_admin", days_ago);
    let created = api.post(
        "/api/v1/credentials",
        &json!({"integrationId": "archive", "credentialName": "Archive", "credentials": {"k": "archive-secret"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["data"]["id"].as_str().expect("id").to_string();
    for _ in 0..reads {
        let read = api.get(&format!("/api/v1/credentials/archive?credentialId={id}"));
        assert_eq!(read.status, 200, "{}", read.text);
    }
    id
}

/// The whole audit log of `api`'s tenant through the audit route, newest
/// first, and the last page's `archivedBefore`.
fn audit_log(api: &Api<'_>) -> (Vec<Value>, Value) {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=100&cursor={c}"),
            None => "/api/v1/audit?limit=100".to_string(),
        };
        let page = api.get(&path);
        assert_eq!(page.status, 200, "{}", page.text);
        events.extend(
            page.body["data"]["items"]
                .as_array()
                .expect("items")
                .clone(),
        );
        match page.body["data"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return (events, page.body["data"]["archivedBefore"].clone()),
        }
    }
}

/// Every archive object of `api`'s tenant, through the list route.
fn archives(api: &Api<'_>, query: &str) -> Vec<Value> {
    let mut objects = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/audit/archives?limit=7{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = api.get(&path);
        assert_eq!(page.status, 200, "{}", page.text);
        objects.extend(
            page.body["data"]["items"]
                .as_array()
                .expect("items")
                .clone(),
        );
        match page.body["data"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return objects,
        }
    }
}

/// A day's archived events through the day route, parsed line by line.
fn archived_day(api: &Api<'_>, day: &str) -> (Vec<Value>, String) {
    let reply = api.get(&format!("/api/v1/audit/archives/{day}"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    assert!(reply.text.ends_with('\n'), "NDJSON ends with a newline");
    let events = reply
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    (events, reply.text)
}

fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The UTC day of an RFC 3339 time.
fn day_of(at: &Value) -> String {
    at.as_str().expect("at")[..10].to_string()
}

/// Waits until the server's log holds `needle`.
fn wait_for_log(server: &Server, needle: &str) {
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(20);
    while !server.log().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "the log never said {needle:?}"
        );
        std::thread::sleep(core::time::Duration::from_millis(100));
    }
}

/// The archive sweep's summaries so far (waiting for `runs` of them).
fn archive_summaries(server: &Server, runs: usize) -> Vec<Value> {
    sweep_summaries(server, "archive", runs)
}

#[test]
fn old_events_move_to_the_archive_and_come_back_unchanged() {
    let server = Server::start_with_faults(&[]);
    let owner = tenant();
    events_at(&server, owner, 40, 5);
    events_at(&server, owner, 35, 2);
    events_at(&server, owner, 0, 1);
    let admin = api_at(&server, owner, "integration_admin", 0);
    let (before, archived_before) = audit_log(&admin);
    assert_eq!(before.len(), 6 + 3 + 2, "{before:?}");
    assert_eq!(archived_before, Value::Null, "nothing archived yet");

    run_sweeps(&server);
    let summary = &archive_summaries(&server, 1)[0];
    assert_eq!(summary["archived"], 9, "{summary}");
    assert_eq!(summary["objects"], 2, "{summary}");
    assert_eq!(summary["complete"], true, "{summary}");

    // D1 keeps the recent events only, and says where the archive ends.
    let (after, archived_before) = audit_log(&admin);
    assert_eq!(after, before[..2].to_vec(), "the two recent events stay");
    let mark = archived_before.as_str().expect("archivedBefore is a time");
    let newest_archived = before[2]["at"].as_str().expect("at");
    assert!(mark > newest_archived, "{mark} after {newest_archived}");
    assert!(mark < after[1]["at"].as_str().expect("at"), "{mark}");

    // One object per day, oldest first, with count and hash.
    let objects = archives(&admin, "");
    let mut by_day: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in before[2..].iter().rev() {
        by_day
            .entry(day_of(&event["at"]))
            .or_default()
            .push(event.clone());
    }
    assert_eq!(objects.len(), 2, "{objects:?}");
    for (object, (day, expected)) in objects.iter().zip(&by_day) {
        assert_eq!(object["day"], day.as_str(), "{object}");
        assert_eq!(object["events"], expected.len(), "{object}");
        assert!(object["bytes"].as_u64().unwrap_or(0) > 0, "{object}");
        assert!(
            object["firstSeq"].as_i64() <= object["lastSeq"].as_i64(),
            "{object}"
        );
        // Streamed back: the audit route's events of that day, oldest first.
        let (streamed, text) = archived_day(&admin, day);
        assert_eq!(&streamed, expected, "{day}");
        assert_eq!(object["sha256"], sha256_hex(&text), "{day}");
    }
    // `from` and `to` select days, inclusive.
    let first_day = by_day.keys().next().expect("a day").clone();
    let last_day = by_day.keys().last().expect("a day").clone();
    assert_eq!(archives(&admin, &format!("&to={first_day}")).len(), 1);
    assert_eq!(archives(&admin, &format!("&from={last_day}")).len(), 1);
    assert_eq!(
        archives(&admin, &format!("&from={first_day}&to={last_day}")).len(),
        2
    );

    // A day without an archive, and a day that is not a date.
    let empty = admin.get("/api/v1/audit/archives/2001-01-01");
    assert_eq!(empty.status, 404, "{}", empty.text);
    for bad in ["2026-13-01", "yesterday", "2026-1-1"] {
        let reply = admin.get(&format!("/api/v1/audit/archives/{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
    }
    let bad_from = admin.get("/api/v1/audit/archives?from=nope");
    assert_eq!(bad_from.status, 400, "{}", bad_from.text);

    // Another tenant sees none of it; an admin of this tenant is needed.
    let stranger = tenant();
    let other = api_at(&server, stranger, "integration_admin", 0);
    assert_eq!(archives(&other, ""), Vec::<Value>::new());
    let foreign = other.get(&format!("/api/v1/audit/archives/{first_day}"));
    assert_eq!(foreign.status, 404, "{}", foreign.text);
    // Naming the owner's tenant in x-tenantid without belonging to it: 403.
    let as_other_tenant = Api::new(
        &server,
        TokenBuilder::new(stranger, "integration_admin").sign(),
    )
    .header("x-tenantid", owner.to_string());
    for path in [
        "/api/v1/audit/archives".to_string(),
        format!("/api/v1/audit/archives/{first_day}"),
    ] {
        let refused = as_other_tenant.get(&path);
        assert_eq!(refused.status, 403, "{path}: {}", refused.text);
    }
    let editor = api_at(&server, owner, "integration_editor", 0);
    for path in [
        "/api/v1/audit/archives".to_string(),
        format!("/api/v1/audit/archives/{first_day}"),
    ] {
        let reply = editor.get(&path);
        assert_eq!(reply.status, 403, "{path}: {}", reply.text);
    }

    // A second run finds nothing more to do.
    run_sweeps(&server);
    let summary = &archive_summaries(&server, 2)[1];
    assert_eq!(summary["archived"], 0, "{summary}");
    assert_eq!(archives(&admin, "").len(), 2);
}

#[test]
fn a_sweep_stopped_at_any_step_loses_nothing_and_duplicates_nothing() {
    let mut server = Server::start_with_faults(&[]);
    let mut completed_runs = 0;
    for step in ["put", "readback", "delete"] {
        let owner = tenant();
        events_at(&server, owner, 40, 3);
        let admin = api_at(&server, owner, "integration_admin", 0);
        let (before, _) = audit_log(&admin);
        assert_eq!(before.len(), 4, "{step}");

        server.restart_with(&[("COFFER_FAULT_ARCHIVE_CRASH", step)]);
        let admin = api_at(&server, owner, "integration_admin", 0);
        run_sweeps(&server);
        wait_for_log(&server, &format!("fault: stopped after {step}"));
        let (left, _) = audit_log(&admin);
        let objects = archives(&admin, "");
        assert_eq!(objects.len(), 1, "{step}: the object was written");
        if step == "delete" {
            assert_eq!(left, Vec::<Value>::new(), "{step}: the events were removed");
        } else {
            assert_eq!(
                left, before,
                "{step}: no event was removed before the delete"
            );
        }

        server.restart_with(&[]);
        let admin = api_at(&server, owner, "integration_admin", 0);
        run_sweeps(&server);
        completed_runs += 1;
        let summary = archive_summaries(&server, completed_runs)[completed_runs - 1].clone();
        if step != "delete" {
            assert_eq!(summary["resumed"], 1, "{step}: {summary}");
            assert_eq!(summary["archived"], 4, "{step}: {summary}");
        }
        let (left, _) = audit_log(&admin);
        assert_eq!(left, Vec::<Value>::new(), "{step}: everything archived");
        let objects = archives(&admin, "");
        assert_eq!(objects.len(), 1, "{step}: still one object: {objects:?}");
        assert_eq!(objects[0]["events"], 4, "{step}");
        let (streamed, _) = archived_day(&admin, objects[0]["day"].as_str().expect("day"));
        let expected: Vec<Value> = before.iter().rev().cloned().collect();
        assert_eq!(streamed, expected, "{step}: the events, once each");
    }
}

#[test]
fn fifty_thousand_events_of_twenty_tenants_move_within_the_per_run_bounds() {
    let total: usize = std::env::var("ARCHIVE_BULK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    const TENANTS: usize = 20;
    const THREADS: usize = 4;
    // 10 objects a run (the default is 100), so the 50,000 take several.
    const OBJECTS_PER_RUN: u64 = 10;
    let server = Server::start_with_faults(&[("COFFER_AUDIT_ARCHIVE_OBJECTS_PER_RUN", "10")]);
    let tenants: Vec<Uuid> = (0..TENANTS).map(|_| tenant()).collect();
    let per_tenant = total / TENANTS;
    // Each tenant: one create and per_tenant - 1 reads, 40 days ago.
    std::thread::scope(|scope| {
        for chunk in tenants.chunks(TENANTS / THREADS) {
            let server = &server;
            scope.spawn(move || {
                for &owner in chunk {
                    events_at(server, owner, 40, per_tenant - 1);
                }
            });
        }
    });
    let bound = OBJECT_EVENTS * OBJECTS_PER_RUN;
    let mut runs = 0;
    let mut archived = 0;
    loop {
        run_sweeps(&server);
        runs += 1;
        let summary = archive_summaries(&server, runs)[runs - 1].clone();
        let moved = summary["archived"].as_u64().expect("archived");
        assert!(moved <= bound, "run {runs}: {summary}");
        assert!(
            summary["objects"].as_u64().unwrap_or(u64::MAX) <= OBJECTS_PER_RUN,
            "run {runs}: {summary}"
        );
        archived += moved;
        if summary["complete"] == true {
            break;
        }
        assert!(runs < 100, "the archive does not finish: {summary}");
    }
    let expected = (per_tenant * TENANTS) as u64;
    assert_eq!(archived, expected);
    assert!(
        runs as u64 >= expected.div_ceil(bound),
        "{runs} runs for {expected} events at {bound} a run"
    );
    for (n, &owner) in tenants.iter().enumerate() {
        let admin = api_at(&server, owner, "integration_admin", 0);
        let objects = archives(&admin, "");
        let events: u64 = objects
            .iter()
            .map(|o| o["events"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(events, per_tenant as u64, "tenant {n}: {objects:?}");
        assert!(
            objects
                .iter()
                .all(|o| o["events"].as_u64().unwrap_or(0) <= OBJECT_EVENTS),
            "tenant {n}"
        );
        let (left, _) = audit_log(&admin);
        assert_eq!(left, Vec::<Value>::new(), "tenant {n}: D1 holds none");
        if n == 0 {
            let mut days: Vec<String> = objects
                .iter()
                .map(|o| o["day"].as_str().expect("day").to_string())
                .collect();
            days.dedup();
            let streamed: usize = days.iter().map(|d| archived_day(&admin, d).0.len()).sum();
            assert_eq!(streamed, per_tenant, "tenant 0 streamed back whole");
        }
    }
}

/// Crypto-shredding (issue 16) meets the archive: from a tenant's deletion
/// its archive routes answer 410; the shred sweep deletes its archive
/// objects and removes its events (old ones included) rather than letting
/// the archive step move them, and keeps only the `tenant.delete` event;
/// another tenant's archive is untouched.
#[test]
fn a_deleted_tenants_archive_is_shredded_and_only_its_deletion_is_kept() {
    let mut server = Server::start_with_faults(&[]);
    let (doomed, bystander) = (tenant(), tenant());
    events_at(&server, doomed, 40, 2);
    events_at(&server, doomed, 38, 1);
    events_at(&server, bystander, 40, 1);
    run_sweeps(&server);
    let doomed_admin = api_at(&server, doomed, "integration_admin", 0);
    let bystander_admin = api_at(&server, bystander, "integration_admin", 0);
    let doomed_objects = archives(&doomed_admin, "");
    assert_eq!(doomed_objects.len(), 2, "{doomed_objects:?}");
    let kept_objects = archives(&bystander_admin, "");
    assert_eq!(kept_objects.len(), 1, "{kept_objects:?}");
    let (kept_day, _) = archived_day(
        &bystander_admin,
        kept_objects[0]["day"].as_str().expect("day"),
    );

    // Events past retention the next archive run would move: more than one
    // shred run removes (10 steps of 100), so the tenant is still being
    // shredded when that run's archive step looks for old events. And one
    // of today.
    events_at(&server, doomed, 36, 1_100);
    events_at(&server, doomed, 0, 0);
    let deleted = doomed_admin
        .clone()
        .header("x-confirm-tenant-deletion", doomed.to_string())
        .delete("/api/v1/tenant");
    assert_eq!(deleted.status, 202, "{}", deleted.text);
    let day = doomed_objects[0]["day"].as_str().expect("day").to_string();
    for path in [
        "/api/v1/audit/archives".to_string(),
        format!("/api/v1/audit/archives/{day}"),
    ] {
        let reply = doomed_admin.get(&path);
        assert_eq!(reply.status, 410, "{path}: {}", reply.text);
        assert_eq!(
            reply.body["error"]["code"], "TENANT_DELETED",
            "{}",
            reply.text
        );
    }

    // The first run deletes its archive objects and part of its events;
    // the archive step moves none of them.
    run_sweeps(&server);
    let shred = sweep_summaries(&server, "shred", 2)[1].clone();
    assert_eq!(shred["archive_objects_removed"], 2, "{shred}");
    assert_eq!(shred["purged"], 0, "not done in one run: {shred}");
    let archive = archive_summaries(&server, 2)[1].clone();
    assert_eq!(
        archive["archived"], 0,
        "nothing of the deleted tenant archived: {archive}"
    );
    // The next run finishes it; still nothing archived.
    run_sweeps(&server);
    let shred = sweep_summaries(&server, "shred", 3)[2].clone();
    assert_eq!(shred["purged"], 1, "{shred}");
    assert_eq!(archive_summaries(&server, 3)[2]["archived"], 0);

    // The bystander's archive is as it was.
    assert_eq!(archives(&bystander_admin, ""), kept_objects);
    let (again, _) = archived_day(
        &bystander_admin,
        kept_objects[0]["day"].as_str().expect("day"),
    );
    assert_eq!(again, kept_day);

    // A further run finds nothing of the tenant left to remove or archive.
    run_sweeps(&server);
    let shred = sweep_summaries(&server, "shred", 4)[3].clone();
    assert_eq!(shred["tenants"], 0, "{shred}");
    assert_eq!(archive_summaries(&server, 4)[3]["archived"], 0);

    // Out of band (the API answers 410): D1 keeps only the tenant.delete
    // event, and R2 no object of the tenant.
    server.stop();
    let events = server.d1(&format!(
        "SELECT action FROM audit_events WHERE tenant_id = '{doomed}'"
    ));
    assert_eq!(events, json!([{"action": "tenant.delete"}]), "{events}");
    let key_of = |tenant: Uuid, object: &Value| {
        format!(
            "coffer-audit/audit/v1/{tenant}/{}/{:016}-{:016}.ndjson.gz",
            object["day"].as_str().expect("day"),
            object["firstSeq"].as_i64().expect("firstSeq"),
            object["lastSeq"].as_i64().expect("lastSeq"),
        )
    };
    let get = |key: &str| {
        std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
            server.wrangler_cli(&["r2", "object", "get", key, "--pipe"])
        }))
    };
    // The same look-up finds the bystander's object, so an absence is real.
    let kept_key = key_of(bystander, &kept_objects[0]);
    assert!(
        get(&kept_key).is_ok_and(|bytes| !bytes.is_empty()),
        "{kept_key} is found out of band"
    );
    for object in &doomed_objects {
        let key = key_of(doomed, object);
        let found = get(&key);
        assert!(
            found.is_err() || found.as_deref().is_ok_and(str::is_empty),
            "{key} is still in R2"
        );
    }
}
