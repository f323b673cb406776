//! The cluster harness's own services, for real: a throwaway Postgres and a throwaway Redis
//! start, go down on `stop`, and come back on `start_again` on the same port (Postgres with
//! its data kept).

#[path = "cluster_support/mod.rs"]
mod support;

use std::net::TcpStream;
use std::time::Duration;

use gavel_gateway::ingress::auth::JwtKeys;
use gavel_protocol::Role;
use sqlx::{Connection, PgConnection, PgPool, Row};
use support::{CLUSTER_SECRET, ThrowawayPostgres, ThrowawayRedis, free_port, token};

/// A single connection attempt (no pool retries), bounded in time.
async fn try_connect(url: &str) -> Result<PgConnection, String> {
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())
}

async fn probe_value(url: &str) -> i32 {
    let pool = PgPool::connect(url)
        .await
        .expect("the throwaway Postgres accepts a pool");
    let row = sqlx::query("SELECT v FROM harness_probe")
        .fetch_one(&pool)
        .await
        .expect("the table made before the stop is still there");
    let v: i32 = row.get("v");
    pool.close().await;
    v
}

#[tokio::test]
async fn a_throwaway_postgres_stops_and_starts_again_with_its_data() {
    let pg = ThrowawayPostgres::start();
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));

    let pool = PgPool::connect(&pg.url())
        .await
        .expect("the throwaway Postgres accepts a pool");
    let one: i32 = sqlx::query("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("SELECT 1 runs")
        .get(0);
    assert_eq!(one, 1);
    sqlx::query("CREATE TABLE harness_probe (v INT NOT NULL)")
        .execute(&pool)
        .await
        .expect("create the probe table");
    sqlx::query("INSERT INTO harness_probe (v) VALUES (42)")
        .execute(&pool)
        .await
        .expect("insert the probe row");
    pool.close().await;

    pg.stop();
    assert!(!pg.is_running());
    let refused = try_connect(&pg.url()).await;
    assert!(refused.is_err(), "a stopped Postgres refuses connections");

    pg.start_again();
    assert!(pg.is_running());
    assert_eq!(probe_value(&pg.url()).await, 42);

    pg.restart();
    assert_eq!(probe_value(&pg.url()).await, 42, "and after a restart");
}

#[test]
fn a_throwaway_redis_stops_and_starts_again() {
    let redis = ThrowawayRedis::start();
    assert_eq!(redis.url(), format!("redis://{}", redis.addr()));
    assert_eq!(redis.ping().expect("PING answered"), "+PONG");

    redis.stop();
    assert!(!redis.is_running());
    let refused = TcpStream::connect_timeout(&redis.addr(), Duration::from_secs(1));
    assert!(refused.is_err(), "a stopped Redis refuses connections");

    redis.start_again();
    assert!(redis.is_running());
    assert_eq!(redis.ping().expect("PING answered again"), "+PONG");

    redis.restart();
    assert_eq!(
        redis.ping().expect("PING answered after a restart"),
        "+PONG"
    );
}

#[test]
fn free_ports_are_free_and_distinct() {
    let ports = support::free_ports(5);
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{ports:?}");
    let port = free_port();
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}

#[test]
fn harness_tokens_carry_the_claims_and_the_cluster_secret() {
    let claims = JwtKeys::new(CLUSTER_SECRET.as_bytes())
        .verify(&token("alice", Role::Seeker))
        .expect("a harness token verifies with the cluster secret");
    assert_eq!(claims.sub.as_str(), "alice");
    assert_eq!(claims.role, Role::Seeker);
    assert!(
        JwtKeys::new(b"another")
            .verify(&support::admin_token())
            .is_err()
    );
}
