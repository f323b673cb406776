//! `GET /v1/openapi.json`: the HTTP API's document (schemathesis fuzzes a live server from it in
//! `scripts/check-openapi`; this checks what it lists).

mod common;

use common::*;

/// `GET /v1/openapi.json` documents every route of the service API, each body by its schema
/// (scripts/check-openapi then fuzzes the server from it with schemathesis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_service_route() {
    let server = start(fresh_dir("http-openapi")).await;
    let (status, doc) = http(&server, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.0.3");
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/metrics",
            "/readyz",
            "/v1/cluster",
            "/v1/coaches",
            "/v1/coaches/{id}",
            "/v1/openapi.json",
            "/v1/tasks",
            "/v1/tasks/{id}",
            "/v1/tasks/{id}/events",
            "/v1/tasks/{id}/payment_failed",
            "/v1/webhooks"
        ]
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "CoachUpsert",
        "CoachView",
        "PostTask",
        "PostTaskResult",
        "TaskView",
        "HttpError",
        "WebhookView",
    ] {
        assert!(schemas.contains_key(name), "{name} is described");
    }
    server.shutdown().await;
}
