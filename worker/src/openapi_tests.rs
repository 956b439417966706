//! Drift test: the served OpenAPI document and the route table describe the
//! same routes. `HEAD` is implicit wherever `GET` is and is not listed.

use alloc::collections::BTreeSet;

use serde_json::Value;

use crate::{router::ROUTES, routes::OPENAPI};

/// The HTTP methods an OpenAPI path item may hold operations under.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

/// Every `(METHOD, path)` the document has an operation for.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths is an object");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in METHODS.iter().filter(|method| item.contains_key(**method)) {
            operations.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    operations
}

fn routed() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(method, path, _)| (method.as_ref().to_string(), (*path).to_string()))
        .collect()
}

#[test]
fn every_route_is_documented_and_every_operation_routed() {
    let documented = documented(&document());
    let routed = routed();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from openapi.json: {undocumented:?}; \
         operations in openapi.json that no route serves: {unrouted:?}"
    );
}

#[test]
fn every_operation_has_an_id_and_the_right_security() {
    let document = document();
    let mut ids = BTreeSet::new();
    for (method, path) in documented(&document) {
        let operation = &document["paths"][&path][method.to_ascii_lowercase()];
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} is repeated");
        let public = path == "/healthz"
            || path == "/openapi.json"
            || path == "/console"
            || path.starts_with("/console/");
        let expected = if public {
            serde_json::json!([])
        } else {
            serde_json::json!([{"JWTBearer": []}])
        };
        assert_eq!(
            operation["security"], expected,
            "security of {method} {path}"
        );
    }
}

#[test]
fn the_shared_credential_path_says_what_its_id_means() {
    let document = document();
    let item = &document["paths"]["/api/v1/credentials/{id}"];
    for (method, meaning) in [
        ("get", "integrationId"),
        ("patch", "credentialId"),
        ("delete", "credentialId"),
    ] {
        let parameters = item[method]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} has parameters"));
        let id = parameters
            .iter()
            .find(|parameter| parameter["name"] == "id" && parameter["in"] == "path")
            .unwrap_or_else(|| panic!("{method} documents the id path parameter"));
        let description = id["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(meaning),
            "{method}'s id should say it is the {meaning}: {description:?}"
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_of_this_version() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
}
