-- The catalog of each organization (Kassa's own: Kaspi's catalog protocol is not public),
-- its images (PNG, in the database so several processes need no shared disk), and the lines of
-- cart invoices, kept as they were sold (an item deleted or changed later does not change them).
CREATE TABLE catalog_images (
    id         TEXT PRIMARY KEY,
    org_id     BIGINT NOT NULL REFERENCES organizations (id),
    sha256     TEXT NOT NULL,
    png        BLOB NOT NULL,
    width      BIGINT NOT NULL,
    height     BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, sha256)
);

CREATE TABLE catalog_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        BIGINT NOT NULL REFERENCES organizations (id),
    name          TEXT NOT NULL,
    -- The name lower-cased by Kassa (Unicode), for search: SQLite's LOWER() knows only ASCII.
    name_search   TEXT NOT NULL,
    selling_price BIGINT NOT NULL,
    unit_id       BIGINT NOT NULL,
    image_id      TEXT,
    barcode       TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    deleted_at    BIGINT
);
CREATE INDEX catalog_items_org ON catalog_items (org_id, id);

CREATE TABLE invoice_items (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    invoice_id              BIGINT NOT NULL REFERENCES invoices (id),
    org_id                  BIGINT NOT NULL,
    position                BIGINT NOT NULL,
    catalog_item_id         BIGINT,
    name                    TEXT NOT NULL,
    price                   BIGINT NOT NULL,
    original_price          BIGINT NOT NULL,
    count                   BIGINT NOT NULL,
    unit_id                 BIGINT,
    discount                BIGINT NOT NULL,
    item_type               TEXT,
    nomenclature_id         BIGINT,
    nomenclature_history_id BIGINT,
    -- How many of this line refunds took back (pending, processing or completed refunds).
    returned_count          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX invoice_items_invoice ON invoice_items (invoice_id, position);

-- The lines a refund takes back (`return_items`), released again if the refund fails.
CREATE TABLE refund_items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    refund_id       BIGINT NOT NULL REFERENCES refunds (id),
    invoice_item_id BIGINT NOT NULL REFERENCES invoice_items (id),
    catalog_item_id BIGINT,
    count           BIGINT NOT NULL,
    amount          BIGINT NOT NULL
);
CREATE INDEX refund_items_refund ON refund_items (refund_id);

ALTER TABLE invoices ADD COLUMN subtotal BIGINT;
ALTER TABLE invoices ADD COLUMN discount_percentage BIGINT;
ALTER TABLE invoices ADD COLUMN discount_sum BIGINT;
-- A subscription billed from a cart: its lines as priced when it was made or changed (JSON).
ALTER TABLE subscriptions ADD COLUMN cart TEXT;
