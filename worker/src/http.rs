//! Per-request plumbing: request id, caller, body, success envelopes, and
//! the one JSON log line per request.
use coffer_core::{Principal, TenantId, Zeroizing};
use serde::{
    ser::{SerializeMap as _, SerializeSeq as _},
    Serialize,
};
use serde_json::{json, value::RawValue, Value};
use worker::{console_log, Date, Env, Headers, Method, Request, Response};

use crate::{
    auth::{self, AuthError},
    cors,
    error::{json_response, ApiError, Place, Surface},
    routes,
    store::{Io, Record, Store},
    Params,
};

/// Everything a handler gets.
pub(crate) struct Ctx {
    pub(crate) req: Request,
    pub(crate) env: Env,
    pub(crate) params: Params,
    pub(crate) surface: Surface,
    pub(crate) request_id: String,
    /// Milliseconds since the Unix epoch, read once per request.
    pub(crate) now_ms: i64,
    /// The acting tenant once known, for the log line.
    pub(crate) tenant: core::cell::Cell<Option<TenantId>>,
    /// Storage round trips of this request.
    pub(crate) io: alloc::rc::Rc<Io>,
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
    pub(crate) etag: Option<u64>,
    /// Further response headers.
    pub(crate) headers: Vec<(&'static str, String)>,
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
            page: None,
        }
    }

    /// Sets the status.
    pub(crate) fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Sets the ETag.
    pub(crate) fn etag(mut self, version: u64) -> Self {
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
    path: Vec<Step>,
    json: Zeroizing<String>,
}

/// `value` with each splice's text at its path (relative to `value` after
/// `depth` steps); serialized, never built.
struct Spliced<'a> {
    value: &'a Value,
    depth: usize,
    splices: Splices<'a>,
}

/// Splices as paths and checked texts.
type Splices<'a> = Vec<(&'a [Step], &'a RawValue)>;

/// What a splice puts at one place in the body.
enum Here<'a> {
    /// Its text, in place of the value.
    Text(&'a RawValue),
    /// The value, with splices further down.
    Below(Splices<'a>),
}

impl<'a> Spliced<'a> {
    /// What goes where the next step is one `is` accepts: the text of a
    /// splice that ends there, else the value below with the splices that
    /// continue through it (`None`: no splice concerns it).
    fn at(&self, is: impl Fn(Step) -> bool) -> Option<Here<'a>> {
        let mut through = Vec::new();
        for &(path, raw) in &self.splices {
            match path.get(self.depth) {
                Some(&step) if is(step) && path.len() == self.depth + 1 => {
                    return Some(Here::Text(raw))
                }
                Some(&step) if is(step) => through.push((path, raw)),
                _ => {}
            }
        }
        (!through.is_empty()).then_some(Here::Below(through))
    }

    fn below(&self, value: &'a Value, splices: Splices<'a>) -> Self {
        Spliced {
            value,
            depth: self.depth + 1,
            splices,
        }
    }
}

impl Serialize for Spliced<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(object) => {
                // A splice that ends here and names no member is appended.
                let appended: Vec<(&str, &RawValue)> = self
                    .splices
                    .iter()
                    .filter_map(|&(path, raw)| match path.get(self.depth) {
                        Some(Step::Key(name))
                            if path.len() == self.depth + 1 && !object.contains_key(*name) =>
                        {
                            Some((*name, raw))
                        }
                        _ => None,
                    })
                    .collect();
                let mut map = serializer.serialize_map(Some(object.len() + appended.len()))?;
                for (key, value) in object {
                    match self.at(|step| matches!(step, Step::Key(name) if name == key)) {
                        Some(Here::Text(raw)) => map.serialize_entry(key, raw)?,
                        Some(Here::Below(through)) => {
                            map.serialize_entry(key, &self.below(value, through))?;
                        }
                        None => map.serialize_entry(key, value)?,
                    }
                }
                for (name, raw) in appended {
                    map.serialize_entry(name, raw)?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for (index, item) in items.iter().enumerate() {
                    match self.at(|step| step == Step::Index(index)) {
                        Some(Here::Text(raw)) => seq.serialize_element(raw)?,
                        Some(Here::Below(through)) => {
                            seq.serialize_element(&self.below(item, through))?
                        }
                        None => seq.serialize_element(item)?,
                    }
                }
                seq.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// RFC 3339 with milliseconds and `Z`, as every timestamp in the contract.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Ctx {
    /// The store, counting this request's round trips.
    pub(crate) fn store(&self) -> Result<Store, ApiError> {
        let store = Store::open(&self.env, self.io.clone())?;
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
        self.req
            .url()
            .map(|url| {
                url.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The credentials surface's success envelope.
    pub(crate) fn envelope(&self, message: &str, data: Value) -> Value {
        json!({
            "success": true,
            "message": message,
            "data": data,
            "timestamp": rfc3339(self.now_ms),
        })
    }

    /// Verifies the bearer token.
    pub(crate) async fn principal(&self) -> Result<Principal, ApiError> {
        auth::authenticate(&self.req, &self.env, &self.io, self.now_ms)
            .await
            .map_err(|error| {
                log_auth_refusal(&self.request_id, &error);
                match error {
                    AuthError::NotAJwt => ApiError::NotAJwt,
                    AuthError::Missing | AuthError::Invalid(_) => ApiError::Unauthenticated,
                    AuthError::Misconfigured(reason) => ApiError::internal(reason),
                }
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

fn log_auth_refusal(request_id: &str, error: &AuthError) {
    let reason = match error {
        AuthError::Missing => "missing bearer token",
        AuthError::NotAJwt => "not a JWT",
        AuthError::Invalid(reason) => reason,
        AuthError::Misconfigured(reason) => reason.as_str(),
    };
    console_log!(
        "{}",
        json!({"level": "warn", "request_id": request_id, "event": "auth_refused", "reason": reason})
    );
}

/// A random request id (UUID v4) from the platform's CSPRNG.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // Only the id's uniqueness suffers; the time keeps it distinct enough
        // for a log line.
        bytes[..8].copy_from_slice(&Date::now().as_millis().to_be_bytes());
    }
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Serves one request: route, handle, render, log.
pub(crate) async fn serve(req: Request, env: Env) -> worker::Result<Response> {
    let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
    let path = req.path();
    let method = req.method();
    // workers-rs reads any method it does not know (`QUERY`, `PROPFIND`, ...)
    // as GET; such a request must get a 405, never a GET handler.
    let known_method = req.inner().method().eq_ignore_ascii_case(method.as_ref());
    let surface = Surface::of(&path);
    let request_id = new_request_id();
    let mut op_name = None;
    let mut tenant = None;
    let io = alloc::rc::Rc::new(Io::default());
    let request_log = crate::env::RequestLog::from_env(&env);
    // The allowlist is read only for requests that come with an origin.
    let allowed_origin = req
        .headers()
        .get("origin")
        .ok()
        .flatten()
        .filter(|origin| cors::Policy::from_env(&env).allows(origin));
    let outcome = if !known_method {
        Err(unknown_method(&path))
    } else if method == Method::Options
        && req
            .headers()
            .has("access-control-request-method")
            .unwrap_or(false)
    {
        cors::preflight(&path, allowed_origin.as_deref())
    } else {
        match crate::resolve(&method, &path) {
            Ok((op, params)) => {
                op_name = Some(op);
                let mut ctx = Ctx {
                    req,
                    env,
                    params,
                    surface,
                    request_id: request_id.clone(),
                    now_ms,
                    tenant: core::cell::Cell::new(None),
                    io: io.clone(),
                };
                let outcome = routes::dispatch(op, &mut ctx).await;
                tenant = ctx.tenant.get();
                outcome
            }
            Err(error) => Err(error),
        }
    };
    let (response, status, reason) = match outcome {
        Ok(reply) => {
            let status = reply.status;
            (render_reply(reply)?, status, None)
        }
        Err(error) => {
            let status = error.status(surface);
            let response = error.render(surface, &request_id, &rfc3339(now_ms))?;
            (response, status, error.log_reason().map(str::to_string))
        }
    };
    let headers = response.headers().clone();
    headers.set("x-request-id", &request_id)?;
    headers.set("cache-control", "no-store")?;
    if surface == Surface::Connection {
        headers.set("x-api-version", routes::API_VERSION)?;
    }
    if let Some(origin) = &allowed_origin {
        cors::allow(&headers, origin)?;
    }
    let elapsed = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX) - now_ms;
    if request_log.logs(status) {
        log_request(&RequestLine {
            level: if status >= 500 { "error" } else { "info" },
            request_id: &request_id,
            method: method.as_ref(),
            route: op_name.map(|op| format!("{op:?}")).as_deref(),
            path: &path,
            tenant,
            status,
            duration_ms: elapsed,
            d1: io.d1(),
            kv: io.kv(),
            error: reason.as_deref(),
        });
    }
    Ok(response.with_headers(headers))
}

/// Serialized straight to text (no intermediate `Value`), one console call.
fn log_request(line: &RequestLine<'_>) {
    if let Ok(text) = serde_json::to_string(line) {
        console_log!("{text}");
    }
}

/// The one JSON log line of a request, in this field order.
#[derive(serde::Serialize)]
struct RequestLine<'a> {
    level: &'static str,
    request_id: &'a str,
    method: &'a str,
    route: Option<&'a str>,
    path: &'a str,
    #[serde(serialize_with = "display_option")]
    tenant: Option<TenantId>,
    status: u16,
    duration_ms: i64,
    d1: u32,
    kv: u32,
    error: Option<&'a str>,
}

fn display_option<T: core::fmt::Display, S: serde::Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

/// The 405 (or 404) for a method no route has: resolving `TRACE`, which no
/// route serves, yields the path's allowed methods.
fn unknown_method(path: &str) -> ApiError {
    match crate::resolve(&Method::Trace, path) {
        Err(error) => error,
        Ok(_) => ApiError::RouteNotFound,
    }
}

fn render_reply(reply: Reply) -> worker::Result<Response> {
    let headers = Headers::new();
    if let Some(version) = reply.etag {
        headers.set("etag", &format!("\"{version}\""))?;
    }
    for (name, value) in &reply.headers {
        headers.set(name, value)?;
    }
    if let Some(html) = reply.page {
        headers.set("content-type", "text/html; charset=utf-8")?;
        return Ok(Response::from_html(html)?
            .with_status(reply.status)
            .with_headers(headers));
    }
    match reply.body {
        Some(value) if !reply.splices.is_empty() => {
            let splices = reply
                .splices
                .iter()
                .map(|splice| {
                    serde_json::from_str::<&RawValue>(&splice.json)
                        .map(|raw| (splice.path.as_slice(), raw))
                        .map_err(|_| worker::Error::RustError("spliced text is not JSON".into()))
                })
                .collect::<worker::Result<Vec<_>>>()?;
            let spliced = Spliced {
                value: &value,
                depth: 0,
                splices,
            };
            json_response(&spliced, reply.status, headers)
        }
        Some(body) => json_response(&body, reply.status, headers),
        None => Ok(Response::empty()?
            .with_status(reply.status)
            .with_headers(headers)),
    }
}
