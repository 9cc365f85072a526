-- Session control (issue 14): what an administrator needs to tell a lost laptop's session from
-- the others — when it last refreshed and from which client address it logged in.
ALTER TABLE sessions ADD COLUMN refreshed TEXT;
ALTER TABLE sessions ADD COLUMN client TEXT;
