-- Refunds, Kaspi QR payment links, and the operations history synced for static QR payments.
-- Money in tiyn, times unix ms.

-- What a payment carries for the xPayment face, and QR links.
ALTER TABLE invoices ADD COLUMN metadata TEXT;
ALTER TABLE invoices ADD COLUMN cancel_reason TEXT;
ALTER TABLE invoices ADD COLUMN qr_token TEXT;
ALTER TABLE invoices ADD COLUMN ext_tran_id TEXT;
-- Refunds not failed (pending, processing, completed): what is no longer refundable. Moved
-- with a conditional UPDATE, so two racing refunds cannot both fit.
ALTER TABLE invoices ADD COLUMN refund_reserved BIGINT NOT NULL DEFAULT 0;

-- `id` is ApiPay's integer id; `refund_id` (a UUID) is the xPayment face.
CREATE TABLE refunds (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    refund_id       TEXT NOT NULL UNIQUE,
    org_id          BIGINT NOT NULL REFERENCES organizations (id),
    invoice_id      BIGINT NOT NULL REFERENCES invoices (id),
    amount          BIGINT NOT NULL,
    reason          TEXT,
    status          TEXT NOT NULL,
    fail_reason     TEXT,
    kaspi_refund_id TEXT,
    initiated_by    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    completed_at    BIGINT
);
CREATE INDEX refunds_invoice ON refunds (invoice_id, id);
CREATE INDEX refunds_org ON refunds (org_id, id);

-- Events about refunds name the refund.
ALTER TABLE invoice_events ADD COLUMN refund_id BIGINT;

-- Operations found in each cashier's Kaspi history (static QR payments and others), synced by
-- a background job.
CREATE TABLE kaspi_operations (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id             BIGINT NOT NULL REFERENCES organizations (id),
    kaspi_operation_id BIGINT NOT NULL,
    order_number       TEXT,
    amount             BIGINT,
    status             TEXT,
    sale_id            BIGINT,
    sale_type          TEXT,
    source_type        TEXT,
    operation_method   BIGINT,
    operation_type     BIGINT,
    features           BIGINT,
    client_short_name  TEXT,
    comment            TEXT,
    order_reg_date     TEXT,
    transaction_date   TEXT,
    synced_at          BIGINT NOT NULL,
    UNIQUE (org_id, kaspi_operation_id)
);
CREATE INDEX kaspi_operations_order ON kaspi_operations (org_id, order_number);

-- Where each organization's history sync stands.
CREATE TABLE history_sync (
    org_id          BIGINT PRIMARY KEY REFERENCES organizations (id),
    newest_date     TEXT,
    synced_at       BIGINT NOT NULL
);
