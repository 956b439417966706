//! The credentials surface under concurrency, across pages, and with a
//! tampered sealed blob.

use alloc::{collections::BTreeSet, sync::Arc};
use std::{sync::Barrier, thread};

use coffer_tests::{
    assertions::{assert_error, assert_invalid, assert_not_logged, assert_timestamp},
    client::Reply,
    fixtures::{
        api_for, create_credential, credential_body, storage_server, tenant, COFFER_KEYS, KEY_ID,
    },
    harness,
};
use serde_json::{json, Value};

#[test]
fn forty_concurrent_decrypted_reads_count_exactly_forty() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_user");
    let id = create_credential(
        &api_for(server, owner, "integration_editor"),
        &credential_body(
            "concurrent",
            "Concurrent",
            json!({"token": "conc-read-4040"}),
        ),
    );
    let path = format!("/api/v1/credentials/concurrent?credentialId={id}");
    let barrier = Arc::new(Barrier::new(40));
    let replies: Vec<Reply> = thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|_| {
                let (api, path, barrier) = (api.clone(), &path, Arc::clone(&barrier));
                scope.spawn(move || {
                    barrier.wait();
                    api.get(path)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("reader thread"))
            .collect()
    });
    let mut counts = BTreeSet::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body["data"]["credentials"]["token"], "conc-read-4040");
        counts.insert(reply.body["data"]["accessCount"].as_i64().expect("count"));
    }
    // Each read saw its own increment.
    assert_eq!(counts, (1..=40).collect::<BTreeSet<i64>>());
    let details = api.get(&format!(
        "/api/v1/credentials/concurrent/details?credentialId={id}"
    ));
    assert_eq!(details.body["data"]["accessCount"], 40, "{}", details.text);
    assert_eq!(
        details.body["data"]["version"], 1,
        "reads leave the version alone"
    );
    let audit = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}&limit=100"));
    let reads = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "credential.read_secret" && e["outcome"] == "success")
        .count();
    assert_eq!(reads, 40, "one audit event per read");
    assert_not_logged(server, &["conc-read-4040"]);
}

#[test]
fn ten_concurrent_patches_with_one_if_match_let_exactly_one_through() {
    // A few rounds: whether losers disturb the winner depends on timing.
    for round in 0..3 {
        patch_race(round);
    }
}

fn patch_race(round: usize) {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_editor");
    let id = create_credential(
        &api,
        &credential_body("concurrent", "Race", json!({"token": "race-0"})),
    );
    let path = format!("/api/v1/credentials/{id}");
    let racer = api.clone().header("if-match", "\"1\"");
    let barrier = Arc::new(Barrier::new(10));
    let replies: Vec<(usize, Reply)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|n| {
                let (api, path, barrier) = (racer.clone(), &path, Arc::clone(&barrier));
                scope.spawn(move || {
                    barrier.wait();
                    let body = json!({
                        "credentialName": format!("Racer {n}"),
                        "credentials": {"token": format!("race-secret-{round}-{n}")},
                    });
                    (n, api.patch(path, &body))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("patch thread"))
            .collect()
    });
    let winners: Vec<usize> = replies
        .iter()
        .filter(|(_, reply)| reply.status == 200)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(winners.len(), 1, "{replies:?}");
    for (_, reply) in &replies {
        if reply.status != 200 {
            assert_error(reply, 412, "PRECONDITION_FAILED");
        }
    }
    let winner = winners[0];
    let read = api_for(server, owner, "integration_user")
        .get(&format!("/api/v1/credentials/concurrent?credentialId={id}"));
    assert_eq!(
        read.status, 200,
        "round {round}, winner {winner}: {}",
        read.text
    );
    assert_eq!(read.body["data"]["version"], 2);
    assert_eq!(
        read.body["data"]["credentialName"],
        format!("Racer {winner}")
    );
    assert_eq!(
        read.body["data"]["credentials"]["token"],
        format!("race-secret-{round}-{winner}")
    );
    // Exactly one update event: the losers left nothing in the log.
    let audit = api_for(server, owner, "integration_admin")
        .get(&format!("/api/v1/audit?credentialId={id}"));
    let updates = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "credential.update")
        .count();
    assert_eq!(updates, 1, "{}", audit.text);
    let secrets: Vec<String> = (0..10)
        .map(|n| format!("race-secret-{round}-{n}"))
        .collect();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_not_logged(server, &secrets);
}

fn page_ids(reply: &Reply) -> Vec<(i64, String)> {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                assert_timestamp(&item["createdAt"], "createdAt"),
                item["id"].as_str().expect("id").to_string(),
            )
        })
        .collect()
}

#[test]
fn forty_five_records_page_as_twenty_twenty_five_newest_first() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_editor");
    let mut created: Vec<(i64, String)> = Vec::new();
    for n in 0..45 {
        let integration = if n % 3 == 0 { "beta-erp" } else { "alpha-crm" };
        let reply = api.post(
            "/api/v1/credentials",
            &credential_body(
                integration,
                &format!("Record {n}"),
                json!({"k": format!("pg-{n}")}),
            ),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
        created.push((
            assert_timestamp(&reply.body["data"]["createdAt"], "createdAt"),
            reply.body["data"]["id"].as_str().expect("id").to_string(),
        ));
    }
    // Newest createdAt first, ties by id descending.
    let mut expected = created.clone();
    expected.sort_by(|a, b| b.cmp(a));

    let first = api.get("/api/v1/credentials?limit=20");
    let cursor1 = first.body["data"]["nextCursor"]
        .as_str()
        .expect("a first cursor")
        .to_string();
    let second = api.get(&format!("/api/v1/credentials?limit=20&cursor={cursor1}"));
    let cursor2 = second.body["data"]["nextCursor"]
        .as_str()
        .expect("a second cursor")
        .to_string();
    let third = api.get(&format!("/api/v1/credentials?limit=20&cursor={cursor2}"));
    assert_eq!(
        third.body["data"]["nextCursor"],
        Value::Null,
        "{}",
        third.text
    );
    let (p1, p2, p3) = (page_ids(&first), page_ids(&second), page_ids(&third));
    assert_eq!((p1.len(), p2.len(), p3.len()), (20, 20, 5));
    let all: Vec<(i64, String)> = p1.into_iter().chain(p2).chain(p3).collect();
    assert_eq!(all, expected, "pages are not newest first without gaps");
    let distinct: BTreeSet<&String> = all.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), 45);

    // Default limit is 20.
    let default = api.get("/api/v1/credentials");
    assert_eq!(page_ids(&default).len(), 20);

    // Filters: integration, status, both; paging within a filter.
    for n in [1, 2, 4, 5, 7] {
        let id = &created[n].1;
        let reply = api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"status": "inactive"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let alpha: Vec<(i64, String)> = expected
        .iter()
        .filter(|(_, id)| {
            created
                .iter()
                .position(|(_, c)| c == id)
                .is_some_and(|n| n % 3 != 0)
        })
        .cloned()
        .collect();
    assert_eq!(alpha.len(), 30);
    let a1 = api.get("/api/v1/credentials?integrationId=alpha-crm&limit=20");
    let cursor_alpha = a1.body["data"]["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let a2 = api.get(&format!(
        "/api/v1/credentials?integrationId=alpha-crm&limit=20&cursor={cursor_alpha}"
    ));
    assert_eq!(a2.body["data"]["nextCursor"], Value::Null);
    let got: Vec<(i64, String)> = page_ids(&a1).into_iter().chain(page_ids(&a2)).collect();
    assert_eq!(got, alpha);
    let beta = api.get("/api/v1/credentials?integrationId=beta-erp&limit=100");
    assert_eq!(page_ids(&beta).len(), 15);
    let inactive = api.get("/api/v1/credentials?status=inactive&limit=100");
    let inactive_ids: BTreeSet<String> =
        page_ids(&inactive).into_iter().map(|(_, id)| id).collect();
    let want: BTreeSet<String> = [1, 2, 4, 5, 7]
        .iter()
        .map(|&n| created[n].1.clone())
        .collect();
    assert_eq!(inactive_ids, want);
    assert!(inactive.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|item| item["status"] == "inactive"));
    let active = api.get("/api/v1/credentials?status=active&limit=100");
    assert_eq!(page_ids(&active).len(), 40);
    let both = api.get("/api/v1/credentials?status=inactive&integrationId=alpha-crm&limit=100");
    assert_eq!(page_ids(&both).len(), 5, "1, 2, 4, 5, 7 are all alpha-crm");
    let both = api.get("/api/v1/credentials?status=inactive&integrationId=beta-erp");
    assert_eq!(page_ids(&both).len(), 0);

    // A cursor is bound to its filters and its tenant.
    for path in [
        format!("/api/v1/credentials?integrationId=alpha-crm&limit=20&cursor={cursor1}"),
        format!("/api/v1/credentials?status=active&limit=20&cursor={cursor1}"),
        format!("/api/v1/credentials?limit=20&cursor={cursor_alpha}"),
        format!("/api/v1/credentials?integrationId=beta-erp&limit=20&cursor={cursor_alpha}"),
    ] {
        let reply = api.get(&path);
        assert_invalid(&reply, "cursor");
    }
    let other = tenant();
    let stranger = api_for(server, other, "integration_admin");
    let reply = stranger.get(&format!("/api/v1/credentials?limit=20&cursor={cursor1}"));
    assert_invalid(&reply, "cursor");
    assert!(!reply.text.contains(&created[0].1));
    // A changed limit with the same filters is fine (the limit is not a filter).
    let reply = api.get(&format!("/api/v1/credentials?limit=100&cursor={cursor1}"));
    assert_eq!(page_ids(&reply), expected[20..].to_vec());
}

#[test]
fn a_tampered_blob_is_an_opaque_500_audited_and_contained() {
    let guard = storage_server();
    let server: &harness::Server = &guard;
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let victim = create_credential(
        &api,
        &credential_body("tamper", "Victim", json!({"token": "tamper-victim-1"})),
    );
    let bystander = create_credential(
        &api,
        &credential_body(
            "tamper",
            "Bystander",
            json!({"token": "tamper-bystander-2"}),
        ),
    );
    // Fault injection: the victim's sealed blob is overwritten out of band
    // (a tampered or corrupted KV value), which no API can do. The listing
    // only finds the key to overwrite; blob keys are `<version>.<nonce>`.
    // `storage_server` keeps requests out of the way of the wrangler CLI.
    let prefix = format!("secret/v1/{owner}/{victim}/1.");
    let listed = server.blob_keys(&prefix);
    assert_eq!(
        listed.len(),
        1,
        "the blob is where the layout says: {listed:?}"
    );
    let key = listed.first().expect("one key").clone();
    server.wrangler_cli(&[
        "kv",
        "key",
        "put",
        "--binding",
        "SECRETS",
        &key,
        "tampered-bytes-not-a-sealed-blob",
    ]);

    let read = api.get(&format!("/api/v1/credentials/tamper?credentialId={victim}"));
    assert_error(&read, 500, "INTERNAL_ERROR");
    let (_, master_key) = COFFER_KEYS.split_once(':').expect("kid:key");
    for leaked in [
        "tamper-victim-1",
        "tampered-bytes",
        KEY_ID,
        master_key,
        "secret/v1/",
    ] {
        assert!(
            !read.text.contains(leaked),
            "500 body leaks {leaked:?}: {}",
            read.text
        );
    }
    let request_id = read
        .header("x-request-id")
        .expect("x-request-id")
        .to_string();

    // The failure is audited, and not counted as an access.
    let audit = api.get(&format!("/api/v1/audit?credentialId={victim}"));
    let event = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["requestId"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no audit event for the failed read: {}", audit.text))
        .clone();
    assert_eq!(event["action"], "credential.read_secret");
    assert_eq!(event["outcome"], "error");
    let events_of_request = audit.body["data"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["requestId"] == request_id.as_str())
        .count();
    assert_eq!(events_of_request, 1, "{}", audit.text);
    let details = api.get(&format!(
        "/api/v1/credentials/tamper/details?credentialId={victim}"
    ));
    assert_eq!(
        details.status, 200,
        "metadata stays readable: {}",
        details.text
    );
    assert_eq!(details.body["data"]["accessCount"], 0);

    // The rest of the tenant is unaffected.
    let other = api.get(&format!(
        "/api/v1/credentials/tamper?credentialId={bystander}"
    ));
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(
        other.body["data"]["credentials"]["token"],
        "tamper-bystander-2"
    );
    // A fresh secret version heals the record.
    let healed = api.patch(
        &format!("/api/v1/credentials/{victim}"),
        &json!({"credentials": {"token": "tamper-victim-3"}}),
    );
    assert_eq!(healed.status, 200, "{}", healed.text);
    let read = api.get(&format!("/api/v1/credentials/tamper?credentialId={victim}"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["credentials"]["token"], "tamper-victim-3");
    assert_not_logged(
        server,
        &[
            "tamper-victim-1",
            "tamper-bystander-2",
            "tamper-victim-3",
            master_key,
        ],
    );
}

/// Reads each racing reader must make while `PATCH`es are in flight.
const RACING_READS: usize = 20;
/// The most secret changes the writer makes waiting for the readers.
const MAX_SECRET_CHANGES: usize = 200;

/// One decrypted read by a racing reader, and whether it ran wholly while
/// secret changes were in flight.
struct RacingRead {
    status: u16,
    secret: Value,
    during_changes: bool,
}

#[test]
fn reads_racing_secret_changes_never_fail_and_see_only_written_secrets() {
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &api,
        &credential_body("race", "Race", json!({"v": "race-0"})),
    );
    let path = format!("/api/v1/credentials/race?credentialId={id}");
    let conn_path = format!("/connection/{id}/credentials");
    // Two readers on each surface.
    let surfaces = ["credentials", "credentials", "connection", "connection"];
    let stop = AtomicBool::new(false);
    let changing = AtomicBool::new(false);
    // Per reader: reads that ran wholly while changes were in flight.
    let counts: Vec<AtomicUsize> = surfaces.iter().map(|_| AtomicUsize::new(0)).collect();
    // (surface, secret) of those reads, for the writer to know when to stop.
    let observed: std::sync::Mutex<BTreeSet<(&str, String)>> =
        std::sync::Mutex::new(BTreeSet::new());
    let (written, reads, failed_patch) = thread::scope(|scope| {
        let readers: Vec<_> = surfaces
            .iter()
            .zip(&counts)
            .map(|(&surface, count)| {
                let (api, stop, changing, observed) = (api.clone(), &stop, &changing, &observed);
                let path = if surface == "connection" {
                    &conn_path
                } else {
                    &path
                };
                scope.spawn(move || {
                    let mut reads = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let began = changing.load(Ordering::SeqCst);
                        let reply = api.get(path);
                        let during_changes = began && changing.load(Ordering::SeqCst);
                        let secret = reply.body["data"]["credentials"]["v"].clone();
                        if during_changes {
                            count.fetch_add(1, Ordering::SeqCst);
                            observed
                                .lock()
                                .expect("observed lock")
                                .insert((surface, secret.as_str().unwrap_or_default().to_string()));
                        }
                        reads.push(RacingRead {
                            status: reply.status,
                            secret,
                            during_changes,
                        });
                    }
                    (surface, reads)
                })
            })
            .collect();
        // Change the secret until every reader has made its reads in the
        // middle of the changes (or give up and let the assertions fail).
        let mut written = vec!["race-0".to_string()];
        // A failed PATCH ends the changes and fails the test after the
        // readers stopped (a panic here would leave them running).
        let mut failed_patch = None;
        changing.store(true, Ordering::SeqCst);
        while written.len() <= MAX_SECRET_CHANGES {
            let secret = format!("race-{}", written.len());
            let patched = api.patch(
                &format!("/api/v1/credentials/{id}"),
                &json!({"credentials": {"v": secret}}),
            );
            if patched.status != 200 {
                failed_patch = Some(format!("{} {}", patched.status, patched.text));
                break;
            }
            written.push(secret);
            let every_reader_done = counts
                .iter()
                .all(|count| count.load(Ordering::SeqCst) >= RACING_READS);
            let both_surfaces_saw_changes = {
                let observed = observed.lock().expect("observed lock");
                ["credentials", "connection"]
                    .iter()
                    .all(|surface| observed.iter().filter(|(seen, _)| seen == surface).count() >= 2)
            };
            if every_reader_done && both_surfaces_saw_changes {
                break;
            }
        }
        changing.store(false, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        let reads: Vec<(&str, Vec<RacingRead>)> = readers
            .into_iter()
            .map(|reader| reader.join().expect("reader thread"))
            .collect();
        (written, reads, failed_patch)
    });
    assert_eq!(failed_patch, None, "a PATCH of the secret failed");
    eprintln!(
        "{} secret changes; reads per reader while they ran: {:?}",
        written.len() - 1,
        counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    );

    let mut distinct: alloc::collections::BTreeMap<&str, BTreeSet<String>> =
        alloc::collections::BTreeMap::new();
    for (n, (surface, reads)) in reads.iter().enumerate() {
        let during = reads.iter().filter(|read| read.during_changes).count();
        assert!(
            during >= RACING_READS,
            "reader {n} ({surface}) made {during} reads while secrets changed, \
             fewer than {RACING_READS} ({} changes made)",
            written.len() - 1
        );
        for read in reads {
            assert_eq!(
                read.status, 200,
                "a {surface} read racing a secret change failed"
            );
            let secret = read.secret.as_str().unwrap_or_default().to_string();
            assert!(
                written.contains(&secret),
                "{surface}: served a secret never written: {secret:?}"
            );
            if read.during_changes {
                distinct.entry(surface).or_default().insert(secret);
            }
        }
    }
    for surface in ["credentials", "connection"] {
        let seen = distinct.get(surface).map_or(0, BTreeSet::len);
        assert!(
            seen >= 2,
            "{surface} readers saw {seen} distinct secrets while they changed: \
             the reads did not race the changes"
        );
    }
    let last = api.get(&path);
    assert_eq!(
        last.body["data"]["credentials"]["v"],
        written.last().expect("a secret").as_str()
    );
}
