//! The only code that knows HTTP statuses and error bodies.
//!
//! Handlers return [`ApiError`]; [`ApiError::render`] turns it into the
//! surface's envelope. Internal reasons go to the log, never to the client.
use serde_json::{json, Value};
use wasm_bindgen::JsValue;

/// Which envelope a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// `/connection/...`: `{"data": ...}` and `{"error": {"code": <int>, ...}}`.
    Connection,
    /// `/api/v1/...` and everything else: `{"success": ..., "timestamp": ...}`.
    Credentials,
}

impl Surface {
    /// The surface a path belongs to.
    pub(crate) fn of(path: &str) -> Self {
        if path == "/connection" || path.starts_with("/connection/") {
            Self::Connection
        } else {
            Self::Credentials
        }
    }
}

/// Where in the request a bad value was found (FastAPI's `loc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Path,
    Query,
    Header,
    Body,
}

impl Place {
    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Body => "body",
        }
    }
}

/// What was not found, for the 404 message.
#[derive(Debug, Clone)]
pub(crate) enum Missing {
    /// No visible record for this integration.
    Integration(String),
    /// No visible record with this id (as the client wrote it).
    Credential(String),
    /// No archived audit events of the tenant for this day.
    ArchiveDay(String),
}

/// Everything a request can fail with.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Not a JWT at all: 400 on the connection surface, 401 elsewhere.
    NotAJwt,
    /// Missing or invalid credentials: 401. The reason (which claim rule or
    /// check refused the token) goes to the request's log line only.
    Unauthenticated(&'static str),
    /// A bad parameter or body field: 400 (credentials) or 422 (connection).
    Invalid {
        place: Place,
        field: String,
        message: String,
        kind: &'static str,
    },
    /// A malformed body on the credentials surface that names no field.
    BadRequest(String),
    /// Allowed to see, not allowed to do: 403.
    Forbidden,
    /// Not there, or not visible to the caller: 404.
    NotFound(Missing),
    /// A decrypted read of an inactive or revoked record: 409.
    NotActive(String),
    /// The acting tenant was deleted (crypto-shredded): 410.
    TenantDeleted,
    /// No such kept secret version of a visible record (never kept, or
    /// destroyed): 404.
    VersionNotFound(i64),
    /// The current secret version cannot be destroyed: 409.
    CurrentVersion(i64),
    /// A forced refresh of a record that does not refresh: 409.
    NotRefreshable(String),
    /// The OAuth2 token is expired and no fresh one could be had: 502.
    RefreshFailed(String),
    /// `If-Match` did not match the record's version: 412.
    PreconditionFailed { current: u64 },
    /// Body over the limit, refused before parsing: 413.
    PayloadTooLarge { limit: usize },
    /// A body that is not `application/json`: 415.
    UnsupportedMediaType,
    /// No such route: 404.
    RouteNotFound,
    /// The route exists, the method does not: 405.
    MethodNotAllowed { allow: String },
    /// A well-formed `x-api-version` this server does not serve: 400.
    UnsupportedVersion(String),
    /// Storage unreachable or misconfigured: 503. The reason is logged.
    Unavailable(String),
    /// Anything else: 500. The reason is logged, never sent.
    Internal(String),
}

impl ApiError {
    /// An internal error whose reason is logged.
    pub(crate) fn internal(reason: impl core::fmt::Display) -> Self {
        Self::Internal(reason.to_string())
    }

    /// A bad value at `place`/`field`.
    pub(crate) fn invalid(
        place: Place,
        field: &str,
        message: impl core::fmt::Display,
        kind: &'static str,
    ) -> Self {
        Self::Invalid {
            place,
            field: field.into(),
            message: message.to_string(),
            kind,
        }
    }

    /// The HTTP status on `surface`.
    pub(crate) fn status(&self, surface: Surface) -> u16 {
        match (self, surface) {
            (Self::NotAJwt, Surface::Connection) => 400,
            (Self::NotAJwt | Self::Unauthenticated(_), _) => 401,
            (Self::Invalid { .. }, Surface::Connection) => 422,
            (Self::Invalid { .. } | Self::BadRequest(_) | Self::UnsupportedVersion(_), _) => 400,
            (Self::Forbidden, _) => 403,
            (Self::NotFound(_) | Self::RouteNotFound | Self::VersionNotFound(_), _) => 404,
            (Self::CurrentVersion(_), _) => 409,
            (Self::MethodNotAllowed { .. }, _) => 405,
            (Self::NotActive(_) | Self::NotRefreshable(_), _) => 409,
            (Self::TenantDeleted, _) => 410,
            (Self::RefreshFailed(_), _) => 502,
            (Self::PreconditionFailed { .. }, _) => 412,
            (Self::PayloadTooLarge { .. }, _) => 413,
            (Self::UnsupportedMediaType, _) => 415,
            (Self::Internal(_), _) => 500,
            (Self::Unavailable(_), _) => 503,
        }
    }

    /// The reason to log, if the client is told less than the operator.
    pub(crate) fn log_reason(&self) -> Option<&str> {
        match self {
            Self::Internal(reason) | Self::Unavailable(reason) => Some(reason),
            Self::Unauthenticated(reason) => Some(reason),
            Self::NotAJwt => Some("not a JWT"),
            _ => None,
        }
    }

    /// The credentials surface's code, message and details.
    fn credentials_parts(&self, request_id: &str) -> (&'static str, &'static str, String) {
        match self {
            Self::NotAJwt | Self::Unauthenticated(_) => (
                "AUTHENTICATION_FAILED",
                "Authentication failed",
                "Bearer token is missing, expired, or invalid".into(),
            ),
            Self::Invalid { field, message, .. } => (
                "INVALID_PARAMETERS",
                "Invalid parameters",
                format!("{field}: {message}"),
            ),
            Self::BadRequest(details) => {
                ("INVALID_PARAMETERS", "Invalid parameters", details.clone())
            }
            Self::UnsupportedVersion(version) => (
                "INVALID_PARAMETERS",
                "Invalid parameters",
                format!("x-api-version {version} is not supported"),
            ),
            Self::Forbidden => (
                "INSUFFICIENT_PERMISSIONS",
                "Insufficient permissions",
                "The caller's role or tenant does not allow this operation".into(),
            ),
            Self::NotFound(Missing::Integration(integration)) => (
                "CREDENTIAL_NOT_FOUND",
                "Credential not found",
                format!("No credential exists for integration ID: {integration}"),
            ),
            Self::NotFound(Missing::Credential(id)) => (
                "CREDENTIAL_NOT_FOUND",
                "Credential not found",
                format!("No credential exists with ID: {id}"),
            ),
            Self::NotFound(Missing::ArchiveDay(day)) => (
                "NOT_FOUND",
                "Not found",
                format!("No archived audit events for {day}"),
            ),
            Self::NotActive(id) => (
                "CREDENTIAL_NOT_ACTIVE",
                "Credential is not active",
                format!("Credential {id} is inactive or revoked; its secret is not served"),
            ),
            Self::VersionNotFound(version) => (
                "SECRET_VERSION_NOT_FOUND",
                "Secret version not found",
                format!("No kept secret version {version} of this credential"),
            ),
            Self::CurrentVersion(version) => (
                "SECRET_VERSION_CURRENT",
                "Secret version is current",
                format!(
                    "Secret version {version} is the current one; write or roll back to another first"
                ),
            ),
            Self::TenantDeleted => (
                "TENANT_DELETED",
                "Tenant deleted",
                "The tenant was deleted; its credentials are unrecoverable".into(),
            ),
            Self::NotRefreshable(id) => (
                "CREDENTIAL_NOT_REFRESHABLE",
                "Credential does not refresh",
                format!(
                    "Credential {id} has no token endpoint, or its secret and auth type name no grant"
                ),
            ),
            Self::RefreshFailed(id) => (
                "REFRESH_FAILED",
                "Token refresh failed",
                format!(
                    "The access token of credential {id} is expired and could not be refreshed; see refresh.lastError"
                ),
            ),
            Self::PreconditionFailed { current } => (
                "PRECONDITION_FAILED",
                "Precondition failed",
                format!("If-Match does not match the current ETag \"{current}\""),
            ),
            Self::PayloadTooLarge { limit } => (
                "PAYLOAD_TOO_LARGE",
                "Payload too large",
                format!("The request body exceeds {limit} bytes"),
            ),
            Self::UnsupportedMediaType => (
                "UNSUPPORTED_MEDIA_TYPE",
                "Unsupported media type",
                "The request body must be application/json".into(),
            ),
            Self::RouteNotFound => ("NOT_FOUND", "Not found", "No such route".into()),
            Self::MethodNotAllowed { allow } => (
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
                format!("Allowed methods: {allow}"),
            ),
            Self::Unavailable(_) => (
                "SERVICE_UNAVAILABLE",
                "Service unavailable",
                format!("Storage is unavailable; request id {request_id}"),
            ),
            Self::Internal(_) => (
                "INTERNAL_ERROR",
                "Internal server error",
                format!("Request id {request_id}"),
            ),
        }
    }

    /// The connection surface's `error` object.
    fn connection_error(&self, code: u16) -> Value {
        let message = match self {
            Self::NotAJwt => "Invalid JWT format".to_string(),
            Self::Unauthenticated(_) => {
                "Authentication header is missing, or token is invalid/expired.".into()
            }
            Self::Invalid {
                place,
                field,
                message,
                kind,
            } => {
                return json!({
                    "code": code,
                    "message": message,
                    "loc": [place.as_str(), field],
                    "msg": message,
                    "type": kind,
                });
            }
            Self::BadRequest(details) => details.clone(),
            Self::UnsupportedVersion(version) => format!("API version {version} is not supported"),
            Self::Forbidden => "You do not have access to this resource".into(),
            Self::NotFound(Missing::Credential(id) | Missing::Integration(id)) => {
                format!("Connection with ID {id} not found")
            }
            Self::NotFound(Missing::ArchiveDay(day)) => {
                format!("No archived audit events for {day}")
            }
            Self::NotActive(id) => format!("Connection {id} is not active"),
            Self::TenantDeleted => "The tenant was deleted".into(),
            Self::VersionNotFound(version) => format!("Secret version {version} not found"),
            Self::CurrentVersion(version) => format!("Secret version {version} is current"),
            Self::NotRefreshable(id) => format!("Connection {id} does not refresh"),
            Self::RefreshFailed(id) => format!("Token refresh failed for connection {id}"),
            Self::PreconditionFailed { current } => {
                format!("If-Match does not match the current ETag \"{current}\"")
            }
            Self::PayloadTooLarge { limit } => format!("The request body exceeds {limit} bytes"),
            Self::UnsupportedMediaType => "The request body must be application/json".into(),
            Self::RouteNotFound => "Not Found".into(),
            Self::MethodNotAllowed { .. } => "Method Not Allowed".into(),
            Self::Unavailable(_) => "Service unavailable".into(),
            Self::Internal(_) => "Internal server error".into(),
        };
        json!({ "code": code, "message": message })
    }

    /// The response on `surface`.
    pub(crate) fn render(
        &self,
        surface: Surface,
        request_id: &str,
        timestamp: &str,
    ) -> Result<Outgoing, String> {
        let status = self.status(surface);
        let body = match surface {
            Surface::Connection => json!({ "error": self.connection_error(status) }),
            Surface::Credentials => {
                let (code, message, details) = self.credentials_parts(request_id);
                json!({
                    "success": false,
                    "error": { "code": code, "message": message, "details": details },
                    "timestamp": timestamp,
                })
            }
        };
        let mut response = json_response(&body, status)?;
        if let Self::MethodNotAllowed { allow } = self {
            response.set("allow", allow.clone());
        }
        if matches!(self, Self::NotAJwt | Self::Unauthenticated(_)) {
            response.set("www-authenticate", "Bearer".into());
        }
        Ok(response)
    }
}

/// A JSON response with `status`.
pub(crate) fn json_response(body: &impl serde::Serialize, status: u16) -> Result<Outgoing, String> {
    let text = serde_json::to_string(body).map_err(|error| error.to_string())?;
    Ok(Outgoing::typed(
        status,
        "application/json",
        Body::Text(text),
    ))
}

/// A response as the Worker assembles it, made into the runtime's
/// `Response` once, when the request is done: one `Headers` object and one
/// body, where `worker::Response` made three `Headers` (its own, the
/// handler's, the copy the final headers went on) and copied the body
/// into a `Uint8Array` first.
pub(crate) struct Outgoing {
    pub(crate) status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

/// What an [`Outgoing`] response carries.
pub(crate) enum Body {
    /// Text (JSON or HTML), handed over as a JS string.
    Text(String),
    /// A JS stream (an archived day's NDJSON), written as it is read.
    Stream(web_sys::ReadableStream),
    /// No body (204).
    Empty,
}

impl Outgoing {
    pub(crate) fn new(status: u16, body: Body) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// A response whose body is of `content_type`.
    pub(crate) fn typed(status: u16, content_type: &str, body: Body) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body,
        }
    }

    /// Sets header `name` (lowercase), replacing an earlier value.
    pub(crate) fn set(&mut self, name: &'static str, value: String) {
        match self.headers.iter_mut().find(|(known, _)| *known == name) {
            Some(slot) => slot.1 = value,
            None => self.headers.push((name, value)),
        }
    }

    /// Adds a value to header `name` (lowercase), after any earlier one.
    pub(crate) fn append(&mut self, name: &'static str, value: String) {
        self.headers.push((name, value));
    }

    /// The headers so far, in order.
    #[cfg(test)]
    pub(crate) fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// The runtime's `Response`.
    pub(crate) fn into_response(self) -> Result<web_sys::Response, JsValue> {
        let headers = web_sys::Headers::new()?;
        for (name, value) in &self.headers {
            headers.append(name, value)?;
        }
        let init = web_sys::ResponseInit::new();
        init.set_status(self.status);
        init.set_headers_headers(&headers);
        match self.body {
            Body::Text(text) => web_sys::Response::new_with_opt_str_and_init(Some(&text), &init),
            Body::Stream(stream) => {
                web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)
            }
            Body::Empty => web_sys::Response::new_with_opt_str_and_init(None, &init),
        }
    }
}

impl From<worker::Error> for ApiError {
    fn from(error: worker::Error) -> Self {
        Self::Internal(error.to_string())
    }
}
