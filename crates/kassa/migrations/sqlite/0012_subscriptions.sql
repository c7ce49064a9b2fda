-- Subscriptions: recurring invoices on a schedule of Asia/Almaty calendar dates.
-- Dates are TEXT `YYYY-MM-DD`; times unix ms; money in tiyn.
CREATE TABLE subscriptions (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id                 BIGINT NOT NULL REFERENCES organizations (id),
    amount                 BIGINT NOT NULL,
    phone                  TEXT NOT NULL,
    billing_period         TEXT NOT NULL,
    billing_day            BIGINT,
    description            TEXT,
    subscriber_name        TEXT,
    external_subscriber_id TEXT,
    metadata               TEXT,
    started_on             TEXT NOT NULL,
    max_retry_attempts     BIGINT NOT NULL,
    retry_interval_hours   BIGINT NOT NULL,
    grace_period_days      BIGINT NOT NULL,
    status                 TEXT NOT NULL,
    next_billing_on        TEXT,
    next_billing_at        BIGINT,
    period_on              TEXT,
    attempt                BIGINT NOT NULL DEFAULT 0,
    failed_attempts        BIGINT NOT NULL DEFAULT 0,
    retry_at               BIGINT,
    grace_until            BIGINT,
    is_sandbox             BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    paused_at              BIGINT,
    cancelled_at           BIGINT,
    expired_at             BIGINT
);
CREATE INDEX subscriptions_org ON subscriptions (org_id, id);

-- One invoice per subscription, billing period and attempt, ever: the unique key is checked
-- in the transaction that stores the invoice and advances the schedule.
CREATE TABLE subscription_invoices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id BIGINT NOT NULL REFERENCES subscriptions (id),
    org_id          BIGINT NOT NULL,
    invoice_id      BIGINT NOT NULL UNIQUE REFERENCES invoices (id),
    period_start    TEXT NOT NULL,
    period_end      TEXT NOT NULL,
    attempt_number  BIGINT NOT NULL,
    amount          BIGINT NOT NULL,
    failure_reason  TEXT,
    created_at      BIGINT NOT NULL,
    UNIQUE (subscription_id, period_start, attempt_number)
);

ALTER TABLE invoices ADD COLUMN subscription_id BIGINT;
-- A subscription event's body (the subscription as it was, and the event's own fields), JSON.
ALTER TABLE invoice_events ADD COLUMN subscription_id BIGINT;
ALTER TABLE invoice_events ADD COLUMN data TEXT;
