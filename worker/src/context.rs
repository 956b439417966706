//! What a handler works with: the request's context ([`Ctx`]), the verified
//! caller ([`Caller`]) and the reply it builds ([`Reply`]). A leaf below
//! the handlers: it calls `auth` and opens the `store`, and calls nothing
//! above it.
use coffer_core::{CredentialId, Principal, TenantId, Timestamp, Version, Zeroizing};
use serde_json::Value;
use worker::{Env, Request};

use crate::{
    auth::{self, AuthError},
    error::{ApiError, Place, Surface},
    random,
    store::{
        session::{Session, Start},
        AuditAction, AuditEvent, Io, Outcome, Record, Store,
    },
};

/// Captured path parameters, by template name.
pub(crate) type Params = Vec<(&'static str, String)>;

/// Everything a handler gets.
pub(crate) struct Ctx {
    pub(crate) req: Request,
    pub(crate) env: Env,
    pub(crate) params: Params,
    pub(crate) surface: Surface,
    pub(crate) request_id: String,
    /// Milliseconds since the Unix epoch, read once per request.
    pub(crate) now_ms: i64,
    /// The same instant as the core's timestamp.
    pub(crate) now: Timestamp,
    /// The acting tenant once known, for the log line.
    pub(crate) tenant: core::cell::Cell<Option<TenantId>>,
    /// Storage round trips of this request.
    pub(crate) io: alloc::rc::Rc<Io>,
    /// The request's D1 session (see `store/session.rs`), started by the
    /// first store the handler opens.
    pub(crate) session: alloc::rc::Rc<SessionSlot>,
}

/// Where a request's D1 session starts, and the session once started: on
/// the first [`Ctx::store`], so a request refused before it reads D1 (a
/// 401, a 400) costs no session.
#[derive(Default)]
pub(crate) struct SessionSlot {
    start: Option<Start>,
    started: core::cell::OnceCell<Option<Session>>,
}

impl SessionSlot {
    /// A slot for a route whose session starts at `start` (`None`: no session).
    pub(crate) fn new(start: Option<Start>) -> Self {
        SessionSlot {
            start,
            started: core::cell::OnceCell::new(),
        }
    }

    /// The session's bookmark after the request; `None` when none started.
    pub(crate) fn bookmark(&self) -> Option<String> {
        self.started
            .get()?
            .as_deref()
            .and_then(crate::store::session::bookmark)
    }

    /// The session, started from the route's start and the client's
    /// `x-coffer-bookmark` on first use. A malformed bookmark is ignored
    /// with a logged reason; a session that cannot start leaves the route
    /// on the database (whose own errors then answer).
    fn get(&self, req: &Request, env: &Env, request_id: &str) -> Option<Session> {
        self.started
            .get_or_init(|| {
                let start = self.start?;
                let sent = req.headers().get(BOOKMARK_HEADER).ok().flatten();
                match crate::store::session::start(env, start, sent.as_deref()) {
                    Ok((session, ignored)) => {
                        if let Some(reason) = ignored {
                            warn(request_id, "bookmark_ignored", reason);
                        }
                        Some(session)
                    }
                    Err(error) => {
                        warn(request_id, "session_not_started", &error.to_string());
                        None
                    }
                }
            })
            .clone()
    }
}

/// The response header carrying the D1 session's bookmark; sent back on a
/// request, it starts that request's session at least as new.
pub(crate) const BOOKMARK_HEADER: &str = "x-coffer-bookmark";

fn warn(request_id: &str, event: &str, reason: &str) {
    crate::log::json(
        crate::log::Console::Log,
        &serde_json::json!({"level": "warn", "request_id": request_id,
                           "event": event, "reason": reason}),
    );
}

/// A verified principal acting for one tenant.
pub(crate) struct Caller {
    pub(crate) principal: Principal,
    pub(crate) tenant: TenantId,
}

/// A successful response, before the surface's envelope headers.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
    /// JSON texts written into `body` as they are (a decrypted secret,
    /// records' `metadata`).
    pub(crate) splices: Vec<Splice>,
    /// The record's version, sent as `ETag: "<version>"`.
    pub(crate) etag: Option<Version>,
    /// Further response headers.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// A body that is not JSON: its content type and a JS stream (an
    /// archived day's NDJSON, written as it is read). Replaces `body`.
    pub(crate) stream: Option<(&'static str, web_sys::ReadableStream)>,
    /// An HTML page sent instead of `body` (the console's).
    pub(crate) page: Option<&'static str>,
}

impl Reply {
    /// 200 with `body`.
    pub(crate) fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body: Some(body),
            splices: Vec::new(),
            etag: None,
            headers: Vec::new(),
            stream: None,
            page: None,
        }
    }

    /// 200 with a streamed body of `content_type`.
    pub(crate) fn streamed(content_type: &'static str, stream: web_sys::ReadableStream) -> Self {
        Self {
            stream: Some((content_type, stream)),
            ..Self::no_content().status(200)
        }
    }

    /// Sets the status.
    pub(crate) fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets the ETag.
    pub(crate) fn etag(mut self, version: Version) -> Self {
        self.etag = Some(version);
        self
    }

    /// Writes `json` (valid JSON text, checked again when rendered) into
    /// the body at `path` as it is: the member the last step names is
    /// replaced, or appended when the object has none. The secret and
    /// `metadata` are served with the digits they were stored with, and
    /// never go through a `Value`.
    pub(crate) fn splice(mut self, path: Vec<Step>, json: Zeroizing<String>) -> Self {
        self.splices.push(Splice { path, json });
        self
    }

    /// Splices `record`'s `metadata` into the record object at `at`.
    pub(crate) fn metadata(self, mut at: Vec<Step>, record: &Record) -> Self {
        at.push(Step::Key("metadata"));
        self.splice(at, Zeroizing::new(record.metadata.get().to_string()))
    }

    /// Adds a response header.
    pub(crate) fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 200 with an HTML page.
    pub(crate) fn page(html: &'static str) -> Self {
        Self {
            page: Some(html),
            ..Self::no_content().status(200)
        }
    }

    /// 204 without a body.
    pub(crate) fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
            splices: Vec::new(),
            etag: None,
            headers: Vec::new(),
            stream: None,
            page: None,
        }
    }
}

/// One step of a path into a reply's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// An object member.
    Key(&'static str),
    /// An array element.
    Index(usize),
}

/// JSON text to write into a reply's body at a path, as it is.
pub(crate) struct Splice {
    pub(crate) path: Vec<Step>,
    pub(crate) json: Zeroizing<String>,
}

impl Ctx {
    /// The store, counting this request's round trips.
    pub(crate) fn store(&self) -> Result<Store, ApiError> {
        let store = match self.session.get(&self.req, &self.env, &self.request_id) {
            Some(session) => Store::open_in(&self.env, self.io.clone(), session)?,
            None => Store::open(&self.env, self.io.clone())?,
        };
        #[cfg(feature = "fault-injection")]
        let store = store.with_commit_delay(crate::faults::commit_delay_ms(
            self.header(crate::faults::COMMIT_DELAY_HEADER),
        ));
        Ok(store)
    }

    /// A captured path parameter (the router guarantees it exists).
    pub(crate) fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// A request header.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.req.headers().get(name).ok().flatten()
    }

    /// The decoded query pairs.
    pub(crate) fn query_pairs(&self) -> Vec<(String, String)> {
        let url = self.req.inner().url();
        form_urlencoded::parse(url_parts(&url).1.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// An audit event by `caller` in `owner`'s log, stamped with this
    /// request's id and time.
    pub(crate) fn audit_event(
        &self,
        caller: &Caller,
        owner: TenantId,
        action: AuditAction,
        outcome: Outcome,
        credential: Option<CredentialId>,
    ) -> Result<AuditEvent, ApiError> {
        Ok(AuditEvent {
            id: random::uuid()?.hyphenated().to_string(),
            owner,
            at: self.now,
            action,
            outcome,
            credential,
            actor_id: caller.principal.sub().to_string(),
            actor_name: caller.principal.name().map(str::to_string),
            actor_email: caller.principal.email().map(str::to_string),
            actor_tenant: caller.tenant,
            request_id: self.request_id.clone(),
            secret_version: None,
        })
    }

    /// Verifies the bearer token.
    pub(crate) async fn principal(&self) -> Result<Principal, ApiError> {
        auth::authenticate(&self.req, &self.env, &self.io, self.now_ms)
            .await
            .map_err(|error| match error {
                AuthError::NotAJwt => ApiError::NotAJwt,
                AuthError::Missing => ApiError::Unauthenticated("missing bearer token"),
                AuthError::Invalid(reason) => ApiError::Unauthenticated(reason),
                AuthError::Misconfigured(reason) => ApiError::internal(reason),
            })
    }

    /// Verifies the token and resolves the tenant of the request from
    /// `x-tenantid`: required on the credentials surface (400 when missing
    /// or not a UUID), optional on the connection surface (422 when not a
    /// UUID); 403 when not one of the token's tenants.
    pub(crate) async fn caller(&self) -> Result<Caller, ApiError> {
        let principal = self.principal().await?;
        let requested = match self.header("x-tenantid") {
            Some(raw) => Some(TenantId::parse(raw.trim()).map_err(|error| {
                ApiError::invalid(Place::Header, "x-tenantid", error, "uuid_parsing")
            })?),
            None if self.surface == Surface::Credentials => {
                return Err(ApiError::invalid(
                    Place::Header,
                    "x-tenantid",
                    "header is required",
                    "missing",
                ))
            }
            None => None,
        };
        let tenant = principal
            .acting_tenant(requested)
            .map_err(|_| ApiError::Forbidden)?;
        self.tenant.set(Some(tenant));
        Ok(Caller { principal, tenant })
    }
}

/// The path and the query (without `?`) of a URL as the runtime serialized
/// it (`Request.url`, already in WHATWG form: scheme, `//`, authority, then
/// a path that starts with `/`), without parsing it again.
pub(crate) fn url_parts(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let rest = &url[after_scheme..];
    let from_path = rest.find(['/', '?', '#']).map_or("", |at| &rest[at..]);
    let without_fragment = from_path.split('#').next().unwrap_or("");
    let (path, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

#[cfg(test)]
mod tests {
    use super::url_parts;

    #[test]
    fn url_parts_split_the_serialized_url() {
        for (url, parts) in [
            ("http://127.0.0.1:8787/healthz", ("/healthz", "")),
            (
                "https://vault.example.com/api/v1/credentials?limit=5&cursor=a%2Fb#x",
                ("/api/v1/credentials", "limit=5&cursor=a%2Fb"),
            ),
            ("https://vault.example.com", ("/", "")),
            ("https://vault.example.com?x=1", ("/", "x=1")),
            ("https://vault.example.com/a/b?", ("/a/b", "")),
            ("https://vault.example.com/p%20q?q=%3F", ("/p%20q", "q=%3F")),
        ] {
            assert_eq!(url_parts(url), parts, "{url}");
        }
    }
}
