//! The watcher index (`watcher_events`, `watcher_index`) on both backends: the follower's steps
//! index every `seeker:`/`coach:` delivery of the journal up to its position, never past a
//! missing `seq`, and a topic's events and their count are read through it.

mod common;

use common::{fresh_store, market_events};
use gavel_engine::Event;
use gavel_engine::routing::deliveries;
use gavel_protocol::{Seq, Topic};
use gavel_storage::{Store, StoredEvent};

const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

/// The `(topic, seq)` rows a journal of `events` calls for, from the deliveries themselves.
fn expected(events: &[(Seq, Event)]) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    for (seq, e) in events {
        for d in deliveries(e) {
            let row = (d.topic.to_string(), *seq as i64);
            if matches!(d.topic, Topic::Seeker(_) | Topic::Coach(_)) && !rows.contains(&row) {
                rows.push(row);
            }
        }
    }
    rows.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    rows
}

/// Every `(topic, seq)` row of the index, by `seq`.
async fn index_rows(store: &Store) -> Vec<(String, i64)> {
    const SQL: &str = "SELECT topic, seq FROM watcher_events ORDER BY seq, topic";
    match store {
        Store::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await.unwrap(),
    }
}

fn encoded(events: &[(Seq, Event)]) -> Vec<StoredEvent> {
    events
        .iter()
        .map(|(seq, e)| StoredEvent::encode(*seq, e))
        .collect()
}

/// Steps the follower from `after` with pages of `page` rows until nothing follows.
async fn follow(store: &Store, mut after: Seq, page: u32) -> Seq {
    while let Some(last) = store.watcher_index_step(after, page).await.unwrap() {
        assert!(last > after, "a step moves forward");
        after = last;
    }
    after
}

#[tokio::test]
async fn the_follower_indexes_every_watcher_delivery_up_to_its_position() {
    let (_, events) = market_events(6);
    for backend in BACKENDS {
        let store = fresh_store(backend, "watcher_follow").await;
        assert_eq!(store.watcher_index_seq().await.unwrap(), 0);
        store.append(&encoded(&events)).await.unwrap();
        let end = store.latest_seq().await.unwrap();
        assert_eq!(
            index_rows(&store).await,
            [],
            "{backend}: not written by the append"
        );
        assert_eq!(follow(&store, 0, 7).await, end, "{backend}");
        assert_eq!(store.watcher_index_seq().await.unwrap(), end);
        let want = expected(&events);
        assert!(want.len() > 10, "{backend}: the fixture reaches watchers");
        assert_eq!(
            index_rows(&store).await,
            want,
            "{backend}: every row, no other"
        );
        // A second follower for a moment (around a failover) changes nothing.
        assert_eq!(follow(&store, 0, 1000).await, end);
        assert_eq!(
            index_rows(&store).await,
            want,
            "{backend}: rows indexed twice"
        );
        assert_eq!(store.watcher_index_seq().await.unwrap(), end);
    }
}

#[tokio::test]
async fn the_follower_stops_at_a_missing_seq() {
    let (_, events) = market_events(3);
    for backend in BACKENDS {
        let store = fresh_store(backend, "watcher_gap").await;
        let rows = encoded(&events);
        store.append(&rows[..5]).await.unwrap();
        // A journal with seq 7 but not 6 (no writer makes one; the follower must not step
        // over it).
        let seventh = &rows[6];
        match &store {
            Store::Sqlite(pool) => {
                sqlx::query("INSERT INTO journal (seq, at, kind, payload) VALUES (?, ?, ?, ?)")
                    .bind(seventh.seq as i64)
                    .bind(seventh.at as i64)
                    .bind(&seventh.kind)
                    .bind(&seventh.payload)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Store::Postgres(pool) => {
                sqlx::query("INSERT INTO journal (seq, at, kind, payload) VALUES ($1, $2, $3, $4)")
                    .bind(seventh.seq as i64)
                    .bind(seventh.at as i64)
                    .bind(&seventh.kind)
                    .bind(&seventh.payload)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
        assert_eq!(follow(&store, 0, 100).await, 5, "{backend}: up to the gap");
        assert_eq!(store.watcher_index_seq().await.unwrap(), 5);
    }
}

#[tokio::test]
async fn a_watchers_events_and_their_count_are_read_through_the_index() {
    let (_, events) = market_events(6);
    for backend in BACKENDS {
        let store = fresh_store(backend, "watcher_read").await;
        store.append(&encoded(&events)).await.unwrap();
        let end = follow(&store, 0, 1000).await;
        let watched: Vec<String> = expected(&events).into_iter().map(|(t, _)| t).collect();
        let seeker = watched.iter().find(|t| t.starts_with("seeker:")).unwrap();
        let coach = watched.iter().find(|t| t.starts_with("coach:")).unwrap();
        for topic in [seeker, coach] {
            let want: Vec<Seq> = events
                .iter()
                .filter(|(_, e)| deliveries(e).iter().any(|d| d.topic.to_string() == *topic))
                .map(|(seq, _)| *seq)
                .collect();
            assert!(want.len() > 2, "{backend} {topic}: the fixture reaches it");
            let mut read = Vec::new();
            let mut after = 0;
            loop {
                let page = store
                    .indexed_watcher_events(topic, after, end, 2)
                    .await
                    .unwrap();
                assert!(page.len() <= 2);
                let Some(last) = page.last() else { break };
                after = last.seq;
                read.extend(page.iter().map(|r| r.seq));
            }
            assert_eq!(read, want, "{backend} {topic}: every row, in order");
            let counted =
                |after, upto, cap| store.count_indexed_watcher_events(topic, after, upto, cap);
            assert_eq!(counted(0, end, 1000).await.unwrap(), want.len() as u64);
            let upto = want[want.len() - 2];
            assert_eq!(
                counted(want[0], upto, 1000).await.unwrap(),
                want.len() as u64 - 2
            );
            assert_eq!(counted(0, end, 2).await.unwrap(), 2, "{backend}: the cap");
        }
    }
}
