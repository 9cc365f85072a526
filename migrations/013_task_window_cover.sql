-- 013_task_window_cover: a page of a creation window in another order (name, app name, type,
-- status) reads the window along its creation index and sorts the matches. With the columns
-- every filter and order needs in the index, that read touches index entries only, and the table
-- only for the page's rows: a day of a year's history (1 440 of 10^6 tasks) in name order took
-- 0.50 ms with a table row per entry and 0.21 ms without (bench/tasks_list_scale.py). The same
-- indexes, wider; their names stay, as the list pins them by name.
DROP INDEX tasks_by_org;
CREATE INDEX tasks_by_org ON tasks (org_id, created, name, type, status, app_name);
DROP INDEX tasks_by_org_type_created;
CREATE INDEX tasks_by_org_type_created ON tasks (org_id, type, created, name, status, app_name);
DROP INDEX tasks_by_org_status_created;
CREATE INDEX tasks_by_org_status_created ON tasks (org_id, status, created, name, type, app_name);
