// The signed-in session: the bearer token (in sessionStorage only, dropped
// on sign-out and on any 401), the tenant acted for, and the realm that
// issued the token (sent as `realmname`). Claims are read, never verified:
// the API verifies every request.

const KEY = "coffer.session";

export interface Claims {
  sub?: string;
  name?: string;
  email?: string;
  exp?: number;
  tenant_id?: string;
  tenants?: string[];
  roles?: string[];
  realm_access?: { roles?: string[] };
}

export interface Session {
  token: string;
  tenant: string;
  realm: string | null;
}

export const ROLES = ["integration_viewer", "integration_user", "integration_editor", "integration_admin"] as const;
export type Role = (typeof ROLES)[number];

function base64UrlDecode(segment: string): string {
  const padded = segment.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((segment.length + 3) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The token's claims, or null when it is not a JWT with a JSON payload. */
export function readClaims(token: string): Claims | null {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || parts.some((p) => p === "")) return null;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1]));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? (claims as Claims) : null;
  } catch {
    return null;
  }
}

/** The tenants a token names: `tenant_id` first, then `tenants`. */
export function tenantsOf(claims: Claims): string[] {
  const all: string[] = [];
  const add = (t: unknown) => {
    if (typeof t === "string" && t && !all.includes(t.toLowerCase())) all.push(t.toLowerCase());
  };
  add(claims.tenant_id);
  if (Array.isArray(claims.tenants)) claims.tenants.forEach(add);
  return all;
}

/** The highest contract role the token names (Keycloak's realm roles too). */
export function roleOf(claims: Claims): Role | null {
  const named = [...(claims.roles ?? []), ...(claims.realm_access?.roles ?? [])];
  let best = -1;
  for (const role of named) best = Math.max(best, ROLES.indexOf(role as Role));
  return best < 0 ? null : ROLES[best];
}

export function atLeast(role: Role | null, needed: Role): boolean {
  return role !== null && ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export function load(): Session | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    return typeof s.token === "string" && typeof s.tenant === "string" ? s : null;
  } catch {
    return null;
  }
}

export function save(session: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clear(): void {
  sessionStorage.removeItem(KEY);
}
