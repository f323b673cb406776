//! `GET /v1/openapi.json`: the HTTP API's document (schemathesis fuzzes a live server from it in
//! `scripts/check-openapi`; this checks what it lists).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

/// Routes of the router that the document leaves out, and why.
const UNDOCUMENTED: [(&str, &str); 2] = [
    (
        "/v1/ws",
        "the WebSocket API, described by docs/protocol.md and its JSON Schema",
    ),
    (
        "/v1/cluster/forward",
        "the cluster's node-to-node WebSocket, not a service API",
    ),
];

/// The router's routes and their methods, read from `router()` in its source (axum's `Router`
/// cannot list them): each `.route("<path>", get(…).put(…))` call.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let source = include_str!("../src/ingress/http.rs");
    let router = source
        .split("pub fn router(")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("router() in gateway/src/ingress/http.rs");
    let mut routes = BTreeMap::new();
    for call in router.split(".route(").skip(1) {
        let mut parts = call.splitn(3, '"');
        let (Some(_), Some(path), Some(handlers)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("a .route( call without a literal path: {call}");
        };
        // Each method router is an identifier right before `(`: get(…), put(…).get(…).
        let methods = handlers
            .split('(')
            .filter_map(|before| {
                let name = before.rsplit(|c: char| !c.is_ascii_alphanumeric() && c != '_');
                name.into_iter().next()
            })
            .filter(|name| ["get", "put", "post", "patch", "delete"].contains(name))
            .map(str::to_owned)
            .collect();
        assert!(
            routes.insert(path.to_owned(), methods).is_none(),
            "{path} is routed twice"
        );
    }
    routes
}

/// `GET /v1/openapi.json` documents every route of the service API with the methods the router
/// answers — compared with the router's own `.route(…)` calls, so neither can drift — and each
/// body by its schema (scripts/check-openapi then fuzzes the server from it with schemathesis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_service_route() {
    let server = start(fresh_dir("http-openapi")).await;
    let (status, doc) = http(&server, "GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.0.3");
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, ops)| {
            (
                path.clone(),
                ops.as_object().unwrap().keys().cloned().collect(),
            )
        })
        .collect();
    let mut routed = router_routes();
    for (path, why) in UNDOCUMENTED {
        assert!(
            routed.remove(path).is_some(),
            "{path} ({why}) is still routed"
        );
    }
    assert_eq!(
        documented, routed,
        "the document's paths and methods are the router's"
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
