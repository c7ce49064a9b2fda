-- Settings and markers of the gateway itself (for example the device identity's id), one
-- text value per key.
CREATE TABLE kv_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
