-- Webhook and Slack deliveries (issue 11): a transactional outbox. A row is written in the same
-- transaction as the task change it reports, so an event is delivered exactly when the change
-- committed; the delivery worker sends, retries with backoff and records the outcome here.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- The app the event is about ('' for none): one subscription gets one app's events in order.
    app_key         TEXT NOT NULL,
    -- The JWT id: the same on every attempt, so a receiver can drop a repeated delivery.
    jti             TEXT NOT NULL UNIQUE,
    task_name       TEXT NOT NULL,
    task_type       TEXT NOT NULL,
    event           TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_status     INTEGER,
    last_error      TEXT,
    created         TEXT NOT NULL,
    next_attempt    TEXT NOT NULL,
    last_attempt    TEXT,
    finished        TEXT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt);
CREATE INDEX webhook_deliveries_in_order ON webhook_deliveries (subscription_id, app_key, status, id);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished);
