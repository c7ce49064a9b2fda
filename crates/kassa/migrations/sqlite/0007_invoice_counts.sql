-- How many invoices each organization has, kept with every insert and delete so that the
-- `total` of an unfiltered list is a sum of a few rows instead of a count of every invoice.
-- Spread over 16 shards (by invoice id) so that concurrent creates of one organization do
-- not all wait for one row's lock on PostgreSQL.
CREATE TABLE invoice_counts (
    org_id  BIGINT NOT NULL REFERENCES organizations (id),
    shard   BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (org_id, shard)
);

INSERT INTO invoice_counts (org_id, shard, n)
SELECT org_id, id % 16, COUNT(*) FROM invoices GROUP BY org_id, id % 16;
