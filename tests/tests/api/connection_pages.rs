//! `GET /connection` pages: own and shared records, newest first, opaque
//! cursors bound to the tenant and filters, no duplicates or gaps, also
//! while records are being added.
use std::collections::{HashMap, HashSet};

use coffer_tests::{
    assertions::{assert_api_version, assert_timestamp, assert_unprocessable},
    client::Api,
    fixtures::{api_for, create_credential, credential_body, tenant, token},
    harness::{self, Server},
};
use serde_json::{json, Value};
use uuid::Uuid;

/// Creates `count` records for `owner` on a few threads; the integration of
/// record `n` is `integration(n)`. Returns id → integration.
fn create_many(
    server: &Server,
    owner: Uuid,
    count: usize,
    integration: impl Fn(usize) -> &'static str + Sync,
) -> HashMap<String, &'static str> {
    const THREADS: usize = 4;
    let integration = &integration;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                scope.spawn(move || {
                    let editor = api_for(server, owner, "integration_editor");
                    (thread..count)
                        .step_by(THREADS)
                        .map(|n| {
                            let name = integration(n);
                            let body = credential_body(name, &format!("Page {n}"), json!({"n": n}));
                            (create_credential(&editor, &body), name)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("creator thread"))
            .collect()
    })
}

/// One page: its items and the next cursor.
fn page(api: &Api<'_>, path: &str) -> (Vec<Value>, Option<String>) {
    let reply = api.get(path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    assert_api_version(&reply);
    let object = reply.body.as_object().expect("object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["data", "next_cursor"], "{}", reply.text);
    let items = reply.body["data"].as_array().expect("data array").clone();
    let next = match &reply.body["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("next_cursor is {other}"),
    };
    (items, next)
}

/// Every item, following cursors, with `limit` and `filter` (`&k=v...`),
/// asserting each page is full but the last.
fn walk(api: &Api<'_>, limit: usize, filter: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/connection?limit={limit}{filter}&cursor={cursor}"),
            None => format!("/connection?limit={limit}{filter}"),
        };
        let (items, next) = page(api, &path);
        assert!(items.len() <= limit);
        all.extend(items.iter().cloned());
        match next {
            Some(next) => {
                assert_eq!(items.len(), limit, "a page before the last is full");
                cursor = Some(next);
            }
            None => return all,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["connection_id"].as_str().expect("id").to_string())
        .collect()
}

/// Asserts newest `created_at` first, ties by id descending, no repeats.
fn assert_newest_first(items: &[Value]) {
    let keys: Vec<(i64, String)> = items
        .iter()
        .map(|item| {
            (
                assert_timestamp(&item["created_at"], "created_at"),
                item["connection_id"].as_str().expect("id").to_string(),
            )
        })
        .collect();
    for pair in keys.windows(2) {
        assert!(
            pair[0] > pair[1],
            "out of order: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn two_hundred_fifty_records_page_without_duplicates_or_gaps() {
    let server = harness::shared();
    let (owner, partner) = (tenant(), tenant());
    let beta = |n: usize| if n.is_multiple_of(5) { "beta" } else { "alpha" };
    let created = create_many(server, owner, 250, beta);
    assert_eq!(created.len(), 250);
    // A partner shares some of its own records; they count as the owner's
    // connections too (marked shared).
    let partner_records = create_many(server, partner, 6, |n| {
        if n.is_multiple_of(2) {
            "beta"
        } else {
            "gamma"
        }
    });
    let partner_admin = Api::new(server, token(partner, "integration_admin"));
    let mut shared_in = HashSet::new();
    for id in partner_records.keys().take(4) {
        let reply = partner_admin.put(&format!("/connection/{id}/shares/{owner}"));
        assert_eq!(reply.status, 200, "{}", reply.text);
        shared_in.insert(id.clone());
    }
    let mut expected: HashSet<String> = created.keys().cloned().collect();
    expected.extend(shared_in.iter().cloned());

    let api = Api::new(server, token(owner, "integration_viewer"));
    let by_100 = walk(&api, 100, "");
    assert_eq!(by_100.len(), 254);
    assert_newest_first(&by_100);
    let by_100_ids = ids(&by_100);
    assert_eq!(by_100_ids.iter().cloned().collect::<HashSet<_>>(), expected);
    for item in &by_100 {
        let id = item["connection_id"].as_str().expect("id");
        assert_eq!(item["shared"], shared_in.contains(id), "{item}");
        assert!(item.get("credentials").is_none());
    }

    let by_37 = walk(&api, 37, "");
    assert_eq!(ids(&by_37), by_100_ids, "limit 37 sees the same sequence");
    let by_1 = page(&api, "/connection?limit=1");
    assert_eq!(ids(&by_1.0), by_100_ids[..1]);
    let default = page(&api, "/connection");
    assert_eq!(ids(&default.0), by_100_ids[..20], "default limit is 20");
    assert!(default.1.is_some());

    // The integration filter, paged too.
    let beta_items = walk(&api, 7, "&integration_id=beta");
    assert_newest_first(&beta_items);
    let mut expected_beta: HashSet<String> = created
        .iter()
        .filter(|(_, integration)| **integration == "beta")
        .map(|(id, _)| id.clone())
        .collect();
    expected_beta.extend(
        shared_in
            .iter()
            .filter(|id| partner_records[id.as_str()] == "beta")
            .cloned(),
    );
    let beta_ids = ids(&beta_items);
    assert_eq!(beta_ids.len(), expected_beta.len(), "no duplicates");
    assert_eq!(beta_ids.into_iter().collect::<HashSet<_>>(), expected_beta);
    assert!(beta_items
        .iter()
        .all(|item| item["integration_id"] == "beta"));
    let none = page(&api, "/connection?integration_id=nothing-here");
    assert_eq!(none, (Vec::new(), None));
}

#[test]
fn a_cursor_is_bound_to_its_tenant_and_filters() {
    let server = harness::shared();
    let owner = tenant();
    let created = create_many(server, owner, 12, |n| {
        if n.is_multiple_of(2) {
            "beta"
        } else {
            "alpha"
        }
    });
    assert_eq!(created.len(), 12);
    let api = Api::new(server, token(owner, "integration_viewer"));
    let (_, plain) = page(&api, "/connection?limit=2");
    let plain = plain.expect("more than one page");
    let (_, filtered) = page(&api, "/connection?limit=2&integration_id=beta");
    let filtered = filtered.expect("more than one page");

    // The same cursor with its own filters works, with another limit too.
    assert_eq!(
        page(&api, &format!("/connection?limit=5&cursor={plain}"))
            .0
            .len(),
        5
    );
    let again = page(
        &api,
        &format!("/connection?limit=2&integration_id=beta&cursor={filtered}"),
    );
    assert!(again.0.iter().all(|item| item["integration_id"] == "beta"));

    let refused = [
        format!("/connection?limit=2&integration_id=beta&cursor={plain}"),
        format!("/connection?limit=2&integration_id=alpha&cursor={filtered}"),
        format!("/connection?limit=2&cursor={filtered}"),
        "/connection?cursor=abc".to_string(),
        "/connection?cursor=".to_string(),
        format!("/connection?cursor={}", &plain[..plain.len() - 2]),
        format!("/connection?cursor={plain}x"),
    ];
    // A cursor of the credentials surface's list is not one of this list's.
    let v1 = api_for(server, owner, "integration_viewer").get("/api/v1/credentials?limit=2");
    let v1_cursor = v1.body["data"]["nextCursor"]
        .as_str()
        .expect("v1 cursor")
        .to_string();
    let refused = [
        refused.to_vec(),
        vec![format!("/connection?limit=2&cursor={v1_cursor}")],
    ]
    .concat();
    for path in &refused {
        assert_unprocessable(&api.get(path), ["query", "cursor"]);
    }
    // Another tenant's cursor, also for a tenant the same token acts for.
    let stranger = Api::new(server, token(tenant(), "integration_admin"));
    assert_unprocessable(
        &stranger.get(&format!("/connection?limit=2&cursor={plain}")),
        ["query", "cursor"],
    );
    let multi = Api::new(
        server,
        coffer_tests::fixtures::TokenBuilder::new(owner, "integration_admin")
            .claim("tenants", json!([Uuid::new_v4().to_string()]))
            .sign(),
    );
    assert_eq!(
        multi
            .get(&format!("/connection?limit=2&cursor={plain}"))
            .status,
        200
    );
    let other_tenant = multi
        .clone()
        .header("x-tenantid", Uuid::new_v4().to_string());
    assert_eq!(other_tenant.get("/connection").status, 403);

    // Query values outside the contract.
    for limit in ["0", "101", "abc", "-1", "1.5", "", "+5", "1000000000000"] {
        assert_unprocessable(
            &api.get(&format!("/connection?limit={limit}")),
            ["query", "limit"],
        );
    }
    for limit in ["1", "100"] {
        assert_eq!(api.get(&format!("/connection?limit={limit}")).status, 200);
    }
    for integration in ["Bad Slug", "-leading", "", "x%2Fy"] {
        assert_unprocessable(
            &api.get(&format!("/connection?integration_id={integration}")),
            ["query", "integration_id"],
        );
    }
}

#[test]
fn paging_while_records_are_added_sees_every_earlier_record_once() {
    const LIMIT: usize = 9;
    /// Records created between two page fetches: each shifts every later
    /// offset by this much, so a paginator built on OFFSET repeats records.
    const ADDED_PER_PAGE: usize = 2;
    let server = harness::shared();
    let owner = tenant();
    let before = create_many(server, owner, 60, |_| "live");
    let earlier: HashSet<String> = before.keys().cloned().collect();
    let api = Api::new(server, token(owner, "integration_viewer"));
    let editor = api_for(server, owner, "integration_editor");
    // The order a walk must follow: every earlier record, newest first.
    let expected = ids(&walk(&api, 100, "&integration_id=live"));
    assert_eq!(expected.len(), earlier.len());

    let mut seen = Vec::new();
    let mut added = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => {
                format!("/connection?limit={LIMIT}&integration_id=live&cursor={cursor}")
            }
            None => format!("/connection?limit={LIMIT}&integration_id=live"),
        };
        let (items, next) = page(&api, &path);
        seen.extend(items);
        let Some(next) = next else { break };
        cursor = Some(next);
        // Newer records land in front of everything already paged.
        for _ in 0..ADDED_PER_PAGE {
            let body = credential_body("live", "Added while paging", json!({"k": "v"}));
            added.push(create_credential(&editor, &body));
        }
    }
    assert!(
        added.len() >= ADDED_PER_PAGE * (earlier.len() / LIMIT),
        "records were added between the pages"
    );
    assert_newest_first(&seen);
    let seen_ids = ids(&seen);
    let unique: HashSet<&String> = seen_ids.iter().collect();
    assert_eq!(unique.len(), seen_ids.len(), "no duplicates: {seen_ids:?}");
    // Every earlier record, once, in order; records added behind the cursor
    // are newer than everything paged, so the walk does not reach them.
    let seen_earlier: Vec<String> = seen_ids
        .iter()
        .filter(|id| earlier.contains(*id))
        .cloned()
        .collect();
    assert_eq!(seen_earlier, expected, "earlier records missed or repeated");
    let added: HashSet<String> = added.into_iter().collect();
    for id in &seen_ids {
        assert!(
            earlier.contains(id) || added.contains(id),
            "{id} is nobody's"
        );
    }
    // Afterwards a fresh walk sees everything exactly once.
    let all = ids(&walk(&api, 100, "&integration_id=live"));
    assert_eq!(all.len(), earlier.len() + added.len());
    assert_eq!(
        all.into_iter().collect::<HashSet<_>>(),
        earlier.union(&added).cloned().collect()
    );
}
