-- One type for Kaspi's operation ids: an invoice's operation id was TEXT while
-- kaspi_operations held the same ids as BIGINT (joins cast between them). Now an integer in
-- both (SQLite cannot change a column's type: the column is made again and copied).
DROP INDEX IF EXISTS invoices_org_operation;
ALTER TABLE invoices RENAME COLUMN kaspi_operation_id TO kaspi_operation_id_text;
ALTER TABLE invoices ADD COLUMN kaspi_operation_id BIGINT;
UPDATE invoices SET kaspi_operation_id = CAST(kaspi_operation_id_text AS INTEGER)
    WHERE kaspi_operation_id_text IS NOT NULL;
ALTER TABLE invoices DROP COLUMN kaspi_operation_id_text;
CREATE UNIQUE INDEX IF NOT EXISTS invoices_org_operation ON invoices (org_id, kaspi_operation_id)
    WHERE kaspi_operation_id IS NOT NULL;
