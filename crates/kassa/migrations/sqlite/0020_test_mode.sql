-- Test mode beside live: an organization's test mode is a twin organization whose
-- `live_org_id` is the live one's id (NULL for a live organization). Everything is scoped by
-- organization, so a key of the twin sees only test data and a key of the live one only live
-- data. One twin per live organization.
ALTER TABLE organizations ADD COLUMN live_org_id BIGINT REFERENCES organizations (id);
CREATE UNIQUE INDEX organizations_live_org_id ON organizations (live_org_id);
