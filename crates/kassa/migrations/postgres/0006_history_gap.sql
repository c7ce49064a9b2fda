-- A stretch of a cashier's history that one sync run could not read to the end (more new
-- operations than a run reads at once): later runs read the newest pages first, then go on
-- with it from `gap_cursor` (Kaspi's paging cursor) down to `gap_until` (the mark the stretch
-- ends at). NULL when nothing is left to read.
ALTER TABLE history_sync ADD COLUMN gap_cursor TEXT;
ALTER TABLE history_sync ADD COLUMN gap_until TEXT;
