//! Build-time inputs of the Worker:
//!
//! - which secrets the `wrangler.toml` it is built with puts in plain
//!   `[vars]` (see `src/plain_vars.rs`), as `COFFER_SECRETS_IN_VARS`
//!   (comma-separated, empty when none);
//! - `src/openapi.json` (kept pretty for people and diffs) minified into
//!   `$OUT_DIR/openapi.min.json`, the copy the `.wasm` embeds and serves.
#![allow(unreachable_pub, dead_code)]

include!("src/plain_vars.rs");

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wrangler.toml");
    println!("cargo:rerun-if-changed={path}");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    println!(
        "cargo:rustc-env=COFFER_SECRETS_IN_VARS={}",
        secrets_in_plain_vars(&text).join(",")
    );

    let openapi = concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi.json");
    println!("cargo:rerun-if-changed={openapi}");
    let pretty = std::fs::read_to_string(openapi).expect("read src/openapi.json");
    // `preserve_order` keeps the members in the order they are written.
    let document: serde_json::Value =
        serde_json::from_str(&pretty).expect("src/openapi.json is JSON");
    let minified = serde_json::to_string(&document).expect("serialize openapi.json");
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(format!("{out}/openapi.min.json"), minified).expect("write openapi.min.json");
}
