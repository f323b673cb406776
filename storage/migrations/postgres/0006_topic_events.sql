-- The journal indexed by `seeker:<id>` and `coach:<id>` topic (contract §2, §13): a resume on
-- such a topic reads only its own events, however long the journal. Kept with `task_events`:
-- written with each batch, up to the same position `task_index.indexed_seq`.
CREATE TABLE topic_events (
    topic TEXT COLLATE "C" NOT NULL,
    seq   BIGINT NOT NULL,
    PRIMARY KEY (topic, seq)
);

-- The journal written so far is indexed again, these topics included: the position goes back
-- to the start and the catch-up at start-up walks the journal (task rows already there are
-- skipped); meanwhile every reader reads what lies after the position from the journal.
UPDATE task_index SET indexed_seq = 0;
