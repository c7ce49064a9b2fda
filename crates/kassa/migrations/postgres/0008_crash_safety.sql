-- Crash safety of creates and idempotent requests.
--
-- `kaspi_ref`: a short marker Kassa appends to the Kaspi comment of an invoice by phone
-- ("[kassa:<kaspi_ref>]"), so that the operation can be found in Kaspi's histories even when
-- the answer to the create (and with it the operation id) was lost, also across a crash.
ALTER TABLE invoices ADD COLUMN kaspi_ref TEXT;
CREATE INDEX IF NOT EXISTS invoices_org_kaspi_ref ON invoices (org_id, kaspi_ref)
    WHERE kaspi_ref IS NOT NULL;

-- A running idempotent request holds a lease, renewed while it runs: a record whose lease ran
-- out belongs to a request whose process died. `resource_kind`/`resource_id` name what the
-- request made (an invoice, a refund), written in the same transaction as that row, so a
-- retry after a crash answers from it instead of making it again.
ALTER TABLE idempotency_keys ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN resource_kind TEXT;
ALTER TABLE idempotency_keys ADD COLUMN resource_id BIGINT;
