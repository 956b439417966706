-- Each secret write gets a KV key of its own (`<secret_version>.<blob_nonce>`),
-- so two writers racing on one version never share a blob: the loser of the
-- compare-and-set deletes only its own. Rows from before have '' (key
-- `<secret_version>`).
ALTER TABLE credentials ADD COLUMN blob_nonce TEXT NOT NULL DEFAULT '';
