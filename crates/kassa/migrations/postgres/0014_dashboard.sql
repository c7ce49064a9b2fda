-- The merchant dashboard's people: users of one organization each (an e-mail signs in to one
-- organization), their browser sessions and the one-time sign-in links. Tokens are kept only
-- as SHA-256 hashes; passwords only as argon2 hashes.
CREATE TABLE dashboard_users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        BIGINT NOT NULL REFERENCES organizations (id),
    -- Lower-cased by Kassa.
    email         TEXT NOT NULL UNIQUE,
    -- NULL: no password yet (signs in by a one-time link only).
    password_hash TEXT,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT,
    -- Failed sign-ins in a row, and until when sign-in is refused after too many.
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT
);
CREATE INDEX dashboard_users_org ON dashboard_users (org_id, id);

CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES dashboard_users (id),
    -- The token every form of this session carries.
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);

CREATE TABLE dashboard_login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES dashboard_users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
