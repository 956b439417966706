-- The expiry sweep finds active records past their expiry without a scan.
CREATE INDEX credentials_by_status_expiry ON credentials (status, expires_at);
