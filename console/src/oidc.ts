// OpenID Connect authorization code flow with PKCE (RFC 7636, S256) for a
// public client: discovery from the realm's issuer, a top-level redirect to
// the authorization endpoint, the code exchanged at the token endpoint. The
// access token is what the API verifies (its audience is the realm's).

export interface ConsoleRealm {
  name: string;
  issuer: string;
  clientId: string;
  audience: string;
}

const PENDING = "coffer.oidc";

interface Pending {
  realm: ConsoleRealm;
  state: string;
  verifier: string;
  nonce: string;
  tokenEndpoint: string;
}

function base64Url(bytes: Uint8Array): string {
  let binary = "";
  bytes.forEach((b) => (binary += String.fromCharCode(b)));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(): string {
  return base64Url(crypto.getRandomValues(new Uint8Array(32)));
}

export function redirectUri(): string {
  return `${location.origin}/console/`;
}

async function discover(issuer: string): Promise<{ authorization_endpoint: string; token_endpoint: string }> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const response = await fetch(url, { credentials: "omit" });
  if (!response.ok) throw new Error(`discovery at ${url} answered ${response.status}`);
  const doc = await response.json();
  if (typeof doc.authorization_endpoint !== "string" || typeof doc.token_endpoint !== "string") {
    throw new Error("the discovery document names no authorization or token endpoint");
  }
  return doc;
}

/** Starts sign-in: remembers state and verifier, then leaves for the IdP. */
export async function begin(realm: ConsoleRealm): Promise<void> {
  const doc = await discover(realm.issuer);
  const verifier = random();
  const challenge = base64Url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const pending: Pending = { realm, state: random(), verifier, nonce: random(), tokenEndpoint: doc.token_endpoint };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = new URL(doc.authorization_endpoint);
  const params: Record<string, string> = {
    response_type: "code",
    client_id: realm.clientId,
    redirect_uri: redirectUri(),
    scope: "openid profile email",
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
    // Auth0 issues a JWT access token only for a named API audience;
    // Keycloak ignores the parameter.
    audience: realm.audience,
  };
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  location.assign(url.toString());
}

/** Whether the page was opened by the IdP's redirect. */
export function isCallback(): boolean {
  const q = new URLSearchParams(location.search);
  return (q.has("code") || q.has("error")) && q.has("state");
}

/** Finishes sign-in: checks state, exchanges the code; the access token and realm. */
export async function complete(): Promise<{ token: string; realm: string }> {
  const q = new URLSearchParams(location.search);
  history.replaceState(null, "", "/console/");
  const raw = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  if (!raw) throw new Error("no sign-in was started in this tab");
  const pending = JSON.parse(raw) as Pending;
  if (q.get("state") !== pending.state) throw new Error("the sign-in response does not match the request (state)");
  const error = q.get("error");
  if (error) throw new Error(`the identity provider refused: ${error} ${q.get("error_description") ?? ""}`.trim());
  const body = new URLSearchParams({
    grant_type: "authorization_code",
    code: q.get("code") ?? "",
    redirect_uri: redirectUri(),
    client_id: pending.realm.clientId,
    code_verifier: pending.verifier,
  });
  const response = await fetch(pending.tokenEndpoint, { method: "POST", body, credentials: "omit" });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || typeof answer.access_token !== "string") {
    throw new Error(`the token endpoint answered ${response.status}${answer.error ? `: ${answer.error}` : ""}`);
  }
  return { token: answer.access_token, realm: pending.realm.name };
}
