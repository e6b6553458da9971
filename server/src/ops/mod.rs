//! Operations around every request: request ids, `/healthz`, `/readyz`, `/metrics` (Prometheus
//! text), request and byte counters, body limits, client addresses. This sits between hyper and
//! the warp routes, so every route is counted and every log line of a request carries its id.

use std::convert::Infallible;
use std::time::Instant;

use futures::TryStreamExt;
use tracing::Instrument;
use warp::http::{HeaderValue, Method, Request, Response, StatusCode};
use warp::hyper::Body;
use warp::Reply;

use crate::routes::State;

mod metrics;

use metrics::part_protocol;
pub use metrics::{backend_error, method_label, render_metrics, route_label, Metrics, METRICS};

tokio::task_local! {
    /// The id of the request being served (error bodies carry it).
    pub static REQUEST_ID: String;
}

/// Which route groups a node serves (`--routes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    All,
    /// REST uploads, tus, the classic upload, multipart and instant-upload routes.
    Upload,
    /// Download, signed links, file metadata, listing, rename and delete.
    Download,
    /// Users, and the web page.
    Account,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Upload => "upload",
            Role::Download => "download",
            Role::Account => "account",
        }
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn readyz(state: &State) -> Response<Body> {
    let mut checks = state.engine.readiness().await;
    checks.push(("broker".to_owned(), state.transfers.ping().await));
    let failing: Vec<String> = checks
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    for (name, r) in &checks {
        if let Err(e) = r {
            tracing::warn!(dependency = name, error = %e, "not ready");
        }
    }
    let names: Vec<&str> = checks.iter().map(|(n, _)| n.as_str()).collect();
    if failing.is_empty() {
        json_response(
            StatusCode::OK,
            serde_json::json!({"status": "ready", "checked": names}),
        )
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not ready", "failing": failing}),
        )
    }
}

/// What every request is held to, and who its client is.
#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// Longest pause inside a body.
    pub body_timeout: std::time::Duration,
    /// Slowest average rate of a body past `rate_grace` (bytes per second; 0: off).
    pub min_body_rate: u64,
    pub rate_grace: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::config::Cidr>,
}

/// The client's address, for per-client limits (sign-up rate, sign-in throttling): the
/// socket peer, or what a trusted proxy says in `X-Forwarded-For`. Set on every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

impl ClientAddr {
    /// The peer, unless it is a trusted proxy: then the nearest address in `X-Forwarded-For`
    /// (read from the right) that is not itself a trusted proxy.
    pub fn of(
        peer: std::net::IpAddr,
        forwarded: Option<&str>,
        trusted: &[crate::config::Cidr],
    ) -> ClientAddr {
        let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|c| c.contains(ip));
        let mut client = peer;
        if is_trusted(peer) {
            for hop in forwarded.unwrap_or("").rsplit(',') {
                match hop.trim().parse::<std::net::IpAddr>() {
                    Ok(ip) => {
                        client = ip;
                        if !is_trusted(ip) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        ClientAddr(client)
    }
}

/// Serves one request: probes and metrics here, everything else through the warp routes
/// when this node's role serves it; counts and labels it.
pub async fn handle<S>(
    state: State,
    limits: std::sync::Arc<RequestLimits>,
    peer: std::net::SocketAddr,
    mut routes: S,
    mut req: Request<Body>,
) -> Result<Response<Body>, Infallible>
where
    S: warp::hyper::service::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send,
    S::Future: Send,
{
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 8]>()));
    let client = ClientAddr::of(
        peer.ip(),
        req.headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
        &limits.trusted_proxies,
    );
    req.extensions_mut().insert(client);
    let path = req.uri().path().to_owned();
    let method = method_label(req.method().as_str()).to_owned();
    let route = route_label(&path);
    let started = Instant::now();
    let span = tracing::info_span!("request", id = %id);
    let resp = REQUEST_ID
        .scope(id.clone(), async {
            let probe = matches!(
                path.as_str(),
                "/healthz" | "/readyz" | "/metrics" | "/openapi.json"
            );
            if probe && !matches!(req.method(), &Method::GET | &Method::HEAD) {
                return crate::error::ApiError::MethodNotAllowed.into_response();
            }
            match path.as_str() {
                "/healthz" => json_response(StatusCode::OK, serde_json::json!({"status": "alive"})),
                "/openapi.json" => {
                    let mut r = Response::new(Body::from(crate::openapi::DOCUMENT));
                    r.headers_mut().insert(
                        warp::http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    r
                }
                "/readyz" => readyz(&state).await,
                "/metrics" => {
                    let mut r = Response::new(Body::from(render_metrics(&state)));
                    r.headers_mut().insert(
                        warp::http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    r
                }
                _ => {
                    let body = std::mem::take(req.body_mut());
                    let counted = body.inspect_ok(|chunk| {
                        METRICS.bytes_in.inc_by(chunk.len() as u64);
                    });
                    *req.body_mut() = Body::wrap_stream(body_guard(
                        counted,
                        limits.body_timeout,
                        limits.min_body_rate,
                        limits.rate_grace,
                    ));
                    match routes.call(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                }
            }
        })
        .instrument(span)
        .await;
    let (mut parts, body) = resp.into_parts();
    let status = parts.status.as_u16().to_string();
    METRICS
        .requests
        .with_label_values(&[&route, &method, &status])
        .inc();
    let took = started.elapsed().as_secs_f64();
    METRICS
        .duration
        .with_label_values(&[&route, &method])
        .observe(took);
    if let Some(p) = part_protocol(&method, &route) {
        if parts.status.is_success() {
            METRICS.part_seconds.with_label_values(&[p]).observe(took);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        parts.headers.insert("x-request-id", v);
    }
    // RFC 9110 §15.5.6: a 405 lists what the resource allows (as the OpenAPI document says).
    if parts.status == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = crate::openapi::allowed_methods(&path) {
            if let Ok(v) = HeaderValue::from_str(&allow) {
                parts.headers.insert(warp::http::header::ALLOW, v);
            }
        }
    }
    let body = Body::wrap_stream(body.inspect_ok(|chunk| {
        METRICS.bytes_out.inc_by(chunk.len() as u64);
    }));
    Ok(Response::from_parts(parts, body))
}

/// Ends a body that stalls for longer than `limit` between chunks with an error (the handler
/// then sees an incomplete body and nothing is kept), so a slow client cannot hold an upload.
fn body_guard<S>(
    body: S,
    limit: std::time::Duration,
    min_rate: u64,
    grace: std::time::Duration,
) -> impl futures::Stream<Item = Result<warp::hyper::body::Bytes, std::io::Error>> + Send
where
    S: futures::Stream<Item = Result<warp::hyper::body::Bytes, warp::hyper::Error>> + Send + Unpin,
{
    // Fused: body readers may poll again after the end (draining a refused body does).
    use futures::StreamExt as _;
    let started = Instant::now();
    futures::stream::unfold(
        (body, false, 0u64),
        move |(mut body, done, seen)| async move {
            if done {
                return None;
            }
            use futures::StreamExt;
            let why = match tokio::time::timeout(limit, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let seen = seen + chunk.len() as u64;
                    let took = started.elapsed();
                    if min_rate == 0
                        || took <= grace
                        || seen as f64 >= min_rate as f64 * took.as_secs_f64()
                    {
                        return Some((Ok(chunk), (body, false, seen)));
                    }
                    tracing::info!(seen, ?took, min_rate, "request body too slow; cut off");
                    "request body slower than the minimum rate"
                }
                Ok(Some(Err(e))) => {
                    return Some((Err(std::io::Error::other(e)), (body, true, seen)))
                }
                Ok(None) => return None,
                Err(_) => {
                    tracing::info!(?limit, "request body stalled; cut off");
                    "request body stalled"
                }
            };
            Some((
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why)),
                (body, true, seen),
            ))
        },
    )
    .fuse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(
            route_label("/uploads/0123456789abcdef0123456789abcdef/parts/12"),
            "/uploads/{id}/parts/{id}"
        );
        assert_eq!(route_label("/files/0123456789abcdef0123"), "/files/{id}");
        assert_eq!(route_label("/files/x"), "/files/{id}");
        assert_eq!(route_label("/file/download"), "/file/download");
        assert_eq!(route_label("/app.js"), "/app.js");
        assert_eq!(
            route_label("/api/files/0123456789abcdef0123/links"),
            "/api/files/{id}/links"
        );
        assert_eq!(
            route_label("/static/view/home.html"),
            "/static/view/home.html"
        );
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/file/zz9"), "unmatched");
        assert_eq!(route_label("/user/abcdef"), "unmatched");
        assert_eq!(route_label("/a/b/c/d/e/f/g/h"), "unmatched");
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("BREW"), "other");
    }
}
