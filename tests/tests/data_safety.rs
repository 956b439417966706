//! Data safety under concurrency: what was acknowledged is never lost, and
//! no secret is served after the change that stopped serving it.
//!
//! Every test here runs the Worker's real handlers concurrently against one
//! `wrangler dev` of its own (sweeps act on the whole store), with a seeded
//! plan: the seed is printed, and `COFFER_TEST_SEED=<n>` replays a run.
use core::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::Duration,
};
use std::{
    sync::Mutex,
    thread,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use coffer_tests::{
    client::{Api, Reply},
    fixtures::{run_sweeps, sweep_summaries, tenant, token, COFFER_KEYS},
    harness::Server,
};
use rand_chacha::{
    rand_core::{RngCore as _, SeedableRng as _},
    ChaCha8Rng,
};
use serde_json::{json, Value};
use uuid::Uuid;

/// A second master key (base64 of 32 bytes 0x21..=0x40).
const KEY_B: &str = "test-k2:ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=";

/// The run's seed: `COFFER_TEST_SEED` or the clock, printed either way so a
/// failure can be replayed.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("COFFER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
        });
    eprintln!("{test}: seed {seed} (replay with COFFER_TEST_SEED={seed})");
    seed
}

fn admin(server: &Server, owner: Uuid) -> Api<'_> {
    Api::new(server, token(owner, "integration_admin")).header("x-tenantid", owner.to_string())
}

/// The test build's switch that makes a create or update wait before its
/// D1 commit (`worker/src/faults.rs`), widening the race with the sweeps.
const COMMIT_DELAY: &str = "x-coffer-fault-commit-delay-ms";

/// An admin whose writes wait `ms` before their D1 commit.
fn slow_writer(server: &Server, owner: Uuid, ms: u32) -> Api<'_> {
    admin(server, owner).header(COMMIT_DELAY, ms.to_string())
}

fn create(api: &Api<'_>, integration: &str, secret: &str) -> String {
    let reply = api.post(
        "/api/v1/credentials",
        &json!({
            "integrationId": integration,
            "credentialName": "Data Safety",
            "credentials": {"apiKey": secret},
        }),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["data"]["id"]
        .as_str()
        .expect("created id")
        .to_string()
}

fn read(api: &Api<'_>, integration: &str, id: &str) -> Reply {
    api.get(&format!(
        "/api/v1/credentials/{integration}?credentialId={id}"
    ))
}

/// Item 1 of the data-safety issue: the orphan sweep, run in a loop while
/// creates and secret changes land across several tenants, never removes a
/// blob that an acknowledged write points at. (Before the fix the sweep
/// took every blob's age as "since 1970" and removed in-flight ones.)
#[test]
fn sweeps_in_a_loop_never_lose_an_acknowledged_write() {
    const WRITERS: usize = 6;
    const OPERATIONS: usize = 200;
    let server = Server::start_with_faults(&[("COFFER_BLOB_RETENTION_SECONDS", "300")]);
    let seed = seed("sweeps_in_a_loop_never_lose_an_acknowledged_write");
    let tenants: Vec<Uuid> = (0..4).map(|_| tenant()).collect();
    let done = AtomicBool::new(false);
    let sweeps = AtomicUsize::new(0);
    let next_op = AtomicUsize::new(0);
    // Per writer: (tenant, id) → last acknowledged secret. Each writer
    // changes only its own records, so "last" is well defined.
    let acknowledged: Mutex<Vec<(Uuid, String, String)>> = Mutex::new(Vec::new());
    thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                run_sweeps(&server);
                sweeps.fetch_add(1, Ordering::Relaxed);
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (tenants, next_op, acknowledged, server) =
                    (&tenants, &next_op, &acknowledged, &server);
                scope.spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ writer as u64);
                    let mut mine: Vec<(Uuid, String, String)> = Vec::new();
                    while next_op.fetch_add(1, Ordering::Relaxed) < OPERATIONS {
                        let change = !mine.is_empty() && rng.next_u32() % 2 == 0;
                        let secret = format!("safety-{writer}-{}", Uuid::new_v4().simple());
                        if change {
                            let at = rng.next_u32() as usize % mine.len();
                            let (owner, id, _) = &mine[at];
                            let delay = rng.next_u32() % 120;
                            let reply = slow_writer(server, *owner, delay).patch(
                                &format!("/api/v1/credentials/{id}"),
                                &json!({"credentials": {"apiKey": secret}}),
                            );
                            assert_eq!(reply.status, 200, "seed {seed}: {}", reply.text);
                            mine[at].2 = secret;
                        } else {
                            let owner = tenants[rng.next_u32() as usize % tenants.len()];
                            let delay = rng.next_u32() % 120;
                            let id = create(&slow_writer(server, owner, delay), "safety", &secret);
                            mine.push((owner, id, secret));
                        }
                    }
                    acknowledged.lock().expect("lock").extend(mine);
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer thread");
        }
        done.store(true, Ordering::Relaxed);
    });
    assert!(
        sweeps.load(Ordering::Relaxed) >= 3,
        "seed {seed}: sweeps ran while writes were in flight"
    );
    // One more sweep after the writes: nothing acknowledged goes either.
    run_sweeps(&server);
    let summaries = sweep_summaries(&server, "orphans", sweeps.load(Ordering::Relaxed) + 1);
    let acknowledged = acknowledged.into_inner().expect("lock");
    assert!(acknowledged.len() > 20, "seed {seed}: records were created");
    for (owner, id, secret) in &acknowledged {
        let reply = read(&admin(&server, *owner), "safety", id);
        assert_eq!(
            reply.status, 200,
            "seed {seed}: {id} lost its secret; sweeps: {summaries:?}; {}",
            reply.text
        );
        assert_eq!(
            reply.body["data"]["credentials"]["apiKey"],
            secret.as_str(),
            "seed {seed}: {id} reads back its last acknowledged secret"
        );
    }
}

/// Item 2: a metadata `PATCH` that loaded a record before a rewrap and
/// commits after it must not put the old wrap back. The operator runs the
/// sweep until it reports `remaining: 0` while traffic goes on, then
/// removes the old key: every record must still open.
#[test]
fn metadata_patches_racing_a_rewrap_never_strand_a_record() {
    const RECORDS: usize = 16;
    const PATCHERS: usize = 4;
    let mut server = Server::start_with_faults(&[]);
    let seed = seed("metadata_patches_racing_a_rewrap_never_strand_a_record");
    let owner = tenant();
    let secrets: Vec<String> = (0..RECORDS)
        .map(|n| format!("rewrap-race-{n}-{}", Uuid::new_v4().simple()))
        .collect();
    let ids: Vec<String> = secrets
        .iter()
        .map(|s| create(&admin(&server, owner), "rewrap-race", s))
        .collect();

    server.restart_with(&[("COFFER_KEYS", &format!("{KEY_B},{COFFER_KEYS}"))]);
    let stop = AtomicBool::new(false);
    let patches = AtomicUsize::new(0);
    let patches_after_zero = AtomicUsize::new(0);
    let zero_reported = AtomicBool::new(false);
    let read_failures = AtomicUsize::new(0);
    thread::scope(|scope| {
        for patcher in 0..PATCHERS {
            let (server, ids, stop, patches, after, zero) = (
                &server,
                &ids,
                &stop,
                &patches,
                &patches_after_zero,
                &zero_reported,
            );
            scope.spawn(move || {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ patcher as u64);
                // Each patch loads, then waits before its commit: a rewrap
                // lands in between.
                let api = slow_writer(server, owner, 50 + rng.next_u32() % 100);
                while !stop.load(Ordering::Relaxed) {
                    let id = &ids[rng.next_u32() as usize % ids.len()];
                    let reply = api.patch(
                        &format!("/api/v1/credentials/{id}"),
                        &json!({"description": format!("patched {}", rng.next_u32())}),
                    );
                    assert_eq!(reply.status, 200, "seed {seed}: {}", reply.text);
                    patches.fetch_add(1, Ordering::Relaxed);
                    if zero.load(Ordering::Relaxed) {
                        after.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        {
            let (server, ids, secrets, stop, failures) =
                (&server, &ids, &secrets, &stop, &read_failures);
            scope.spawn(move || {
                let api = admin(server, owner);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let reply = read(&api, "rewrap-race", &ids[n % ids.len()]);
                    if reply.status != 200
                        || reply.body["data"]["credentials"]["apiKey"]
                            != secrets[n % ids.len()].as_str()
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            });
        }
        // Patches are under way (each loads, then waits before its commit)
        // before the first sweep starts.
        while patches.load(Ordering::Relaxed) < PATCHERS {
            thread::sleep(Duration::from_millis(5));
        }
        // The operator: sweep until the rewrap reports nothing remaining.
        let mut runs = 0;
        loop {
            run_sweeps(&server);
            runs += 1;
            let summaries = sweep_summaries(&server, "rewrap", runs);
            if summaries.last().is_some_and(|s| s["remaining"] == 0) {
                break;
            }
            assert!(runs < 100, "seed {seed}: the rewrap never finished");
        }
        zero_reported.store(true, Ordering::Relaxed);
        // Traffic goes on for a while after the report.
        let deadline = Instant::now() + Duration::from_secs(10);
        while patches_after_zero.load(Ordering::Relaxed) < 4 * PATCHERS && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        patches_after_zero.load(Ordering::Relaxed) >= PATCHERS,
        "seed {seed}: patches kept landing after the report"
    );
    assert_eq!(
        read_failures.load(Ordering::Relaxed),
        0,
        "seed {seed}: reads failed during the rotation"
    );

    // Step 3 of the README's rotation: the old key is removed.
    server.restart_with(&[("COFFER_KEYS", KEY_B)]);
    for (id, secret) in ids.iter().zip(&secrets) {
        let reply = read(&admin(&server, owner), "rewrap-race", id);
        assert_eq!(
            reply.status,
            200,
            "seed {seed}: {id} no longer opens after {} patches: {}",
            patches.load(Ordering::Relaxed),
            reply.text
        );
        assert_eq!(reply.body["data"]["credentials"]["apiKey"], secret.as_str());
    }
}

/// One decrypted read as a reader saw it.
struct Observed {
    started: Instant,
    status: u16,
}

/// Item 3: once a `PATCH` to `revoked` or `inactive` has answered, no read
/// that commits afterwards serves the secret. Readers on both surfaces race
/// the change; the audit trail (in commit order) must show no served read
/// after the change, every read started after the answer is refused, and
/// `accessCount` equals the reads that were served.
#[test]
fn no_read_is_served_after_a_revoke_commits() {
    const ROUNDS: usize = 10;
    const READERS: usize = 4;
    let server = Server::start(&[]);
    let seed = seed("no_read_is_served_after_a_revoke_commits");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let owner = tenant();
    let api = admin(&server, owner);
    for round in 0..ROUNDS {
        let secret = format!("revoke-race-{round}-{}", Uuid::new_v4().simple());
        let id = create(&api, "revoke-race", &secret);
        let bare = id.trim_start_matches("cred-").to_string();
        let status = if round % 2 == 0 {
            "revoked"
        } else {
            "inactive"
        };
        let served = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let observed: Mutex<Vec<Observed>> = Mutex::new(Vec::new());
        let revoke_answered: Mutex<Option<Instant>> = Mutex::new(None);
        let head_start = 2 + rng.next_u32() as usize % 6;
        thread::scope(|scope| {
            for reader in 0..READERS {
                let (server, id, bare, secret, served, stop, observed) =
                    (&server, &id, &bare, &secret, &served, &stop, &observed);
                scope.spawn(move || {
                    let api = admin(server, owner);
                    let mut reads = 0;
                    while !stop.load(Ordering::Relaxed) || reads < 3 {
                        let started = Instant::now();
                        let reply = if reader % 2 == 0 {
                            read(&api, "revoke-race", id)
                        } else {
                            api.get(&format!("/connection/{bare}/credentials"))
                        };
                        if reply.status == 200 {
                            assert!(
                                reply.text.contains(secret.as_str()),
                                "seed {seed}: {}",
                                reply.text
                            );
                            served.fetch_add(1, Ordering::Relaxed);
                        } else {
                            assert_eq!(reply.status, 409, "seed {seed}: {}", reply.text);
                        }
                        observed.lock().expect("lock").push(Observed {
                            started,
                            status: reply.status,
                        });
                        reads += 1;
                    }
                });
            }
            while served.load(Ordering::Relaxed) < head_start {
                thread::sleep(Duration::from_millis(1));
            }
            let reply = api.patch(
                &format!("/api/v1/credentials/{id}"),
                &json!({"status": status}),
            );
            assert_eq!(reply.status, 200, "seed {seed}: {}", reply.text);
            *revoke_answered.lock().expect("lock") = Some(Instant::now());
            // Let every reader start a few reads after the answer.
            let answered_at = observed.lock().expect("lock").len();
            while observed.lock().expect("lock").len() < answered_at + 3 * READERS {
                thread::sleep(Duration::from_millis(2));
            }
            stop.store(true, Ordering::Relaxed);
        });
        let answered = revoke_answered
            .into_inner()
            .expect("lock")
            .expect("answered");
        let observed = observed.into_inner().expect("lock");
        let late: Vec<u16> = observed
            .iter()
            .filter(|o| o.started > answered)
            .map(|o| o.status)
            .collect();
        assert!(!late.is_empty(), "seed {seed}: reads ran after the change");
        assert!(
            late.iter().all(|s| *s == 409),
            "seed {seed}, round {round}: a read started after the {status} answer was served: {late:?}"
        );

        // The audit trail is in commit order (newest first): no served
        // read may come after the status change.
        let mut events: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/audit?credentialId={id}&limit=100&cursor={c}"),
                None => format!("/api/v1/audit?credentialId={id}&limit=100"),
            };
            let page = api.get(&path);
            assert_eq!(page.status, 200, "{}", page.text);
            events.extend(
                page.body["data"]["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            match page.body["data"]["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        let change = events
            .iter()
            .position(|e| e["action"] == "credential.update")
            .expect("the status change is audited");
        let served_after: Vec<&Value> = events[..change]
            .iter()
            .filter(|e| e["action"] == "credential.read_secret" && e["outcome"] == "success")
            .collect();
        assert!(
            served_after.is_empty(),
            "seed {seed}, round {round}: {} reads were served after the {status} committed: {served_after:?}",
            served_after.len()
        );
        let details = api.get(&format!(
            "/api/v1/credentials/revoke-race/details?credentialId={id}"
        ));
        assert_eq!(details.status, 200, "{}", details.text);
        assert_eq!(
            details.body["data"]["accessCount"],
            served.load(Ordering::Relaxed),
            "seed {seed}: accessCount counts exactly the served reads"
        );
    }
}

/// The fault switches exist only in the test build: the release `.wasm`
/// and its glue carry no trace of them, while the test build does (so this
/// check would notice them leaking into the release).
#[test]
fn the_release_build_carries_no_fault_switch() {
    let contains = |dir: std::path::PathBuf, needle: &str| {
        ["index_bg.wasm", "index.js"].iter().any(|file| {
            let bytes = std::fs::read(dir.join(file)).expect("built file");
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    };
    let faults = coffer_tests::harness::built_worker(true);
    assert!(
        contains(faults, COMMIT_DELAY),
        "the test build has the switch"
    );
    let release = coffer_tests::harness::built_worker(false);
    for needle in [COMMIT_DELAY, "x-coffer-fault", "fault-injection"] {
        assert!(
            !contains(release.clone(), needle),
            "the release build carries {needle:?}"
        );
    }
}
