-- Coffer's first schema: enough for /healthz to see the database answers.
-- Later changes come as new migration files; this one is never edited.
CREATE TABLE coffer_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

INSERT INTO coffer_meta (key, value) VALUES ('schema', '1');
