//! The credentials surface under concurrency, across pages, and with a
//! tampered sealed blob.
extern crate alloc;

use alloc::{collections::BTreeSet, sync::Arc};
use std::{sync::Barrier, thread};

use coffer_tests::{
    client::Reply,
    fixtures::{
        api_for, assert_error, assert_invalid, assert_not_logged, assert_timestamp,
        create_credential, credential_body, storage_server, tenant, COFFER_KEYS, KEY_ID,
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
    // Blob keys are `<version>.<nonce>`: find the victim's one blob.
    let prefix = format!("secret/v1/{owner}/{victim}/1.");
    let listed = server.wrangler_cli(&[
        "kv",
        "key",
        "list",
        "--binding",
        "SECRETS",
        "--prefix",
        &prefix,
    ]);
    let listed: Vec<Value> = serde_json::from_str(&listed).expect("kv key list output");
    assert_eq!(
        listed.len(),
        1,
        "the blob is where the layout says: {listed:?}"
    );
    let key = listed[0]["name"].as_str().expect("key name").to_string();
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
    let rows = server.d1(&format!(
        "SELECT action, outcome FROM audit_events WHERE request_id = '{request_id}'"
    ));
    assert_eq!(
        rows,
        json!([{"action": "credential.read_secret", "outcome": "error"}])
    );
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

#[test]
fn reads_racing_secret_changes_never_fail_and_see_only_written_secrets() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &api,
        &credential_body("race", "Race", json!({"v": "race-0"})),
    );
    let written: Vec<String> = (0..=12).map(|n| format!("race-{n}")).collect();
    let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
    let path = format!("/api/v1/credentials/race?credentialId={id}");
    let conn_path = format!("/connection/{}/credentials", id.trim_start_matches("cred-"));
    thread::scope(|scope| {
        let readers: Vec<_> = (0..3)
            .map(|n| {
                let (api, stop, path, conn_path) = (api.clone(), stop.clone(), &path, &conn_path);
                scope.spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(core::sync::atomic::Ordering::Relaxed) {
                        let (reply, secret) = if n == 2 {
                            let reply = api.get(conn_path);
                            let secret = reply.body["data"]["credentials"]["v"].clone();
                            (reply, secret)
                        } else {
                            let reply = api.get(path);
                            let secret = reply.body["data"]["credentials"]["v"].clone();
                            (reply, secret)
                        };
                        seen.push((reply.status, secret));
                    }
                    seen
                })
            })
            .collect();
        for secret in &written[1..] {
            let patched = api.patch(
                &format!("/api/v1/credentials/{id}"),
                &json!({"credentials": {"v": secret}}),
            );
            assert_eq!(patched.status, 200, "{}", patched.text);
        }
        stop.store(true, core::sync::atomic::Ordering::Relaxed);
        let mut reads = 0;
        for reader in readers {
            for (status, secret) in reader.join().expect("reader thread") {
                reads += 1;
                assert_eq!(status, 200, "a read racing a secret change failed");
                let secret = secret.as_str().unwrap_or_default().to_string();
                assert!(
                    written.contains(&secret),
                    "served a secret never written: {secret}"
                );
            }
        }
        assert!(reads >= 3, "the readers ran");
    });
    let last = api.get(&path);
    assert_eq!(last.body["data"]["credentials"]["v"], "race-12");
}
