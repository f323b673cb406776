//! A journal filled directly: the engine run in the test, its events appended to the store,
//! so 100,000 events cost seconds, not a 100,000-command workload.

use gavel_protocol::{Role, UserId};

/// Journals `tasks` posted tasks (one `task.opened` each, a millisecond apart) into a fresh
/// SQLite store in `dir`.
pub async fn populate(dir: &std::path::Path, tasks: usize) {
    let store = gavel_storage::Store::open_sqlite(dir).await.unwrap();
    populate_store(&store, tasks).await;
}

/// [`populate`] into any store (Postgres: a [`fresh_postgres`] database).
pub async fn populate_store(store: &gavel_storage::Store, tasks: usize) {
    let config = gavel_engine::EngineConfig {
        tiers: gavel_engine::TierTable::default(),
        archive_after: Some(3_600_000),
        ..Default::default()
    };
    let mut engine = gavel_engine::Engine::new(config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let actor = gavel_engine::Actor::new(UserId::new("sally").unwrap(), Role::Seeker);
    let mut rows = Vec::new();
    for i in 0..tasks {
        let request = gavel_engine::Request {
            actor: actor.clone(),
            request_id: None,
            command: gavel_engine::Command::PostTask(gavel_protocol::command::PostTask {
                resume_id: format!("cv-{i}"),
                task_type: None,
                urgency: gavel_protocol::Urgency::Flexible,
                base_price: None,
                award: None,
                task_id: None,
                owner: None,
            }),
        };
        let outcome = engine.execute(&request, now + i as u64);
        assert!(outcome.reply.is_ok());
        rows.extend(
            outcome
                .events
                .iter()
                .map(|(s, e)| gavel_storage::StoredEvent::encode(*s, e)),
        );
        if rows.len() >= 5_000 {
            store.append(&rows).await.unwrap();
            rows.clear();
        }
    }
    store.append(&rows).await.unwrap();
}
