//! The role × tenant matrix of the credentials surface: for every route,
//! the owner tenant, a tenant the record is shared with, and a stranger,
//! each with every role. (Bad tokens and a foreign `x-tenantid` on every
//! route are in `credentials_errors.rs`.)
use coffer_tests::{
    assertions::{assert_error, assert_not_logged},
    client::{Api, Reply},
    fixtures::{api_for, create_credential, credential_body, share, tenant, ROLES},
    harness::{self, Server},
};
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Owner,
    Shared,
    Stranger,
}

const RELATIONS: [Rel; 3] = [Rel::Owner, Rel::Shared, Rel::Stranger];

struct World<'s> {
    server: &'s Server,
    owner: Uuid,
    shared: Uuid,
    stranger: Uuid,
    /// Bare UUID of the owner's record, shared with `shared`.
    id: String,
    secret: String,
}

impl<'s> World<'s> {
    fn new(server: &'s Server) -> Self {
        let owner = tenant();
        let shared = tenant();
        let stranger = tenant();
        let secret = format!("mx-secret-{}", Uuid::new_v4().simple());
        let id = create_credential(
            &api_for(server, owner, "integration_admin"),
            &credential_body("matrix", "Matrix", json!({"token": secret})),
        );
        share(server, owner, &id, shared);
        // Each other tenant has a record of its own under the same
        // integration, which must never be confused with the owner's.
        for other in [shared, stranger] {
            create_credential(
                &api_for(server, other, "integration_admin"),
                &credential_body("matrix", "Theirs", json!({"token": "mx-theirs"})),
            );
        }
        Self {
            server,
            owner,
            shared,
            stranger,
            id,
            secret,
        }
    }

    fn tenant(&self, rel: Rel) -> Uuid {
        match rel {
            Rel::Owner => self.owner,
            Rel::Shared => self.shared,
            Rel::Stranger => self.stranger,
        }
    }

    fn api(&self, rel: Rel, role: &str) -> Api<'s> {
        api_for(self.server, self.tenant(rel), role)
    }

    fn owner_details(&self) -> Value {
        let reply = self.api(Rel::Owner, "integration_viewer").get(&format!(
            "/api/v1/credentials/matrix/details?credentialId={}",
            self.id
        ));
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["data"].clone()
    }

    /// Runs `call` for every relation and role and checks the status (and
    /// the error code) against `expected`. The route never serves the
    /// secret: no response may contain it.
    fn check(&self, expected: impl Fn(Rel, usize) -> u16, call: impl Fn(&Api<'s>) -> Reply) {
        self.check_in(RELATIONS, Serves::Nothing, expected, call);
    }

    /// [`World::check`] with the relations in the given order, for a route
    /// that serves `serves`.
    fn check_in(
        &self,
        relations: [Rel; 3],
        serves: Serves,
        expected: impl Fn(Rel, usize) -> u16,
        call: impl Fn(&Api<'s>) -> Reply,
    ) {
        for rel in relations {
            for (rank, role) in ROLES.iter().enumerate() {
                let reply = call(&self.api(rel, role));
                let status = expected(rel, rank);
                let context = format!("{rel:?} {role}");
                match status {
                    403 => assert_error(&reply, 403, "INSUFFICIENT_PERMISSIONS"),
                    404 => assert_error(&reply, 404, "CREDENTIAL_NOT_FOUND"),
                    _ => assert_eq!(reply.status, status, "{context}: {}", reply.text),
                }
                // Only the owner's successful decrypted read may carry the
                // secret; every other response, whatever its status or shape
                // (a shared tenant's details, an error, a list), never does.
                let may_carry =
                    serves == Serves::Secret && rel == Rel::Owner && reply.status == 200;
                if !may_carry {
                    assert!(
                        !reply.text.contains(&self.secret),
                        "{context}: the secret in a {} response: {}",
                        reply.status,
                        reply.text
                    );
                }
            }
        }
    }
}

/// What a route may put in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serves {
    /// Metadata only: the secret never appears.
    Nothing,
    /// The decrypted secret, to the owner tenant only.
    Secret,
}

const USER: usize = 1;
const EDITOR: usize = 2;
const ADMIN: usize = 3;

#[test]
fn details_owner_and_shared_any_role_stranger_404() {
    let server = harness::shared();
    let world = World::new(server);
    let path = format!(
        "/api/v1/credentials/matrix/details?credentialId={}",
        world.id
    );
    world.check(
        |rel, _| if rel == Rel::Stranger { 404 } else { 200 },
        |api| {
            let reply = api.get(&path);
            if reply.status == 200 {
                assert_eq!(reply.body["data"]["id"], format!("cred-{}", world.id));
                assert_eq!(
                    reply.body["data"]["tenant"]["id"],
                    world.owner.to_string(),
                    "tenant is the owner"
                );
            }
            reply
        },
    );
    // Without credentialId a shared tenant gets its own record, never the
    // owner's.
    let theirs = world
        .api(Rel::Shared, "integration_viewer")
        .get("/api/v1/credentials/matrix/details");
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    assert_ne!(theirs.body["data"]["id"], format!("cred-{}", world.id));
    assert!(!theirs.text.contains(&world.secret), "{}", theirs.text);
    assert_eq!(
        theirs.body["data"]["tenant"]["id"],
        world.shared.to_string()
    );
    assert_not_logged(server, &[&world.secret]);
}

#[test]
fn decrypted_read_owner_user_and_up_shared_403_stranger_404() {
    let server = harness::shared();
    let world = World::new(server);
    let path = format!("/api/v1/credentials/matrix?credentialId=cred-{}", world.id);
    world.check_in(
        RELATIONS,
        Serves::Secret,
        |rel, rank| match rel {
            Rel::Owner if rank >= USER => 200,
            Rel::Owner | Rel::Shared => 403,
            Rel::Stranger => 404,
        },
        |api| {
            let reply = api.get(&path);
            if reply.status == 200 {
                assert_eq!(reply.body["data"]["credentials"]["token"], world.secret);
            }
            reply
        },
    );
    // Exactly the three allowed reads were counted.
    assert_eq!(world.owner_details()["accessCount"], 3);
    // The refusals of a visible record (owner viewer, shared × 4) are in the
    // owner's log; the stranger's are not (it cannot see the record).
    let audit = world.api(Rel::Owner, "integration_admin").get(&format!(
        "/api/v1/audit?credentialId={}&limit=100",
        world.id
    ));
    let items = audit.body["data"]["items"].as_array().expect("items");
    let count = |outcome: &str, tenant: Uuid| {
        items
            .iter()
            .filter(|e| {
                e["action"] == "credential.read_secret"
                    && e["outcome"] == outcome
                    && e["actorTenantId"] == tenant.to_string()
            })
            .count()
    };
    assert_eq!(count("success", world.owner), 3, "{}", audit.text);
    assert_eq!(count("denied", world.owner), 1, "{}", audit.text);
    assert_eq!(count("denied", world.shared), 4, "{}", audit.text);
    assert_eq!(count("denied", world.stranger), 0, "{}", audit.text);
    assert_not_logged(server, &[&world.secret]);
}

#[test]
fn list_any_role_shows_own_records_only() {
    let server = harness::shared();
    let world = World::new(server);
    let rendered = format!("cred-{}", world.id);
    world.check(
        |_, _| 200,
        |api| {
            let reply = api.get("/api/v1/credentials");
            let items = reply.body["data"]["items"].as_array().expect("items");
            assert_eq!(items.len(), 1, "{}", reply.text);
            reply
        },
    );
    for rel in RELATIONS {
        let reply = world
            .api(rel, "integration_viewer")
            .get("/api/v1/credentials");
        let has = reply.text.contains(&rendered);
        assert_eq!(has, rel == Rel::Owner, "{rel:?}: {}", reply.text);
        assert_eq!(
            reply.body["data"]["items"][0]["tenant"]["id"],
            world.tenant(rel).to_string()
        );
    }
}

#[test]
fn create_needs_editor_in_every_tenant() {
    let server = harness::shared();
    let world = World::new(server);
    world.check(
        |_, rank| if rank >= EDITOR { 201 } else { 403 },
        |api| {
            api.post(
                "/api/v1/credentials",
                &credential_body("matrix-new", "New", json!({"k": "mx-create"})),
            )
        },
    );
    for rel in RELATIONS {
        let reply = world
            .api(rel, "integration_viewer")
            .get("/api/v1/credentials?integrationId=matrix-new");
        let items = reply.body["data"]["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{rel:?}: only editor and admin created");
    }
    assert_not_logged(server, &["mx-create"]);
}

#[test]
fn patch_owner_editor_and_up_shared_403_stranger_404() {
    let server = harness::shared();
    let world = World::new(server);
    let path = format!("/api/v1/credentials/{}", world.id);
    world.check(
        |rel, rank| match rel {
            Rel::Owner if rank >= EDITOR => 200,
            // The route's role is checked before the body is read (issue 11
            // item 5), so below editor it is 403 whoever owns the record.
            _ if rank < EDITOR => 403,
            Rel::Owner | Rel::Shared => 403,
            Rel::Stranger => 404,
        },
        |api| api.patch(&path, &json!({"description": "changed"})),
    );
    let details = world.owner_details();
    assert_eq!(details["version"], 3, "exactly the two allowed patches");
    assert_eq!(details["description"], "changed");
    assert_not_logged(server, &[&world.secret]);
}

#[test]
fn delete_owner_admin_only_shared_403_stranger_404() {
    let server = harness::shared();
    let world = World::new(server);
    let path = format!("/api/v1/credentials/{}", world.id);
    // The owner last: its admin's delete is the one that succeeds.
    world.check_in(
        [Rel::Shared, Rel::Stranger, Rel::Owner],
        Serves::Nothing,
        |rel, rank| match rel {
            Rel::Owner if rank == ADMIN => 200,
            Rel::Owner | Rel::Shared => 403,
            Rel::Stranger => 404,
        },
        |api| {
            let reply = api.delete(&path);
            if reply.status != 200 {
                // Every refusal left the record alone.
                let details = world.owner_details();
                assert_eq!(details["id"], format!("cred-{}", world.id));
            }
            reply
        },
    );
    let gone = world.api(Rel::Owner, "integration_admin").get(&format!(
        "/api/v1/credentials/matrix/details?credentialId={}",
        world.id
    ));
    assert_error(&gone, 404, "CREDENTIAL_NOT_FOUND");
    let gone = world.api(Rel::Shared, "integration_admin").get(&format!(
        "/api/v1/credentials/matrix/details?credentialId={}",
        world.id
    ));
    assert_error(&gone, 404, "CREDENTIAL_NOT_FOUND");
    assert_not_logged(server, &[&world.secret]);
}

#[test]
fn audit_admin_only_and_each_tenant_sees_its_own_log() {
    let server = harness::shared();
    let world = World::new(server);
    let rendered = format!("cred-{}", world.id);
    world.check(
        |_, rank| if rank == ADMIN { 200 } else { 403 },
        |api| api.get("/api/v1/audit?limit=100"),
    );
    for rel in RELATIONS {
        let reply = world
            .api(rel, "integration_admin")
            .get("/api/v1/audit?limit=100");
        assert_eq!(reply.status, 200, "{}", reply.text);
        let items = reply.body["data"]["items"].as_array().expect("items");
        assert!(!items.is_empty(), "{rel:?}: every tenant created a record");
        let mentions = items.iter().any(|e| e["credentialId"] == rendered.as_str());
        assert_eq!(mentions, rel == Rel::Owner, "{rel:?}: {}", reply.text);
    }
}
