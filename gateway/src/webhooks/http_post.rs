//! One webhook delivery over HTTP/1.1 (TLS for `https://`): a fresh connection, one POST,
//! the status code.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// POSTs `body` to `uri` with `headers` (over TLS with `tls`); the answer's status, or why
/// there was none — all within `timeout` (connecting and the TLS handshake included).
pub async fn post(
    uri: &Uri,
    tls: Option<&Arc<ClientConfig>>,
    headers: &[(&'static str, String)],
    body: String,
    timeout: Duration,
) -> Result<u16, String> {
    tokio::time::timeout(timeout, send(uri, tls, headers, body))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

async fn send(
    uri: &Uri,
    tls: Option<&Arc<ClientConfig>>,
    headers: &[(&'static str, String)],
    body: String,
) -> Result<u16, String> {
    let host = uri.host().ok_or("the URL has no host")?;
    // `[::1]` in a URL is `::1` to the resolver and to the certificate check.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if tls.is_some() { 443 } else { 80 });
    let tcp = TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    match tls {
        None => exchange(tcp, uri, headers, body).await,
        Some(config) => {
            let name = ServerName::try_from(bare.to_owned())
                .map_err(|e| format!("TLS server name {bare}: {e}"))?;
            let stream = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
            exchange(stream, uri, headers, body).await
        }
    }
}

async fn exchange<S>(
    stream: S,
    uri: &Uri,
    headers: &[(&'static str, String)],
    body: String,
) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = uri.host().ok_or("the URL has no host")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection does the I/O; it ends when the exchange is over (or on error).
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // Host, without any user info the URL may carry.
    let authority = match uri.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
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
