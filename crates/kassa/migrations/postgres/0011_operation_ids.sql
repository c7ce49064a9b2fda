-- One type for Kaspi's operation ids: an invoice's operation id was TEXT while
-- kaspi_operations held the same ids as BIGINT (joins cast between them). Now BIGINT in both.
DROP INDEX IF EXISTS invoices_org_operation;
ALTER TABLE invoices ALTER COLUMN kaspi_operation_id TYPE BIGINT USING kaspi_operation_id::BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS invoices_org_operation ON invoices (org_id, kaspi_operation_id)
    WHERE kaspi_operation_id IS NOT NULL;
