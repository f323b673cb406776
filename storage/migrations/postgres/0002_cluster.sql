-- Cluster leadership: one row, the lease. The leader renews `expires_at`; a follower takes the
-- lease only once it has expired, and every take bumps `epoch` (the fencing token). Journal
-- appends of a leader check its epoch in the same statement, so a leader that lost the lease
-- (frozen, partitioned) writes nothing when it wakes.
CREATE TABLE cluster_lease (
    id          SMALLINT    PRIMARY KEY CHECK (id = 1),
    holder      TEXT,
    holder_addr TEXT,
    epoch       BIGINT      NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    -- The leader's durable seq at its last renewal (followers' lag is measured against it).
    seq         BIGINT      NOT NULL DEFAULT 0
);
INSERT INTO cluster_lease (id, holder, holder_addr, epoch, expires_at)
VALUES (1, NULL, NULL, 0, to_timestamp(0));

-- Every node's heartbeat, for `GET /v1/cluster`.
CREATE TABLE cluster_nodes (
    node_id     TEXT        PRIMARY KEY,
    addr        TEXT        NOT NULL,
    role        TEXT        NOT NULL,
    seq         BIGINT      NOT NULL,
    lag_ms      BIGINT      NOT NULL,
    connections BIGINT      NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL
);
