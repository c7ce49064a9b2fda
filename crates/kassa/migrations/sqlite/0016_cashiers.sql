-- Several Kaspi cashiers per organization (Kaspi lets an organization add cashiers; Kassa
-- spreads its calls over their budgets): a terminal is unique per (organization, phone), no
-- longer per organization. SQLite cannot drop the old UNIQUE in place: the table is made again
-- and its rows copied with their ids, sealed device and session unchanged.
--
-- `sealed_per_cashier`: which context the sealed device and session were sealed with. 0 for the
-- rows copied here, sealed by the organization alone (`terminal-device:{org}`,
-- `terminal-session:{org}`), so they stay readable and keep working; 1 for rows written by a
-- login from now on, sealed per cashier (`…:{org}:{phone}`), so two cashiers' blobs cannot be
-- swapped for one another. A re-login rewrites both blobs, and the row moves to 1.
CREATE TABLE terminals_cashiers (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id             BIGINT NOT NULL REFERENCES organizations (id),
    phone              TEXT NOT NULL,
    device_sealed      BLOB NOT NULL,
    session_sealed     BLOB,
    state              TEXT NOT NULL,
    state_reason       TEXT,
    version            BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    sealed_per_cashier BIGINT NOT NULL DEFAULT 0,
    UNIQUE (org_id, phone)
);
INSERT INTO terminals_cashiers
    (id, org_id, phone, device_sealed, session_sealed, state, state_reason, version, updated_at,
     sealed_per_cashier)
SELECT id, org_id, phone, device_sealed, session_sealed, state, state_reason, version, updated_at, 0
FROM terminals;
DROP TABLE terminals;
ALTER TABLE terminals_cashiers RENAME TO terminals;

-- The cashier (terminal) whose call created an invoice at Kaspi, when known: its cancel and
-- refunds go through the same cashier while it is usable. No foreign key: removing a cashier
-- leaves its invoices to the organization's other cashiers.
ALTER TABLE invoices ADD COLUMN terminal_id BIGINT;
