// Whether `wrangler.toml` puts a secret in plain `[vars]`.
//
// At run time a secret and a plain variable are both strings on `env`:
// the Worker cannot tell them apart. The build script (`worker/build.rs`,
// which `include!`s this file) reads the `wrangler.toml` being deployed
// instead, and the Worker warns once per isolate when a secret is there.

/// Bindings that must be set with `wrangler secret put`, never in `[vars]`.
const SECRETS: [&str; 2] = ["COFFER_KEYS", "AUTH_HS256_SECRET"];

/// The secrets that `wrangler_toml` names in a `[vars]` table, top-level or
/// of any `[env.<name>]`, in the order of `SECRETS`. A file that does not
/// parse names none (wrangler itself refuses it).
pub(crate) fn secrets_in_plain_vars(wrangler_toml: &str) -> Vec<&'static str> {
    let Ok(config) = wrangler_toml.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut tables: Vec<&toml::Table> = config
        .get("vars")
        .and_then(toml::Value::as_table)
        .into_iter()
        .collect();
    if let Some(envs) = config.get("env").and_then(toml::Value::as_table) {
        tables.extend(
            envs.values()
                .filter_map(|env| env.get("vars").and_then(toml::Value::as_table)),
        );
    }
    SECRETS
        .into_iter()
        .filter(|name| tables.iter().any(|vars| vars.contains_key(*name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::secrets_in_plain_vars as found;

    #[test]
    fn secrets_in_any_vars_table_are_found() {
        let cases: [(&str, &[&str]); 7] = [
            ("[vars]\nCORS_ALLOWED_ORIGINS = \"\"\n", &[]),
            ("[vars]\nCOFFER_KEYS = \"k1:AAAA\"\n", &["COFFER_KEYS"]),
            (
                "vars = { AUTH_HS256_SECRET = \"x\", COFFER_KEYS = \"y\" }\n",
                &["COFFER_KEYS", "AUTH_HS256_SECRET"],
            ),
            (
                "[env.production.vars]\nCOFFER_KEYS = \"k\"\n",
                &["COFFER_KEYS"],
            ),
            // Named elsewhere (a comment, another table) is not in [vars].
            (
                "# COFFER_KEYS = \"k\"\n[vars]\nA = \"1\"\n[other]\nCOFFER_KEYS = 1\n",
                &[],
            ),
            ("not = [valid toml", &[]),
            ("", &[]),
        ];
        for (toml, expected) in cases {
            assert_eq!(found(toml), expected, "{toml}");
        }
    }

    /// The repository's own configuration keeps every secret out of [vars].
    #[test]
    fn the_shipped_wrangler_toml_has_no_secret_in_vars() {
        let shipped = include_str!("../../wrangler.toml");
        assert_eq!(found(shipped), Vec::<&str>::new());
    }
}
