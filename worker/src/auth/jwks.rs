//! Realm key sets: fetched from the realm's JWKS URL with the Workers
//! `fetch`, cached in isolate memory and in KV (`env::CACHE`).
//!
//! - Fresh for the JWKS response's `Cache-Control: max-age`, clamped to
//!   [`MIN_TTL_S`]..=[`MAX_TTL_S`], else [`DEFAULT_TTL_S`].
//! - Past that a refresh is tried; while it fails, the old keys keep
//!   verifying for [`STALE_FOR_S`] more (an IdP outage must not log everyone
//!   out), and failed fetches are not retried for [`FAILURE_BACKOFF_MS`].
//! - A token naming a `kid` the fresh set lacks (a key rotation at the IdP)
//!   triggers a refetch, at most once per [`UNKNOWN_KID_REFETCH_MS`] per realm
//!   and isolate, so unknown `kid`s cannot be used to hammer the IdP.
//! - Memory first, then KV (shared by isolates), then the network: the
//!   configured `jwks_url` only, never a redirect from it.

use alloc::rc::Rc;
use core::{cell::RefCell, time::Duration};

use serde::{Deserialize, Serialize};
use worker::Env;

use super::{
    config::Realm,
    verify::{KeySet, RealmKey, MAX_JWKS_LEN},
    webcrypto::ImportedKeys,
};
use crate::{
    log::{self, Console},
    store::{jwks_cache, Io},
    web_fetch::{self, FetchError},
};

/// Freshness when the JWKS response names none.
pub(crate) const DEFAULT_TTL_S: i64 = 300;
/// Shortest freshness honoured, whatever `max-age` says.
pub(crate) const MIN_TTL_S: i64 = 10;
/// Longest freshness honoured.
pub(crate) const MAX_TTL_S: i64 = 86_400;
/// How long past freshness a key set still verifies while refreshes fail.
pub(crate) const STALE_FOR_S: i64 = 86_400;
/// Least time between two refetches for an unknown `kid`, per realm.
pub(crate) const UNKNOWN_KID_REFETCH_MS: i64 = 60_000;
/// Least time between a failed fetch and the next try, per realm.
pub(crate) const FAILURE_BACKOFF_MS: i64 = 10_000;
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A realm's key set, with those of its keys already imported into
/// WebCrypto: a refreshed set starts with none imported.
#[derive(Debug)]
pub(crate) struct RealmKeys {
    set: KeySet,
    imported: ImportedKeys,
}

impl RealmKeys {
    fn new(set: KeySet) -> Self {
        Self {
            set,
            imported: ImportedKeys::default(),
        }
    }

    /// The key with this `kid`.
    pub(crate) fn get(&self, kid: &str) -> Option<&RealmKey> {
        self.set.get(kid)
    }

    /// The keys of this set imported so far.
    pub(crate) fn imported(&self) -> &ImportedKeys {
        &self.imported
    }
}

/// A realm's key set and its lifetimes.
#[derive(Debug, Clone)]
struct Cached {
    url: String,
    keys: Rc<RealmKeys>,
    fetched_at_ms: i64,
    fresh_until_ms: i64,
    stale_until_ms: i64,
}

impl Cached {
    fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.fresh_until_ms
    }

    fn is_usable(&self, now_ms: i64) -> bool {
        now_ms < self.stale_until_ms
    }
}

/// What one isolate remembers about a realm.
#[derive(Debug, Default)]
struct RealmState {
    cached: Option<Cached>,
    last_unknown_kid_refetch_ms: Option<i64>,
    last_failure_ms: Option<i64>,
}

thread_local! {
    /// By realm name: a list searched in order, as realms are a handful.
    static MEMORY: RefCell<Vec<(String, RealmState)>> = const { RefCell::new(Vec::new()) };
}

/// The KV record: the JWKS as fetched plus its lifetimes. The raw document
/// is stored (not parsed keys) so a newer Coffer reads what an older wrote.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    url: String,
    fetched_at_ms: i64,
    fresh_until_ms: i64,
    stale_until_ms: i64,
    jwks: String,
}

/// Freshness, in seconds, from a `Cache-Control` header (RFC 9111 §5.2.2.1).
pub(crate) fn ttl_seconds(cache_control: Option<&str>) -> i64 {
    let max_age = cache_control
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        });
    match max_age {
        Some(seconds) => i64::try_from(seconds)
            .unwrap_or(MAX_TTL_S)
            .clamp(MIN_TTL_S, MAX_TTL_S),
        None => DEFAULT_TTL_S,
    }
}

/// What to do before looking up a `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The cached set is fresh and names the `kid`, or may not be refreshed yet.
    UseCached,
    /// Fetch, because nothing usable is cached or it is past freshness.
    Refresh,
    /// Fetch, because the fresh set lacks the `kid` (a rotation, perhaps).
    RefetchForKid,
}

fn plan(state: &RealmState, kid: &str, now_ms: i64) -> Plan {
    let backing_off = state
        .last_failure_ms
        .is_some_and(|failed| now_ms - failed < FAILURE_BACKOFF_MS);
    match &state.cached {
        Some(cached) if cached.is_fresh(now_ms) => {
            let may_refetch = state
                .last_unknown_kid_refetch_ms
                .is_none_or(|last| now_ms - last >= UNKNOWN_KID_REFETCH_MS);
            if cached.keys.get(kid).is_none() && may_refetch && !backing_off {
                Plan::RefetchForKid
            } else {
                Plan::UseCached
            }
        }
        _ if backing_off => Plan::UseCached,
        _ => Plan::Refresh,
    }
}

fn with_state<T>(realm: &str, f: impl FnOnce(&mut RealmState) -> T) -> T {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if let Some((_, state)) = memory.iter_mut().find(|(name, _)| name == realm) {
            return f(state);
        }
        let mut state = RealmState::default();
        let out = f(&mut state);
        memory.push((realm.to_owned(), state));
        out
    })
}

/// The realm's key set, fetched or refreshed as the cache rules say. The
/// caller looks the `kid` up in it; `Err` carries a reason for the log. KV
/// reads and writes are counted in `io`.
pub(crate) async fn key_set(
    env: &Env,
    io: &Io,
    name: &str,
    realm: &Realm,
    kid: &str,
    now_ms: i64,
) -> Result<Rc<RealmKeys>, &'static str> {
    // A cached set from another URL (the realm was reconfigured) is no use.
    let mut cached = with_state(name, |state| {
        state.cached.take_if(|cached| cached.url != realm.jwks_url);
        state.cached.clone()
    });
    if !cached
        .as_ref()
        .is_some_and(|cached| cached.is_fresh(now_ms))
    {
        if let Some(stored) = kv_load(env, io, name, &realm.jwks_url).await {
            let newer = cached
                .as_ref()
                .is_none_or(|cached| stored.fetched_at_ms > cached.fetched_at_ms);
            if newer {
                with_state(name, |state| state.cached = Some(stored.clone()));
                cached = Some(stored);
            }
        }
    }

    let plan = with_state(name, |state| {
        let plan = plan(state, kid, now_ms);
        if plan == Plan::RefetchForKid {
            state.last_unknown_kid_refetch_ms = Some(now_ms);
        }
        plan
    });
    if plan != Plan::UseCached {
        match fetch(&realm.jwks_url, now_ms).await {
            Ok((fresh, document)) => {
                with_state(name, |state| {
                    state.cached = Some(fresh.clone());
                    state.last_failure_ms = None;
                });
                kv_store(env, io, name, &fresh, document, now_ms).await;
                cached = Some(fresh);
            }
            Err(reason) => {
                log::text(
                    Console::Warn,
                    &format!("auth: JWKS fetch for realm {name} failed: {reason}"),
                );
                with_state(name, |state| state.last_failure_ms = Some(now_ms));
            }
        }
    }

    match cached {
        Some(cached) if cached.is_usable(now_ms) => Ok(cached.keys),
        Some(_) => Err("realm keys expired and the JWKS cannot be fetched"),
        None => Err("realm JWKS unavailable"),
    }
}

async fn kv_load(env: &Env, io: &Io, name: &str, url: &str) -> Option<Cached> {
    let stored = match jwks_cache::get(env, io, name).await {
        Ok(text) => serde_json::from_str::<Stored>(&text?).ok()?,
        Err(error) => {
            log::text(
                Console::Warn,
                &format!("auth: reading cached JWKS for realm {name} failed: {error}"),
            );
            return None;
        }
    };
    if stored.url != url {
        return None;
    }
    let keys = KeySet::from_jwks(&stored.jwks).ok()?;
    Some(Cached {
        url: stored.url,
        keys: Rc::new(RealmKeys::new(keys)),
        fetched_at_ms: stored.fetched_at_ms,
        fresh_until_ms: stored.fresh_until_ms,
        stale_until_ms: stored.stale_until_ms,
    })
}

async fn kv_store(env: &Env, io: &Io, name: &str, cached: &Cached, jwks: String, now_ms: i64) {
    let stored = Stored {
        url: cached.url.clone(),
        fetched_at_ms: cached.fetched_at_ms,
        fresh_until_ms: cached.fresh_until_ms,
        stale_until_ms: cached.stale_until_ms,
        jwks,
    };
    // KV refuses expirations under 60 s.
    let ttl = u64::try_from((cached.stale_until_ms - now_ms) / 1000)
        .unwrap_or(0)
        .max(60);
    let result = match serde_json::to_string(&stored) {
        Ok(value) => jwks_cache::put(env, io, name, value, ttl).await,
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = result {
        log::text(
            Console::Warn,
            &format!("auth: caching JWKS for realm {name} failed: {error}"),
        );
    }
}

/// Fetches and parses a JWKS; the document comes back too, for KV.
async fn fetch(url: &str, now_ms: i64) -> Result<(Cached, String), String> {
    let parsed = crate::web_url::parse(url).ok_or_else(|| "jwks_url is not a URL".to_owned())?;
    // Redirects are not followed: the configured URL is the one checked to
    // be https (or loopback), and a redirect could lead anywhere, plain
    // http included. A 3xx is a failed fetch like any other non-200.
    let outgoing = web_fetch::Outgoing {
        method: "GET",
        url: &parsed.href,
        headers: &[("accept", "application/json")],
        body: None,
    };
    let answer = web_fetch::fetch(&outgoing, MAX_JWKS_LEN, FETCH_TIMEOUT)
        .await
        .map_err(|error| match error {
            FetchError::Timeout => format!("no answer within {} s", FETCH_TIMEOUT.as_secs()),
            FetchError::TooLarge => "JWKS too large".to_owned(),
            FetchError::Refused | FetchError::Unreachable => "fetch failed".to_owned(),
        })?;
    if answer.status != 200 {
        return Err(format!("status {}", answer.status));
    }
    let cache_control = answer.headers.get("cache-control").ok().flatten();
    let document =
        String::from_utf8(answer.body.to_vec()).map_err(|_| "not a JWKS document".to_owned())?;
    let keys = KeySet::from_jwks(&document).map_err(|_| "not a JWKS document".to_owned())?;
    if keys.len() == 0 {
        log::text(
            Console::Warn,
            &format!("auth: JWKS at {url} holds no usable signing key"),
        );
    }
    let fresh_until_ms = now_ms + ttl_seconds(cache_control.as_deref()) * 1000;
    let cached = Cached {
        url: url.to_owned(),
        keys: Rc::new(RealmKeys::new(keys)),
        fetched_at_ms: now_ms,
        fresh_until_ms,
        stale_until_ms: fresh_until_ms + STALE_FOR_S * 1000,
    };
    Ok((cached, document))
}

#[cfg(test)]
mod tests {
    use super::Rc;
    use super::{
        plan, ttl_seconds, Cached, Plan, RealmKeys, RealmState, DEFAULT_TTL_S, FAILURE_BACKOFF_MS,
        MAX_TTL_S, MIN_TTL_S, UNKNOWN_KID_REFETCH_MS,
    };
    use crate::auth::verify::KeySet;

    #[test]
    fn max_age_is_honoured_within_bounds() {
        let cases = [
            (None, DEFAULT_TTL_S),
            (Some("public, max-age=600"), 600),
            (Some("max-age=\"120\", must-revalidate"), 120),
            (Some("MAX-AGE=900"), 900),
            (Some("max-age=0"), MIN_TTL_S),
            (Some("no-cache"), DEFAULT_TTL_S),
            (Some("max-age=99999999999"), MAX_TTL_S),
            (Some("max-age=-5"), DEFAULT_TTL_S),
            (Some("s-maxage=30"), DEFAULT_TTL_S),
        ];
        for (header, expected) in cases {
            assert_eq!(ttl_seconds(header), expected, "{header:?}");
        }
    }

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    fn state(fetched_at_ms: i64) -> RealmState {
        let keys = KeySet::from_jwks(JWKS).expect("jwks");
        assert!(keys.get("k1").is_some());
        RealmState {
            cached: Some(Cached {
                url: "http://idp.example.com/jwks".to_owned(),
                keys: Rc::new(RealmKeys::new(keys)),
                fetched_at_ms,
                fresh_until_ms: fetched_at_ms + 300_000,
                stale_until_ms: fetched_at_ms + 600_000,
            }),
            ..RealmState::default()
        }
    }

    #[test]
    fn cache_plans() {
        let empty = RealmState::default();
        assert_eq!(plan(&empty, "k1", 0), Plan::Refresh);
        let failed = RealmState {
            last_failure_ms: Some(0),
            ..RealmState::default()
        };
        assert_eq!(plan(&failed, "k1", FAILURE_BACKOFF_MS - 1), Plan::UseCached);
        assert_eq!(plan(&failed, "k1", FAILURE_BACKOFF_MS), Plan::Refresh);

        let fresh = state(0);
        assert_eq!(plan(&fresh, "k1", 1_000), Plan::UseCached);
        assert_eq!(plan(&fresh, "k2", 1_000), Plan::RefetchForKid);
        assert_eq!(plan(&fresh, "k1", 300_000), Plan::Refresh);

        let refetched = RealmState {
            last_unknown_kid_refetch_ms: Some(1_000),
            ..state(0)
        };
        assert_eq!(
            plan(&refetched, "k2", 1_000 + UNKNOWN_KID_REFETCH_MS - 1),
            Plan::UseCached
        );
        assert_eq!(
            plan(&refetched, "k2", 1_000 + UNKNOWN_KID_REFETCH_MS),
            Plan::RefetchForKid
        );

        let stale_and_failing = RealmState {
            last_failure_ms: Some(400_000),
            ..state(0)
        };
        assert_eq!(plan(&stale_and_failing, "k1", 400_001), Plan::UseCached);
    }
}
