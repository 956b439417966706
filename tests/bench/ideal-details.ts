// `make bench PEER=<dir> BENCH_IDEAL=1` appends this to a copy of the peer's
// `src/index.ts`, in place of its `export default app;`: the peer's details
// route as the least work a JavaScript Worker can do for the same answer,
// to measure how far any Worker with one D1 round trip can get ahead of the
// peer under `wrangler dev`. No router, the HMAC key imported once per
// isolate (jose imports it per token), the token parsed by hand, one
// statement, one `JSON.stringify`; the checks the peer makes on what it
// serves are kept (jose's header and claim checks, its keyring step).
// Anything else (another route, a refusal, a miss, a shared tenant) is the
// peer's own `app`, so every answer but the served details is the peer's.
// Not a product.

let idealKey: { secret: string; key: Promise<CryptoKey> } | null = null;

function idealHmacKey(secret: string): Promise<CryptoKey> {
  if (!idealKey || idealKey.secret !== secret) {
    idealKey = {
      secret,
      key: crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
        "verify",
      ]),
    };
  }
  return idealKey.key;
}

const strictText = new TextDecoder("utf-8", { fatal: true });

function base64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  return b64decode(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
}

const IDEAL_DETAILS = /^\/api\/v1\/credentials\/([^/?]+)\/details(?:\?(.*))?$/;

async function idealDetails(request: Request, env: Bindings, path: string): Promise<Response | null> {
  const route = IDEAL_DETAILS.exec(path);
  if (!route) return null;
  const auth = request.headers.get("authorization");
  if (!auth || !auth.startsWith("Bearer ")) return null;
  const parts = auth.slice(7).trim().split(".");
  if (parts.length !== 3 || !env.AUTH_HS256_SECRET) return null;
  let claims: Record<string, unknown>;
  try {
    // The peer's own per-request step: its keyring, parsed once per isolate.
    await getKeyring(env);
    const signed = await crypto.subtle.verify(
      "HMAC",
      await idealHmacKey(env.AUTH_HS256_SECRET),
      base64url(parts[2]),
      encoder.encode(`${parts[0]}.${parts[1]}`),
    );
    if (!signed) return null;
    const header = JSON.parse(strictText.decode(base64url(parts[0])));
    claims = JSON.parse(strictText.decode(base64url(parts[1])));
    // jose's checks on what the peer serves: an HS256 header without
    // `crit` or `b64`, and numeric `exp`, `iat` and `nbf` (60 s of leeway).
    if (kindOf(header) !== "object" || kindOf(claims) !== "object") return null;
    if (header.alg !== "HS256" || "crit" in header || "b64" in header) return null;
  } catch {
    return null;
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.sub !== "string" || typeof claims.exp !== "number" || claims.exp + 60 <= now) return null;
  if (claims.iat !== undefined && typeof claims.iat !== "number") return null;
  if (claims.nbf !== undefined && (typeof claims.nbf !== "number" || claims.nbf > now + 60)) return null;
  if (env.AUTH_ISSUER || env.AUTH_AUDIENCE) return null;
  const tenant = claims.tenant_id;
  if (typeof tenant !== "string" || !UUID_RE.test(tenant)) return null;
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  if (!roles.some((role) => typeof role === "string" && Object.hasOwn(ROLE_RANK, role))) return null;
  if (request.headers.get("x-tenantid")?.toLowerCase() !== tenant.toLowerCase()) return null;
  const integrationId = route[1];
  if (!SLUG_RE.test(integrationId)) return null;
  let statement: D1PreparedStatement;
  if (route[2] === undefined) {
    statement = env.DB.prepare(
      `SELECT * FROM credentials WHERE tenant_id = ? AND integration_id = ?
       ORDER BY (status = 'active') DESC, created_at DESC LIMIT 1`,
    ).bind(tenant.toLowerCase(), integrationId);
  } else {
    const query = /^credentialId=cred-([0-9a-f-]{36})$/.exec(route[2]);
    if (!query || !UUID_RE.test(query[1])) return null;
    statement = env.DB.prepare("SELECT * FROM credentials WHERE id = ? AND tenant_id = ? AND integration_id = ?").bind(
      query[1],
      tenant.toLowerCase(),
      integrationId,
    );
  }
  const row = await statement.first<CredentialRow>();
  if (!row) return null;
  const body = JSON.stringify({
    success: true,
    message: "Credential details retrieved successfully",
    data: details(row),
    timestamp: nowIso(),
  });
  return new Response(body, {
    headers: { "content-type": "application/json", etag: `"${row.version}"`, "x-bench-path": "ideal" },
  });
}

export default {
  async fetch(request: Request, env: Bindings, ctx: ExecutionContext): Promise<Response> {
    if (request.method === "GET") {
      const served = await idealDetails(request, env, request.url.slice(request.url.indexOf("/", 8)));
      if (served) return served;
    }
    return app.fetch(request, env, ctx);
  },
};
