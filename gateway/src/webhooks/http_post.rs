//! One webhook delivery over HTTP/1.1: a fresh connection, one POST, the status code.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// POSTs `body` to `uri` with `headers`; the answer's status, or why there was none — all
/// within `timeout` (connecting included).
pub async fn post(
    uri: &Uri,
    headers: &[(&'static str, String)],
    body: String,
    timeout: Duration,
) -> Result<u16, String> {
    tokio::time::timeout(timeout, send(uri, headers, body))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

async fn send(uri: &Uri, headers: &[(&'static str, String)], body: String) -> Result<u16, String> {
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection does the I/O; it ends when the exchange is over (or on error).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("POST: {e}"))?;
    Ok(response.status().as_u16())
}
