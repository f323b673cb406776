-- Each task's events (contract §6, gavel's `GET /v1/tasks/{id}/events`): an index of the
-- journal by task, kept by a follower of the journal, so a task's history — archived tasks'
-- too — is read in O(log n + its events). `task_index.indexed_seq`: the journal is indexed up
-- to there (what lies after it is read from the journal itself).
CREATE TABLE task_events (
    task_id TEXT COLLATE "C" NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE task_index (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_seq BIGINT NOT NULL
);
