-- The gateway's own tables: organizations and their API keys, one Kaspi terminal per
-- organization, invoices with their status events, background jobs and idempotency records.
-- `IF NOT EXISTS` so that re-applying it after `schema_migrations` was lost is harmless.
-- Integers are BIGINT (booleans 0/1, times unix ms, money in tiyn). Ids are
-- INTEGER PRIMARY KEY AUTOINCREMENT: only that spelling makes SQLite number rows itself, and
-- AUTOINCREMENT never reuses the id of a deleted row (invoice ids are public).

CREATE TABLE IF NOT EXISTS organizations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The raw key is never stored: only its hash, and a short prefix to recognise it by.
CREATE TABLE IF NOT EXISTS api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       BIGINT NOT NULL REFERENCES organizations (id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_org ON api_keys (org_id);

-- Sealed blobs are encrypted by the caller. `version` grows on every session change so
-- processes update the session with compare-and-set.
CREATE TABLE IF NOT EXISTS terminals (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         BIGINT NOT NULL UNIQUE REFERENCES organizations (id),
    phone          TEXT NOT NULL,
    device_sealed  BLOB NOT NULL,
    session_sealed BLOB,
    state          TEXT NOT NULL,
    state_reason   TEXT,
    version        BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- `id` is ApiPay's integer id; `payment_id` (a UUID) is the xPayment face.
CREATE TABLE IF NOT EXISTS invoices (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id         TEXT NOT NULL UNIQUE,
    org_id             BIGINT NOT NULL REFERENCES organizations (id),
    kind               TEXT NOT NULL,
    amount             BIGINT NOT NULL,
    phone              TEXT,
    description        TEXT,
    external_order_id  TEXT,
    status             TEXT NOT NULL,
    kaspi_status       TEXT,
    kaspi_operation_id TEXT,
    client_name        TEXT,
    total_refunded     BIGINT NOT NULL DEFAULT 0,
    is_sandbox         BIGINT NOT NULL,
    create_state       TEXT NOT NULL,
    last_error         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    paid_at            BIGINT,
    cancelled_at       BIGINT,
    expires_at         BIGINT
);
CREATE INDEX IF NOT EXISTS invoices_org_created ON invoices (org_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS invoices_org_status ON invoices (org_id, status, created_at);
CREATE INDEX IF NOT EXISTS invoices_org_external ON invoices (org_id, external_order_id);
CREATE UNIQUE INDEX IF NOT EXISTS invoices_org_operation ON invoices (org_id, kaspi_operation_id)
    WHERE kaspi_operation_id IS NOT NULL;

-- One row per status change, written with the change (later the webhook outbox).
CREATE TABLE IF NOT EXISTS invoice_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      BIGINT NOT NULL,
    invoice_id  BIGINT NOT NULL REFERENCES invoices (id),
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoice_events_invoice ON invoice_events (invoice_id, id);

-- Background work, claimed as leases (`locked_until`, `locked_by`). At most one job of a kind
-- per referenced row.
CREATE TABLE IF NOT EXISTS jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    ref_id       BIGINT NOT NULL,
    run_at       BIGINT NOT NULL,
    attempt      BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    locked_by    TEXT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    UNIQUE (kind, ref_id)
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (kind, run_at);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    api_key_id      BIGINT NOT NULL,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status BIGINT,
    response_body   BLOB,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
