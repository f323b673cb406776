//! What the archive tests share: a server that archives final tasks a tenth of a second
//! after they end, and the reads a client makes of the archive (`list_tasks` page by page,
//! `subscribe task:<id>`).
//!
//! Use it from a test binary (after `mod common;`) with
//! `#[path = "archive_support/mod.rs"] mod support;`.
// Shared by several test binaries; each uses only some of it.
#![allow(dead_code)]

use std::time::Duration;

use gavel_gateway::app::ServerOptions;
use serde_json::{Value, json};

use crate::common::Client;

/// 600× engine time: a retention of one minute passes in 0.1 s.
pub fn archiving(mut options: ServerOptions) -> ServerOptions {
    options.config.limits.commands_per_minute = 10_000_000;
    options.config.limits.command_burst = 1_000_000;
    options.config.limits.subscribes_per_minute = 1_000_000;
    options.config.retention.final_task_minutes = 1;
    options.time_scale = 600.0;
    options
}

pub fn post(task_id: &str) -> Value {
    json!({"type": "post_task", "task_id": task_id, "resume_id": "r", "urgency": "flexible"})
}

/// One page of `list_tasks` with `filter`: (tasks, next).
pub async fn list_page(
    client: &mut Client,
    id: &str,
    filter: &Value,
    limit: u32,
    before: &Value,
) -> (Vec<Value>, Value) {
    let mut frame = filter.clone();
    frame["type"] = json!("list_tasks");
    frame["limit"] = json!(limit);
    if !before.is_null() {
        frame["before"] = before.clone();
    }
    let result = client.ok(id, frame).await;
    let tasks = result["tasks"].as_array().expect("a page of tasks").clone();
    (tasks, result["next"].clone())
}

/// Every page of `list_tasks` with `filter`, `limit` at a time.
pub async fn list_all(client: &mut Client, filter: Value, limit: u32) -> Vec<Value> {
    let mut tasks = Vec::new();
    let mut before = Value::Null;
    for page in 0.. {
        let (found, next) =
            list_page(client, &format!("page-{page}"), &filter, limit, &before).await;
        tasks.extend(found);
        before = next;
        if before.is_null() {
            return tasks;
        }
    }
    unreachable!()
}

pub fn ids(tasks: &[Value]) -> Vec<&str> {
    tasks
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect()
}

/// Waits until the owner's listing shows `task` archived (the engine archives on its own
/// clock; the listing is where it becomes visible).
pub async fn until_archived(client: &mut Client, task: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed = list_all(client, json!({}), 100).await;
        if listed
            .iter()
            .any(|t| t["task_id"] == task && t["archived"] == true)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{task} was never archived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn subscribe_task(client: &mut Client, task: &str, since: Option<u64>) -> Value {
    let mut frame = json!({"type": "subscribe", "topic": format!("task:{task}")});
    if let Some(since) = since {
        frame["since"] = json!(since);
    }
    client.request("sub", frame).await
}
