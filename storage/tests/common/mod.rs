//! Shared test fixtures: fresh stores on both backends, and real engine events to store.
#![allow(dead_code)]

use std::path::PathBuf;

use gavel_engine::{Actor, Command, Engine, EngineConfig, Event, Request};
use gavel_protocol::command::{PlaceBid, PostTask};
use gavel_protocol::http::CoachUpsert;
use gavel_protocol::{Role, Seq, Urgency, UserId};
use gavel_storage::Store;
use sqlx::Connection;

/// The Postgres the tests use: `GAVEL_TEST_DATABASE_URL`, or the local default.
pub fn database_url() -> String {
    std::env::var("GAVEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A unique name for this test's database or directory.
pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "gavel_{name}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty Postgres database; returns its URL. Fails (never skips) when Postgres does
/// not answer at [`database_url`].
pub async fn fresh_postgres(name: &str) -> String {
    let base = database_url();
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres at {base} (GAVEL_TEST_DATABASE_URL) does not answer: {e}")
        });
    drop_orphans(&mut admin, name).await;
    let db = unique(name);
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (prefix, _) = base
        .rsplit_once('/')
        .expect("database URL ends in /<database>");
    format!("{prefix}/{db}")
}

/// Drops the `gavel_<name>_<pid>_<n>` databases of test processes that are gone (a store of
/// [`fresh_store`] is never dropped by its test, and a crashed test drops nothing); a database
/// whose process is alive is left alone, whoever's it is.
async fn drop_orphans(admin: &mut sqlx::PgConnection, name: &str) {
    let prefix = format!("gavel_{name}_");
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for db in names {
        let pid = db[prefix.len()..]
            .split('_')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut *admin)
        .await;
    }
}

/// A fresh directory for a SQLite store.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(name));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Opens a fresh store of the given backend.
pub async fn fresh_store(backend: &str, name: &str) -> Store {
    match backend {
        "sqlite" => Store::open_sqlite(&fresh_dir(name)).await.unwrap(),
        "postgres" => Store::open_postgres(&fresh_postgres(name).await)
            .await
            .unwrap(),
        other => panic!("unknown backend {other}"),
    }
}

fn actor(user: &str, role: Role) -> Actor {
    Actor::new(UserId::new(user).unwrap(), role)
}

/// Runs a small market for `tasks` tasks (a post and two bids each) and returns every
/// event with its `seq`, plus the engine that produced them.
pub fn market_events(tasks: usize) -> (Engine, Vec<(Seq, Event)>) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut events = Vec::new();
    let admin = actor("ops", Role::Admin);
    let mut run = |engine: &mut Engine, actor: &Actor, command: Command, now: u64| {
        let outcome = engine.execute(
            &Request {
                actor: actor.clone(),
                request_id: None,
                command,
            },
            now,
        );
        outcome.reply.expect("fixture commands succeed");
        events.extend(outcome.events);
    };
    for coach in ["ana", "ben"] {
        let profile = CoachUpsert {
            ratings_count: 0,
            display_name: coach.into(),
            rating: 4.5,
            verified: true,
            on_call: false,
            capacity: 3,
            suspended: false,
        };
        run(
            &mut engine,
            &admin,
            Command::UpsertCoach {
                coach_id: UserId::new(coach).unwrap(),
                profile,
            },
            0,
        );
    }
    for i in 0..tasks {
        let seeker = actor(&format!("seeker{}", i % 7), Role::Seeker);
        let post = PostTask {
            resume_id: format!("r{i}"),
            task_type: None,
            urgency: Urgency::Standard,
            base_price: None,
            award: None,
            task_id: None,
            owner: None,
        };
        run(&mut engine, &seeker, Command::PostTask(post), i as u64);
        let task_id = gavel_engine::ids::task_id(i as u64);
        for (coach, amount) in [("ana", 3000), ("ben", 2600)] {
            let bid = PlaceBid {
                task_id: task_id.clone(),
                amount,
                eta_hours: 5,
            };
            run(
                &mut engine,
                &actor(coach, Role::Coach),
                Command::PlaceBid(bid),
                i as u64,
            );
        }
    }
    (engine, events)
}

/// Drops a database made by [`fresh_postgres`] (disconnecting whoever is still on it).
pub async fn drop_postgres(url: &str) {
    let (_, db) = url
        .rsplit_once('/')
        .expect("database URL ends in /<database>");
    let mut admin = sqlx::PgConnection::connect(&database_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
