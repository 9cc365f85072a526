-- 014_task_walk_cover: a page in a non-time order with a creation window walks its order's index
-- and keeps the matches. With the creation time in the index (and, for a type or status walk,
-- the other of the two), the walk checks each entry against the window on the entry itself and
-- reads a table row only for the page's matches; before, it read the row of every entry it
-- visited. A week of a year's history in name order (500 entries visited at 10^6 tasks) took
-- 0.19 ms and takes 0.07 ms (bench/tasks_list_scale.py). The same indexes, wider; the names stay.
DROP INDEX tasks_by_org_name;
CREATE INDEX tasks_by_org_name ON tasks (org_id, name, created);
DROP INDEX tasks_by_org_type;
CREATE INDEX tasks_by_org_type ON tasks (org_id, type, name, created, status);
DROP INDEX tasks_by_org_status;
CREATE INDEX tasks_by_org_status ON tasks (org_id, status, name, created, type);
DROP INDEX tasks_by_org_app;
CREATE INDEX tasks_by_org_app ON tasks (org_id, app_name, name, created);
