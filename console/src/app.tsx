// The Coffer Console: a single-page app over Coffer's public API. Every
// value from the API is rendered as text (Preact escapes text children; no
// innerHTML anywhere), and no screen can show an existing secret: the
// console calls metadata routes only, and the secret form is write-only.
import { render } from "preact";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import type { JSX } from "preact";
import { Api, ApiError, RawJson, consoleConfig, setUnauthenticatedHandler } from "./api";
import type { AuditEvent, Connection, Credential, Share } from "./api";
import * as oidc from "./oidc";
import type { ConsoleRealm } from "./oidc";
import { atLeast, clear, load, readClaims, roleOf, save, tenantsOf } from "./session";
import type { Claims, Role, Session } from "./session";

// ---- routing (hash routes keep /console/ the only document) ----

type Route =
  | { name: "list" }
  | { name: "credential"; integrationId: string; id: string }
  | { name: "create" }
  | { name: "audit" };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "credential" && parts.length === 3) return { name: "credential", integrationId: parts[1], id: parts[2] };
  if (parts[0] === "new") return { name: "create" };
  if (parts[0] === "audit") return { name: "audit" };
  return { name: "list" };
}

export function credentialHref(integrationId: string, id: string): string {
  return `#/credential/${encodeURIComponent(integrationId)}/${encodeURIComponent(id)}`;
}

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

// ---- formatting ----

const UNITS: [number, string, string][] = [
  [86400, "day", "days"],
  [3600, "h", "h"],
  [60, "min", "min"],
  [1, "s", "s"],
];

/** "in 3 h", "2 days ago", "just now". */
export function relative(iso: string, now = Date.now()): string {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 5) return "just now";
  for (const [size, one, many] of UNITS) {
    if (abs >= size) {
      const n = Math.floor(abs / size);
      const unit = size === 86400 ? (n === 1 ? one : many) : one;
      return seconds > 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
    }
  }
  return "just now";
}

function exact(iso: string): string {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : `${at.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC")}`;
}

function When({ at, none = "never" }: { at: string | null | undefined; none?: string }) {
  if (!at) return <span class="muted">{none}</span>;
  return (
    <time dateTime={at} title={exact(at)}>
      {relative(at)}
    </time>
  );
}

function who(actor: { id: string | null; name: string | null; email: string | null } | null | undefined): string {
  if (!actor) return "unknown";
  const name = actor.name || actor.email || actor.id || "unknown";
  return actor.email && actor.name ? `${name} <${actor.email}>` : name;
}

function Badge({ status, expired }: { status: string; expired?: boolean }) {
  return (
    <span class={`badge badge-${status}`} data-status={status}>
      {status}
      {expired && status !== "expired" ? " · expired" : ""}
    </span>
  );
}

function ErrorMessage({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    return (
      <p class="error" role="alert">
        {error.message}
        {error.status ? ` (${error.status}${error.code && error.code !== String(error.status) ? ` ${error.code}` : ""})` : ""}
        {error.detail ? `: ${error.detail}` : ""}
      </p>
    );
  }
  return (
    <p class="error" role="alert">
      {error instanceof Error ? error.message : String(error)}
    </p>
  );
}

// ---- limits of the contract (core/src/validate.rs) ----

const INTEGRATION_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const AUTH_TYPES = ["custom", "oauth2_bearer", "oauth2_client_credentials", "api_key", "basic", "bearer"];
const STATUSES = ["active", "inactive", "expired", "revoked"];
const MAX_SECRET_BYTES = 64 * 1024;
const MAX_METADATA_BYTES = 16 * 1024;
const MAX_ENDPOINT_CHARS = 2048;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

const utf8Length = (text: string) => new TextEncoder().encode(text).length;

type Errors = Record<string, string>;

interface FieldValues {
  integrationId: string;
  credentialName: string;
  description: string;
  authType: string;
  scopes: string;
  tokenEndpoint: string;
  authorizationEndpoint: string;
  metadata: string;
  expiresAt: string;
}

/** Checks the metadata fields; the body to send, or the errors by field. */
function metadataBody(values: FieldValues, creating: boolean): { body: Record<string, unknown>; errors: Errors } {
  const errors: Errors = {};
  const body: Record<string, unknown> = {};
  if (creating) {
    if (!INTEGRATION_ID.test(values.integrationId)) {
      errors.integrationId = "lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128";
    }
    body.integrationId = values.integrationId;
    body.authType = values.authType;
  }
  const name = values.credentialName;
  if ([...name].length < 1 || [...name].length > 200) errors.credentialName = "1 to 200 characters";
  body.credentialName = name;
  if ([...values.description].length > 2000) errors.description = "at most 2000 characters";
  body.description = values.description === "" ? null : values.description;
  const scopes = values.scopes
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.length > 100) errors.scopes = "at most 100 scopes";
  else if (scopes.some((s) => [...s].length > 200)) errors.scopes = "each scope at most 200 characters";
  body.scopes = scopes;
  // The contract's limits are checked here; the API checks them again and
  // also the rules (an http(s) URL), and its 400 is shown by the field.
  for (const key of ["tokenEndpoint", "authorizationEndpoint"] as const) {
    const url = values[key].trim();
    if ([...url].length > MAX_ENDPOINT_CHARS) errors[key] = `at most ${MAX_ENDPOINT_CHARS} characters`;
    body[key] = url || null;
  }
  const metadataText = values.metadata.trim() || "{}";
  try {
    const metadata = JSON.parse(metadataText);
    if (!metadata || typeof metadata !== "object" || Array.isArray(metadata)) errors.metadata = "must be a JSON object";
    else if (utf8Length(JSON.stringify(metadata)) > MAX_METADATA_BYTES) errors.metadata = "at most 16 KiB";
    body.metadata = new RawJson(metadataText);
  } catch {
    errors.metadata = "not valid JSON";
  }
  const expires = values.expiresAt.trim();
  if (expires === "") body.expiresAt = null;
  else if (Number.isNaN(Date.parse(expires)) || !/^\d{4}-\d{2}-\d{2}T/.test(expires)) {
    errors.expiresAt = "an RFC 3339 time such as 2030-01-31T12:00:00Z";
  } else body.expiresAt = new Date(expires).toISOString();
  if (creating) {
    for (const key of ["description", "tokenEndpoint", "authorizationEndpoint", "expiresAt"]) if (body[key] === null) delete body[key];
  }
  return { body, errors };
}

interface SecretRow {
  key: string;
  value: string;
}

/** The secret object from key/value rows or raw JSON; never pre-filled. */
function secretValue(mode: "rows" | "json", rows: SecretRow[], raw: string): { value?: Record<string, unknown> | RawJson; error?: string } {
  let value: unknown;
  if (mode === "rows") {
    const filled = rows.filter((r) => r.key.trim() !== "" || r.value !== "");
    if (filled.length === 0) return { error: "add at least one key and value" };
    const object: Record<string, string> = {};
    for (const row of filled) {
      const key = row.key.trim();
      if (!key) return { error: "every value needs a key" };
      if (key in object) return { error: `the key ${key} is repeated` };
      object[key] = row.value;
    }
    value = object;
  } else {
    try {
      value = JSON.parse(raw);
    } catch {
      return { error: "not valid JSON" };
    }
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return { error: "must be a JSON object" };
  if (utf8Length(JSON.stringify(value)) > MAX_SECRET_BYTES) return { error: "at most 64 KiB" };
  return { value: mode === "json" ? new RawJson(raw) : (value as Record<string, unknown>) };
}

/** Puts an API 400 beside the field it names (else under the form). */
function fieldErrorFrom(error: unknown): Errors | null {
  if (error instanceof ApiError && error.status === 400 && error.field) {
    return { [error.field]: error.detail };
  }
  return null;
}

// ---- form controls ----

let nextId = 0;
function useId(prefix: string): string {
  return useMemo(() => `${prefix}-${++nextId}`, []);
}

function Field(props: {
  label: string;
  name: string;
  value: string;
  error?: string;
  hint?: string;
  onInput: (value: string) => void;
  multiline?: boolean;
  type?: string;
  required?: boolean;
}) {
  const id = useId(props.name);
  const errorId = `${id}-error`;
  const common = {
    id,
    name: props.name,
    value: props.value,
    required: props.required,
    "aria-invalid": props.error ? "true" : undefined,
    "aria-describedby": props.error ? errorId : undefined,
    onInput: (e: JSX.TargetedEvent<HTMLInputElement | HTMLTextAreaElement>) => props.onInput(e.currentTarget.value),
  } as const;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.multiline ? <textarea rows={4} {...common} /> : <input type={props.type ?? "text"} {...common} />}
      {props.hint ? <small class="hint">{props.hint}</small> : null}
      {props.error ? (
        <span class="field-error" id={errorId} data-field-error={props.name}>
          {props.error}
        </span>
      ) : null}
    </div>
  );
}

function SecretEditor(props: {
  mode: "rows" | "json";
  rows: SecretRow[];
  raw: string;
  error?: string;
  onChange: (mode: "rows" | "json", rows: SecretRow[], raw: string) => void;
}) {
  const { mode, rows, raw } = props;
  const rawId = useId("secret-json");
  return (
    <fieldset class="secret" data-field="credentials">
      <legend>Secret (write-only: never shown again)</legend>
      <div class="mode" role="radiogroup" aria-label="Secret format">
        <label>
          <input type="radio" name="secret-mode" checked={mode === "rows"} onChange={() => props.onChange("rows", rows, raw)} /> Keys and values
        </label>
        <label>
          <input type="radio" name="secret-mode" checked={mode === "json"} onChange={() => props.onChange("json", rows, raw)} /> Raw JSON
        </label>
      </div>
      {mode === "rows" ? (
        <div class="rows">
          {rows.map((row, index) => (
            <div class="row" key={index}>
              <label>
                Key {index + 1}
                <input
                  name={`secret-key-${index}`}
                  autocomplete="off"
                  value={row.key}
                  onInput={(e) => props.onChange(mode, rows.map((r, i) => (i === index ? { ...r, key: e.currentTarget.value } : r)), raw)}
                />
              </label>
              <label>
                Value {index + 1}
                <input
                  name={`secret-value-${index}`}
                  type="password"
                  autocomplete="new-password"
                  value={row.value}
                  onInput={(e) => props.onChange(mode, rows.map((r, i) => (i === index ? { ...r, value: e.currentTarget.value } : r)), raw)}
                />
              </label>
              {rows.length > 1 ? (
                <button type="button" class="secondary" onClick={() => props.onChange(mode, rows.filter((_, i) => i !== index), raw)}>
                  Remove key {index + 1}
                </button>
              ) : null}
            </div>
          ))}
          <button type="button" class="secondary" onClick={() => props.onChange(mode, [...rows, { key: "", value: "" }], raw)}>
            Add key
          </button>
        </div>
      ) : (
        <div class="field">
          <label for={rawId}>Secret as a JSON object</label>
          <textarea id={rawId} name="secret-json" rows={5} autocomplete="off" spellcheck={false} value={raw} onInput={(e) => props.onChange(mode, rows, e.currentTarget.value)} />
        </div>
      )}
      {props.error ? (
        <span class="field-error" data-field-error="credentials">
          {props.error}
        </span>
      ) : null}
    </fieldset>
  );
}

// ---- sign-in ----

function SignIn({ notice, onSignedIn }: { notice: string | null; onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState("");
  const [tenant, setTenant] = useState("");
  const [realm, setRealm] = useState("");
  const [realms, setRealms] = useState<ConsoleRealm[]>([]);
  const [error, setError] = useState<string | null>(null);
  const claims = useMemo(() => (token.trim() ? readClaims(token) : null), [token]);
  const tenants = claims ? tenantsOf(claims) : [];
  useEffect(() => {
    consoleConfig().then((c) => setRealms(c.realms ?? []), () => setRealms([]));
  }, []);
  useEffect(() => {
    if (tenants.length && !tenants.includes(tenant)) setTenant(tenants[0]);
  }, [token]);
  const submit = (e: Event) => {
    e.preventDefault();
    if (!claims) return setError("That is not a JWT (three base64url parts with a JSON payload).");
    if (!tenants.length) return setError("The token names no tenant (tenant_id).");
    const session = { token: token.trim(), tenant: tenant || tenants[0], realm: realm.trim() || null };
    save(session);
    onSignedIn(session);
  };
  const tokenId = useId("token");
  const tenantId = useId("tenant");
  const realmId = useId("realm");
  return (
    <main class="signin" tabIndex={-1} id="main">
      <h1>Coffer Console</h1>
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      {realms.length ? (
        <section aria-labelledby="idp-heading">
          <h2 id="idp-heading">Your identity provider</h2>
          {realms.map((r) => (
            <button
              type="button"
              class="primary"
              key={r.name}
              data-realm={r.name}
              onClick={() => oidc.begin(r).catch((err: Error) => setError(`Sign-in with ${r.name} failed: ${err.message}`))}
            >
              Sign in with {r.name}
            </button>
          ))}
        </section>
      ) : null}
      <form onSubmit={submit} aria-labelledby="token-heading">
        <h2 id="token-heading">Sign in with a token</h2>
        <div class="field">
          <label for={tokenId}>Bearer token</label>
          <textarea id={tokenId} name="token" rows={4} autocomplete="off" spellcheck={false} value={token} onInput={(e) => setToken(e.currentTarget.value)} />
          <small class="hint">
            Read here only to offer its tenants; the API verifies it. Kept in this tab's session storage until you sign out.
          </small>
        </div>
        {claims ? (
          <p class="muted" data-claims>
            {`Subject ${claims.sub ?? "?"} · role ${roleOf(claims) ?? "none"}${claims.exp ? ` · expires ${exact(new Date(claims.exp * 1000).toISOString())}` : ""}`}
          </p>
        ) : null}
        <div class="field">
          <label for={tenantId}>Tenant</label>
          <select id={tenantId} name="tenant" value={tenant} disabled={!tenants.length} onChange={(e) => setTenant(e.currentTarget.value)}>
            {tenants.map((t) => (
              <option value={t} key={t}>
                {t}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={realmId}>Realm (optional)</label>
          <input id={realmId} name="realm" value={realm} onInput={(e) => setRealm(e.currentTarget.value)} />
          <small class="hint">Sent as the realmname header; leave empty for the deployment's default.</small>
        </div>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
    </main>
  );
}

// ---- screen 1: credentials ----

function CredentialsScreen({ api, role }: { api: Api; role: Role | null }) {
  const [integration, setIntegration] = useState("");
  const [status, setStatus] = useState("");
  const [applied, setApplied] = useState({ integration: "", status: "" });
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<{ items: Credential[]; next: string | null; query: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [shared, setShared] = useState<Connection[] | null>(null);
  const [sharedNext, setSharedNext] = useState<string | null>(null);
  const [sharedError, setSharedError] = useState<unknown>(null);
  const cursor = cursors[cursors.length - 1];
  useEffect(() => {
    setError(null);
    setPage(null);
    const query = `${applied.integration}|${applied.status}|${cursors.length}`;
    api
      .credentials({ integrationId: applied.integration || undefined, status: applied.status || undefined, cursor })
      .then((p) => setPage({ ...p, query }), setError);
  }, [applied, cursor]);
  const loadShared = (from: string | null) =>
    api.sharedWithMe(from).then((p) => {
      setShared((old) => [...(from ? old ?? [] : []), ...p.items]);
      setSharedNext(p.next);
    }, setSharedError);
  useEffect(() => {
    loadShared(null);
  }, []);
  const integrationId = useId("filter-integration");
  const statusId = useId("filter-status");
  return (
    <main tabIndex={-1} id="main" data-screen="credentials">
      <div class="title">
        <h1>Credentials</h1>
        {atLeast(role, "integration_editor") ? (
          <a class="button primary" href="#/new">
            New credential
          </a>
        ) : null}
      </div>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([null]);
          setApplied({ integration: integration.trim(), status });
        }}
      >
        <div class="field">
          <label for={integrationId}>Integration</label>
          <input id={integrationId} name="filter-integration" value={integration} onInput={(e) => setIntegration(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for={statusId}>Status</label>
          <select id={statusId} name="filter-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option value={s} key={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <button type="submit">Apply filters</button>
      </form>
      <ErrorMessage error={error} />
      {page === null && !error ? <p class="muted">Loading…</p> : null}
      {page ? (
        page.items.length === 0 ? (
          <p class="muted" data-empty data-query={page.query}>
            No credentials match.
          </p>
        ) : (
          <table class="list" data-list="own" data-query={page.query}>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Integration</th>
                <th scope="col">Auth type</th>
                <th scope="col">Status</th>
                <th scope="col">Expires</th>
                <th scope="col">Reads</th>
                <th scope="col">Last read</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((c) => (
                <tr key={c.id} data-id={c.id}>
                  <td data-label="Name">
                    <a href={credentialHref(c.integrationId, c.id)} class="name">
                      {c.credentialName}
                    </a>
                  </td>
                  <td data-label="Integration">{c.integrationId}</td>
                  <td data-label="Auth type">{c.authType}</td>
                  <td data-label="Status">
                    <Badge status={c.status} expired={c.isExpired} />
                  </td>
                  <td data-label="Expires">
                    <When at={c.expiresAt} />
                  </td>
                  <td data-label="Reads">{String(c.accessCount)}</td>
                  <td data-label="Last read">
                    <When at={c.lastAccessedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <span class="muted" data-page={cursors.length}>
          Page {cursors.length}
        </span>
        <button type="button" disabled={!page?.next} onClick={() => page?.next && setCursors([...cursors, page.next])}>
          Next page
        </button>
      </nav>
      <section aria-labelledby="shared-heading" data-list="shared">
        <h2 id="shared-heading">Shared with this tenant</h2>
        <ErrorMessage error={sharedError} />
        {shared && shared.length === 0 ? <p class="muted">Nothing is shared with this tenant.</p> : null}
        {shared && shared.length ? (
          <ul class="shared">
            {shared.map((c) => (
              <li key={c.connection_id} data-id={c.connection_id}>
                <a href={credentialHref(c.integration_id, c.connection_id)}>{c.name}</a> <span class="muted">{c.integration_id}</span>{" "}
                <Badge status={c.status} expired={c.is_expired} /> <span class="muted">owner {c.owner_tenant_id}</span>
              </li>
            ))}
          </ul>
        ) : null}
        {sharedNext ? (
          <button type="button" onClick={() => loadShared(sharedNext)}>
            More shared credentials
          </button>
        ) : null}
      </section>
    </main>
  );
}

// ---- screen 2: one credential ----

function valuesOf(c: Credential): FieldValues {
  return {
    integrationId: c.integrationId,
    credentialName: c.credentialName,
    description: c.description ?? "",
    authType: c.authType,
    scopes: c.scopes.join("\n"),
    tokenEndpoint: c.tokenEndpoint ?? "",
    authorizationEndpoint: c.authorizationEndpoint ?? "",
    metadata: c.metadataText ?? JSON.stringify(c.metadata),
    expiresAt: c.expiresAt ?? "",
  };
}

function MetadataFields({ values, errors, set, creating }: { values: FieldValues; errors: Errors; set: (v: FieldValues) => void; creating: boolean }) {
  const field = (name: keyof FieldValues) => ({ name, value: values[name], error: errors[name], onInput: (v: string) => set({ ...values, [name]: v }) });
  const authId = useId("authType");
  return (
    <>
      {creating ? <Field label="Integration id" required hint="e.g. github or salesforce.prod" {...field("integrationId")} /> : null}
      <Field label="Name" required {...field("credentialName")} />
      <Field label="Description" multiline {...field("description")} />
      {creating ? (
        <div class="field">
          <label for={authId}>Auth type</label>
          <select id={authId} name="authType" value={values.authType} onChange={(e) => set({ ...values, authType: e.currentTarget.value })}>
            {AUTH_TYPES.map((t) => (
              <option value={t} key={t}>
                {t}
              </option>
            ))}
          </select>
          {errors.authType ? <span class="field-error" data-field-error="authType">{errors.authType}</span> : null}
        </div>
      ) : null}
      <Field label="Scopes" multiline hint="one per line or comma-separated" {...field("scopes")} />
      <Field label="Token endpoint" {...field("tokenEndpoint")} />
      <Field label="Authorization endpoint" {...field("authorizationEndpoint")} />
      <Field label="Metadata (JSON object, not secret)" multiline {...field("metadata")} />
      <Field label="Expires at" hint="RFC 3339, e.g. 2030-01-31T12:00:00Z; empty for never" {...field("expiresAt")} />
    </>
  );
}

function CredentialScreen({ api, role, session, integrationId, id }: { api: Api; role: Role | null; session: Session; integrationId: string; id: string }) {
  const [record, setRecord] = useState<Credential | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [panel, setPanel] = useState<"none" | "edit" | "secret" | "revoke" | "delete">("none");
  const [reloads, setReloads] = useState(0);
  const reload = () => setReloads((n) => n + 1);
  useEffect(() => {
    setError(null);
    api.details(integrationId, id).then((a) => setRecord(a.data), setError);
  }, [integrationId, id, reloads]);
  /** Runs a write; a 412 says so and reloads the record. */
  const write = async (action: () => Promise<unknown>, done: string) => {
    setError(null);
    setNotice(null);
    try {
      await action();
      setNotice(done);
      setPanel("none");
      reload();
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        setNotice("This record was changed by someone else since you loaded it (412). It has been reloaded: check it and try again.");
        setPanel("none");
        reload();
      } else setError(err);
      return false;
    }
  };
  if (!record) {
    return (
      <main tabIndex={-1} id="main" data-screen="credential">
        <p>
          <a href="#/">← Credentials</a>
        </p>
        <ErrorMessage error={error} />
        {!error ? <p class="muted">Loading…</p> : null}
      </main>
    );
  }
  const owned = record.tenant?.id === session.tenant;
  const editor = owned && atLeast(role, "integration_editor");
  const admin = owned && atLeast(role, "integration_admin");
  const revoked = record.status === "revoked";
  return (
    <main tabIndex={-1} id="main" data-screen="credential" data-id={record.id}>
      <p>
        <a href="#/">← Credentials</a>
      </p>
      <div class="title">
        <h1 data-name>{record.credentialName}</h1>
        <Badge status={record.status} expired={record.isExpired} />
      </div>
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      <ErrorMessage error={error} />
      {editor && !revoked ? (
        <div class="actions" data-actions>
          <button type="button" onClick={() => setPanel(panel === "edit" ? "none" : "edit")} aria-expanded={panel === "edit"}>
            Edit metadata
          </button>
          <button type="button" onClick={() => setPanel(panel === "secret" ? "none" : "secret")} aria-expanded={panel === "secret"}>
            Replace secret
          </button>
          {record.status === "inactive" ? (
            <button type="button" onClick={() => write(() => api.update(record.id, record.version, { status: "active" }), "Set active.")}>
              Set active
            </button>
          ) : (
            <button type="button" onClick={() => write(() => api.update(record.id, record.version, { status: "inactive" }), "Set inactive.")}>
              Set inactive
            </button>
          )}
          <button type="button" class="danger" onClick={() => setPanel("revoke")}>
            Revoke
          </button>
          {admin ? (
            <button type="button" class="danger" onClick={() => setPanel("delete")}>
              Delete
            </button>
          ) : null}
        </div>
      ) : admin ? (
        <div class="actions" data-actions>
          <button type="button" class="danger" onClick={() => setPanel("delete")}>
            Delete
          </button>
        </div>
      ) : null}
      {panel === "edit" ? <EditPanel api={api} record={record} write={write} cancel={() => setPanel("none")} /> : null}
      {panel === "secret" ? <SecretPanel api={api} record={record} write={write} cancel={() => setPanel("none")} /> : null}
      {panel === "revoke" ? (
        <div class="confirm" role="alertdialog" aria-labelledby="revoke-q">
          <p id="revoke-q">
            Revoke <strong>{record.credentialName}</strong> ({record.integrationId}, {record.id})? Revoking is final: its secret is never served
            again and it cannot be reactivated.
          </p>
          <button type="button" class="danger" autoFocus onClick={() => write(() => api.update(record.id, record.version, { status: "revoked" }), "Revoked.")}>
            Revoke {record.credentialName}
          </button>
          <button type="button" onClick={() => setPanel("none")}>
            Cancel
          </button>
        </div>
      ) : null}
      {panel === "delete" ? <DeletePanel api={api} record={record} cancel={() => setPanel("none")} onError={(e) => (e instanceof ApiError && e.status === 412 ? write(() => Promise.reject(e), "") : setError(e))} /> : null}
      <dl class="fields">
        <dt>Id</dt>
        <dd data-field="id">{record.id}</dd>
        <dt>Integration</dt>
        <dd data-field="integrationId">{record.integrationId}</dd>
        <dt>Description</dt>
        <dd data-field="description">{record.description ?? <span class="muted">none</span>}</dd>
        <dt>Auth type</dt>
        <dd data-field="authType">{record.authType}</dd>
        <dt>Scopes</dt>
        <dd data-field="scopes">{record.scopes.length ? record.scopes.join(", ") : <span class="muted">none</span>}</dd>
        <dt>Token endpoint</dt>
        <dd data-field="tokenEndpoint">{record.tokenEndpoint ?? <span class="muted">none</span>}</dd>
        <dt>Authorization endpoint</dt>
        <dd data-field="authorizationEndpoint">{record.authorizationEndpoint ?? <span class="muted">none</span>}</dd>
        <dt>Metadata</dt>
        <dd data-field="metadata">
          <pre>{record.metadataText ?? JSON.stringify(record.metadata, null, 2)}</pre>
        </dd>
        <dt>Expires</dt>
        <dd data-field="expiresAt">
          <When at={record.expiresAt} />
          {record.expiresAt ? <span class="muted"> ({exact(record.expiresAt)})</span> : null}
          {record.isExpired ? <span class="badge badge-expired"> expired</span> : null}
        </dd>
        <dt>Created</dt>
        <dd data-field="created">
          <When at={record.createdAt} /> by {who(record.createdBy)}
        </dd>
        <dt>Last changed</dt>
        <dd data-field="updated">
          <When at={record.updatedAt} /> by {who(record.updatedBy)}
        </dd>
        <dt>Version</dt>
        <dd data-field="version">{String(record.version)}</dd>
        <dt>Secret reads</dt>
        <dd data-field="accessCount">
          {String(record.accessCount)}, last <When at={record.lastAccessedAt} />
        </dd>
        <dt>Owner tenant</dt>
        <dd data-field="tenant">
          {record.tenant?.name ? `${record.tenant.name} (${record.tenant.id})` : record.tenant?.id ?? "unknown"}
          {owned ? "" : " · shared with this tenant"}
        </dd>
        {record.refresh !== undefined ? (
          <>
            <dt>Token refresh</dt>
            <dd data-field="refresh">
              {record.refresh === null ? (
                <span class="muted">not refreshed by Coffer</span>
              ) : (
                <>
                  last refreshed <When at={record.refresh.lastRefreshedAt} />
                  {`, ${record.refresh.failures} failure${record.refresh.failures === 1 ? "" : "s"}`}
                  {record.refresh.nextAttemptAt ? (
                    <>
                      , next attempt <When at={record.refresh.nextAttemptAt} />
                    </>
                  ) : null}
                  {record.refresh.lastError ? <span class="error-text">{` · last error: ${record.refresh.lastError}`}</span> : null}
                </>
              )}
            </dd>
          </>
        ) : null}
      </dl>
      {admin ? <SharesPanel api={api} record={record} onChanged={reload} reloads={reloads} write={write} /> : null}
      {admin ? <AuditTable api={api} credentialId={record.id} reloads={reloads} /> : null}
    </main>
  );
}

type Write = (action: () => Promise<unknown>, done: string) => Promise<boolean>;

function EditPanel({ api, record, write, cancel }: { api: Api; record: Credential; write: Write; cancel: () => void }) {
  const initial = useMemo(() => valuesOf(record), [record]);
  const [values, setValues] = useState(initial);
  const [errors, setErrors] = useState<Errors>({});
  const submit = async (e: Event) => {
    e.preventDefault();
    const { body, errors } = metadataBody(values, false);
    setErrors(errors);
    if (Object.keys(errors).length) return;
    // Only the fields that changed: metadata the user did not touch is not
    // sent back, so the API keeps it exactly as stored (JSON.parse would
    // turn 1.50 into 1.5).
    for (const key of Object.keys(body) as (keyof FieldValues)[]) {
      if (values[key] === initial[key]) delete body[key];
    }
    if (Object.keys(body).length === 0) {
      setErrors({ credentialName: "nothing changed" });
      return;
    }
    let apiErrors: Errors | null = null;
    await write(
      () =>
        api.update(record.id, record.version, body).catch((err) => {
          apiErrors = fieldErrorFrom(err);
          throw err;
        }),
      "Saved.",
    );
    if (apiErrors) setErrors(apiErrors);
  };
  return (
    <form class="panel" onSubmit={submit} aria-label="Edit metadata" data-form="edit">
      <h2>Edit metadata</h2>
      <MetadataFields values={values} errors={errors} set={setValues} creating={false} />
      <button type="submit" class="primary">
        Save
      </button>
      <button type="button" onClick={cancel}>
        Cancel
      </button>
    </form>
  );
}

function SecretPanel({ api, record, write, cancel }: { api: Api; record: Credential; write: Write; cancel: () => void }) {
  const [mode, setMode] = useState<"rows" | "json">("rows");
  const [rows, setRows] = useState<SecretRow[]>([{ key: "", value: "" }]);
  const [raw, setRaw] = useState("");
  const [error, setError] = useState<string | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    const secret = secretValue(mode, rows, raw);
    setError(secret.error);
    if (!secret.value) return;
    const ok = await write(() => api.update(record.id, record.version, { credentials: secret.value }), "Secret replaced (new version).");
    if (ok) {
      setRows([{ key: "", value: "" }]);
      setRaw("");
    }
  };
  return (
    <form class="panel" onSubmit={submit} aria-label="Replace secret" data-form="secret" autocomplete="off">
      <h2>Replace the secret</h2>
      <p class="muted">The current secret is never shown. What you enter here replaces it as a new version.</p>
      <SecretEditor
        mode={mode}
        rows={rows}
        raw={raw}
        error={error}
        onChange={(m, r, j) => {
          setMode(m);
          setRows(r);
          setRaw(j);
        }}
      />
      <button type="submit" class="primary">
        Save new secret
      </button>
      <button type="button" onClick={cancel}>
        Cancel
      </button>
    </form>
  );
}

function DeletePanel({ api, record, cancel, onError }: { api: Api; record: Credential; cancel: () => void; onError: (e: unknown) => void }) {
  const [typed, setTyped] = useState("");
  const inputId = useId("confirm-delete");
  const submit = async (e: Event) => {
    e.preventDefault();
    if (typed !== record.integrationId) return;
    try {
      await api.remove(record.id, record.version);
      location.hash = "#/";
    } catch (err) {
      onError(err);
    }
  };
  return (
    <form class="confirm" role="alertdialog" aria-labelledby={`${inputId}-q`} onSubmit={submit} data-form="delete">
      <p id={`${inputId}-q`}>
        Delete <strong>{record.credentialName}</strong> ({record.id}) and its secret for good? Every later read answers 404.
      </p>
      <div class="field">
        <label for={inputId}>Type the integration id {record.integrationId} to confirm</label>
        <input id={inputId} name="confirm-delete" autocomplete="off" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
      </div>
      <button type="submit" class="danger" disabled={typed !== record.integrationId}>
        Delete {record.credentialName}
      </button>
      <button type="button" onClick={cancel}>
        Cancel
      </button>
    </form>
  );
}

function uuidOf(id: string): string {
  return id.replace(/^cred-/, "");
}

function SharesPanel({ api, record, reloads, write }: { api: Api; record: Credential; onChanged: () => void; reloads: number; write: Write }) {
  const [shares, setShares] = useState<Share[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tenant, setTenant] = useState("");
  const [fieldError, setFieldError] = useState<string | undefined>();
  useEffect(() => {
    api.shares(uuidOf(record.id)).then((a) => setShares(a.data), setError);
  }, [record.id, reloads]);
  const grant = async (e: Event) => {
    e.preventDefault();
    const target = tenant.trim().toLowerCase();
    if (!UUID.test(target)) return setFieldError("a tenant id (UUID)");
    setFieldError(undefined);
    if (await write(() => api.grant(uuidOf(record.id), target, record.version), `Shared with ${target}.`)) setTenant("");
  };
  return (
    <section aria-labelledby="shares-heading" data-section="shares">
      <h2 id="shares-heading">Shares</h2>
      <ErrorMessage error={error} />
      {shares && shares.length === 0 ? <p class="muted">Not shared with any tenant.</p> : null}
      {shares && shares.length ? (
        <ul class="shares">
          {shares.map((s) => (
            <li key={s.tenant_id} data-tenant={s.tenant_id}>
              <span>{s.tenant_id}</span> <span class="muted">since {exact(s.granted_at)}</span>{" "}
              <button type="button" class="danger" onClick={() => write(() => api.revokeShare(uuidOf(record.id), s.tenant_id, record.version), `Share with ${s.tenant_id} revoked.`)}>
                Revoke share with {s.tenant_id}
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      <form class="inline" onSubmit={grant} data-form="grant">
        <Field label="Share with tenant id" name="share-tenant" value={tenant} error={fieldError} onInput={setTenant} />
        <button type="submit">Grant share</button>
      </form>
    </section>
  );
}

// ---- screen 4: audit log ----

const ACTIONS = ["credential.create", "credential.update", "credential.delete", "credential.read_secret", "share.grant", "share.revoke", "credential.refresh"];

function AuditTable({ api, credentialId, reloads = 0 }: { api: Api; credentialId?: string; reloads?: number }) {
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [action, setAction] = useState("");
  const [credential, setCredential] = useState("");
  const [applied, setApplied] = useState(credentialId ?? "");
  const load = useCallback(
    (from: string | null) => {
      setError(null);
      api.audit({ credentialId: applied || undefined, cursor: from }).then((page) => {
        setEvents((old) => [...(from ? old ?? [] : []), ...page.items]);
        setNext(page.next);
      }, setError);
    },
    [applied],
  );
  useEffect(() => load(null), [applied, reloads]);
  const shown = (events ?? []).filter((e) => !action || e.action === action);
  const actionId = useId("filter-action");
  const credentialInputId = useId("filter-credential");
  return (
    <section aria-labelledby="audit-heading" data-section="audit">
      <h2 id="audit-heading">{credentialId ? "Audit trail" : "Events"}</h2>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(credentialId ?? credential.trim());
        }}
      >
        {credentialId ? null : (
          <div class="field">
            <label for={credentialInputId}>Credential id</label>
            <input id={credentialInputId} name="filter-credential" value={credential} onInput={(e) => setCredential(e.currentTarget.value)} />
          </div>
        )}
        <div class="field">
          <label for={actionId}>Action</label>
          <select id={actionId} name="filter-action" value={action} onChange={(e) => setAction(e.currentTarget.value)}>
            <option value="">any</option>
            {ACTIONS.map((a) => (
              <option value={a} key={a}>
                {a}
              </option>
            ))}
          </select>
        </div>
        {credentialId ? null : <button type="submit">Apply filters</button>}
      </form>
      <ErrorMessage error={error} />
      {events && shown.length === 0 ? <p class="muted">No events{action ? ` with action ${action} loaded` : ""}.</p> : null}
      {shown.length ? (
        <table class="list" data-list="audit">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Outcome</th>
              <th scope="col">Credential</th>
              <th scope="col">Actor</th>
              <th scope="col">Request</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e) => (
              <tr key={e.id} data-action={e.action}>
                <td data-label="When" class="nowrap">
                  <When at={e.at} />
                </td>
                <td data-label="Action" class="nowrap">
                  {e.action}
                </td>
                <td data-label="Outcome" class="nowrap">
                  <span class={`outcome outcome-${e.outcome}`}>{e.outcome}</span>
                </td>
                <td data-label="Credential">{e.credentialId ?? ""}</td>
                <td data-label="Actor">
                  {who(e.actor)}
                  {e.actorTenantId ? <span class="muted"> · {e.actorTenantId}</span> : null}
                </td>
                <td data-label="Request" class="mono">
                  {e.requestId ?? ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {next ? (
        <button type="button" onClick={() => load(next)}>
          Load older events
        </button>
      ) : null}
    </section>
  );
}

function AuditScreen({ api }: { api: Api }) {
  return (
    <main tabIndex={-1} id="main" data-screen="audit">
      <h1>Audit log</h1>
      <AuditTable api={api} />
    </main>
  );
}

// ---- screen 3: create ----

function CreateScreen({ api }: { api: Api }) {
  const [values, setValues] = useState<FieldValues>({
    integrationId: "",
    credentialName: "",
    description: "",
    authType: "custom",
    scopes: "",
    tokenEndpoint: "",
    authorizationEndpoint: "",
    metadata: "{}",
    expiresAt: "",
  });
  const [mode, setMode] = useState<"rows" | "json">("rows");
  const [rows, setRows] = useState<SecretRow[]>([{ key: "", value: "" }]);
  const [raw, setRaw] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const { body, errors } = metadataBody(values, true);
    const secret = secretValue(mode, rows, raw);
    if (secret.error) errors.credentials = secret.error;
    setErrors(errors);
    if (Object.keys(errors).length) return;
    body.credentials = secret.value;
    setBusy(true);
    try {
      const created = await api.create(body);
      location.hash = credentialHref(created.integrationId, created.id);
    } catch (err) {
      const byField = fieldErrorFrom(err);
      if (byField) setErrors(byField);
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main tabIndex={-1} id="main" data-screen="create">
      <p>
        <a href="#/">← Credentials</a>
      </p>
      <h1>New credential</h1>
      <form class="panel" onSubmit={submit} data-form="create" autocomplete="off" noValidate>
        <MetadataFields values={values} errors={errors} set={setValues} creating />
        <SecretEditor
          mode={mode}
          rows={rows}
          raw={raw}
          error={errors.credentials}
          onChange={(m, r, j) => {
            setMode(m);
            setRows(r);
            setRaw(j);
          }}
        />
        <ErrorMessage error={error} />
        <button type="submit" class="primary" disabled={busy}>
          Create credential
        </button>
      </form>
    </main>
  );
}

// ---- the shell ----

function Shell({ session, claims, onSignOut }: { session: Session; claims: Claims; onSignOut: () => void }) {
  const route = useRoute();
  const api = useMemo(() => new Api(session), [session]);
  const role = roleOf(claims);
  const admin = atLeast(role, "integration_admin");
  let screen: JSX.Element;
  switch (route.name) {
    case "credential":
      screen = <CredentialScreen key={`${route.integrationId}/${route.id}`} api={api} role={role} session={session} integrationId={route.integrationId} id={route.id} />;
      break;
    case "create":
      screen = atLeast(role, "integration_editor") ? <CreateScreen api={api} /> : <Forbidden />;
      break;
    case "audit":
      screen = admin ? <AuditScreen api={api} /> : <Forbidden />;
      break;
    default:
      screen = <CredentialsScreen api={api} role={role} />;
  }
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById("main")?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <strong class="brand">Coffer</strong>
        <nav aria-label="Console">
          <a href="#/" aria-current={route.name === "list" ? "page" : undefined}>
            Credentials
          </a>
          {atLeast(role, "integration_editor") ? (
            <a href="#/new" aria-current={route.name === "create" ? "page" : undefined}>
              New
            </a>
          ) : null}
          {admin ? (
            <a href="#/audit" aria-current={route.name === "audit" ? "page" : undefined}>
              Audit log
            </a>
          ) : null}
        </nav>
        <span class="who" data-tenant={session.tenant}>
          {claims.name || claims.email || claims.sub || "signed in"} · {role ?? "no role"} · tenant {session.tenant}
          {session.realm ? ` · ${session.realm}` : ""}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {screen}
    </>
  );
}

function Forbidden() {
  return (
    <main tabIndex={-1} id="main">
      <p class="error" role="alert">
        Your role does not allow this screen.
      </p>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(() => load());
  const [notice, setNotice] = useState<string | null>(null);
  const [finishing, setFinishing] = useState(() => oidc.isCallback());
  const signOut = useCallback((message: string | null) => {
    clear();
    setSession(null);
    setNotice(message);
    history.replaceState(null, "", "/console/");
  }, []);
  useEffect(() => {
    setUnauthenticatedHandler(() => signOut("Your session has ended (the API answered 401). Sign in again."));
  }, []);
  useEffect(() => {
    if (!finishing) return;
    oidc
      .complete()
      .then(({ token, realm }) => {
        const claims = readClaims(token);
        const tenants = claims ? tenantsOf(claims) : [];
        if (!claims || !tenants.length) throw new Error("the access token names no tenant (tenant_id)");
        const s = { token, tenant: tenants[0], realm };
        save(s);
        setSession(s);
      })
      .catch((err: Error) => setNotice(`Sign-in failed: ${err.message}`))
      .finally(() => setFinishing(false));
  }, []);
  const claims = session ? readClaims(session.token) : null;
  if (finishing) return <p class="muted">Signing in…</p>;
  if (!session || !claims) return <SignIn notice={notice} onSignedIn={(s) => (setNotice(null), setSession(s))} />;
  return <Shell session={session} claims={claims} onSignOut={() => signOut("Signed out.")} />;
}

const root = document.getElementById("app");
if (root) render(<App />, root);
