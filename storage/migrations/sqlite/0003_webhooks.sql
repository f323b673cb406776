-- Webhook delivery cursors (contract §14): per webhook URL, the seq of the last event it
-- acknowledged (or skipped as not matching). A restart resumes after it.
CREATE TABLE webhook_cursors (
    url        TEXT    PRIMARY KEY,
    cursor_seq INTEGER NOT NULL
);
