-- Keyset pages (xPayment's cursors: newest first by id within an organization) read this
-- index instead of sorting every invoice of the organization; SQLite chose another index
-- without it.
CREATE INDEX IF NOT EXISTS invoices_org_id ON invoices (org_id, id);
