-- 015_task_app_created: an app's tasks in creation order. A page in app-name order that goes on
-- by creation time (`order[]=appName&order[]=created`) walks it whole, and a page read group by
-- group (src/store/task_groups.rs) walks one app's tasks in creation order along it. Without it
-- SQLite sorted every app's tasks (30 ms a page at 10^6 tasks), and a group walk along the
-- creation index visited the whole history for an app with few tasks.
CREATE INDEX tasks_by_org_app_created ON tasks (org_id, app_name, created, name, type, status);
