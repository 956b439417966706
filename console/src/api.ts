// Coffer's public API with the signed-in user's bearer token. Only metadata
// routes: the console never calls a decrypted-read route
// (GET /api/v1/credentials/{integrationId} or /connection/{id}/credentials).
import type { Session } from "./session";

export interface Actor {
  id: string | null;
  name: string | null;
  email: string | null;
}

export interface Refresh {
  lastRefreshedAt: string | null;
  lastError: string | null;
  failures: number;
  nextAttemptAt: string | null;
}

export interface Credential {
  id: string;
  integrationId: string;
  credentialName: string;
  description: string | null;
  authType: string;
  scopes: string[];
  tokenEndpoint: string | null;
  authorizationEndpoint: string | null;
  metadata: Record<string, unknown>;
  status: string;
  expiresAt: string | null;
  isExpired: boolean;
  createdAt: string;
  createdBy: Actor | null;
  updatedAt: string;
  updatedBy: Actor | null;
  lastAccessedAt: string | null;
  accessCount: number;
  version: number;
  tenant: { id: string; name: string | null } | null;
  refresh?: Refresh | null;
  /** `metadata` as the API sent it (digits kept), for display and editing. */
  metadataText?: string;
}

export interface Connection {
  connection_id: string;
  integration_id: string;
  name: string;
  auth_type: string;
  status: string;
  expires_at: string | null;
  is_expired: boolean;
  owner_tenant_id: string;
  shared: boolean;
  access_count: number;
  last_accessed_at: string | null;
}

export interface Share {
  connection_id: string;
  tenant_id: string;
  granted_at: string;
  granted_by: unknown;
}

export interface AuditEvent {
  id: string;
  at: string;
  action: string;
  outcome: string;
  credentialId: string | null;
  actor: Actor | null;
  actorTenantId: string | null;
  requestId: string | null;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

/**
 * JSON text sent as it was typed (metadata, a raw JSON secret): the API
 * keeps both exactly as sent, numbers' digits included, which a trip
 * through JSON.parse and JSON.stringify would not (1.50 would become 1.5).
 * The text has been checked to parse as a JSON object.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

/**
 * The text of the first object member named `name` in JSON `text` (a
 * record's `metadata` comes before any nested member of that name: the
 * members before it are strings, numbers and the API's own objects).
 */
export function rawMember(text: string, name: string): string | undefined {
  const key = `"${name}":`;
  const at = text.indexOf(key);
  if (at < 0) return undefined;
  let i = at + key.length;
  while (text[i] === " ") i++;
  const start = i;
  let depth = 0;
  let inString = false;
  for (; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) return text.slice(start, i + 1);
    }
  }
  return undefined;
}

/** `body` as JSON text, with each RawJson's text in its place. */
export function serialize(body: unknown): string {
  const raws: string[] = [];
  // A fresh nonce, so no string of the body can pose as a placeholder.
  const nonce = Array.from(crypto.getRandomValues(new Uint32Array(2)), (n) => n.toString(36)).join("");
  const text = JSON.stringify(body, (_key, value) => {
    if (value instanceof RawJson) {
      raws.push(value.text);
      return `\u0000${nonce}:${raws.length - 1}\u0000`;
    }
    return value;
  });
  const placeholder = new RegExp(`"\\\\u0000${nonce}:(\\d+)\\\\u0000"`, "g");
  return text.replace(placeholder, (_m, index: string) => raws[Number(index)]);
}

/** An API error, with what the console shows. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The field a 400 names (`details` reads `<field>: <message>`). */
    readonly field: string | null,
    readonly detail: string,
  ) {
    super(message);
  }
}

/** Called once for a 401: the session is over. */
let onUnauthenticated: (() => void) | null = null;
export function setUnauthenticatedHandler(handler: () => void): void {
  onUnauthenticated = handler;
}

interface Options {
  body?: unknown;
  ifMatch?: number;
  query?: Record<string, string | null | undefined>;
}

export interface Answer<T> {
  data: T;
  etag: number | null;
}

const READABLE: Record<number, string> = {
  400: "The request was refused",
  401: "Your session has ended; sign in again",
  403: "Your role or tenant does not allow this",
  404: "Not found (it may have been deleted)",
  409: "The credential is not active",
  412: "Someone else changed this record since you loaded it",
  413: "The request is too large",
  415: "Unsupported content type",
  422: "The request was refused",
  500: "The server failed; try again",
  503: "The service is unavailable; try again",
};

function errorFrom(status: number, body: any): ApiError {
  const error = body?.error ?? {};
  const code = typeof error.code === "string" ? error.code : String(status);
  let detail = typeof error.details === "string" ? error.details : typeof error.message === "string" ? error.message : "";
  let field: string | null = null;
  if (status === 400 && typeof error.details === "string") {
    const match = /^([A-Za-z][A-Za-z0-9_.-]*):\s/.exec(error.details);
    if (match) field = match[1];
  }
  if (Array.isArray(error.loc) && error.loc.length) field = String(error.loc[error.loc.length - 1]);
  if (typeof error.msg === "string") detail = error.msg;
  const message = READABLE[status] ?? `The API answered ${status}`;
  return new ApiError(status, code, message, field, detail);
}

export class Api {
  constructor(private readonly session: Session) {}

  async call<T>(method: string, path: string, options: Options = {}): Promise<Answer<T> & { text: string }> {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v) url.searchParams.set(k, v);
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.session.token}`,
      "x-tenantid": this.session.tenant,
    };
    if (this.session.realm) headers.realmname = this.session.realm;
    if (options.ifMatch !== undefined) headers["if-match"] = `"${options.ifMatch}"`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = serialize(options.body);
    }
    let response: Response;
    try {
      response = await fetch(url.toString(), { method, headers, body, credentials: "omit", cache: "no-store" });
    } catch {
      throw new ApiError(0, "NETWORK", "The API could not be reached", null, "");
    }
    const text = await response.text();
    let parsed: any = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (response.status === 401) onUnauthenticated?.();
    if (!response.ok) throw errorFrom(response.status, parsed);
    const etag = response.headers.get("etag");
    return { data: parsed as T, etag: etag ? Number(etag.replace(/"/g, "")) : null, text };
  }

  async credentials(filters: { integrationId?: string; status?: string; cursor?: string | null; limit?: number }): Promise<Page<Credential>> {
    const { data } = await this.call<{ data: { items: Credential[]; nextCursor: string | null } }>("GET", "/api/v1/credentials", {
      query: {
        integrationId: filters.integrationId,
        status: filters.status,
        cursor: filters.cursor,
        limit: String(filters.limit ?? 20),
      },
    });
    return { items: data.data.items, next: data.data.nextCursor };
  }

  async sharedWithMe(cursor: string | null): Promise<Page<Connection>> {
    const { data } = await this.call<{ data: Connection[]; next_cursor: string | null }>("GET", "/connection", {
      query: { cursor, limit: "100" },
    });
    return { items: data.data.filter((c) => c.shared), next: data.next_cursor };
  }

  async details(integrationId: string, credentialId: string): Promise<Answer<Credential>> {
    const answer = await this.call<{ data: Credential }>(
      "GET",
      `/api/v1/credentials/${encodeURIComponent(integrationId)}/details`,
      { query: { credentialId } },
    );
    const data = answer.data.data;
    data.metadataText = rawMember(answer.text, "metadata");
    return { data, etag: answer.etag ?? data.version };
  }

  async create(body: Record<string, unknown>): Promise<Credential> {
    const { data } = await this.call<{ data: Credential }>("POST", "/api/v1/credentials", { body });
    return data.data;
  }

  async update(id: string, version: number, body: Record<string, unknown>): Promise<Answer<Credential>> {
    const answer = await this.call<{ data: Credential }>("PATCH", `/api/v1/credentials/${encodeURIComponent(id)}`, {
      body,
      ifMatch: version,
    });
    return { data: answer.data.data, etag: answer.etag };
  }

  async remove(id: string, version: number): Promise<void> {
    await this.call("DELETE", `/api/v1/credentials/${encodeURIComponent(id)}`, { ifMatch: version });
  }

  async shares(uuid: string): Promise<Answer<Share[]>> {
    const answer = await this.call<{ data: Share[] }>("GET", `/connection/${uuid}/shares`);
    return { data: answer.data.data, etag: answer.etag };
  }

  async grant(uuid: string, tenant: string, version: number): Promise<void> {
    await this.call("PUT", `/connection/${uuid}/shares/${encodeURIComponent(tenant)}`, { ifMatch: version });
  }

  async revokeShare(uuid: string, tenant: string, version: number): Promise<void> {
    await this.call("DELETE", `/connection/${uuid}/shares/${encodeURIComponent(tenant)}`, { ifMatch: version });
  }

  async audit(filters: { credentialId?: string; cursor?: string | null }): Promise<Page<AuditEvent>> {
    const { data } = await this.call<{ data: { items: AuditEvent[]; nextCursor: string | null } }>("GET", "/api/v1/audit", {
      query: { credentialId: filters.credentialId, cursor: filters.cursor, limit: "50" },
    });
    return { items: data.data.items, next: data.data.nextCursor };
  }
}

/** The realms that offer console sign-in (public, secret-free). */
export async function consoleConfig(): Promise<{ realms: import("./oidc").ConsoleRealm[] }> {
  const response = await fetch("/console/config.json", { credentials: "omit", cache: "no-store" });
  if (!response.ok) return { realms: [] };
  return response.json();
}
