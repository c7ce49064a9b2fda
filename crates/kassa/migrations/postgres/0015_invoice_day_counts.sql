-- How many invoices each organization has, and their amounts and refunds (tiyn), per status
-- and per Asia/Almaty day of creation (days since 1970-01-01, UTC+5: the days ApiPay's
-- date_from/date_to and stats name), kept in the same transaction as every insert, status
-- change, refund and delete of an invoice. A filtered `total` and the stats of a period add
-- up a few rows per day instead of reading every invoice.
--
-- `day = -1` holds the organization's totals over all days, written by the same statement,
-- so an unfiltered or status-only total reads a few rows whatever the history's length.
-- Spread over 16 shards (by invoice id), as invoice_counts was, so that concurrent creates of
-- one organization do not all wait for one row's lock on PostgreSQL.

CREATE TABLE invoice_day_counts (
    org_id   BIGINT NOT NULL REFERENCES organizations (id),
    status   TEXT NOT NULL,
    day      BIGINT NOT NULL,
    shard    BIGINT NOT NULL,
    n        BIGINT NOT NULL,
    amount   BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    PRIMARY KEY (org_id, status, day, shard)
);

INSERT INTO invoice_day_counts (org_id, status, day, shard, n, amount, refunded)
SELECT org_id, status, (created_at + 18000000) / 86400000, id % 16,
       COUNT(*), SUM(amount), SUM(total_refunded)
FROM invoices GROUP BY org_id, status, (created_at + 18000000) / 86400000, id % 16;

INSERT INTO invoice_day_counts (org_id, status, day, shard, n, amount, refunded)
SELECT org_id, status, -1, id % 16, COUNT(*), SUM(amount), SUM(total_refunded)
FROM invoices GROUP BY org_id, status, id % 16;

-- Its per-organization totals are the day = -1 rows now.
DROP TABLE IF EXISTS invoice_counts;
