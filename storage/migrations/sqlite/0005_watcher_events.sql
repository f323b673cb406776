-- The journal indexed by `seeker:<id>` and `coach:<id>` topic (contract §2, §9): a resume far
-- behind on such a topic reads only its own events, however long the journal. Kept by a
-- follower of the journal, off the append path (`gavel_storage::watcher_events`), up to
-- `watcher_index.indexed_seq`; readers read what lies after it from the journal itself.
CREATE TABLE watcher_events (
    topic TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (topic, seq)
) WITHOUT ROWID;

CREATE TABLE watcher_index (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_seq INTEGER NOT NULL
);
