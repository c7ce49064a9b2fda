-- Two-factor sign-in (TOTP, RFC 6238) for dashboard users, and an organization's rule that
-- every user has it.
--
-- `totp_secret`: the TOTP secret sealed with the master key (base64; context `totp:{user id}`),
-- never stored in the clear. Set while enrolling; `totp_enabled_at` is set once a code from it
-- was confirmed (NULL with a secret: an enrolment not finished). `totp_last_step`: the 30 s
-- step of the last code accepted, so a code is not accepted twice.
ALTER TABLE dashboard_users ADD COLUMN totp_secret TEXT;
ALTER TABLE dashboard_users ADD COLUMN totp_enabled_at BIGINT;
ALTER TABLE dashboard_users ADD COLUMN totp_last_step BIGINT;

-- 1: every user of the organization must have two-factor sign-in (set by an owner).
ALTER TABLE organizations ADD COLUMN require_two_factor BIGINT NOT NULL DEFAULT 0;

-- Recovery codes, each usable once: only their keyed hash is kept.
CREATE TABLE IF NOT EXISTS dashboard_recovery_codes (
    user_id    BIGINT NOT NULL REFERENCES dashboard_users (id),
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- A sign-in half done: the password or link was right, the second factor is awaited. The
-- token (in a cookie) is kept as its SHA-256 hash; no session exists until the code is given.
CREATE TABLE IF NOT EXISTS dashboard_pending_signins (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES dashboard_users (id),
    next_path  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
