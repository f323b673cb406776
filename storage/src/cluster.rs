//! What a cluster keeps in Postgres besides the journal: the leader's lease (with its fencing
//! epoch), the fenced journal append, and every node's heartbeat. All of it is Postgres only —
//! SQLite is one process's file, and a cluster refuses to start on it.
//!
//! Times are Postgres's `now()`: one clock for every node, so a lease's expiry means the same
//! on all of them whatever their own clocks say.

use std::time::Duration;

use gavel_protocol::Seq;
use sqlx::Row;
use sqlx::postgres::PgPool;

use crate::error::StorageError;
use crate::store::{Store, StoredEvent};

/// The lease as read: who leads, since which epoch, for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: Option<String>,
    /// The address the holder serves on (where followers forward commands).
    pub holder_addr: Option<String>,
    pub epoch: u64,
    /// Milliseconds until it expires (negative once expired), by the database's clock.
    pub expires_in_ms: i64,
    /// The holder's durable seq at its last renewal.
    pub seq: Seq,
}

impl LeaseRow {
    /// The current leader, if the lease is held and not expired.
    pub fn live_holder(&self) -> Option<&str> {
        (self.expires_in_ms > 0)
            .then_some(self.holder.as_deref())
            .flatten()
    }
}

/// One node's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub node_id: String,
    pub addr: String,
    pub role: String,
    pub seq: Seq,
    pub lag_ms: u64,
    pub connections: u64,
    /// Unix milliseconds of the last heartbeat (the database's clock).
    pub last_seen_ms: u64,
}

impl Store {
    fn cluster_pool(&self) -> Result<&PgPool, StorageError> {
        match self {
            Store::Postgres(pool) => Ok(pool),
            Store::Sqlite(_) => Err(StorageError::Unsupported(
                "a cluster needs Postgres (--database-url postgres://…)",
            )),
        }
    }

    /// Takes the lease for `node` if nobody holds a live one; returns the new epoch. Every
    /// take bumps the epoch, so whatever an earlier holder still tries to append is refused.
    pub async fn lease_acquire(
        &self,
        node: &str,
        addr: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, StorageError> {
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE cluster_lease SET holder = $1, holder_addr = $2, epoch = epoch + 1, \
             expires_at = now() + make_interval(secs => $3) \
             WHERE id = 1 AND (holder IS NULL OR holder = $1 OR expires_at < now()) RETURNING epoch",
        )
        .bind(node)
        .bind(addr)
        .bind(ttl.as_secs_f64())
        .fetch_optional(self.cluster_pool()?)
        .await?;
        Ok(epoch.map(|e| e as u64))
    }

    /// Extends the lease held at `epoch` and records the leader's durable `seq`; `false` when
    /// the lease is no longer this epoch's (someone else took it: step down).
    pub async fn lease_renew(
        &self,
        epoch: u64,
        seq: Seq,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE cluster_lease SET expires_at = now() + make_interval(secs => $2), seq = $3 \
             WHERE id = 1 AND epoch = $1",
        )
        .bind(epoch as i64)
        .bind(ttl.as_secs_f64())
        .bind(seq as i64)
        .execute(self.cluster_pool()?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up (a graceful stop): a follower may take it at once.
    pub async fn lease_release(&self, epoch: u64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE cluster_lease SET expires_at = now() - interval '1 millisecond' \
             WHERE id = 1 AND epoch = $1",
        )
        .bind(epoch as i64)
        .execute(self.cluster_pool()?)
        .await?;
        Ok(())
    }

    /// The lease as it stands.
    pub async fn lease(&self) -> Result<LeaseRow, StorageError> {
        let row = sqlx::query(
            "SELECT holder, holder_addr, epoch, seq, \
             (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::bigint AS expires_in_ms \
             FROM cluster_lease WHERE id = 1",
        )
        .fetch_one(self.cluster_pool()?)
        .await?;
        Ok(LeaseRow {
            holder: row.try_get("holder")?,
            holder_addr: row.try_get("holder_addr")?,
            epoch: row.try_get::<i64, _>("epoch")? as u64,
            expires_in_ms: row.try_get("expires_in_ms")?,
            seq: row.try_get::<i64, _>("seq")? as Seq,
        })
    }

    /// Appends like [`Store::append`] (archive and task-index rows included, one statement),
    /// but only while `epoch` holds a live lease — checked in the same statement, under a
    /// share lock on the lease row (a take waits for the append, and an append after a take
    /// finds the new epoch). Refused with [`StorageError::Fenced`], nothing written.
    pub async fn append_fenced(
        &self,
        events: &[StoredEvent],
        epoch: u64,
    ) -> Result<(), StorageError> {
        if events.is_empty() {
            return Ok(());
        }
        let archive = crate::archive::archive_rows(events)?;
        let index = crate::task_events::BatchIndex::of(events);
        let row = crate::append::postgres_append(events, &archive, &index, Some(epoch))
            .fetch_one(self.cluster_pool()?)
            .await?;
        match row.try_get::<i64, _>(0)? {
            0 => Err(StorageError::Fenced { epoch }),
            _ => Ok(()),
        }
    }

    /// Records this node's heartbeat.
    pub async fn node_heartbeat(&self, node: &NodeRow) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO cluster_nodes (node_id, addr, role, seq, lag_ms, connections, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (node_id) DO UPDATE SET \
             addr = $2, role = $3, seq = $4, lag_ms = $5, connections = $6, last_seen = now()",
        )
        .bind(&node.node_id)
        .bind(&node.addr)
        .bind(&node.role)
        .bind(node.seq as i64)
        .bind(node.lag_ms as i64)
        .bind(node.connections as i64)
        .execute(self.cluster_pool()?)
        .await?;
        Ok(())
    }

    /// The nodes heard from within `within`, by id.
    pub async fn nodes(&self, within: Duration) -> Result<Vec<NodeRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT node_id, addr, role, seq, lag_ms, connections, \
             (EXTRACT(EPOCH FROM last_seen) * 1000)::bigint AS last_seen_ms \
             FROM cluster_nodes WHERE last_seen > now() - make_interval(secs => $1) \
             ORDER BY node_id",
        )
        .bind(within.as_secs_f64())
        .fetch_all(self.cluster_pool()?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeRow {
                    node_id: row.try_get("node_id")?,
                    addr: row.try_get("addr")?,
                    role: row.try_get("role")?,
                    seq: row.try_get::<i64, _>("seq")? as Seq,
                    lag_ms: row.try_get::<i64, _>("lag_ms")? as u64,
                    connections: row.try_get::<i64, _>("connections")? as u64,
                    last_seen_ms: row.try_get::<i64, _>("last_seen_ms")? as u64,
                })
            })
            .collect()
    }
}
