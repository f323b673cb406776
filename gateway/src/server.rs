//! The HTTP listener. For now it serves `/healthz`; the gateway issue adds `/v1/ws`, the HTTP
//! API, `/readyz` and `/metrics` to the same router.

use std::future::Future;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

/// The router of every HTTP endpoint.
pub fn router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// Serves until `shutdown` completes, then stops accepting and lets open requests finish.
pub async fn run(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received: shutting down"),
        () = term => tracing::info!("SIGTERM received: shutting down"),
    }
}
