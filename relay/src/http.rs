//! The operator endpoint: `/metrics` for Prometheus, `/health/live` and `/health/ready` for probes.
//!
//! Plain HTTP on loopback by default. For users who expose it beyond the pod: TLS (rustls, PEM
//! certificate and key) and a bearer token on `/metrics`. The health endpoints stay open, since
//! kubelet probes carry no token, and say nothing an attacker could use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use tlsfiles::pem;

use crate::metrics::Metrics;

/// Where and how the endpoint listens.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// PEM certificate chain and private key; TLS only when both are set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The bearer token `/metrics` demands, when set.
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read {}: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
    #[error("invalid TLS certificate or key: {0}")]
    Tls(#[from] rustls::Error),
}

/// Binds now, so that a taken port or a bad certificate fails the start-up, and serves until the
/// process ends. Returns the bound address (port 0 picks one).
pub async fn serve(
    endpoint: &Endpoint,
    metrics: Arc<Metrics>,
) -> Result<SocketAddr, EndpointError> {
    let bind_error = |source| EndpointError::Bind {
        addr: endpoint.addr,
        source,
    };
    let listener = std::net::TcpListener::bind(endpoint.addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let metrics_route = match &endpoint.token {
        Some(token) => get(render_metrics).route_layer(middleware::from_fn_with_state(
            Arc::new(token.clone()),
            require_token,
        )),
        None => get(render_metrics),
    };
    let app = Router::new()
        .route("/metrics", metrics_route)
        .route("/health/live", get(|| async { "live\n" }))
        .route("/health/ready", get(ready))
        .with_state(metrics)
        .into_make_service();
    let server = match &endpoint.tls {
        Some((cert, key)) => {
            let config = RustlsConfig::from_config(Arc::new(server_config(cert, key)?));
            tokio::spawn(axum_server::from_tcp_rustls(listener, config).serve(app))
        }
        None => tokio::spawn(axum_server::from_tcp(listener).serve(app)),
    };
    tokio::spawn(async move {
        if let Ok(Err(error)) = server.await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, EndpointError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| EndpointError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    let invalid = |path: &Path, reason: String| EndpointError::Read {
        path: path.to_owned(),
        reason,
    };
    let chain = pem::certificates(&read(cert)?).map_err(|e| invalid(cert, e.to_string()))?;
    let key_der = pem::private_key(&read(key)?).map_err(|e| invalid(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Compares in constant time, so response timing does not reveal how much of a guess was right.
async fn require_token(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches = presented.len() == token.len()
        && presented
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if matches {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::CONTENT_TYPE, "application/problem+json"),
            (header::WWW_AUTHENTICATE, "Bearer"),
        ],
        r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"/metrics needs the bearer token set in metrics_token"}"#,
    )
        .into_response()
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to both the database and the broker\n",
        )
    }
}
