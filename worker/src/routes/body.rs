//! Request bodies: media type, size (refused before parsing), and strict
//! field-by-field parsing that names the offending field.
use coffer_core::{
    limits, validate_description, validate_metadata, validate_name, validate_scopes,
    validate_secret, AuthType, IntegrationId, Status, Timestamp, Unit, ValidationError, Zeroizing,
};
use serde_json::{Map, Value};

use crate::{
    error::{ApiError, Place},
    http::Ctx,
};

/// Longest accepted endpoint URL.
const MAX_ENDPOINT_CHARS: usize = 2048;

/// Reads a JSON object body: 415 unless `application/json`, 413 over
/// [`limits::MAX_BODY_BYTES`] (checked on `content-length` before reading,
/// and on the bytes read), 400 unless a JSON object.
pub(crate) async fn read_object(ctx: &mut Ctx) -> Result<Map<String, Value>, ApiError> {
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
    let bytes = ctx.req.bytes().await.map_err(ApiError::from)?;
    if bytes.len() > limits::MAX_BODY_BYTES {
        return Err(too_large);
    }
    // serde_json's messages give line and column, never the input itself.
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        )),
        Err(error) => Err(ApiError::BadRequest(format!(
            "the body is not valid JSON: {error}"
        ))),
    }
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

fn metadata(value: Value) -> Result<Value, ApiError> {
    if !value.is_object() {
        return Err(wrong_type("metadata", "a JSON object"));
    }
    validate_metadata(&value).map_err(|error| invalid("metadata", error))?;
    Ok(value)
}

fn expires_at(value: Value) -> Result<Option<i64>, ApiError> {
    match nullable_string("expiresAt", value)? {
        None => Ok(None),
        Some(text) => Timestamp::parse_rfc3339(&text)
            .map(|at| Some(at.as_unix_millis()))
            .map_err(|error| invalid("expiresAt", error)),
    }
}

/// The secret as compact JSON: 413 over 64 KiB, 400 unless an object.
fn secret(value: Value) -> Result<Zeroizing<String>, ApiError> {
    validate_secret(&value).map_err(|error| match error {
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

/// A validated `POST /api/v1/credentials` body.
pub(crate) struct CreateInput {
    pub(crate) integration: IntegrationId,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) auth_type: AuthType,
    pub(crate) scopes: Vec<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) metadata: Value,
    pub(crate) expires_at: Option<i64>,
    pub(crate) secret: Zeroizing<String>,
}

/// Parses a create body; unknown fields and wrong types are 400s that name
/// the field.
pub(crate) fn parse_create(object: Map<String, Value>) -> Result<CreateInput, ApiError> {
    let mut integration = None;
    let mut name_value = None;
    let mut secret_value = None;
    let mut description_value = None;
    let mut auth_type = AuthType::DEFAULT;
    let mut scope_list = Vec::new();
    let mut token_endpoint = None;
    let mut authorization_endpoint = None;
    let mut metadata_value = Value::Object(Map::new());
    let mut expires = None;
    for (field, value) in object {
        match field.as_str() {
            "integrationId" => {
                let raw = string("integrationId", value)?;
                integration = Some(
                    IntegrationId::parse(&raw).map_err(|error| invalid("integrationId", error))?,
                );
            }
            "credentialName" => name_value = Some(name(value)?),
            "credentials" => secret_value = Some(secret(value)?),
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
            "metadata" => metadata_value = metadata(value)?,
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
    pub(crate) metadata: Option<Value>,
    pub(crate) expires_at: Option<Option<i64>>,
    pub(crate) status: Option<Status>,
    pub(crate) secret: Option<Zeroizing<String>>,
}

/// Parses a patch body; an empty body is a 400.
pub(crate) fn parse_patch(object: Map<String, Value>) -> Result<PatchInput, ApiError> {
    if object.is_empty() {
        return Err(ApiError::BadRequest(
            "the body names no field to change".into(),
        ));
    }
    let mut input = PatchInput::default();
    for (field, value) in object {
        match field.as_str() {
            "credentialName" => input.name = Some(name(value)?),
            "description" => input.description = Some(description(value)?),
            "scopes" => input.scopes = Some(scopes(value)?),
            "tokenEndpoint" => input.token_endpoint = Some(endpoint("tokenEndpoint", value)?),
            "authorizationEndpoint" => {
                input.authorization_endpoint = Some(endpoint("authorizationEndpoint", value)?);
            }
            "metadata" => input.metadata = Some(metadata(value)?),
            "expiresAt" => input.expires_at = Some(expires_at(value)?),
            "status" => {
                let raw = string("status", value)?;
                input.status =
                    Some(Status::parse_settable(&raw).map_err(|error| invalid("status", error))?);
            }
            "credentials" => input.secret = Some(secret(value)?),
            _ => return Err(unknown(&field)),
        }
    }
    Ok(input)
}
