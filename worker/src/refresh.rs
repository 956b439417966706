//! OAuth2 token refresh at the edge: on a decrypted read, forced, and by
//! the sweep. The core decides (grant, form, response, backoff, plan); this
//! module takes the D1 lease, calls the token endpoint, and stores the
//! result through `store/`.
//!
//! Exactly once: the lease is a compare-and-set on the record in D1, so of
//! any number of readers on any isolate one calls the endpoint. The others
//! serve the current token while it is valid, or poll D1 (with backoff, up
//! to `COFFER_REFRESH_WAIT_MS`) for the new secret version, taking over if
//! the lease runs out (its holder died). The refreshed secret is stored
//! only if the record is still at the version the lease was taken on, so a
//! `PATCH` that landed meanwhile wins.
use core::time::Duration;

use coffer_core::{
    oauth::{self, Failure, Grant, Plan, State, Tokens},
    Status, TenantId, Timestamp,
};
use serde_json::{json, Value};
use worker::{Date, Delay, Env};
use zeroize::Zeroizing;

use crate::{
    env,
    error::ApiError,
    keyring::keyring,
    keys::{self, binding},
    log::{self, Console},
    random,
    store::{Actor, AuditAction, AuditEvent, Lease, Outcome, Record, Store},
    web_fetch::{self, FetchError},
};

/// Refresh settings, from the Worker's variables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// A read refreshes a token expiring within this many milliseconds.
    pub(crate) skew_ms: i64,
    /// The sweep refreshes tokens expiring within this many milliseconds.
    pub(crate) ahead_ms: i64,
    /// How long a reader waits for another refresher's result.
    pub(crate) wait_ms: i64,
    /// Whether `http` token endpoints on loopback hosts may be called.
    pub(crate) allow_loopback_http: bool,
}

fn number(env: &Env, name: &str, default: i64) -> i64 {
    env.var(name)
        .ok()
        .and_then(|value| value.to_string().trim().parse::<i64>().ok())
        .filter(|value| *value >= 0)
        .unwrap_or(default)
}

impl Config {
    pub(crate) fn from_env(env: &Env) -> Self {
        Self {
            skew_ms: number(env, env::REFRESH_SKEW_SECONDS, 60).saturating_mul(1000),
            ahead_ms: number(env, env::REFRESH_AHEAD_SECONDS, 600).saturating_mul(1000),
            wait_ms: number(env, env::REFRESH_WAIT_MS, 5000),
            allow_loopback_http: env
                .var(env::REFRESH_ALLOW_LOOPBACK_HTTP)
                .is_ok_and(|value| value.to_string() == "true"),
        }
    }
}

/// Who a refresh is done by: Coffer itself (on a read, by the sweep) or
/// the caller who forced it, and the tenant it acts for.
#[derive(Debug, Clone)]
pub(crate) struct RefreshActor {
    pub(crate) actor: Actor,
    /// The tenant the actor acts for (the owner, for Coffer).
    pub(crate) tenant: TenantId,
}

impl RefreshActor {
    /// Coffer's own actor, for automatic refreshes.
    pub(crate) fn coffer(owner: TenantId) -> Self {
        Self {
            actor: Actor {
                id: "coffer".into(),
                name: Some("Coffer token refresh".into()),
                email: None,
            },
            tenant: owner,
        }
    }
}

/// Where a refresh runs: storage, settings, and the request (or sweep run)
/// it belongs to.
pub(crate) struct Refresher<'a> {
    pub(crate) env: &'a Env,
    pub(crate) store: &'a Store,
    pub(crate) config: Config,
    pub(crate) request_id: &'a str,
}

/// What one attempt came to.
pub(crate) enum Attempted {
    /// Stored: the record as written.
    Refreshed(Box<Record>),
    /// Someone else holds the lease (or the record moved on).
    Busy,
    /// The endpoint refused or failed; recorded, nothing written to the secret.
    Failed,
    /// The result lost the compare-and-set to a concurrent change.
    Superseded,
}

/// The clock, read live: a wait spans seconds.
pub(crate) fn now() -> Timestamp {
    let ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(ms).unwrap_or(Timestamp::MAX)
}

fn after(at: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(at.as_unix_millis().saturating_add(ms)).unwrap_or(Timestamp::MAX)
}

/// The core's view of a record's refresh state.
pub(crate) fn state(record: &Record) -> State {
    State {
        grant: record.refresh.grant,
        has_endpoint: record.token_endpoint.is_some(),
        expires_at: record.expires_at,
        halted: record.refresh.halted,
        not_before: record.refresh.not_before,
    }
}

/// The `refresh` field of details, list items and connection metadata:
/// `null` for records that do not refresh. `nextAttemptAt` is when an
/// automatic attempt may next start: `null` when none will (no expiry, or
/// halted after `invalid_grant` / `invalid_client`), the end of the backoff
/// after a failure, else the token's expiry (reads start up to the skew,
/// and the sweep up to its window, before it).
pub(crate) fn refresh_json(record: &Record, snake_case: bool) -> Value {
    let state = state(record);
    if state.refreshable().is_none() {
        return Value::Null;
    }
    let rendered = |at: Option<Timestamp>| json!(at.map(Timestamp::to_rfc3339));
    let next = if record.refresh.halted || record.expires_at.is_none() {
        None
    } else if record.refresh.failures > 0 {
        record.refresh.not_before.or(record.expires_at)
    } else {
        record.expires_at
    };
    let last_error = record
        .refresh
        .error
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .map(|mut error| {
            let at = error
                .get("at")
                .and_then(Value::as_i64)
                .and_then(|ms| Timestamp::from_unix_millis(ms).ok());
            if let Some(at) = at {
                error["at"] = json!(at.to_rfc3339());
            }
            error
        })
        .unwrap_or(Value::Null);
    let names = if snake_case {
        [
            "last_refreshed_at",
            "last_error",
            "failures",
            "next_attempt_at",
        ]
    } else {
        ["lastRefreshedAt", "lastError", "failures", "nextAttemptAt"]
    };
    let mut object = serde_json::Map::new();
    object.insert(names[0].into(), rendered(record.refresh.refreshed_at));
    object.insert(names[1].into(), last_error);
    object.insert(names[2].into(), json!(record.refresh.failures));
    object.insert(names[3].into(), rendered(next));
    Value::Object(object)
}

impl Refresher<'_> {
    /// Before a decrypted read of `record` (already through the gate):
    /// refreshes its token when due, or waits for the refresher that holds
    /// the lease. `Ok(false)`: serve the record as loaded. `Ok(true)`: the
    /// record changed (refreshed, replaced or deleted); the read goes
    /// through the gate again. `first` is false once this request has
    /// refreshed or waited: then only an expired token is refreshed again
    /// (a lifetime shorter than the skew must not refresh twice in one read).
    ///
    /// # Errors
    ///
    /// [`ApiError::RefreshFailed`] when the token is expired and no fresh
    /// one can be had (the attempt failed, refreshes are held back, or the
    /// wait ran out).
    pub(crate) async fn before_read(
        &self,
        record: &Record,
        rendered_id: &str,
        first: bool,
    ) -> Result<bool, ApiError> {
        let skew = if first { self.config.skew_ms } else { 0 };
        let failed = || ApiError::RefreshFailed(rendered_id.to_string());
        let deadline = after(now(), self.config.wait_ms);
        let mut current = record.clone();
        let mut delay_ms: u64 = 25;
        loop {
            let at = now();
            let state = state(&current);
            let expired = state.expired(at);
            match oauth::plan(&state, at, skew, false) {
                Plan::Serve => return Ok(false),
                Plan::HeldBack if expired => return Err(failed()),
                Plan::HeldBack => return Ok(false),
                Plan::Refresh => {}
            }
            match self
                .attempt(&current, &RefreshActor::coffer(current.owner), false)
                .await?
            {
                Attempted::Refreshed(_) | Attempted::Superseded => return Ok(true),
                Attempted::Failed if expired => return Err(failed()),
                Attempted::Failed => return Ok(false),
                Attempted::Busy if !expired => return Ok(false),
                Attempted::Busy => {}
            }
            if now() >= deadline {
                return Err(failed());
            }
            Delay::from(Duration::from_millis(delay_ms)).await;
            delay_ms = (delay_ms * 2).min(400);
            let Some(polled) = self.store.poll_refresh(current.id).await? else {
                // Deleted meanwhile: the gate answers 404.
                return Ok(true);
            };
            if polled.version != current.version {
                // Refreshed by the lease holder, or changed by a `PATCH`.
                return Ok(true);
            }
            current.refresh.lease_until = polled.lease_until;
            current.refresh.failures = polled.failures;
            current.refresh.not_before = polled.not_before;
            current.refresh.halted = polled.halted;
            current.refresh.error = polled.error;
        }
    }

    /// One attempt: takes the lease, calls the endpoint, stores the result
    /// (or the failure), audits it. `forced` ignores a backoff or a halt.
    pub(crate) async fn attempt(
        &self,
        record: &Record,
        actor: &RefreshActor,
        forced: bool,
    ) -> Result<Attempted, ApiError> {
        let Some(grant) = state(record).refreshable() else {
            return Ok(Attempted::Busy);
        };
        let at = now();
        if record.refresh.lease_until.is_some_and(|until| until > at) {
            // Leased when loaded: no write can take it.
            return Ok(Attempted::Busy);
        }
        let holder = random::uuid()?.hyphenated().to_string();
        let lease = self
            .store
            .take_lease(record, holder, at, after(at, oauth::LEASE_MS), forced)
            .await?;
        let Some(lease) = lease else {
            return Ok(Attempted::Busy);
        };
        let result = match self.exchange(record, grant).await {
            Ok(result) => result,
            Err(error) => {
                // Our own fault (keys, storage): give the lease back.
                let _ = self.store.release_lease(record, &lease).await;
                return Err(error);
            }
        };
        match result {
            Ok((secret, tokens)) => {
                self.store_success(record, grant, &lease, actor, &secret, &tokens)
                    .await
            }
            Err(failure) => {
                self.store_failure(record, &lease, actor, &failure).await?;
                Ok(Attempted::Failed)
            }
        }
    }

    fn event(
        &self,
        record: &Record,
        actor: &RefreshActor,
        outcome: Outcome,
    ) -> Result<AuditEvent, ApiError> {
        Ok(AuditEvent {
            id: random::uuid()?.hyphenated().to_string(),
            owner: record.owner,
            at: now(),
            action: AuditAction::Refresh,
            outcome,
            credential: Some(record.id),
            actor_id: actor.actor.id.clone(),
            actor_name: actor.actor.name.clone(),
            actor_email: actor.actor.email.clone(),
            actor_tenant: actor.tenant,
            request_id: self.request_id.to_string(),
            secret_version: None,
        })
    }

    async fn store_success(
        &self,
        record: &Record,
        grant: Grant,
        lease: &Lease,
        actor: &RefreshActor,
        secret: &str,
        tokens: &Tokens,
    ) -> Result<Attempted, ApiError> {
        let merged = match oauth::merge_secret(secret, grant, tokens) {
            Ok(merged) => merged,
            Err(error) => {
                let failure = Failure::from_error(&error);
                self.store_failure(record, lease, actor, &failure).await?;
                return Ok(Attempted::Failed);
            }
        };
        let at = now();
        let mut next = record.clone();
        next.version = record
            .version
            .next()
            .map_err(|error| ApiError::internal(format!("version: {error}")))?;
        next.secret_version = next.version;
        next.blob_nonce = random::blob_nonce()?;
        next.updated_at = at;
        next.updated_by = actor.actor.clone();
        next.expires_at = oauth::new_expiry(at, tokens.expires_in);
        if next.status == Status::Expired {
            next.status = Status::Active;
        }
        next.refresh.refreshed_at = Some(at);
        next.refresh.failures = 0;
        next.refresh.not_before = None;
        next.refresh.halted = false;
        next.refresh.lease_holder = None;
        next.refresh.lease_until = None;
        // Sealed like every other secret write: a new secret version
        // under the owner's active tenant key (data-key format 0x02),
        // kept in the versions table as a `PATCH` keeps one.
        let blob = keys::seal_record(
            &*keyring(self.env)?,
            self.store,
            &mut next,
            merged.as_bytes(),
            at,
        )
        .await?;
        let event = self.event(record, actor, Outcome::Success)?;
        let won = self
            .store
            .store_refreshed(
                &next,
                record.version,
                lease,
                &blob,
                &event,
                keys::versions_kept(self.env),
            )
            .await?;
        log_attempt(record, if won { "success" } else { "superseded" }, None);
        if won {
            // The replaced secret version is kept (its blob with it), up
            // to `COFFER_SECRET_VERSIONS_KEPT`.
            Ok(Attempted::Refreshed(Box::new(next)))
        } else {
            self.store
                .audit(&self.event(record, actor, Outcome::Failure)?)
                .await?;
            Ok(Attempted::Superseded)
        }
    }

    async fn store_failure(
        &self,
        record: &Record,
        lease: &Lease,
        actor: &RefreshActor,
        failure: &Failure,
    ) -> Result<(), ApiError> {
        let at = now();
        let before = u32::try_from(record.refresh.failures).unwrap_or(u32::MAX);
        let (failures, not_before, halted) = oauth::after_failure(failure, before, at);
        let error = json!({"at": at.as_unix_millis(), "code": failure.code,
                           "message": failure.message});
        // Serializing a `Value` cannot fail.
        let error = serde_json::to_string(&error).unwrap_or_default();
        self.store
            .store_refresh_failure(
                record,
                lease,
                &error,
                u64::from(failures),
                Timestamp::from_unix_millis(not_before).unwrap_or(Timestamp::MAX),
                halted,
                &self.event(record, actor, Outcome::Failure)?,
            )
            .await?;
        log_attempt(record, "failure", Some(&failure.code));
        Ok(())
    }

    /// Opens the secret and calls the token endpoint. The outer error is
    /// ours (a 500); the inner one the endpoint's, to record.
    async fn exchange(
        &self,
        record: &Record,
        grant: Grant,
    ) -> Result<Result<(Zeroizing<String>, Tokens), Failure>, ApiError> {
        let keyring = keyring(self.env)?;
        let Some(blob) = self.store.blob(record).await? else {
            return Err(ApiError::internal(format!(
                "secret of {} (version {}) is missing",
                record.id, record.secret_version
            )));
        };
        let opened = keys::open_secret(
            &keyring,
            self.store,
            now().as_unix_millis(),
            &binding(record),
            record.tk_version,
            record.tenant_key.as_ref(),
            &record.wrapped_dek,
            &blob,
        )
        .await?;
        let Some(mut plain) = opened else {
            return Err(ApiError::internal(format!(
                "secret of {} does not open",
                record.id
            )));
        };
        // Moves the buffer into the string without copying it.
        let secret = match String::from_utf8(core::mem::take(&mut *plain)) {
            Ok(text) => Zeroizing::new(text),
            Err(error) => {
                drop(Zeroizing::new(error.into_bytes()));
                return Err(ApiError::internal(format!(
                    "secret of {} is not text",
                    record.id
                )));
            }
        };
        let Some(url) = record.token_endpoint.as_deref() else {
            return Ok(Err(Failure::endpoint_refused()));
        };
        if oauth::check_endpoint(url, self.config.allow_loopback_http).is_err() {
            return Ok(Err(Failure::endpoint_refused()));
        }
        let auth = oauth::client_auth(record.metadata.get());
        let request = match oauth::token_request(grant, &secret, &record.scopes, auth) {
            Ok(request) => request,
            Err(error) => return Ok(Err(Failure::from_error(&error))),
        };
        let secrets = oauth::secret_strings(&secret);
        let secrets: Vec<&str> = secrets.iter().map(|s| s.as_str()).collect();
        let answer = match call(url, &request).await {
            Ok(answer) => answer,
            Err(failure) => return Ok(Err(failure)),
        };
        let (status, body) = answer;
        Ok(oauth::parse_token_response(status, &body, &secrets).map(|tokens| (secret, tokens)))
    }
}

/// One line per attempt: the record, the outcome and the failure's code,
/// never a token or an endpoint's words.
fn log_attempt(record: &Record, outcome: &str, code: Option<&str>) {
    log::json(
        Console::Log,
        &json!({"event": "token_refresh", "credential": record.id.to_string(),
               "outcome": outcome, "code": code}),
    );
}

/// POSTs the token request, redirects not followed, the answer read up to
/// [`oauth::MAX_TOKEN_RESPONSE_BYTES`], all within
/// [`oauth::TOKEN_TIMEOUT_MS`] (then the fetch is aborted).
async fn call(
    url: &str,
    request: &oauth::TokenRequest,
) -> Result<(u16, Zeroizing<Vec<u8>>), Failure> {
    let mut headers = vec![
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
    ];
    if let Some(authorization) = &request.authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    let outgoing = web_fetch::Outgoing {
        method: "POST",
        url,
        headers: &headers,
        body: Some(&request.body),
    };
    let timeout = Duration::from_millis(u64::from(oauth::TOKEN_TIMEOUT_MS));
    match web_fetch::fetch(&outgoing, oauth::MAX_TOKEN_RESPONSE_BYTES, timeout).await {
        Ok(answer) => Ok((answer.status, answer.body)),
        Err(FetchError::Refused) => Err(Failure::endpoint_refused()),
        Err(FetchError::Unreachable) => Err(Failure::unreachable()),
        Err(FetchError::Timeout) => Err(Failure::timeout()),
        Err(FetchError::TooLarge) => Err(Failure::too_large()),
    }
}

/// The sweep's step: refreshes up to `limit` records whose token expires
/// within `COFFER_REFRESH_AHEAD_SECONDS`, one at a time. Returns its summary.
pub(crate) async fn sweep(env: &Env, store: &Store, limit: u32) -> Result<Value, ApiError> {
    let config = Config::from_env(env);
    let at = now();
    let due = store
        .refresh_due(after(at, config.ahead_ms), at, limit)
        .await?;
    let run_id = format!("sweep-{}", random::uuid()?.hyphenated());
    let refresher = Refresher {
        env,
        store,
        config,
        request_id: &run_id,
    };
    let (mut refreshed, mut failed, mut skipped) = (0, 0, 0);
    for record in &due {
        match refresher
            .attempt(record, &RefreshActor::coffer(record.owner), false)
            .await?
        {
            Attempted::Refreshed(_) => refreshed += 1,
            Attempted::Failed => failed += 1,
            Attempted::Busy | Attempted::Superseded => skipped += 1,
        }
    }
    Ok(json!({"due": due.len(), "refreshed": refreshed, "failed": failed, "skipped": skipped}))
}
