-- The task archive (contract §9): the final view of every task that has left the engine's
-- memory, written by the journal writer in the same transaction as the `tasks_archived` event
-- that carries it. `gavel archive rebuild` recomputes it from the journal.
-- task_id compares byte-wise (COLLATE "C"), as the engine orders ids: a page boundary between
-- two tasks of the same millisecond falls where the engine's cursor says.
CREATE TABLE archive (
    task_id      TEXT COLLATE "C" PRIMARY KEY,
    owner        TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    status       TEXT    NOT NULL,
    -- The seq of the `tasks_archived` event (a read at engine position S sees rows <= S).
    archived_seq BIGINT NOT NULL,
    -- The owner's view (TaskView JSON, `archived: true`).
    view         TEXT    NOT NULL
);
-- "My tasks, newest first" and "every task, newest first": O(log n + page).
CREATE INDEX archive_by_owner ON archive (owner, created_at, task_id);
CREATE INDEX archive_by_created ON archive (created_at, task_id);

-- Every coach an archived task was ever assigned, with its own bid (the coach's view).
CREATE TABLE archive_coaches (
    coach_id   TEXT    NOT NULL,
    created_at BIGINT NOT NULL,
    task_id    TEXT COLLATE "C" NOT NULL,
    position   BIGINT NOT NULL,
    bid        TEXT,
    PRIMARY KEY (coach_id, created_at, task_id)
);
CREATE INDEX archive_coaches_by_task ON archive_coaches (task_id);
