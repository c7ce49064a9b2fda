-- Webhooks: endpoints per organization, one delivery per (endpoint, event) with the exact
-- bytes to send, and a log of every attempt. Times unix ms; booleans 0/1.

-- `endpoint_id` (a UUID) is the xPayment `subscription_id`; `id` is ApiPay's integer id.
-- Secrets are sealed with the master key (they are needed to sign, so a hash would not do);
-- during a rotation's grace period the previous secret signs as well.
CREATE TABLE webhook_endpoints (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id            TEXT NOT NULL UNIQUE,
    org_id                 BIGINT NOT NULL REFERENCES organizations (id),
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,
    format                 TEXT NOT NULL,
    description            TEXT,
    secret_sealed          BYTEA NOT NULL,
    previous_secret_sealed BYTEA,
    previous_secret_until  BIGINT,
    is_active              BIGINT NOT NULL,
    disabled_reason        TEXT,
    failing_since          BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, id);

-- One row per event and endpoint (`event_id` NULL for simulated test events). `payload` is
-- the body exactly as sent on every attempt. `status`: pending (to be attempted at
-- `next_attempt_at`), delivered, failed (given up), sending (a simulated event in flight).
-- Leased to a worker with `locked_until`/`locked_by` like jobs.
CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     TEXT NOT NULL UNIQUE,
    org_id          BIGINT NOT NULL,
    endpoint_id     BIGINT NOT NULL,
    event_id        BIGINT,
    event_type      TEXT NOT NULL,
    payload         BYTEA NOT NULL,
    is_test         BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    schedule_step   BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    locked_until    BIGINT,
    locked_by       TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- Every attempt: when, the HTTP status (NULL when none came), latency, the first bytes of the
-- answer (at most 1 KiB), the error.
CREATE TABLE webhook_attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      BIGINT NOT NULL,
    endpoint_id      BIGINT NOT NULL,
    attempt          BIGINT NOT NULL,
    at               BIGINT NOT NULL,
    status_code      BIGINT,
    latency_ms       BIGINT NOT NULL,
    response_excerpt TEXT,
    error            TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

-- The outbox mark: set, in the transaction that makes the event's deliveries, exactly once.
ALTER TABLE invoice_events ADD COLUMN dispatched_at BIGINT;
-- Events older than webhooks had no endpoint to go to.
UPDATE invoice_events SET dispatched_at = at;
CREATE INDEX invoice_events_undispatched ON invoice_events (id) WHERE dispatched_at IS NULL;
