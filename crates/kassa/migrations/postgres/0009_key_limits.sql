-- Revocation of API keys across processes: every revocation raises `generation` in its own
-- transaction. Each process reads it (one row) several times a second and trusts its cache of
-- key lookups only while the number it last read stands still (`api/auth.rs`).
CREATE TABLE IF NOT EXISTS api_key_revocations (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO api_key_revocations (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- The per-key rate limit across processes: how much of a key's quota for the window starting
-- at `window_start` (unix ms) the processes have leased in all. A process leases a chunk with
-- one conditional upsert and spends it from memory (`api/ratelimit.rs`); `leased` may pass the
-- limit by the last asked chunk, of which only the part under the limit was granted.
CREATE TABLE IF NOT EXISTS rate_limit_leases (
    key_id       BIGINT PRIMARY KEY REFERENCES api_keys (id),
    window_start BIGINT NOT NULL,
    leased       BIGINT NOT NULL
);
