-- Settings changed while Kassa runs, read by every process within a few seconds: the Kaspi app
-- version and build presented to Kaspi (`kassa kaspi app-build set`), and the build Kaspi
-- last refused (`kaspi.app_build_refused`), which makes the gateway's `app_build_outdated`
-- state while it is the build in use.
CREATE TABLE IF NOT EXISTS settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
