//! Webhooks for the app's backend (contract §14): every `[[webhooks]]` entry gets a delivery
//! loop that POSTs the journal's matching events in order, signed, at least once, from a
//! durable cursor. Only the node that writes the journal (a single node, or a cluster's
//! leader) delivers; `GET /v1/webhooks` answers on every node from the durable cursors.
//!
//! - [`delivery`] — one webhook's loop: journal → filter → POST → cursor, with backoff;
//! - [`http_post`] — one POST over HTTP/1.1; [`signature`] — Standard Webhooks signatures.

pub mod delivery;
pub mod http_post;
pub mod signature;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Uri;
use gavel_protocol::{EventPayload, Millis, Seq};
use gavel_storage::{StorageError, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The shortest secret accepted, in bytes (contract §14).
pub const MIN_SECRET_BYTES: usize = 24;
/// How long a receiver has to answer (contract §14: 10 s).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The first retry's delay; it doubles up to 5 minutes (contract §14: 1 s).
pub const DEFAULT_RETRY_MS: u64 = 1_000;

/// One `[[webhooks]]` table of the configuration (its `Debug` hides the secret).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events are POSTed (`http://host[:port]/path`).
    pub url: String,
    /// The HMAC-SHA256 key of the signatures (at least 24 bytes).
    pub secret: String,
    /// Only these event kinds (`payment.held`, …); absent: every kind.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// How long the receiver has to answer, in ms (default 10,000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The first retry's delay, in ms (default 1,000; doubling to 5 minutes).
    #[serde(default)]
    pub retry_ms: Option<u64>,
    /// For `https://`: a PEM file of extra CA certificates to trust (an internal CA), beside
    /// Mozilla's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redacted(&self.url))
            .field("secret", &"<hidden>")
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

/// A URL without what may be secret in it (user info, query): `scheme://host[:port]/path`,
/// the name a webhook goes by in logs and metrics.
fn redacted(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => format!(
            "{}://{}{}{}",
            uri.scheme_str().unwrap_or("?"),
            uri.host().unwrap_or("?"),
            uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default(),
            uri.path()
        ),
        Err(_) => "<invalid url>".into(),
    }
}

/// The longest a receiver may be given to answer (`timeout_ms`).
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// The longest first retry delay (`retry_ms`): the backoff's ceiling.
pub const MAX_RETRY_MS: u64 = 300_000;

/// A checked webhook (its `Debug` hides the secret).
#[derive(Clone)]
pub struct Webhook {
    /// The URL as configured: the cursor's key.
    pub url: String,
    /// The URL without user info or query, for logs and metrics.
    pub name: String,
    pub uri: Uri,
    pub secret: String,
    pub kinds: Option<Vec<String>>,
    pub timeout: Duration,
    pub retry: Duration,
    /// The TLS client of an `https://` webhook.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("kinds", &self.kinds)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Checks one `[[webhooks]]` entry; the error names what is wrong.
    pub fn from_config(c: &WebhookConfig) -> Result<Self, String> {
        let name = redacted(&c.url);
        let uri: Uri = c
            .url
            .parse()
            .map_err(|e| format!("webhook url `{name}`: {e}"))?;
        let timeout_ms = c.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        let retry_ms = c.retry_ms.unwrap_or(DEFAULT_RETRY_MS);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) || !(1..=MAX_RETRY_MS).contains(&retry_ms) {
            return Err(format!(
                "webhook `{name}`: timeout_ms must be within 1..={MAX_TIMEOUT_MS} and retry_ms within 1..={MAX_RETRY_MS}"
            ));
        }
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(tls_client(c)?),
            _ => {
                return Err(format!(
                    "webhook url `{name}` must start with http:// or https://"
                ));
            }
        };
        if uri.host().is_none() {
            return Err(format!("webhook url `{name}` has no host"));
        }
        if c.secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "webhook `{name}`: the secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        if let Some(kinds) = &c.kinds
            && let Some(bad) = kinds
                .iter()
                .find(|k| !EventPayload::KINDS.contains(&k.as_str()))
        {
            return Err(format!(
                "webhook `{name}`: `{bad}` is not an event kind (one of {})",
                EventPayload::KINDS.join(", ")
            ));
        }
        Ok(Webhook {
            url: c.url.clone(),
            name,
            uri,
            secret: c.secret.clone(),
            kinds: c.kinds.clone(),
            timeout: Duration::from_millis(timeout_ms),
            retry: Duration::from_millis(retry_ms),
            tls,
        })
    }

    /// Whether events of `kind` go to this webhook.
    pub fn wants(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|k| k.iter().any(|k| k == kind))
    }
}

/// The TLS client of an `https://` webhook: Mozilla's roots, plus the `ca_file` ones.
fn tls_client(c: &WebhookConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &c.ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("webhook `{}`: ca_file {path}: {e}", c.url))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("webhook `{}`: ca_file {path}: {e}", c.url))?;
        if certs.is_empty() {
            return Err(format!(
                "webhook `{}`: ca_file {path} holds no certificate",
                c.url
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("webhook `{}`: ca_file {path}: {e}", c.url))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("webhook `{}`: TLS: {e}", c.url))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Checks every entry, and that no URL appears twice (the cursor is kept per URL).
pub fn check_all(configs: &[WebhookConfig]) -> Result<Vec<Webhook>, String> {
    let hooks = configs
        .iter()
        .map(Webhook::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    for (i, h) in hooks.iter().enumerate() {
        if hooks[..i].iter().any(|other| other.url == h.url) {
            return Err(format!("webhook url `{}` is configured twice", h.name));
        }
    }
    Ok(hooks)
}

/// Gives every webhook configured for the first time a cursor at `at` — the engine's position
/// before the server takes its first command — so a new webhook gets exactly the events from
/// then on. Run before serving, on the node that delivers.
pub async fn prepare_cursors(
    store: &Store,
    hooks: &[Webhook],
    at: Seq,
) -> Result<(), StorageError> {
    for hook in hooks {
        if store.webhook_cursor(&hook.url).await?.is_none() {
            store.set_webhook_cursor(&hook.url, at).await?;
        }
    }
    Ok(())
}

/// What this node knows of one webhook's delivery (its loop keeps it).
#[derive(Debug, Clone, Default)]
pub struct WebhookStatus {
    pub cursor_seq: Seq,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Millis>,
}

/// One webhook in `GET /v1/webhooks`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WebhookView {
    /// The URL without user info or query.
    pub url: String,
    /// The last event acknowledged (or skipped as not matching), durable.
    pub cursor_seq: Seq,
    /// Journal events after the cursor (matching or not) still to go through.
    pub pending: u64,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Millis>,
}

/// The node's webhooks and their delivery status.
#[derive(Debug, Default)]
pub struct Webhooks {
    hooks: Vec<(Webhook, Arc<Mutex<WebhookStatus>>)>,
}

impl Webhooks {
    /// The webhooks, not delivered from this node (a cluster follower).
    pub fn idle(hooks: Vec<Webhook>) -> Self {
        Webhooks {
            hooks: hooks.into_iter().map(|h| (h, Arc::default())).collect(),
        }
    }

    /// Starts a delivery loop per webhook (cursors prepared: [`prepare_cursors`]); they end
    /// when `stop` turns `true`, without starting another POST.
    pub fn start(
        hooks: Vec<Webhook>,
        store: &Store,
        epoch: &str,
        metrics: &Arc<Metrics>,
        stop: &watch::Receiver<bool>,
    ) -> Self {
        let webhooks = Self::idle(hooks);
        for (hook, status) in &webhooks.hooks {
            let delivery = delivery::Delivery {
                hook: hook.clone(),
                store: store.clone(),
                epoch: epoch.to_owned(),
                status: status.clone(),
                metrics: metrics.clone(),
                stop: stop.clone(),
                known_end: Default::default(),
            };
            tokio::spawn(delivery.run());
        }
        webhooks
    }

    /// `GET /v1/webhooks`: the durable cursors, and what this node's loops last saw.
    pub async fn views(&self, store: &Store) -> Result<Vec<WebhookView>, StorageError> {
        let end = store.latest_seq().await?;
        let mut views = Vec::with_capacity(self.hooks.len());
        for (hook, status) in &self.hooks {
            let status = status.lock().expect("webhook status lock").clone();
            let cursor = store.webhook_cursor(&hook.url).await?.unwrap_or(end);
            views.push(WebhookView {
                url: hook.name.clone(),
                cursor_seq: cursor,
                pending: end.saturating_sub(cursor),
                last_error: status.last_error,
                next_attempt_at: status.next_attempt_at,
            });
        }
        Ok(views)
    }
}
