-- Every object says whether it belongs to a sandbox (a test mode, or a sandbox deployment):
-- a refund as its invoice does.
ALTER TABLE refunds ADD COLUMN is_sandbox BIGINT NOT NULL DEFAULT 0;
UPDATE refunds SET is_sandbox = (SELECT i.is_sandbox FROM invoices i WHERE i.id = refunds.invoice_id);
