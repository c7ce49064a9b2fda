-- Several Kaspi cashiers per organization (Kaspi lets an organization add cashiers; Kassa
-- spreads its calls over their budgets): a terminal is unique per (organization, phone), no
-- longer per organization. Rows, ids, sealed devices and sessions are kept as they are.
--
-- `sealed_per_cashier`: which context the sealed device and session were sealed with. 0 for the
-- rows there are now, sealed by the organization alone (`terminal-device:{org}`,
-- `terminal-session:{org}`), so they stay readable and keep working; 1 for rows written by a
-- login from now on, sealed per cashier (`…:{org}:{phone}`), so two cashiers' blobs cannot be
-- swapped for one another. A re-login rewrites both blobs, and the row moves to 1.
ALTER TABLE terminals DROP CONSTRAINT IF EXISTS terminals_org_id_key;
ALTER TABLE terminals ADD COLUMN IF NOT EXISTS sealed_per_cashier BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS terminals_org_phone ON terminals (org_id, phone);

-- The cashier (terminal) whose call created an invoice at Kaspi, when known: its cancel and
-- refunds go through the same cashier while it is usable. No foreign key: removing a cashier
-- leaves its invoices to the organization's other cashiers.
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS terminal_id BIGINT;
