-- Multipart uploads to S3 origins in progress (issue 11): the upload id and the ETag of every
-- part the endpoint has stored, so a publish interrupted by a crash resumes without sending
-- those parts again. `target` is `endpoint/bucket`; rows go when the upload completes.
CREATE TABLE s3_uploads (
    id          INTEGER PRIMARY KEY,
    target      TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    upload_id   TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    part_size   INTEGER NOT NULL,
    created     TEXT NOT NULL,
    UNIQUE (target, object_key)
);

CREATE TABLE s3_upload_parts (
    upload      INTEGER NOT NULL REFERENCES s3_uploads (id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    etag        TEXT NOT NULL,
    PRIMARY KEY (upload, part_number)
) WITHOUT ROWID;
