-- The journal: one row per engine event, in seq order. seq is the primary key, so a second
-- writer of the same position fails (this fences a stale writer).
CREATE TABLE journal (
    seq     INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    payload TEXT    NOT NULL
);

-- Snapshots of the whole engine state at a seq; recovery = latest snapshot + journal tail.
CREATE TABLE snapshots (
    seq   INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    state BLOB    NOT NULL
);

-- Store-wide facts, such as the epoch (the identity of this journal).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
