//! The Coffer Console (`/console/`) in real browsers: headless Chromium and
//! headless Firefox over WebDriver, against a real `wrangler dev`, with a
//! recording proxy between the browser and the Worker so the test sees
//! every request the browser made and every response it received.
//!
//! Canary values are planted in every secret (through the API and typed in
//! the browser); none may reach the DOM, the browser's storage or any
//! response the browser received, and the Worker's request log must show
//! no decrypted-read route for the run's tenants. Only after those checks
//! does the test read secrets back through the API, to prove the secrets
//! typed in the browser were stored as typed.
use core::cell::RefCell;
use std::{
    sync::{Mutex, OnceLock},
    time::Instant,
};

use coffer_tests::{
    browser::{Browser, Kind},
    client::Api,
    fixtures::{self, TokenBuilder},
    harness::{self, Server},
    idp::{realm_entry, Idp, Key},
    recorder::Recorder,
};
use serde_json::{json, Value};
use uuid::Uuid;

const REALM: &str = "console-idp";
const CLIENT_ID: &str = "coffer-console";
const AUDIENCE: &str = "coffer-api";
const PAGING: &str = "paging";
const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

/// The server of this binary, with a realm that offers console sign-in
/// through the loopback identity provider.
struct World {
    idp: Idp,
    server: Server,
    /// The tenant the identity provider's tokens act for.
    oidc_tenant: Uuid,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let idp = Idp::start();
        let oidc_tenant = Uuid::new_v4();
        let issuer = idp.url("/realms/console");
        let claims = json!({
            "sub": "oidc-user-1",
            "aud": AUDIENCE,
            "tenant_id": oidc_tenant.to_string(),
            "roles": ["integration_admin"],
            "name": "Olivia Idp",
            "email": "olivia@example.com",
        });
        idp.serve_oidc(
            "/realms/console",
            CLIENT_ID,
            Key::es256("console-k1"),
            claims,
        );
        let mut entry = realm_entry(
            &issuer,
            &idp.url("/realms/console/jwks"),
            AUDIENCE,
            json!([oidc_tenant.to_string()]),
        );
        entry["console_client_id"] = json!(CLIENT_ID);
        let realms = json!({ REALM: entry }).to_string();
        let server = Server::start(&[("AUTH_REALMS", &realms)]);
        World {
            idp,
            server,
            oidc_tenant,
        }
    })
}

/// One browser run at a time: two cores are shared by every agent.
static BROWSERS: Mutex<()> = Mutex::new(());

#[test]
fn console_headers_and_sign_in_configuration() {
    let world = world();
    let server = &world.server;
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let get = |path: &str| client.get(server.url(path)).send().expect("request");

    let page = get("/console/");
    assert_eq!(page.status(), 200);
    let header = |response: &reqwest::blocking::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    let idp_origin = world.idp.url("");
    assert_eq!(
        header(&page, "content-security-policy"),
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self' {idp_origin}; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'"
        )
    );
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    let html = page.text().expect("page");
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "no inline script");

    // The static files carry the headers of console/_headers.
    for (path, kind) in [
        ("/console/app.js", "javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let asset = get(path);
        assert_eq!(asset.status(), 200, "{path}");
        assert!(header(&asset, "content-type").contains(kind), "{path}");
        let csp = header(&asset, "content-security-policy");
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(
            header(&asset, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&asset, "referrer-policy"), "no-referrer", "{path}");
    }

    let redirect = get("/console");
    assert_eq!(redirect.status(), 308);
    assert_eq!(header(&redirect, "location"), "/console/");

    let config: Value = get("/console/config.json").json().expect("config");
    assert_eq!(
        config,
        json!({"realms": [{
            "name": REALM,
            "issuer": world.idp.url("/realms/console"),
            "clientId": CLIENT_ID,
            "audience": AUDIENCE,
        }]})
    );

    // The budget: 60 KB gzipped (scripts/build-console.sh enforces it too).
    let script = harness::root().join("console/dist/console/app.js");
    let gzipped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -9 -c '{}' | wc -c", script.display()))
        .output()
        .expect("gzip");
    let bytes: usize = String::from_utf8_lossy(&gzipped.stdout)
        .trim()
        .parse()
        .expect("size");
    println!("console app.js: {bytes} bytes gzipped");
    assert!(bytes <= 60 * 1024, "app.js is {bytes} bytes gzipped");
}

#[test]
fn console_in_chromium() {
    run(Kind::Chromium);
}

#[test]
fn console_in_firefox() {
    run(Kind::Firefox);
}

/// What one run plants and checks.
struct Run<'w> {
    world: &'w World,
    browser: Browser,
    proxy: Recorder,
    tenant: Uuid,
    /// Every secret value planted in this run.
    canaries: RefCell<Vec<String>>,
    /// The secret typed into the create form, then the one that replaced it.
    secret_typed: RefCell<Option<String>>,
    secret_replaced: RefCell<Option<String>>,
}

fn canary(what: &str) -> String {
    format!("canary-{what}-{}", Uuid::new_v4().simple())
}

fn run(kind: Kind) {
    let _one_at_a_time = BROWSERS.lock().unwrap_or_else(|e| e.into_inner());
    let world = world();
    let server = &world.server;
    let started = Instant::now();
    let tenant = Uuid::new_v4();
    let admin = fixtures::api_for(server, tenant, "integration_admin");
    let mut canaries = Vec::new();

    // 45 records of one integration, two of others, one inactive, one
    // shared with the tenant by another: every secret a canary.
    let mut paging = Vec::new();
    for n in 0..45 {
        let secret = canary("seed");
        let body = json!({
            "integrationId": PAGING, "credentialName": format!("Paging record {n:02}"),
            "authType": "oauth2_bearer", "credentials": {"accessToken": secret},
            "expiresAt": rfc3339(fixtures::now() + 3 * 3600 + n),
        });
        paging.push(fixtures::create_credential(&admin, &body));
        canaries.push(secret);
    }
    let xss_secret = canary("xss");
    let xss = fixtures::create_credential(
        &admin,
        &json!({
            "integrationId": "xss", "credentialName": XSS_NAME,
            "description": "<script>alert(2)</script>",
            "metadata": {"note": "<img src=x onerror=alert(3)>"},
            "credentials": {"apiKey": xss_secret},
        }),
    );
    canaries.push(xss_secret);
    let inactive_secret = canary("inactive");
    let inactive = fixtures::create_credential(
        &admin,
        &fixtures::credential_body("dormant", "Dormant", json!({"k": inactive_secret})),
    );
    canaries.push(inactive_secret);
    let reply = admin.patch(
        &format!("/api/v1/credentials/{inactive}"),
        &json!({"status": "inactive"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let other = Uuid::new_v4();
    let other_admin = fixtures::api_for(server, other, "integration_admin");
    let shared_secret = canary("shared");
    let shared = fixtures::create_credential(
        &other_admin,
        &fixtures::credential_body("partner-api", "From a partner", json!({"t": shared_secret})),
    );
    canaries.push(shared_secret);
    fixtures::share(server, other, &shared, tenant);

    let proxy = Recorder::start(&server.url(""));
    let browser = Browser::start(kind);
    let run = Run {
        world,
        browser,
        proxy,
        tenant,
        canaries: RefCell::new(canaries),
        secret_typed: RefCell::new(None),
        secret_replaced: RefCell::new(None),
    };
    let admin_token = fixtures::token(tenant, "integration_admin");

    run.sign_in_screen(&admin_token);
    run.list_filter_and_page(&paging, &inactive, &shared);
    run.xss(&xss);
    let created = run.create();
    run.edit_replace_secret_and_lost_write(&created);
    run.share(&created, other);
    let doomed = &paging[7];
    run.revoke_and_delete(doomed);
    run.audit_log(&created, doomed);
    run.narrow_screen(&created);
    run.viewer_and_401(&created);
    run.oidc_sign_in();
    run.no_secret_reached_the_browser();
    run.secrets_stored_as_typed(&created);
    println!(
        "console browser run in {}: {:.1} s",
        kind.name(),
        started.elapsed().as_secs_f64()
    );
}

fn rfc3339(seconds: i64) -> String {
    let reply = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{seconds}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&reply.stdout).trim().to_owned()
}

impl Run<'_> {
    fn server(&self) -> &Server {
        &self.world.server
    }

    fn admin(&self) -> Api<'_> {
        fixtures::api_for(self.server(), self.tenant, "integration_admin")
    }

    fn b(&self) -> &Browser {
        &self.browser
    }

    /// Details through the API (metadata only).
    fn details(&self, integration: &str, id: &str) -> coffer_tests::client::Reply {
        self.admin().get(&format!(
            "/api/v1/credentials/{integration}/details?credentialId={id}"
        ))
    }

    /// Every form control on the page has a label.
    fn assert_labelled(&self) {
        let unlabelled = self.b().js(
            "return Array.from(document.querySelectorAll('input, select, textarea'))
               .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
               .map(e => e.name || e.outerHTML);",
            vec![],
        );
        assert_eq!(unlabelled, json!([]), "unlabelled controls");
    }

    /// No canary in the DOM (markup and control values) or in storage.
    fn assert_no_canary_in_page(&self) {
        let seen = self.b().js(
            "const values = Array.from(document.querySelectorAll('input, textarea')).map(e => e.value);
             const storage = [];
             for (const s of [sessionStorage, localStorage])
               for (let i = 0; i < s.length; i++) storage.push(s.key(i), s.getItem(s.key(i)));
             return [document.documentElement.outerHTML, values.join('\\n'), storage.join('\\n')].join('\\n');",
            vec![],
        );
        let seen = seen.as_str().unwrap_or_default();
        for canary in self.canaries.borrow().iter() {
            assert!(
                !seen.contains(canary.as_str()),
                "{canary} reached the page or storage"
            );
        }
    }

    fn wait_results(&self, query: &str) {
        let css = format!("[data-query=\"{query}\"]");
        self.b().find(&css);
    }

    fn listed_ids(&self) -> Vec<String> {
        self.b()
            .find_all("table[data-list=own] tbody tr")
            .iter()
            .filter_map(|row| self.b().attr(row, "data-id"))
            .collect()
    }

    fn open_detail(&self, integration: &str, id: &str) {
        self.b().goto(
            &self
                .proxy
                .url(&format!("/console/#/credential/{integration}/cred-{id}")),
        );
        self.b()
            .find(&format!("[data-screen=credential][data-id=\"cred-{id}\"]"));
    }

    fn field(&self, name: &str) -> String {
        let element = self.b().find(&format!("[data-field={name}]"));
        self.b().text(&element)
    }

    fn wait_field(&self, name: &str, expected: &str) {
        self.b()
            .wait_until(&format!("{name} to read {expected:?}"), || {
                (self.field(name) == expected).then_some(())
            });
    }

    fn sign_in_screen(&self, token: &str) {
        let b = self.b();
        b.goto(&self.proxy.url("/console/"));
        b.find("textarea[name=token]");
        self.assert_labelled();
        b.screenshot("signin");
        b.fill("textarea[name=token]", token);
        b.wait_until("the token's tenant to be offered", || {
            (!b.find_all("select[name=tenant] option").is_empty()).then_some(())
        });
        b.select("select[name=tenant]", &self.tenant.to_string());
        // Keyboard: Tab from the token moves to the tenant, with a visible focus ring.
        let token_box = b.find("textarea[name=token]");
        b.send_keys(&token_box, "\u{E004}");
        let focused = b.js(
            "const e = document.activeElement; const s = getComputedStyle(e);
             return [e.name, s.outlineStyle, s.outlineWidth];",
            vec![],
        );
        assert_eq!(focused[0], json!("tenant"), "Tab order");
        assert_ne!(focused[1], json!("none"), "visible focus");
        assert_ne!(focused[2], json!("0px"), "visible focus");
        b.click_text("Sign in");
        b.find("[data-screen=credentials]");
        let session = b.js("return sessionStorage.getItem('coffer.session');", vec![]);
        let session: Value =
            serde_json::from_str(session.as_str().expect("a session is stored")).expect("json");
        assert_eq!(session["tenant"], json!(self.tenant.to_string()));
        assert_eq!(b.js("return localStorage.length;", vec![]), json!(0));
    }

    fn list_filter_and_page(&self, paging: &[String], inactive: &str, shared: &str) {
        let b = self.b();
        self.wait_results("||1");
        self.assert_labelled();
        // Newest first: the first row is the last record created here (the shared one is not listed).
        let first = self.listed_ids();
        assert_eq!(first.len(), 20);
        assert_eq!(first[0], format!("cred-{inactive}"));
        let api_first: Vec<String> = self.admin().get("/api/v1/credentials").body["data"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(first, api_first, "the list shows the API's first page");
        // Status badges, relative expiry with the exact time on hover.
        let row = b.find(&format!("tr[data-id=\"cred-{}\"]", paging[44]));
        let expiry = b.find(&format!("tr[data-id=\"cred-{}\"] time", paging[44]));
        assert!(b.text(&expiry).starts_with("in 3 h"), "{}", b.text(&expiry));
        assert!(b
            .attr(&expiry, "title")
            .unwrap_or_default()
            .ends_with("UTC"));
        assert!(b.text(&row).contains("active"));
        b.find(&format!("[data-list=shared] li[data-id=\"{shared}\"]"));
        b.screenshot("list");

        // Filter by integration and page through the 45 with the cursor.
        b.fill("input[name=filter-integration]", PAGING);
        b.click_text("Apply filters");
        let mut seen = Vec::new();
        for (page, expected) in [(1, 20), (2, 20), (3, 5)] {
            self.wait_results(&format!("{PAGING}||{page}"));
            let ids = self.listed_ids();
            assert_eq!(ids.len(), expected, "page {page}");
            seen.extend(ids);
            let next = b.find_text("Next page");
            if page < 3 {
                b.click(&next);
            } else {
                assert_eq!(b.attr(&next, "disabled").as_deref(), Some("true"));
            }
        }
        let mut expected: Vec<String> =
            paging.iter().rev().map(|id| format!("cred-{id}")).collect();
        assert_eq!(seen, expected, "45 records, newest first, each once");
        b.click_text("Previous page");
        self.wait_results(&format!("{PAGING}||2"));
        expected.truncate(40);
        assert_eq!(self.listed_ids(), expected[20..40].to_vec());

        // Filter by status.
        b.fill("input[name=filter-integration]", "");
        b.select("select[name=filter-status]", "inactive");
        b.click_text("Apply filters");
        self.wait_results("|inactive|1");
        assert_eq!(self.listed_ids(), vec![format!("cred-{inactive}")]);
        let badge = b.find(&format!("tr[data-id=\"cred-{inactive}\"] .badge"));
        assert_eq!(b.text(&badge), "inactive");
        b.select("select[name=filter-status]", "");
        b.click_text("Apply filters");
        self.wait_results("||1");

        // Open one: every metadata field, the shared one too (read-only).
        b.click_text("Paging record 44");
        b.find(&format!(
            "[data-screen=credential][data-id=\"cred-{}\"]",
            paging[44]
        ));
        assert_eq!(self.field("integrationId"), PAGING);
        assert_eq!(self.field("authType"), "oauth2_bearer");
        assert_eq!(self.field("version"), "1");
        assert!(self.field("created").contains("Ada Example"));
        b.find("[data-section=shares]");
        b.find("[data-section=audit] tr[data-action=\"credential.create\"]");
        self.assert_labelled();
        self.assert_no_canary_in_page();
        b.screenshot("credential");
        self.open_detail("partner-api", shared);
        assert!(self.field("tenant").contains("shared with this tenant"));
        assert!(
            b.try_find("[data-actions]").is_none(),
            "no actions on a shared record"
        );
        assert!(b.try_find("[data-section=shares]").is_none());
    }

    fn xss(&self, xss: &str) {
        let b = self.b();
        b.goto(&self.proxy.url("/console/#/"));
        b.fill("input[name=filter-integration]", "xss");
        b.click_text("Apply filters");
        self.wait_results("xss||1");
        let link = b.find(&format!("tr[data-id=\"cred-{xss}\"] a"));
        assert_eq!(b.text(&link), XSS_NAME);
        assert!(b.find_all("main img").is_empty(), "no element from a name");
        self.open_detail("xss", xss);
        assert_eq!(b.text(&b.find("h1[data-name]")), XSS_NAME);
        assert_eq!(self.field("description"), "<script>alert(2)</script>");
        assert!(self
            .field("metadata")
            .contains("<img src=x onerror=alert(3)>"));
        assert!(b.find_all("main img, main script").is_empty());
        assert!(!b.alert_open(), "a script from the API ran");
    }

    /// Creates a record in the browser: browser-side validation, the API's
    /// 400 beside its field, then success, checked through the API.
    fn create(&self) -> String {
        let b = self.b();
        b.goto(&self.proxy.url("/console/#/new"));
        b.find("form[data-form=create]");
        self.assert_labelled();
        b.screenshot("create");
        let posts = |proxy: &Recorder| {
            proxy
                .exchanges()
                .iter()
                .filter(|e| e.method == "POST")
                .count()
        };
        let before = posts(&self.proxy);
        b.fill("input[name=integrationId]", "Not Valid");
        b.fill("input[name=credentialName]", "Created in the browser");
        b.click_text("Create credential");
        let error = b.find("[data-field-error=integrationId]");
        assert!(b.text(&error).contains("lowercase"));
        b.find("[data-field-error=credentials]");
        assert_eq!(posts(&self.proxy), before, "refused in the browser");

        let secret = canary("typed");
        b.fill("input[name=integrationId]", "browser-made");
        b.fill("textarea[name=description]", "made by the console test");
        b.select("select[name=authType]", "api_key");
        b.fill("textarea[name=scopes]", "read\nwrite");
        b.fill("input[name=tokenEndpoint]", "ftp://example.com/token");
        b.fill(
            "textarea[name=metadata]",
            r#"{"team": "payments", "n": 1.50}"#,
        );
        b.fill("input[name=expiresAt]", "2031-01-31T12:00:00Z");
        b.fill("input[name=secret-key-0]", "accessToken");
        b.fill("input[name=secret-value-0]", &secret);
        b.click_text("Create credential");
        let error = b.find("[data-field-error=tokenEndpoint]");
        assert!(b.text(&error).contains("http(s) URL"), "{}", b.text(&error));
        assert!(
            self.proxy
                .exchanges()
                .iter()
                .any(|e| e.method == "POST" && e.status == 400),
            "the API's 400"
        );
        b.fill("input[name=tokenEndpoint]", "https://example.com/token");
        b.click_text("Create credential");
        let screen = b.find("[data-screen=credential][data-id]");
        let id = b.attr(&screen, "data-id").expect("id");
        let id = id.strip_prefix("cred-").expect("cred- id").to_owned();
        self.canaries.borrow_mut().push(secret.clone());
        assert_eq!(self.field("scopes"), "read, write");
        assert!(
            self.field("metadata").contains(r#""n":1.50"#),
            "metadata as stored"
        );

        let reply = self.details("browser-made", &id);
        assert_eq!(reply.status, 200, "{}", reply.text);
        let data = &reply.body["data"];
        assert_eq!(data["credentialName"], "Created in the browser");
        assert_eq!(data["authType"], "api_key");
        assert_eq!(data["scopes"], json!(["read", "write"]));
        assert_eq!(data["tokenEndpoint"], "https://example.com/token");
        assert_eq!(data["expiresAt"], "2031-01-31T12:00:00.000Z");
        assert_eq!(data["metadata"], json!({"team": "payments", "n": 1.5}));
        self.assert_no_canary_in_page();
        *self.secret_typed.borrow_mut() = Some(secret);
        id
    }

    fn edit_replace_secret_and_lost_write(&self, id: &str) {
        let b = self.b();
        // Edit metadata.
        b.click_text("Edit metadata");
        b.fill("input[name=credentialName]", "Renamed in the browser");
        b.fill("textarea[name=description]", "edited");
        b.click_text("Save");
        b.wait_for_text("Saved.");
        self.wait_field("version", "2");
        assert_eq!(b.text(&b.find("h1[data-name]")), "Renamed in the browser");
        let data = self.details("browser-made", id).body["data"].clone();
        assert_eq!(data["credentialName"], "Renamed in the browser");
        assert_eq!(data["description"], "edited");
        assert_eq!(data["version"], 2);
        let raw = self.details("browser-made", id).text;
        assert!(
            raw.contains(r#""n":1.50"#),
            "untouched metadata keeps its digits: {raw}"
        );

        // Replace the secret: write-only, never pre-filled.
        b.click_text("Replace secret");
        let value = b.find("input[name=secret-value-0]");
        assert_eq!(b.attr(&value, "type").as_deref(), Some("password"));
        assert_eq!(
            b.js(
                "return document.querySelector('input[name=secret-value-0]').value;",
                vec![]
            ),
            json!("")
        );
        let replaced = canary("replaced");
        b.fill("input[name=secret-key-0]", "accessToken");
        b.fill("input[name=secret-value-0]", &replaced);
        b.click_text("Save new secret");
        b.wait_for_text("Secret replaced");
        self.wait_field("version", "3");
        self.canaries.borrow_mut().push(replaced.clone());
        assert_eq!(self.details("browser-made", id).body["data"]["version"], 3);
        self.assert_no_canary_in_page();
        *self.secret_replaced.borrow_mut() = Some(replaced);

        // A lost write: someone else changes the record; the console's
        // next write gets 412, says so and reloads.
        let reply = self.admin().header("if-match", "\"3\"").patch(
            &format!("/api/v1/credentials/{id}"),
            &json!({"description": "changed elsewhere"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        b.click_text("Set inactive");
        b.wait_for_text("(412)");
        self.wait_field("description", "changed elsewhere");
        self.wait_field("version", "4");
        assert_eq!(
            self.details("browser-made", id).body["data"]["status"],
            "active"
        );
        // Now inactive, then active again.
        b.click_text("Set inactive");
        b.wait_for_text("Set inactive.");
        self.wait_field("version", "5");
        assert_eq!(
            self.details("browser-made", id).body["data"]["status"],
            "inactive"
        );
        b.click_text("Set active");
        b.wait_for_text("Set active.");
        self.wait_field("version", "6");
        assert_eq!(
            self.details("browser-made", id).body["data"]["status"],
            "active"
        );
    }

    fn share(&self, id: &str, partner: Uuid) {
        let b = self.b();
        b.fill("input[name=share-tenant]", "not-a-tenant");
        b.click_text("Grant share");
        b.find("[data-field-error=share-tenant]");
        b.fill("input[name=share-tenant]", &partner.to_string());
        b.click_text("Grant share");
        b.find(&format!(
            "[data-section=shares] li[data-tenant=\"{partner}\"]"
        ));
        b.js("window.scrollTo(0, 0);", vec![]);
        b.screenshot("credential-shared");
        let shares = self.admin().get(&format!("/connection/{id}/shares"));
        assert_eq!(shares.status, 200, "{}", shares.text);
        assert_eq!(
            shares.body["data"][0]["tenant_id"],
            json!(partner.to_string())
        );
        let as_partner = fixtures::api_for(self.server(), partner, "integration_viewer");
        assert_eq!(as_partner.get(&format!("/connection/{id}")).status, 200);

        b.click_text(&format!("Revoke share with {partner}"));
        b.wait_for_text("Not shared with any tenant.");
        let shares = self.admin().get(&format!("/connection/{id}/shares"));
        assert_eq!(shares.body["data"], json!([]));
        assert_eq!(as_partner.get(&format!("/connection/{id}")).status, 404);
    }

    fn revoke_and_delete(&self, id: &str) {
        let b = self.b();
        self.open_detail(PAGING, id);
        let name = b.text(&b.find("h1[data-name]"));
        b.click_text("Revoke");
        let question = b.find("#revoke-q");
        let question = b.text(&question);
        assert!(
            question.contains(&name) && question.contains(id),
            "{question}"
        );
        b.click_text(&format!("Revoke {name}"));
        b.wait_for_text("Revoked.");
        let badge = b.find("[data-screen=credential] .title .badge");
        b.wait_until("the revoked badge", || {
            (b.text(&badge) == "revoked").then_some(())
        });
        assert_eq!(self.details(PAGING, id).body["data"]["status"], "revoked");
        assert!(!b.has_text_control("Edit metadata"), "revoked is final");

        b.click_text("Delete");
        let confirm = b.find_text(&format!("Delete {name}"));
        assert_eq!(b.attr(&confirm, "disabled").as_deref(), Some("true"));
        b.fill("input[name=confirm-delete]", "wrong");
        assert_eq!(b.attr(&confirm, "disabled").as_deref(), Some("true"));
        b.fill("input[name=confirm-delete]", PAGING);
        b.click(&confirm);
        b.find("[data-screen=credentials]");
        assert_eq!(self.details(PAGING, id).status, 404);
    }

    fn audit_log(&self, created: &str, deleted: &str) {
        let b = self.b();
        b.goto(&self.proxy.url("/console/#/audit"));
        b.find("[data-screen=audit] table[data-list=audit] tr[data-action]");
        self.assert_labelled();
        b.screenshot("audit");
        // The tenant has more events than a page (45 creates alone): paged
        // with the API's cursor.
        assert_eq!(
            b.find_all("table[data-list=audit] tr[data-action]").len(),
            50
        );
        b.click_text("Load older events");
        b.wait_until("the next page of events", || {
            (b.find_all("table[data-list=audit] tr[data-action]").len() > 50).then_some(())
        });
        b.fill("input[name=filter-credential]", &format!("cred-{created}"));
        b.click_text("Apply filters");
        b.wait_until("the created record's events", || {
            let actions: Vec<String> = b
                .find_all("table[data-list=audit] tr[data-action]")
                .iter()
                .filter_map(|row| b.attr(row, "data-action"))
                .collect();
            (actions
                == [
                    "share.revoke",
                    "share.grant",
                    "credential.update",
                    "credential.update",
                    "credential.update",
                    "credential.update",
                    "credential.update",
                    "credential.create",
                ])
            .then_some(())
        });
        let api = self
            .admin()
            .get(&format!("/api/v1/audit?credentialId=cred-{created}"));
        assert_eq!(api.body["data"]["items"].as_array().map(Vec::len), Some(8));
        b.select("select[name=filter-action]", "share.grant");
        let rows = b.find_all("table[data-list=audit] tr[data-action]");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            b.attr(&rows[0], "data-action").as_deref(),
            Some("share.grant")
        );
        assert!(b.text(&rows[0]).contains("Ada Example"));

        b.select("select[name=filter-action]", "credential.delete");
        b.fill("input[name=filter-credential]", &format!("cred-{deleted}"));
        b.click_text("Apply filters");
        b.wait_until("the deleted record's delete event", || {
            (b.find_all("table[data-list=audit] tr[data-action=\"credential.delete\"]")
                .len()
                == 1)
                .then_some(())
        });
        let api = self
            .admin()
            .get(&format!("/api/v1/audit?credentialId=cred-{deleted}"));
        assert_eq!(api.body["data"]["items"][0]["action"], "credential.delete");
    }

    /// No sideways scrolling on the list and a credential, narrow and
    /// wide. Chromium's window goes down to 375 CSS px; Firefox's stops at
    /// its minimum window width (500 px headless), which is then checked.
    fn narrow_screen(&self, created: &str) {
        let b = self.b();
        for (width, height) in [(375, 812), (1440, 1100)] {
            b.resize(width, height);
            for path in [
                "/console/#/".to_owned(),
                format!("/console/#/credential/browser-made/cred-{created}"),
            ] {
                b.goto(&self.proxy.url(&path));
                b.find("[data-screen] h1");
                b.find("main table, main dl");
                let fits = b.js(
                    "return [window.innerWidth, document.documentElement.scrollWidth <= document.documentElement.clientWidth];",
                    vec![],
                );
                assert_eq!(fits[1], json!(true), "{path} scrolls sideways at {fits}");
                let inner = fits[0].as_u64().unwrap_or_default();
                let narrowest = match b.kind() {
                    Kind::Chromium => 375,
                    Kind::Firefox => 500,
                };
                if width == 375 {
                    assert!(inner <= narrowest, "{} px wide, not narrow", inner);
                } else {
                    assert!(inner >= 1400, "{inner} px wide, not 1440");
                }
                if width == 375 && path == "/console/#/" {
                    println!("{}: narrow viewport {inner} px", b.kind().name());
                    b.screenshot("list-narrow");
                }
            }
        }
    }

    fn viewer_and_401(&self, created: &str) {
        let b = self.b();
        b.click_text("Sign out");
        b.find("textarea[name=token]");
        assert_eq!(
            b.js("return sessionStorage.getItem('coffer.session');", vec![]),
            Value::Null
        );
        let viewer = fixtures::token(self.tenant, "integration_viewer");
        self.sign_in_screen_quick(&viewer);
        self.wait_results("||1");
        assert!(!b.has_text_control("New credential"));
        assert!(!b.has_text_control("Audit log"));
        self.open_detail("browser-made", created);
        for action in [
            "Edit metadata",
            "Replace secret",
            "Set inactive",
            "Revoke",
            "Delete",
            "Grant share",
        ] {
            assert!(!b.has_text_control(action), "a viewer sees {action}");
        }
        assert!(b.try_find("[data-section=audit]").is_none());
        b.screenshot("viewer");
        b.goto(&self.proxy.url("/console/#/new"));
        b.wait_for_text("Your role does not allow this screen.");

        // A token without a contract role: every action hidden, and the
        // API's 403 reads cleanly.
        b.click_text("Sign out");
        let no_role = TokenBuilder::new(self.tenant, "integration_viewer")
            .claim("roles", json!(["auditor"]))
            .sign();
        self.sign_in_screen_quick(&no_role);
        b.wait_for_text("Your role or tenant does not allow this (403 INSUFFICIENT_PERMISSIONS)");
        assert!(!b.has_text_control("New credential"));

        // 401 mid-session: the stored token stops being accepted (signed
        // with a key the Worker does not know, as after a key rotation).
        let forged = TokenBuilder::new(self.tenant, "integration_viewer")
            .sign_with("a-different-secret-of-at-least-32-bytes!");
        b.js(
            "const s = JSON.parse(sessionStorage.getItem('coffer.session')); s.token = arguments[0];
             sessionStorage.setItem('coffer.session', JSON.stringify(s));",
            vec![json!(forged)],
        );
        b.goto(&self.proxy.url("/console/#/"));
        b.refresh();
        b.find("textarea[name=token]");
        b.wait_for_text("401");
        assert_eq!(
            b.js("return sessionStorage.getItem('coffer.session');", vec![]),
            Value::Null
        );
        assert!(self
            .proxy
            .exchanges()
            .iter()
            .any(|e| e.status == 401 && e.target.starts_with("/api/v1/credentials")));
    }

    fn sign_in_screen_quick(&self, token: &str) {
        let b = self.b();
        b.fill("textarea[name=token]", token);
        b.wait_until("the token's tenant to be offered", || {
            (!b.find_all("select[name=tenant] option").is_empty()).then_some(())
        });
        b.click_text("Sign in");
        b.find("[data-screen=credentials]");
    }

    fn oidc_sign_in(&self) {
        let b = self.b();
        let exchanges = self.world.idp.token_exchanges();
        b.goto(&self.proxy.url("/console/"));
        b.click(&b.find(&format!("button[data-realm=\"{REALM}\"]")));
        b.find("[data-screen=credentials]");
        // The API accepted the realm's token: with no default realm, only
        // a `realmname` header makes it look past HS256.
        self.wait_results("||1");
        assert_eq!(self.world.idp.token_exchanges(), exchanges + 1);
        let who = b.find(".who");
        let who = b.text(&who);
        assert!(
            who.contains(&self.world.oidc_tenant.to_string()) && who.contains(REALM),
            "{who}"
        );
        assert_eq!(
            b.url(),
            self.proxy.url("/console/"),
            "the code is not left in the URL"
        );
        let session = b.js(
            "return JSON.parse(sessionStorage.getItem('coffer.session'));",
            vec![],
        );
        assert_eq!(session["realm"], json!(REALM));
        assert!(self
            .proxy
            .exchanges()
            .iter()
            .any(|e| e.status == 200 && e.target.starts_with("/api/v1/credentials?")));
        b.click_text("Sign out");
        b.find("textarea[name=token]");
    }

    /// No decrypted-read route in the browser's requests or the Worker's
    /// log for this run's tenants, and no canary in any response.
    fn no_secret_reached_the_browser(&self) {
        let exchanges = self.proxy.exchanges();
        assert!(exchanges.len() > 50, "the recorder saw the run");
        for exchange in &exchanges {
            let path = exchange.target.split('?').next().unwrap_or_default();
            let segments: Vec<&str> = path.split('/').collect();
            let decrypted = (segments.len() == 5 && path.starts_with("/api/v1/credentials/"))
                || (segments.len() == 4
                    && segments[1] == "connection"
                    && segments[3] == "credentials");
            assert!(
                !(decrypted && exchange.method == "GET"),
                "the browser called a decrypted-read route: {} {}",
                exchange.method,
                exchange.target
            );
            for canary in self.canaries.borrow().iter() {
                assert!(
                    !exchange.body.contains(canary.as_str()),
                    "{canary} in the response to {} {}",
                    exchange.method,
                    exchange.target
                );
            }
        }
        let _ = self.admin().get("/healthz");
        self.server().log_through_last_request();
        let tenants = [self.tenant.to_string(), self.world.oidc_tenant.to_string()];
        for entry in self.server().log_entries() {
            let route = entry["route"].as_str().unwrap_or_default();
            let tenant = entry["tenant"].as_str().unwrap_or_default();
            assert!(
                !(tenants.contains(&tenant.to_owned())
                    && (route == "CredentialRead" || route == "ConnectionCredentials")),
                "a decrypted read in the Worker's log: {entry}"
            );
        }
    }

    /// After the checks: the secrets typed in the browser were stored as
    /// typed (the only decrypted reads of the run, by the test itself).
    fn secrets_stored_as_typed(&self, created: &str) {
        let user = fixtures::api_for(self.server(), self.tenant, "integration_user");
        let reply = user.get(&format!(
            "/api/v1/credentials/browser-made?credentialId={created}"
        ));
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.body["data"]["credentials"],
            json!({"accessToken": self.secret_replaced.borrow().clone().expect("replaced")})
        );
        assert_ne!(*self.secret_typed.borrow(), *self.secret_replaced.borrow());
    }
}
