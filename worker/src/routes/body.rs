//! Request bodies: media type, size (read as a stream and abandoned past
//! the limit), and strict field-by-field parsing that names the offending
//! field. The secret and `metadata` are kept as the client's JSON text, so
//! numbers keep their digits (see `coffer_core::validate_secret`).
use coffer_core::{
    limits, validate_description, validate_metadata, validate_name, validate_scopes,
    validate_secret, AuthType, IntegrationId, Status, Timestamp, Unit, ValidationError, Zeroizing,
};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{value::RawValue, Value};
use worker::{
    js_sys::{Reflect, Uint8Array},
    wasm_bindgen::{JsCast as _, JsValue},
    wasm_bindgen_futures::JsFuture,
    web_sys::ReadableStreamDefaultReader,
};

use crate::{
    context::Ctx,
    error::{ApiError, Place},
};

fn js_error(error: JsValue) -> ApiError {
    ApiError::internal(format!("reading the request body: {error:?}"))
}

/// Longest accepted endpoint URL.
const MAX_ENDPOINT_CHARS: usize = 2048;

/// A request body of at most [`limits::MAX_BODY_BYTES`], wiped on drop (it
/// may hold a secret).
pub(crate) struct Body(Zeroizing<Vec<u8>>);

/// Reads a JSON body: 415 unless `application/json`; 413 when
/// `content-length` declares more than [`limits::MAX_BODY_BYTES`], or as
/// soon as more than that has arrived. The body is read as a stream and the
/// stream is cancelled there: a chunked upload of any size costs the
/// isolate at most the limit in memory, and the rest is never read. Callers
/// run every check that needs no record (authentication, tenant, the
/// route's role) first.
pub(crate) async fn read_body(ctx: &mut Ctx) -> Result<Body, ApiError> {
    let content_type = ctx.header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let too_large = ApiError::PayloadTooLarge {
        limit: limits::MAX_BODY_BYTES,
    };
    let declared = ctx
        .header("content-length")
        .and_then(|len| len.trim().parse::<usize>().ok());
    if declared.is_some_and(|len| len > limits::MAX_BODY_BYTES) {
        return Err(too_large);
    }
    // The whole allowance up front: the buffer never reallocates, so no
    // freed copy of a secret is left behind.
    let mut bytes = Zeroizing::new(Vec::with_capacity(limits::MAX_BODY_BYTES));
    let Some(stream) = ctx.req.inner().body() else {
        // No body at all: empty, which the parser refuses.
        return Ok(Body(bytes));
    };
    let reader = ReadableStreamDefaultReader::new(&stream).map_err(js_error)?;
    loop {
        let result = JsFuture::from(reader.read()).await.map_err(js_error)?;
        let done = Reflect::get(&result, &JsValue::from_str("done")).map_err(js_error)?;
        if done.as_bool().unwrap_or(true) {
            break;
        }
        let value = Reflect::get(&result, &JsValue::from_str("value")).map_err(js_error)?;
        let chunk: Uint8Array = value
            .dyn_into()
            .map_err(|_| ApiError::internal("a request body chunk is not bytes"))?;
        let start = bytes.len();
        let end = start.saturating_add(chunk.length() as usize);
        if end > limits::MAX_BODY_BYTES {
            // Abandon the rest: cancelling tells the runtime to stop
            // receiving it.
            let _ = JsFuture::from(reader.cancel()).await;
            return Err(too_large);
        }
        // Copied straight into the buffer, which has the room: no
        // intermediate copy of a secret is left behind.
        bytes.resize(end, 0);
        chunk.copy_to(&mut bytes[start..end]);
    }
    Ok(Body(bytes))
}

/// The members of a JSON object body in the order sent, each as its raw
/// JSON text, repeats included (the parsers refuse them by name).
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    members.push((name, map.next_value::<&RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

impl Body {
    /// The body's members, repeats included (serde_json's map would
    /// silently keep the last; the parsers refuse a repeat by name): 400
    /// unless a JSON object.
    fn members(&self) -> Result<Vec<(String, &RawValue)>, ApiError> {
        let text = core::str::from_utf8(&self.0)
            .map_err(|_| ApiError::BadRequest("the body is not valid UTF-8".into()))?;
        // serde_json's messages give line and column, never the input itself.
        let Members(members) = serde_json::from_str(text).map_err(|error| {
            if error.is_data() {
                ApiError::BadRequest("the body must be a JSON object".into())
            } else {
                ApiError::BadRequest(format!("the body is not valid JSON: {error}"))
            }
        })?;
        Ok(members)
    }
}

/// The names already parsed, to refuse a second occurrence. Every name is a
/// known field (an unknown one is refused at once), so the list is short.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn first(&mut self, field: &str) -> Result<(), ApiError> {
        if self.0.iter().any(|seen| seen == field) {
            return Err(invalid(field, "appears more than once in the body"));
        }
        self.0.push(field.to_string());
        Ok(())
    }
}

/// A member's value parsed as JSON (the secret and `metadata` are not: they
/// stay text).
fn value(field: &str, raw: &RawValue) -> Result<Value, ApiError> {
    serde_json::from_str(raw.get()).map_err(|error| invalid(field, error))
}

fn invalid(field: &str, message: impl core::fmt::Display) -> ApiError {
    ApiError::invalid(Place::Body, field, message, "value_error")
}

fn wrong_type(field: &str, expected: &str) -> ApiError {
    ApiError::invalid(
        Place::Body,
        field,
        format!("must be {expected}"),
        "type_error",
    )
}

fn string(field: &str, value: Value) -> Result<String, ApiError> {
    match value {
        Value::String(text) => Ok(text),
        _ => Err(wrong_type(field, "a string")),
    }
}

fn nullable_string(field: &str, value: Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        other => string(field, other).map(Some),
    }
}

fn endpoint(field: &str, value: Value) -> Result<Option<String>, ApiError> {
    let url = nullable_string(field, value)?;
    if let Some(url) = &url {
        if url.chars().count() > MAX_ENDPOINT_CHARS {
            return Err(invalid(
                field,
                format!("must be at most {MAX_ENDPOINT_CHARS} characters"),
            ));
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid(field, "must be an http(s) URL"));
        }
    }
    Ok(url)
}

fn scopes(value: Value) -> Result<Vec<String>, ApiError> {
    let Value::Array(items) = value else {
        return Err(wrong_type("scopes", "an array of strings"));
    };
    let scopes = items
        .into_iter()
        .map(|item| match item {
            Value::String(scope) => Ok(scope),
            _ => Err(wrong_type("scopes", "an array of strings")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    validate_scopes(&scopes).map_err(|error| invalid("scopes", error))?;
    Ok(scopes)
}

/// `metadata` as compact JSON, numbers as sent: 400 unless an object of at
/// most 16 KiB without repeated member names.
fn metadata(raw: &RawValue) -> Result<Box<RawValue>, ApiError> {
    let compact = validate_metadata(raw).map_err(|error| match error {
        ValidationError::NotAnObject => wrong_type("metadata", "a JSON object"),
        other => invalid("metadata", other),
    })?;
    raw_json(compact)
}

/// Compact JSON the core wrote, as a `RawValue` again.
fn raw_json(compact: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(compact)
        .map_err(|error| ApiError::internal(format!("compact JSON: {error}")))
}

fn expires_at(value: Value) -> Result<Option<Timestamp>, ApiError> {
    match nullable_string("expiresAt", value)? {
        None => Ok(None),
        Some(text) => Timestamp::parse_rfc3339(&text)
            .map(Some)
            .map_err(|error| invalid("expiresAt", error)),
    }
}

/// The secret as compact JSON, numbers as sent: 413 over 64 KiB, 400 unless
/// an object without repeated member names.
fn secret(raw: &RawValue) -> Result<Zeroizing<String>, ApiError> {
    validate_secret(raw).map_err(|error| match error {
        ValidationError::TooLong {
            unit: Unit::JsonBytes | Unit::Bytes,
            max,
            ..
        } => ApiError::PayloadTooLarge { limit: max },
        ValidationError::NotAnObject => wrong_type("credentials", "a JSON object"),
        other => invalid("credentials", other),
    })
}

fn name(value: Value) -> Result<String, ApiError> {
    let name = string("credentialName", value)?;
    validate_name(&name).map_err(|error| invalid("credentialName", error))?;
    Ok(name)
}

fn description(value: Value) -> Result<Option<String>, ApiError> {
    let description = nullable_string("description", value)?;
    if let Some(text) = &description {
        validate_description(text).map_err(|error| invalid("description", error))?;
    }
    Ok(description)
}

/// The fields a create body may have.
const CREATE_FIELDS: &[&str] = &[
    "integrationId",
    "credentialName",
    "credentials",
    "description",
    "authType",
    "scopes",
    "tokenEndpoint",
    "authorizationEndpoint",
    "metadata",
    "expiresAt",
];

/// The fields a patch body may have.
const PATCH_FIELDS: &[&str] = &[
    "credentialName",
    "description",
    "scopes",
    "tokenEndpoint",
    "authorizationEndpoint",
    "metadata",
    "expiresAt",
    "status",
    "credentials",
];

/// A validated `POST /api/v1/credentials` body.
pub(crate) struct CreateInput {
    pub(crate) integration: IntegrationId,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) auth_type: AuthType,
    pub(crate) scopes: Vec<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) metadata: Box<RawValue>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) secret: Zeroizing<String>,
}

/// Parses a create body; unknown fields and wrong types are 400s that name
/// the field.
pub(crate) fn parse_create(body: &Body) -> Result<CreateInput, ApiError> {
    let mut integration = None;
    let mut name_value = None;
    let mut secret_value = None;
    let mut description_value = None;
    let mut auth_type = AuthType::DEFAULT;
    let mut scope_list = Vec::new();
    let mut token_endpoint = None;
    let mut authorization_endpoint = None;
    let mut metadata_value = raw_json("{}".to_string())?;
    let mut expires = None;
    let mut seen = Seen::default();
    for (field, raw) in body.members()? {
        if !CREATE_FIELDS.contains(&field.as_str()) {
            return Err(unknown(&field));
        }
        seen.first(&field)?;
        // The secret and metadata stay text; every other field is parsed.
        match field.as_str() {
            "credentials" => {
                secret_value = Some(secret(raw)?);
                continue;
            }
            "metadata" => {
                metadata_value = metadata(raw)?;
                continue;
            }
            _ => {}
        }
        let value = value(&field, raw)?;
        match field.as_str() {
            "integrationId" => {
                let raw = string("integrationId", value)?;
                integration = Some(
                    IntegrationId::parse(&raw).map_err(|error| invalid("integrationId", error))?,
                );
            }
            "credentialName" => name_value = Some(name(value)?),
            "description" => description_value = description(value)?,
            "authType" => {
                let raw = string("authType", value)?;
                auth_type = AuthType::parse(&raw).map_err(|error| invalid("authType", error))?;
            }
            "scopes" => scope_list = scopes(value)?,
            "tokenEndpoint" => token_endpoint = endpoint("tokenEndpoint", value)?,
            "authorizationEndpoint" => {
                authorization_endpoint = endpoint("authorizationEndpoint", value)?;
            }
            "expiresAt" => expires = expires_at(value)?,
            _ => return Err(unknown(&field)),
        }
    }
    let required = |field: &str| ApiError::invalid(Place::Body, field, "field required", "missing");
    Ok(CreateInput {
        integration: integration.ok_or_else(|| required("integrationId"))?,
        name: name_value.ok_or_else(|| required("credentialName"))?,
        secret: secret_value.ok_or_else(|| required("credentials"))?,
        description: description_value,
        auth_type,
        scopes: scope_list,
        token_endpoint,
        authorization_endpoint,
        metadata: metadata_value,
        expires_at: expires,
    })
}

fn unknown(field: &str) -> ApiError {
    // The field name is the client's own input but never a secret value;
    // cap it so the error stays short.
    let shown: String = field.chars().take(64).collect();
    ApiError::invalid(Place::Body, &shown, "unknown field", "extra_forbidden")
}

/// A validated `PATCH` body: `None` leaves a field alone; for nullable
/// fields `Some(None)` clears it.
#[derive(Default)]
pub(crate) struct PatchInput {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<Option<String>>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) token_endpoint: Option<Option<String>>,
    pub(crate) authorization_endpoint: Option<Option<String>>,
    pub(crate) metadata: Option<Box<RawValue>>,
    pub(crate) expires_at: Option<Option<Timestamp>>,
    pub(crate) status: Option<Status>,
    pub(crate) secret: Option<Zeroizing<String>>,
}

/// Parses a patch body; an empty body is a 400.
pub(crate) fn parse_patch(body: &Body) -> Result<PatchInput, ApiError> {
    let members = body.members()?;
    if members.is_empty() {
        return Err(ApiError::BadRequest(
            "the body names no field to change".into(),
        ));
    }
    let mut input = PatchInput::default();
    let mut seen = Seen::default();
    for (field, raw) in members {
        if !PATCH_FIELDS.contains(&field.as_str()) {
            return Err(unknown(&field));
        }
        seen.first(&field)?;
        match field.as_str() {
            "credentials" => {
                input.secret = Some(secret(raw)?);
                continue;
            }
            "metadata" => {
                input.metadata = Some(metadata(raw)?);
                continue;
            }
            _ => {}
        }
        let value = value(&field, raw)?;
        match field.as_str() {
            "credentialName" => input.name = Some(name(value)?),
            "description" => input.description = Some(description(value)?),
            "scopes" => input.scopes = Some(scopes(value)?),
            "tokenEndpoint" => input.token_endpoint = Some(endpoint("tokenEndpoint", value)?),
            "authorizationEndpoint" => {
                input.authorization_endpoint = Some(endpoint("authorizationEndpoint", value)?);
            }
            "expiresAt" => input.expires_at = Some(expires_at(value)?),
            "status" => {
                let raw = string("status", value)?;
                input.status =
                    Some(Status::parse_settable(&raw).map_err(|error| invalid("status", error))?);
            }
            _ => return Err(unknown(&field)),
        }
    }
    Ok(input)
}

/// Parses a rollback body, `{"secretVersion": N}` with N a positive
/// integer: the secret version to seal again.
pub(crate) fn parse_rollback(body: &Body) -> Result<i64, ApiError> {
    let members = body.members()?;
    let mut seen = Seen::default();
    let mut version = None;
    for (field, raw) in members {
        if field != "secretVersion" {
            return Err(unknown(&field));
        }
        seen.first(&field)?;
        version = Some(secret_version_value(&value(&field, raw)?)?);
    }
    version
        .ok_or_else(|| ApiError::invalid(Place::Body, "secretVersion", "field required", "missing"))
}

/// A secret version: a positive integer (below 2^53).
pub(crate) fn secret_version_value(value: &Value) -> Result<i64, ApiError> {
    value
        .as_i64()
        .filter(|n| (1..(1_i64 << 53)).contains(n))
        .ok_or_else(|| wrong_type("secretVersion", "a positive integer"))
}
