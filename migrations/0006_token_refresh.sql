-- OAuth2 token refresh (issue 14). `refresh_grant` is decided from the
-- auth type and the secret when the secret is written ('refresh_token',
-- 'client_credentials' or NULL), so D1 knows which records refresh without
-- decrypting anything. The lease (holder, end) is taken by a compare-and-set
-- and picks the one refresher of a record; the rest is what details show.
ALTER TABLE credentials ADD COLUMN refresh_grant TEXT;
ALTER TABLE credentials ADD COLUMN refresh_lease_holder TEXT;
ALTER TABLE credentials ADD COLUMN refresh_lease_until INTEGER;     -- Unix ms
ALTER TABLE credentials ADD COLUMN refreshed_at INTEGER;            -- last success, Unix ms
ALTER TABLE credentials ADD COLUMN refresh_error TEXT;              -- JSON {at, code, message}
ALTER TABLE credentials ADD COLUMN refresh_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN refresh_not_before INTEGER;      -- backoff end, Unix ms
ALTER TABLE credentials ADD COLUMN refresh_halted INTEGER NOT NULL DEFAULT 0; -- after invalid_grant/invalid_client

-- The refresh sweep: refreshable records by expiry, without a scan.
CREATE INDEX credentials_refresh_due ON credentials (expires_at)
    WHERE refresh_grant IS NOT NULL AND expires_at IS NOT NULL;
