//! Tells the Worker which secrets the `wrangler.toml` it is built with puts
//! in plain `[vars]` (see `src/plain_vars.rs`), as `COFFER_SECRETS_IN_VARS`
//! (comma-separated, empty when none).
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
}
