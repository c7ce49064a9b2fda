-- What each API key may do (`domain::Scopes`): `*` for every scope (keys made before scopes
-- existed, and keys made without a choice, so they also hold scopes added later), else
-- `resource:action` entries separated by spaces, e.g. `invoices:write refunds:read`.
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS scopes TEXT NOT NULL DEFAULT '*';
