-- 016_task_days: an organization's tasks by creation day (UTC), each day in name, type, status
-- and app-name order (src/store/task_days.rs). A page of a window of a few days in one of those
-- orders walks each day for a page and merges the days' heads, instead of reading the window's
-- every entry and sorting it (the last day of a year's history in name order: 1 440 entries,
-- twice the cost of the same page on a history shorter than a day). Each holds the creation
-- time and the filtered columns, so the window and the filters are checked on the entry.
CREATE INDEX tasks_by_org_day_name ON tasks (org_id, substr(created, 1, 10), name, created, type, status, app_name);
CREATE INDEX tasks_by_org_day_type ON tasks (org_id, substr(created, 1, 10), type, name, created, status, app_name);
CREATE INDEX tasks_by_org_day_status ON tasks (org_id, substr(created, 1, 10), status, name, created, type, app_name);
CREATE INDEX tasks_by_org_day_app ON tasks (org_id, substr(created, 1, 10), app_name, name, created, type, status);
