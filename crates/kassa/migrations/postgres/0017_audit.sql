-- The audit log: every change made by a person (a dashboard user, the CLI on the host) or an
-- API key, written in the same transaction as the change. `org_id` is NULL for changes of the
-- whole deployment (settings). No secret value is ever stored here (see `crate::audit`).
CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      BIGINT REFERENCES organizations (id),
    at          BIGINT NOT NULL,
    -- `user`, `api_key` or `cli`.
    actor_kind  TEXT NOT NULL,
    -- The user's or key's id (NULL for the CLI).
    actor_id    BIGINT,
    -- What people read: the user's e-mail, the key's visible prefix, `cli:<os user>`.
    actor       TEXT NOT NULL,
    -- The client's address (NULL for the CLI).
    ip          TEXT,
    -- `invoice.created`, `api_key.revoked`, …
    action      TEXT NOT NULL,
    -- `invoice:KP-…`, `api_key:12`, …
    target      TEXT NOT NULL,
    -- What changed, as a JSON object.
    details     TEXT NOT NULL
);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at, id);
CREATE INDEX audit_log_at ON audit_log (at);
