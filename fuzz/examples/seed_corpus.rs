//! Writes the seed corpus under `fuzz/corpus/<target>/`: a handful of small,
//! meaningful inputs per target. The fuzzer's own finds are not committed.
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
//! ```
use std::{fs, path::Path};

use coffer_fuzz::{frame_open_input, key_text, keys_value, reference, reference_tenant_key};

const UUID: &str = "550e8400-e29b-41d4-a716-446655440001";
const OTHER_UUID: &str = "550e8400-e29b-41d4-a716-446655440002";
/// 2024-03-27T00:00:00Z, the claims target's default `now`, in seconds.
const NOW: i64 = 1_711_497_600;

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create the corpus directory");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

fn main() {
    for (name, text) in [
        ("tenant", UUID.to_owned()),
        ("tenant-upper", UUID.to_uppercase()),
        ("credential-prefixed", format!("cred-{UUID}")),
        ("integration", "servicenow-prod-001".to_owned()),
        ("integration-mixed-case", "ServiceNow.Prod_001".to_owned()),
        ("role", "integration_admin".to_owned()),
        ("status", "revoked".to_owned()),
        ("auth-type", "oauth2_client_credentials".to_owned()),
        ("api-version", "2024-03-27".to_owned()),
        ("page-limit", "100".to_owned()),
        ("page-limit-padded", "007".to_owned()),
    ] {
        write("ids", name, text);
    }

    for (name, text) in [
        ("utc-millis", "2025-07-10T13:15:00.000Z"),
        ("offset-nanos", "2025-07-10T15:15:00.123456789+02:00"),
        ("leap-second", "2016-12-31T23:59:60Z"),
        ("year-9999", "9999-12-31T23:59:59.999Z"),
        ("year-0-offset", "0000-01-01T00:30:00+01:00"),
    ] {
        write("timestamp", name, text);
    }

    write("keyring", "one-key", format!("k1:{}", key_text(0x11)));
    write("keyring", "rotated", keys_value());
    write(
        "keyring",
        "whitespace",
        format!(
            " dev-20250710 : {} ,\n old : {}\n",
            key_text(1),
            key_text(2)
        ),
    );
    write(
        "keyring",
        "duplicate",
        format!("a:{k},a:{k}", k = key_text(3)),
    );

    for (name, retired) in [("active", false), ("retired", true)] {
        let sealed = reference(retired);
        write(
            "open",
            name,
            frame_open_input(&sealed.wrapped_dek, &sealed.blob),
        );
    }
    let sealed = reference(false);
    write(
        "open",
        "truncated-blob",
        frame_open_input(&sealed.wrapped_dek, &sealed.blob[..20]),
    );

    for (name, retired) in [("active", false), ("retired", true)] {
        let (wrapped, sealed) = reference_tenant_key(retired);
        let mut input = frame_open_input(&wrapped.wrapped, &wrapped.kv_half);
        input.extend_from_slice(&sealed.wrapped_dek);
        input.extend_from_slice(&sealed.blob);
        write("tenant_key", name, input);
    }
    let (wrapped, sealed) = reference_tenant_key(false);
    let mut input = frame_open_input(&wrapped.wrapped[..40], &wrapped.kv_half);
    input.extend_from_slice(&sealed.wrapped_dek);
    write("tenant_key", "truncated-tenant-key", input);
    let (other, _) = reference_tenant_key(true);
    let mut input = frame_open_input(&wrapped.wrapped, &other.kv_half);
    input.extend_from_slice(&sealed.wrapped_dek);
    input.extend_from_slice(&sealed.blob);
    write("tenant_key", "foreign-kv-half", input);

    // Header bytes feed the seed, binding and flags through `arbitrary`; the
    // rest is the plaintext.
    let header = |fill: u8| [fill; 49];
    for (name, fill, plaintext) in [
        ("empty", 0x00, &b""[..]),
        (
            "secret",
            0x01,
            &br#"{"accessToken":"at-123","refreshToken":"rt-456"}"#[..],
        ),
        ("binary", 0xfe, &[0x00, 0xff, 0x80, 0x7f][..]),
    ] {
        let mut input = header(fill).to_vec();
        input.extend_from_slice(plaintext);
        write("seal_roundtrip", name, input);
    }

    let claims = |flags: u8, json: String| {
        let mut input = vec![flags];
        input.extend_from_slice(json.as_bytes());
        input
    };
    write(
        "claims",
        "minimal",
        claims(
            0,
            format!(
                r#"{{"sub":"user-1","tenant_id":"{UUID}","exp":{}}}"#,
                NOW + 600
            ),
        ),
    );
    write(
        "claims",
        "full",
        claims(
            0x03,
            format!(
                r#"{{"iss":"https://issuer.example","aud":["coffer","other"],"sub":"user-1","tenant_id":"{UUID}","tenants":["{OTHER_UUID}","{UUID}"],"roles":["integration_user","offline_access"],"realm_access":{{"roles":["integration_admin"]}},"exp":{},"nbf":{},"iat":{NOW}.5,"name":"Ada","email":"ada@example.com","tenant_name":"Acme"}}"#,
                NOW + 600,
                NOW - 10
            ),
        ),
    );
    write(
        "claims",
        "scoped",
        claims(
            0x04,
            format!(
                r#"{{"sub":"user-1","tenant_id":"{UUID}","tenants":["{OTHER_UUID}"],"exp":{}}}"#,
                NOW + 600
            ),
        ),
    );
    write(
        "claims",
        "expired",
        claims(
            0,
            format!(
                r#"{{"sub":"user-1","tenant_id":"{UUID}","exp":{}}}"#,
                NOW - 61
            ),
        ),
    );
    let mut explicit_now = vec![0x80];
    explicit_now.extend_from_slice(&(NOW * 1000).to_be_bytes());
    explicit_now.extend_from_slice(
        format!(r#"{{"sub":"s","tenant_id":"{UUID}","exp":1e10,"aud":"coffer"}}"#).as_bytes(),
    );
    write("claims", "explicit-now", explicit_now);

    write(
        "bodies",
        "create",
        r#"{"integrationId":"servicenow-prod-001","credentialName":"ServiceNow Production","description":"Prod instance","authType":"oauth2_bearer","scopes":["read","write"],"tokenEndpoint":"https://auth.example/token","metadata":{"region":"eu","tier":2},"expiresAt":"2030-01-01T00:00:00Z","credentials":{"accessToken":"at-123","refreshToken":"rt-456","expiresIn":3600,"ratio":0.1,"nested":{"list":[1,-2.5e-3,null,true]}}}"#,
    );
    write(
        "bodies",
        "patch",
        r#"{"credentialName":"Renamed","description":null,"status":"inactive","expiresAt":null,"credentials":{"apiKey":"k-\u00e9\ud83d\ude00"}}"#,
    );
    write("bodies", "not-an-object", r#"["credentials",{"a":1}]"#);
    // Regression seed: numbers serde_json used to parse one ulp off.
    write(
        "bodies",
        "float-precision",
        r#"{"credentials":{"a":-2.5e33,"b":8.533e+68,"c":9.9538452227e-280,"d":1e23}}"#,
    );
}
