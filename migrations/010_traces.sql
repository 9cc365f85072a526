-- Start-up read traces that launchers send for a build (FastStart, issue 11): one row per
-- trace, its reads as JSON in first-access order. processTraces merges the traces of the app's
-- current build into the order of a new image; a build's traces go when the build is evicted.
CREATE TABLE traces (
    id       INTEGER PRIMARY KEY,
    app_id   INTEGER NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    build_id INTEGER NOT NULL,
    reads    TEXT NOT NULL,
    created  TEXT NOT NULL
);

CREATE INDEX traces_of_build ON traces (app_id, build_id, id);
