-- A decrypted read is counted and audited in ONE statement: the UPDATE that
-- raises access_count stores the reader's audit fields in `last_read` (JSON),
-- and this trigger writes the audit event from them inside the same
-- statement. Atomic as a batch would be (a failing insert fails the update,
-- so the read fails closed), at the cost of one statement instead of two.
ALTER TABLE credentials ADD COLUMN last_read TEXT;

CREATE TRIGGER credentials_read_audit
AFTER UPDATE OF access_count ON credentials
WHEN NEW.last_read IS NOT NULL
BEGIN
    INSERT INTO audit_events (id, tenant_id, at, action, outcome, credential_id, actor_id,
                              actor_name, actor_email, actor_tenant_id, request_id)
    VALUES (json_extract(NEW.last_read, '$.id'), NEW.tenant_id, NEW.last_accessed_at,
            'credential.read_secret', 'success', NEW.id,
            json_extract(NEW.last_read, '$.actor_id'), json_extract(NEW.last_read, '$.actor_name'),
            json_extract(NEW.last_read, '$.actor_email'),
            json_extract(NEW.last_read, '$.actor_tenant_id'),
            json_extract(NEW.last_read, '$.request_id'));
END;
