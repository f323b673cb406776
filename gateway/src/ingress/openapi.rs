//! `GET /v1/openapi.json`: the HTTP API (contract §6, §12, §14) as an OpenAPI 3.0 document.
//! The bodies' schemas are generated from the very types the handlers decode and answer with
//! (`schemars`, as `docs/protocol.schema.json` is), so the document cannot drift from them; the
//! paths and the statuses each may answer are listed here, next to the router
//! (`tests/openapi.rs` checks them against the router's routes).

use gavel_protocol::command::PostTask;
use gavel_protocol::http::{CoachUpsert, HttpError, TaskHistory};
use gavel_protocol::views::{CoachView, Empty, PostTaskResult, TaskView};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::webhooks::WebhookView;

/// `{"$ref": "#/components/schemas/<name>"}` as JSON content.
fn body(name: &str) -> Value {
    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}})
}

/// The answers of one operation: its success and the contract's error statuses it may give.
fn responses(ok: (&str, &str, Value), errors: &[u16]) -> Value {
    let mut r = Map::new();
    r.insert(ok.0.into(), json!({"description": ok.1, "content": ok.2}));
    for status in errors {
        let why = match status {
            400 => "malformed body or parameter (BAD_REQUEST, VALIDATION_ERROR with `field`)",
            401 => "missing, malformed or expired token (UNAUTHORIZED)",
            403 => "not an admin token, or not allowed (FORBIDDEN)",
            404 => "no such task or coach (NOT_FOUND)",
            409 => "the state does not allow it (CONFLICT)",
            429 => "rate limited (RATE_LIMITED)",
            503 => "retry later: busy, journal down, not ready (UNAVAILABLE)",
            _ => "error",
        };
        r.insert(
            status.to_string(),
            json!({"description": why, "content": body("HttpError")}),
        );
    }
    Value::Object(r)
}

fn text(description: &str) -> Value {
    json!({"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}})
}

/// The task id the document's examples use (`scripts/check-openapi` posts a task by this id
/// before schemathesis runs, so the examples reach the 200 answers, not only 404).
pub const EXAMPLE_TASK_ID: &str = "openapi-example-task";
/// The coach id the document's examples use (registered by `scripts/check-openapi` likewise).
pub const EXAMPLE_COACH_ID: &str = "openapi-example-coach";

fn task_id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true,
            "description": "task id: 1–64 characters of [A-Za-z0-9_.:-]",
            "schema": {"type": "string"}, "example": EXAMPLE_TASK_ID}])
}

fn history_params() -> Value {
    let mut params = task_id_param();
    let list = params.as_array_mut().expect("a list");
    list.push(json!({"name": "after", "in": "query", "required": false,
        "description": "only events with a greater seq (the `next` of the previous page)",
        "schema": {"type": "integer", "format": "uint64", "minimum": 0}}));
    list.push(json!({"name": "limit", "in": "query", "required": false,
        "description": "events per page, 1–1000 (default 500)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}));
    params
}

fn coach_id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true,
            "description": "coach id: 1–64 characters of [A-Za-z0-9_.:-]",
            "schema": {"type": "string"}, "example": EXAMPLE_COACH_ID}])
}

/// The whole document.
pub fn openapi() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<CoachUpsert>();
    generator.subschema_for::<CoachView>();
    generator.subschema_for::<PostTask>();
    generator.subschema_for::<PostTaskResult>();
    generator.subschema_for::<TaskView>();
    generator.subschema_for::<TaskHistory>();
    generator.subschema_for::<Empty>();
    generator.subschema_for::<HttpError>();
    generator.subschema_for::<Vec<WebhookView>>();
    let schemas = generator.take_definitions(true);
    let errors = [400, 401, 403, 503];
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "gavel HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Service-to-service API of the gavel marketplace engine (docs/protocol.md §6, §12, §14). Bearer JWT with role admin; errors as {\"error\": {code, message, field?}}."
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/coaches": {"get": {
                "summary": "Every registered coach, by id",
                "responses": responses(("200", "the coaches", json!({"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/CoachView"}}}})), &[401, 403, 503])
            }},
            "/v1/coaches/{id}": {"put": {
                "summary": "Register or update a coach",
                "parameters": coach_id_param(),
                "requestBody": {"required": true, "content": body("CoachUpsert")},
                "responses": responses(("200", "the coach as registered", body("CoachView")), &[400, 401, 403, 429, 503])
            }, "get": {
                "summary": "One coach: profile, reputation (contract §10) and active tasks",
                "parameters": coach_id_param(),
                "responses": responses(("200", "the coach", body("CoachView")), &[400, 401, 403, 404, 503])
            }},
            "/v1/tasks": {"post": {
                "summary": "Post a task on a seeker's behalf (`owner` required)",
                "requestBody": {"required": true, "content": body("PostTask")},
                "responses": responses(("201", "the task as posted", body("PostTaskResult")), &[400, 401, 403, 409, 429, 503])
            }},
            "/v1/tasks/{id}": {"get": {
                "summary": "A task's admin view (archived tasks too, with archived: true)",
                "parameters": task_id_param(),
                "responses": responses(("200", "the task", body("TaskView")), &[400, 401, 403, 404, 503])
            }},
            "/v1/tasks/{id}/events": {"get": {
                "summary": "A task's history, oldest first: every event of task:<id> (archived tasks too)",
                "parameters": history_params(),
                "responses": responses(("200", "a page of events", body("TaskHistory")), &[400, 401, 403, 404, 503])
            }},
            "/v1/tasks/{id}/payment_failed": {"post": {
                "summary": "The payment provider declined the hold: the task reopens",
                "parameters": task_id_param(),
                "responses": responses(("200", "done", body("Empty")), &[400, 401, 403, 404, 409, 429, 503])
            }},
            "/v1/cluster": {"get": {
                "summary": "The cluster's nodes, leader and epoch (contract §12; 404 on a single node)",
                "responses": responses(("200", "the cluster", json!({"application/json": {"schema": {"type": "object"}}})), &[401, 403, 404, 503])
            }},
            "/v1/webhooks": {"get": {
                "summary": "Each webhook's delivery cursor and state (contract §14)",
                "responses": responses(("200", "the webhooks", json!({"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookView"}}}})), &errors)
            }},
            "/v1/openapi.json": {"get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }},
            "/healthz": {"get": {"summary": "The process is up", "security": [], "responses": {"200": text("ok")}}},
            "/readyz": {"get": {
                "summary": "The journal answers (and, in a cluster, a leader is known and the replica is current)",
                "security": [],
                "responses": {"200": text("ready"), "503": text("why not")}
            }},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": text("the text exposition format")}}}
        }
    })
}
