//! The credentials surface's errors, black-box: every code with its exact
//! envelope, and no 4xx echoing a submitted secret.
use coffer_tests::{
    assertions::{assert_error, assert_invalid, assert_not_logged},
    client::{Api, Reply},
    fixtures::{
        api_for, create_credential, credential_body, tenant, token, TokenBuilder, HS256_SECRET,
    },
    harness,
};
use reqwest::Method;
use serde_json::{json, Value};

/// Every protected route, with a path that reaches its handler and a body
/// where it takes one.
fn routes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::GET,
            format!("/api/v1/credentials/erroring/details?credentialId={id}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/credentials/erroring?credentialId={id}"),
            None,
        ),
        (Method::GET, "/api/v1/credentials".into(), None),
        (
            Method::POST,
            "/api/v1/credentials".into(),
            Some(credential_body(
                "erroring",
                "E",
                json!({"k": "err-route-secret"}),
            )),
        ),
        (
            Method::PATCH,
            format!("/api/v1/credentials/{id}"),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/credentials/{id}"), None),
        (Method::GET, "/api/v1/audit".into(), None),
    ]
}

fn call(api: &Api<'_>, method: &Method, path: &str, body: Option<&Value>) -> Reply {
    let body = body.map(|body| {
        (
            "application/json",
            serde_json::to_vec(body).expect("serialize"),
        )
    });
    api.send(method.clone(), path, body)
}

#[test]
fn bad_tokens_are_401_on_every_route() {
    let server = harness::shared();
    let owner = tenant();
    let id = create_credential(
        &api_for(server, owner, "integration_admin"),
        &credential_body("erroring", "E", json!({"k": "err-401"})),
    );
    let now = coffer_tests::fixtures::now();
    let bad_tokens: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("not-a-jwt".into())),
        ("two segments", Some("abc.def".into())),
        ("empty segments", Some("..".into())),
        (
            "header not JSON",
            Some("bm90LWpzb24.eyJzdWIiOiJ4In0.c2ln".into()),
        ),
        (
            "wrong secret",
            Some(TokenBuilder::new(owner, "integration_admin").sign_with("another-secret-0000")),
        ),
        (
            "expired",
            Some(
                TokenBuilder::new(owner, "integration_admin")
                    .claim("exp", json!(now - 3600))
                    .sign(),
            ),
        ),
        (
            "not yet valid",
            Some(
                TokenBuilder::new(owner, "integration_admin")
                    .claim("nbf", json!(now + 3600))
                    .sign(),
            ),
        ),
        (
            "no sub",
            Some(
                TokenBuilder::new(owner, "integration_admin")
                    .without("sub")
                    .sign(),
            ),
        ),
        (
            "no exp",
            Some(
                TokenBuilder::new(owner, "integration_admin")
                    .without("exp")
                    .sign(),
            ),
        ),
        (
            "no tenant_id",
            Some(
                TokenBuilder::new(owner, "integration_admin")
                    .without("tenant_id")
                    .sign(),
            ),
        ),
    ];
    for (what, bad) in &bad_tokens {
        let api = match bad {
            Some(bad) => Api::new(server, bad.clone()),
            None => Api::anonymous(server),
        }
        .header("x-tenantid", owner.to_string());
        for (method, path, body) in routes(&id) {
            let reply = call(&api, &method, &path, body.as_ref());
            assert_error(&reply, 401, "AUTHENTICATION_FAILED");
            assert!(
                !reply.text.contains("err-route-secret"),
                "{what} {method} {path}"
            );
        }
    }
    // The record is untouched by all of that.
    let details = api_for(server, owner, "integration_viewer").get(&format!(
        "/api/v1/credentials/erroring/details?credentialId={id}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(details.body["data"]["version"], 1);
    assert_not_logged(server, &["err-401", "err-route-secret", HS256_SECRET]);
}

#[test]
fn tenant_header_is_required_a_uuid_and_one_of_the_tokens() {
    let server = harness::shared();
    let owner = tenant();
    let other = tenant();
    let id = create_credential(
        &api_for(server, owner, "integration_admin"),
        &credential_body("erroring", "E", json!({"k": "err-tenant"})),
    );
    let admin = Api::new(server, token(owner, "integration_admin"));
    for (method, path, body) in routes(&id) {
        let missing = call(&admin, &method, &path, body.as_ref());
        assert_invalid(&missing, "x-tenantid");
        let not_uuid = admin.clone().header("x-tenantid", "acme-corp");
        let reply = call(&not_uuid, &method, &path, body.as_ref());
        assert_invalid(&reply, "x-tenantid");
        let foreign = admin.clone().header("x-tenantid", other.to_string());
        let reply = call(&foreign, &method, &path, body.as_ref());
        assert_error(&reply, 403, "INSUFFICIENT_PERMISSIONS");
    }
    // A tenant listed in the token's `tenants` is accepted.
    let member = TokenBuilder::new(other, "integration_admin")
        .claim("tenants", json!([owner.to_string()]))
        .sign();
    let member = Api::new(server, member).header("x-tenantid", owner.to_string().to_uppercase());
    let details = member.get(&format!(
        "/api/v1/credentials/erroring/details?credentialId={id}"
    ));
    assert_eq!(details.status, 200, "{}", details.text);
    assert_not_logged(server, &["err-tenant"]);
}

#[test]
fn bad_path_and_query_parameters_are_400_naming_them() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let long = "a".repeat(129);
    for slug in [
        "-leading-dash",
        "has%20space",
        "semi%3Bcolon",
        "dollar$",
        long.as_str(),
    ] {
        let reply = api.get(&format!("/api/v1/credentials/{slug}/details"));
        assert_invalid(&reply, "integrationId");
        let reply = api.get(&format!("/api/v1/credentials/{slug}"));
        assert_invalid(&reply, "integrationId");
        let reply = api.get(&format!("/api/v1/credentials?integrationId={slug}"));
        assert_invalid(&reply, "integrationId");
    }
    for id in [
        "not-a-uuid",
        "cred-123",
        "cred-",
        "550e8400-e29b-41d4-a716-44665544000",
        "550e8400e29b41d4a716446655440001zz",
    ] {
        let reply = api.get(&format!(
            "/api/v1/credentials/jira/details?credentialId={id}"
        ));
        assert_invalid(&reply, "credentialId");
        let reply = api.get(&format!("/api/v1/credentials/jira?credentialId={id}"));
        assert_invalid(&reply, "credentialId");
        let reply = api.patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"description": "x"}),
        );
        assert_invalid(&reply, "credentialId");
        let reply = api.delete(&format!("/api/v1/credentials/{id}"));
        assert_invalid(&reply, "credentialId");
        let reply = api.get(&format!("/api/v1/audit?credentialId={id}"));
        assert_invalid(&reply, "credentialId");
    }
    for limit in ["0", "101", "-1", "abc", "1.5", ""] {
        let reply = api.get(&format!("/api/v1/credentials?limit={limit}"));
        assert_invalid(&reply, "limit");
        let reply = api.get(&format!("/api/v1/audit?limit={limit}"));
        assert_invalid(&reply, "limit");
    }
    for limit in ["1", "100"] {
        let reply = api.get(&format!("/api/v1/credentials?limit={limit}"));
        assert_eq!(reply.status, 200, "limit {limit}: {}", reply.text);
    }
    for status in ["enabled", "ACTIVE ", "deleted"] {
        let reply = api.get(&format!("/api/v1/credentials?status={status}"));
        assert_invalid(&reply, "status");
    }
    for cursor in ["garbage", "eyJzIjoieCJ9"] {
        let reply = api.get(&format!("/api/v1/credentials?cursor={cursor}"));
        assert_invalid(&reply, "cursor");
        let reply = api.get(&format!("/api/v1/audit?cursor={cursor}"));
        assert_invalid(&reply, "cursor");
    }
}

#[test]
fn create_bodies_with_unknown_fields_or_wrong_types_are_400_naming_the_field() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let secret = json!({"accessToken": "sk-live-create-400"});
    let base = credential_body("hubspot", "HubSpot", secret);
    let cases: Vec<(&str, Value)> = vec![
        ("accessTokn", json!("typo")),
        ("tenantId", json!(owner.to_string())),
        ("id", json!("cred-550e8400-e29b-41d4-a716-446655440001")),
        ("status", json!("active")),
        ("version", json!(7)),
        ("integrationId", json!(42)),
        ("integrationId", json!("Bad Slug")),
        ("credentialName", json!(5)),
        ("credentialName", json!("")),
        ("credentialName", json!("n".repeat(201))),
        ("description", json!(["list"])),
        ("description", json!("d".repeat(2001))),
        ("authType", json!("magic")),
        ("authType", json!(1)),
        ("scopes", json!("read write")),
        ("scopes", json!([1, 2])),
        ("scopes", json!(vec!["s"; 101])),
        ("scopes", json!(["s".repeat(201)])),
        ("tokenEndpoint", json!(true)),
        ("tokenEndpoint", json!("ftp://example.com/token")),
        (
            "authorizationEndpoint",
            json!({"url": "https://example.com"}),
        ),
        ("metadata", json!(["not", "an", "object"])),
        ("metadata", json!("text")),
        ("metadata", json!({"blob": "m".repeat(17 * 1024)})),
        ("expiresAt", json!("yesterday")),
        ("expiresAt", json!(1_752_153_300_000_u64)),
        ("expiresAt", json!("2025-07-10 14:15:00")),
        ("credentials", json!("sk-live-create-400")),
        ("credentials", json!(["sk-live-create-400"])),
        ("credentials", Value::Null),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value.clone();
        let reply = api.post("/api/v1/credentials", &body);
        assert_invalid(&reply, field);
        assert!(
            !reply.text.contains("sk-live-create-400"),
            "{field}={value}: {}",
            reply.text
        );
    }
    for field in ["integrationId", "credentialName", "credentials"] {
        let mut body = base.clone();
        body.as_object_mut().expect("object").remove(field);
        let reply = api.post("/api/v1/credentials", &body);
        assert_invalid(&reply, field);
        assert!(!reply.text.contains("sk-live-create-400"));
    }
    for (raw, what) in [
        (
            r#"{"credentials": {"accessToken": "sk-live-create-400"}, "#,
            "truncated JSON",
        ),
        (r#"["sk-live-create-400"]"#, "an array"),
        (r#""sk-live-create-400""#, "a string"),
        ("", "empty"),
        (
            r#"{"credentials": {"accessToken": "sk-live-create-400"}} trailing"#,
            "trailing",
        ),
    ] {
        let reply = api.send(
            Method::POST,
            "/api/v1/credentials",
            Some(("application/json", raw.as_bytes().to_vec())),
        );
        assert_error(&reply, 400, "INVALID_PARAMETERS");
        assert!(
            !reply.text.contains("sk-live-create-400"),
            "{what}: {}",
            reply.text
        );
    }
    let list = api.get("/api/v1/credentials");
    assert_eq!(
        list.body["data"]["items"],
        json!([]),
        "a refused create stored something"
    );
    assert_not_logged(server, &["sk-live-create-400"]);
}

#[test]
fn patch_bodies_are_validated_the_same_way() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &api,
        &credential_body("hubspot", "HubSpot", json!({"k": "sk-live-patch-orig"})),
    );
    let path = format!("/api/v1/credentials/{id}");
    let empty = api.patch(&path, &json!({}));
    assert_error(&empty, 400, "INVALID_PARAMETERS");
    let cases: Vec<(&str, Value)> = vec![
        ("bogus", json!(1)),
        ("integrationId", json!("moved")),
        ("authType", json!("basic")),
        ("id", json!("x")),
        ("credentialName", json!("")),
        ("scopes", json!({"a": 1})),
        ("metadata", json!(3)),
        ("expiresAt", json!("soon")),
        ("status", json!("paused")),
        ("status", json!(1)),
        ("credentials", json!("sk-live-patch-400")),
    ];
    for (field, value) in cases {
        let body = json!({
            field: value,
            "credentials": if field == "credentials" { value.clone() } else { json!({"k": "sk-live-patch-400"}) },
        });
        let reply = api.patch(&path, &body);
        assert_invalid(&reply, field);
        assert!(
            !reply.text.contains("sk-live-patch-400"),
            "{field}: {}",
            reply.text
        );
    }
    // Nothing changed: still version 1 and the original secret.
    let read = api.get(&format!("/api/v1/credentials/hubspot?credentialId={id}"));
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["data"]["version"], 1);
    assert_eq!(
        read.body["data"]["credentials"],
        json!({"k": "sk-live-patch-orig"})
    );
    assert_not_logged(server, &["sk-live-patch-400", "sk-live-patch-orig"]);
}

#[test]
fn oversized_bodies_and_secrets_are_413_and_the_64_kib_limit_is_inclusive() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let marker = "sk-live-huge-413";
    // A body over 80 KiB, refused before parsing.
    let huge = json!({
        "integrationId": "huge",
        "credentialName": "Huge",
        "credentials": {"k": marker, "pad": "p".repeat(81 * 1024)},
    });
    let reply = api.post("/api/v1/credentials", &huge);
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert!(!reply.text.contains(marker));
    // Not even JSON: still 413, since it is refused before parsing.
    let junk = vec![b'x'; 81 * 1024];
    let reply = api.send(
        Method::POST,
        "/api/v1/credentials",
        Some(("application/json", junk)),
    );
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");

    // `credentials` whose compact JSON is exactly 64 KiB: accepted.
    // `{"k":"` + value + `"}` is 8 bytes of framing.
    let at_limit = json!({"k": "a".repeat(64 * 1024 - 8)});
    assert_eq!(serde_json::to_string(&at_limit).expect("json").len(), 65536);
    let mut body = credential_body("huge", "At limit", at_limit.clone());
    let reply = api.post("/api/v1/credentials", &body);
    assert_eq!(
        reply.status,
        201,
        "{}",
        &reply.text[..reply.text.len().min(300)]
    );
    let id = coffer_tests::fixtures::bare_id(&reply.body["data"]["id"]);
    let read = api.get(&format!("/api/v1/credentials/huge?credentialId={id}"));
    assert_eq!(read.status, 200);
    assert_eq!(read.body["data"]["credentials"], at_limit);

    // One byte more (with a marker inside), under the 80 KiB body limit: 413.
    let over = json!({"k": format!("{marker}{}", "a".repeat(64 * 1024 - 7 - marker.len()))});
    assert_eq!(serde_json::to_string(&over).expect("json").len(), 65537);
    body["credentials"] = over.clone();
    let reply = api.post("/api/v1/credentials", &body);
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert!(!reply.text.contains(marker));
    let reply = api.patch(
        &format!("/api/v1/credentials/{id}"),
        &json!({"credentials": over}),
    );
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert!(!reply.text.contains(marker));
    let reply = api.patch(&format!("/api/v1/credentials/{id}"), &huge["credentials"]);
    assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert_not_logged(server, &[marker]);
}

#[test]
fn bodies_that_are_not_json_are_415() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let id = create_credential(
        &api,
        &credential_body("mediatype", "M", json!({"k": "sk-live-415-a"})),
    );
    let body = serde_json::to_vec(&credential_body(
        "mediatype",
        "M",
        json!({"k": "sk-live-415-b"}),
    ))
    .expect("json");
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ] {
        for (method, path) in [
            (Method::POST, "/api/v1/credentials".to_string()),
            (Method::PATCH, format!("/api/v1/credentials/{id}")),
        ] {
            let reply = api.send(method.clone(), &path, Some((content_type, body.clone())));
            assert_error(&reply, 415, "UNSUPPORTED_MEDIA_TYPE");
            assert!(
                !reply.text.contains("sk-live-415-b"),
                "{method} {content_type}"
            );
        }
    }
    // No content type at all.
    let reply = api.send(Method::POST, "/api/v1/credentials", None);
    assert_error(&reply, 415, "UNSUPPORTED_MEDIA_TYPE");
    // Parameters and letter case of the media type are fine.
    let reply = api.send(
        Method::POST,
        "/api/v1/credentials",
        Some(("Application/JSON; charset=utf-8", body)),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_not_logged(server, &["sk-live-415-a", "sk-live-415-b"]);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    for path in [
        "/api/v1/nope",
        "/api/v1/credentials/a/b/c",
        "/api/v2/credentials",
        "/api/v1/credentials/jira/details/extra",
        "/",
    ] {
        let reply = api.get(path);
        assert_error(&reply, 404, "NOT_FOUND");
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
    }
    let cases = [
        (Method::PUT, "/api/v1/credentials", &["GET", "POST"][..]),
        (Method::DELETE, "/api/v1/credentials", &["GET", "POST"][..]),
        (
            Method::POST,
            "/api/v1/credentials/jira/details",
            &["GET"][..],
        ),
        (Method::DELETE, "/api/v1/audit", &["GET"][..]),
        (
            Method::PUT,
            "/api/v1/credentials/jira",
            &["GET", "PATCH", "DELETE"][..],
        ),
        (
            Method::POST,
            "/api/v1/credentials/jira",
            &["GET", "PATCH", "DELETE"][..],
        ),
    ];
    for (method, path, expected) in cases {
        let reply = api.send(method.clone(), path, None);
        assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
        let allow = reply
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_string()).collect();
        allowed.sort();
        let mut expected: Vec<String> = expected.iter().map(ToString::to_string).collect();
        expected.sort();
        assert_eq!(allowed, expected, "{method} {path}");
    }
}

#[test]
fn missing_records_are_404_credential_not_found() {
    let server = harness::shared();
    let owner = tenant();
    let api = api_for(server, owner, "integration_admin");
    let unknown = uuid::Uuid::new_v4();
    let reply = api.get("/api/v1/credentials/never-stored/details");
    assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND");
    assert!(
        reply.body["error"]["details"]
            .as_str()
            .is_some_and(|d| d.contains("never-stored")),
        "{}",
        reply.text
    );
    let reply = api.get("/api/v1/credentials/never-stored");
    assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND");
    for path in [
        format!("/api/v1/credentials/jira/details?credentialId={unknown}"),
        format!("/api/v1/credentials/jira?credentialId=cred-{unknown}"),
    ] {
        let reply = api.get(&path);
        assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND");
    }
    let reply = api.patch(
        &format!("/api/v1/credentials/{unknown}"),
        &json!({"description": "x"}),
    );
    assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND");
    let reply = api.delete(&format!("/api/v1/credentials/cred-{unknown}"));
    assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND");
    // If-Match on a missing record is still a 404, not a 412.
    let reply = api
        .clone()
        .header("if-match", "\"1\"")
        .delete(&format!("/api/v1/credentials/{unknown}"));
    assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND");
}
