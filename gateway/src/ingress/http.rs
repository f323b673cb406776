//! Every HTTP endpoint: the WebSocket upgrade (`/v1/ws`), the service-to-service API
//! (contract §6), health, readiness, metrics and the admin console.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use gavel_engine::{Actor, Command, Rejection, Reply, Request};
use gavel_protocol::http::{
    HttpError, HttpErrorDetail, TaskHistory, parse_coach_upsert, parse_post_task_body,
};
use gavel_protocol::parse::{FrameError, parse_task_id};
use gavel_protocol::{Claims, ErrorCode, RequestId, Role, UserId};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::app::AppState;
use crate::fanout::archive_reads::archived_view;
use crate::history::{MAX_PAGE, task_history};
use crate::sequencer::handle::unavailable;
use crate::sequencer::messages::{EngineMsg, ReplyTo};

/// The router of every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ws", get(websocket))
        .route("/v1/coaches", get(list_coaches))
        .route("/v1/coaches/{id}", put(put_coach).get(get_coach))
        .route("/v1/tasks", post(post_task))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/events", get(task_events))
        .route("/v1/tasks/{id}/payment_failed", post(payment_failed))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/cluster", get(cluster_view))
        .route("/v1/webhooks", get(webhooks_view))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/cluster/forward", get(cluster_forward))
        .route("/metrics", get(metrics))
        .merge(super::console::routes())
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The bearer token of a request: `Authorization: Bearer …`, else `?token=…`.
fn bearer(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .or_else(|| query.map(str::to_owned))
}

fn http_error(code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = HttpError {
        error: HttpErrorDetail {
            code,
            message: message.into(),
            field,
        },
    };
    (status, axum::Json(body)).into_response()
}

fn rejection_response(r: Rejection) -> Response {
    http_error(r.code, r.message, r.field)
}

fn frame_error_response(e: FrameError) -> Response {
    http_error(e.code, e.message, e.field)
}

/// `GET /v1/ws`: 401 before the upgrade unless the token is valid.
async fn websocket(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(token) = bearer(&headers, query.token.as_deref()) else {
        return http_error(
            ErrorCode::Unauthorized,
            "a token is required (Authorization: Bearer, or ?token=)",
            None,
        );
    };
    let claims = match state.keys.verify(&token) {
        Ok(claims) => claims,
        Err(e) => return http_error(ErrorCode::Unauthorized, e.to_string(), None),
    };
    if *state.shutting_down.borrow() {
        return http_error(ErrorCode::Unavailable, "shutting down", None);
    }
    // The permit is taken before the upgrade, so a node at its limit refuses with 503 before
    // any WebSocket frame; the session holds it until the connection ends.
    let Ok(permit) = state.connection_permits.clone().try_acquire_owned() else {
        state.metrics.connections_refused.inc();
        return http_error(
            ErrorCode::Unavailable,
            format!(
                "this node holds its maximum of {} connections; retry on another node or later",
                state.limits.max_connections
            ),
            None,
        );
    };
    let limits = &state.limits;
    upgrade
        // Small buffers keep idle connections cheap (tungstenite's defaults are 128 KiB each).
        .read_buffer_size(limits.read_buffer_bytes)
        // Frames queued for a connection are fed into this buffer and written with one
        // syscall at the flush that ends each batch (0 would write every frame on its own).
        .write_buffer_size(WRITE_BATCH_BYTES)
        // No cap of tungstenite's own on what the server sends: a snapshot of any size must
        // go out (contract §13). What bounds a connection's memory is its outbox (frames and
        // bytes) and the write timeout, which closes a client that stops reading.
        .max_write_buffer_size(usize::MAX)
        .max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        .on_upgrade(move |socket| crate::ingress::session::run(socket, claims, state, permit))
}

/// Bytes of queued frames gathered into one socket write (the session flushes after each batch
/// anyway, so no frame waits for this to fill).
const WRITE_BATCH_BYTES: usize = 16 * 1024;

/// The admin caller of an HTTP API request, or the refusal.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<Claims, Box<Response>> {
    let token = bearer(headers, None).ok_or_else(|| {
        Box::new(http_error(
            ErrorCode::Unauthorized,
            "a bearer token is required",
            None,
        ))
    })?;
    let claims = state
        .keys
        .verify(&token)
        .map_err(|e| Box::new(http_error(ErrorCode::Unauthorized, e.to_string(), None)))?;
    if claims.role != Role::Admin {
        return Err(Box::new(http_error(
            ErrorCode::Forbidden,
            "the HTTP API is for admins",
            None,
        )));
    }
    Ok(claims)
}

/// Runs a command through the pipeline and waits for its durable outcome. An
/// `Idempotency-Key` header plays the role of a frame's `id`.
async fn execute(
    state: &AppState,
    claims: Claims,
    headers: &HeaderMap,
    command: Command,
) -> Result<Reply, Box<Response>> {
    let request_id = match headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(RequestId::new))
    {
        None => None,
        Some(Ok(Ok(id))) => Some(id),
        Some(_) => {
            let field = Some("Idempotency-Key".into());
            return Err(Box::new(http_error(
                ErrorCode::ValidationError,
                "Idempotency-Key must be 1-64 characters",
                field,
            )));
        }
    };
    let (tx, rx) = oneshot::channel();
    let request = Request {
        actor: Actor::new(claims.sub, claims.role),
        request_id,
        command,
    };
    let msg = EngineMsg::Command {
        request,
        reply_to: ReplyTo::Http(tx),
        received: Instant::now(),
    };
    if state.engine.try_send(msg).is_err() {
        return Err(Box::new(rejection_response(unavailable(
            "the server is busy; retry shortly",
        ))));
    }
    match rx.await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(rejection)) => Err(Box::new(rejection_response(rejection))),
        Err(_) => Err(Box::new(rejection_response(unavailable(
            "the server is shutting down",
        )))),
    }
}

async fn put_coach(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let claims = match admin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let coach_id = match UserId::new(&id) {
        Ok(id) => id,
        Err(e) => {
            return http_error(
                ErrorCode::ValidationError,
                format!("coach id {e}"),
                Some("id".into()),
            );
        }
    };
    let profile = match parse_coach_upsert(&body) {
        Ok(p) => p,
        Err(e) => return frame_error_response(e),
    };
    match execute(
        &state,
        claims,
        &headers,
        Command::UpsertCoach { coach_id, profile },
    )
    .await
    {
        Ok(reply) => axum::Json(reply.to_json()).into_response(),
        Err(response) => *response,
    }
}

/// `GET /v1/coaches` (admin): every registered coach, by id.
async fn list_coaches(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&state, &headers) {
        return *r;
    }
    let coaches = state
        .engine
        .query(|engine| {
            let mut coaches: Vec<_> = engine.state().coaches.values().map(|c| c.view()).collect();
            coaches.sort_unstable_by(|a, b| a.coach_id.cmp(&b.coach_id));
            coaches
        })
        .await;
    match coaches {
        Some(coaches) => axum::Json(coaches).into_response(),
        None => rejection_response(unavailable("the server is busy; retry shortly")),
    }
}

/// `GET /v1/coaches/{id}` (admin): one coach's profile, reputation and load.
async fn get_coach(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin(&state, &headers) {
        return *r;
    }
    let Ok(coach_id) = UserId::new(&id) else {
        return http_error(
            ErrorCode::ValidationError,
            "coach id must be 1-64 characters of [A-Za-z0-9_.:-]",
            Some("id".into()),
        );
    };
    let coach = state
        .engine
        .query(move |engine| engine.state().coaches.get(&coach_id).map(|c| c.view()))
        .await;
    match coach {
        Some(Some(coach)) => axum::Json(coach).into_response(),
        Some(None) => http_error(ErrorCode::NotFound, format!("no coach {id}"), None),
        None => rejection_response(unavailable("the server is busy; retry shortly")),
    }
}

async fn post_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let claims = match admin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let task = match parse_post_task_body(&body) {
        Ok(t) => t,
        Err(e) => return frame_error_response(e),
    };
    match execute(&state, claims, &headers, Command::PostTask(task)).await {
        Ok(reply) => (StatusCode::CREATED, axum::Json(reply.to_json())).into_response(),
        Err(response) => *response,
    }
}

async fn get_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let claims = match admin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let task_id = match parse_task_id(&id) {
        Ok(id) => id,
        Err(e) => return frame_error_response(e),
    };
    let actor = Actor::new(claims.sub, claims.role);
    let (id, who) = (task_id.clone(), actor.clone());
    let live = state
        .engine
        .query(move |engine| {
            let archived =
                !engine.state().tasks.contains_key(&id) && engine.state().task_id_taken(&id);
            (engine.task_view(&id, &who), archived)
        })
        .await;
    match live {
        Some((Ok(view), _)) => axum::Json(view).into_response(),
        Some((Err(_), true)) => match archived_task_view(&state, &actor, &task_id).await {
            Ok(view) => axum::Json(view).into_response(),
            Err(rejection) => rejection_response(rejection),
        },
        Some((Err(rejection), false)) => rejection_response(rejection),
        None => rejection_response(unavailable("the server is busy; retry shortly")),
    }
}

/// A task the engine has archived, from the archive (contract §9). Its row lands with the
/// journal batch that archived it, a moment after the engine applied that batch: a read in
/// that moment waits for it (briefly) rather than answer `NOT_FOUND`.
async fn archived_task_view(
    state: &AppState,
    actor: &Actor,
    task_id: &gavel_protocol::TaskId,
) -> Result<gavel_protocol::views::TaskView, gavel_engine::Rejection> {
    let mut tries = 0;
    loop {
        match archived_view(&state.store, actor, task_id).await {
            Err(r) if r.code == gavel_protocol::ErrorCode::NotFound && tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The value of query parameter `name`, if given once; given twice is a 400 naming it.
fn query_param<'q>(
    pairs: &'q [(String, String)],
    name: &str,
) -> Result<Option<&'q str>, Box<Response>> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => Ok(Some(v.as_str())),
        (Some(_), Some(_)) => Err(Box::new(http_error(
            ErrorCode::ValidationError,
            format!("{name} is given more than once"),
            Some(name.into()),
        ))),
    }
}

/// An optional integer query parameter within `range` (else 400 naming it).
fn query_number(
    value: Option<&str>,
    field: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, Box<Response>> {
    let Some(value) = value else { return Ok(None) };
    match value.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(Box::new(http_error(
            ErrorCode::ValidationError,
            format!(
                "{field} must be an integer in {}..={}",
                range.start(),
                range.end()
            ),
            Some(field.into()),
        ))),
    }
}

/// `GET /v1/tasks/{id}/events` (admin): a page of the task's history, oldest first.
async fn task_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(r) = admin(&state, &headers) {
        return *r;
    }
    let task_id = match parse_task_id(&id) {
        Ok(id) => id,
        Err(e) => return frame_error_response(e),
    };
    let number = |name, range| query_number(query_param(&query, name)?, name, range);
    let after = match number("after", 0..=i64::MAX as u64) {
        Ok(after) => after.unwrap_or(0),
        Err(response) => return *response,
    };
    let limit = match number("limit", 1..=u64::from(MAX_PAGE)) {
        Ok(limit) => limit.unwrap_or(500) as u32,
        Err(response) => return *response,
    };
    // This node's position caps the answer, so that `upto` is one its own topics can resume
    // from (a follower's replica may be behind the shared journal).
    let known = {
        let id = task_id.clone();
        state
            .engine
            .query(move |engine| (engine.state().task_id_taken(&id), engine.state().seq))
            .await
    };
    let Some((taken, position)) = known else {
        return rejection_response(unavailable("the server is busy; retry shortly"));
    };
    let Ok(_permit) = state.history_reads.acquire().await else {
        return rejection_response(unavailable("the server is stopping"));
    };
    match task_history(&state.store, &task_id, after, limit, position).await {
        // Every task's history starts with its `task.opened`: none at all means no such task.
        Ok(page) if page.events.is_empty() && (after == 0 || !taken) && page.next.is_none() => {
            http_error(ErrorCode::NotFound, format!("no task {task_id}"), None)
        }
        Ok(page) => axum::Json(TaskHistory {
            task_id,
            events: page.events,
            next: page.next,
            upto: page.upto,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "task history: the journal could not be read");
            rejection_response(unavailable("the journal cannot be read; retry shortly"))
        }
    }
}

async fn payment_failed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let claims = match admin(&state, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let task_id = match parse_task_id(&id) {
        Ok(id) => id,
        Err(e) => return frame_error_response(e),
    };
    match execute(&state, claims, &headers, Command::PaymentFailed { task_id }).await {
        Ok(reply) => axum::Json(reply.to_json()).into_response(),
        Err(response) => *response,
    }
}

/// Ready when the journal answers and the engine is not rebuilding.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.fatal.is_set() {
        return (StatusCode::SERVICE_UNAVAILABLE, "a pipeline task died").into_response();
    }
    if state.rebuild.is_raised() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "rebuilding from the journal",
        )
            .into_response();
    }
    if let Some(cluster) = &state.cluster
        && let Err(why) = cluster.ready()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    match state.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("journal unavailable: {e}"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /v1/openapi.json`: the HTTP API's OpenAPI document (built once).
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::LazyLock<serde_json::Value> =
        std::sync::LazyLock::new(crate::ingress::openapi::openapi);
    axum::Json(&*DOCUMENT).into_response()
}

/// `GET /v1/webhooks` (contract §14): each webhook's cursor, pending events and last error.
async fn webhooks_view(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&state, &headers) {
        return *r;
    }
    match state.webhooks.views(&state.store).await {
        Ok(views) => axum::Json(views).into_response(),
        Err(e) => http_error(ErrorCode::Unavailable, e.to_string(), None),
    }
}

/// `GET /v1/cluster` (admin, contract §12).
async fn cluster_view(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = admin(&state, &headers) {
        return *r;
    }
    let Some(cluster) = &state.cluster else {
        return http_error(
            ErrorCode::NotFound,
            "this node is not part of a cluster (start it with --redis-url)",
            None,
        );
    };
    match crate::cluster::nodes::view(&state.store, cluster).await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => http_error(ErrorCode::Unavailable, e.to_string(), None),
    }
}

/// `GET /v1/cluster/forward`: a follower's command link (node token only; leaders only).
async fn cluster_forward(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(token) = bearer(&headers, query.token.as_deref()) else {
        return http_error(ErrorCode::Unauthorized, "a node token is required", None);
    };
    let follower = match state.keys.verify_node(&token) {
        Ok(node) => node,
        Err(e) => return http_error(ErrorCode::Unauthorized, e.to_string(), None),
    };
    let leads = state
        .cluster
        .as_ref()
        .is_some_and(|c| matches!(c.role(), crate::cluster::state::NodeRole::Leader { .. }));
    if !leads || *state.shutting_down.borrow() {
        return http_error(ErrorCode::Unavailable, "this node does not lead", None);
    }
    upgrade
        .on_upgrade(move |socket| crate::cluster::forward::serve_follower(socket, state, follower))
}
