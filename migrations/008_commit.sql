-- Go live and roll back (issue 11, POST /be/v1/commit): any retained build can become the
-- current one again, so each build keeps the name of its DxF image (the app row only knew the
-- current build's). Builds from before this migration learn it from the app where they are
-- current; for the others the commit task finds it in the depot.
ALTER TABLE builds ADD COLUMN dxf_name TEXT;
UPDATE builds SET dxf_name = (SELECT a.dxf_name FROM apps a WHERE a.id = builds.app_id AND a.i_cur_build = builds.build_id);
