//! HTTP routes. Each resource is a module exporting a filter; `api` composes them.

pub mod api;
pub mod classic;
// Public so the fuzz targets (fuzz/) reach the header and parameter parsers.
pub mod download;
pub mod ietf;
pub mod params;
pub mod tus;
pub mod uploads;
pub mod web;

use std::sync::Arc;

use chunkvault_engine::{Engine, Error as EngineError, User};
use std::io;

use bytes::Buf;
use chunkvault_engine::ByteStream;
use futures::StreamExt;
use warp::filters::BoxedFilter;
use warp::Filter;

pub use params::Params;

/// RFC 3339 in UTC with milliseconds: the times of ChunkVault's own API.
pub fn timestamp(ms: chunkvault_engine::Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

use crate::error::{self, ApiError};
use crate::ops::Role;

/// Shared by every handler.
#[derive(Debug)]
pub struct AppState {
    pub engine: Engine,
    /// Base URL for links handed to clients; `None` means "from the Host header".
    pub public_url: Option<String>,
    /// Origins allowed by CORS on the tus endpoint (`*` for any).
    pub cors_origins: Vec<String>,
    /// Where transfer jobs wait, for the worker.
    pub transfers: Arc<dyn chunkvault_engine::transfer::TransferQueue>,
}

impl AppState {
    /// Absolute base URL for links: `--public-url`, else from a plain `Host` header.
    pub fn base_url(&self, host: Option<&str>) -> String {
        match (&self.public_url, host) {
            (Some(url), _) => url.clone(),
            (None, Some(h)) if is_plain_host(h) => format!("http://{h}"),
            (None, _) => String::new(),
        }
    }
}

/// A Host header we are willing to echo into a URL.
pub(crate) fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

pub type State = Arc<AppState>;

/// Every route a node of `role` serves, with the single error recovery. The routes are
/// declared in groups (upload, download, account); a node mounts the groups of its role, so a
/// path of another group is simply not there (404, code 10402).
pub fn api(
    state: State,
    role: Role,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    let groups: [(Role, Vec<BoxedFilter<(warp::reply::Response,)>>); 3] = [
        (
            Role::Upload,
            vec![
                uploads::routes(state.clone()),
                tus::routes(state.clone()),
                classic::mpupload::routes(state.clone()),
                classic::file::upload_routes(state.clone()),
                api::upload_routes(state.clone()),
            ],
        ),
        (
            Role::Download,
            vec![
                classic::file::routes(state.clone()),
                api::file_routes(state.clone()),
            ],
        ),
        (
            Role::Account,
            vec![
                classic::user::routes(state.clone()),
                api::account_routes(state),
                web::routes(),
            ],
        ),
    ];
    groups
        .into_iter()
        .filter(|(group, _)| role == Role::All || role == *group)
        .flat_map(|(_, routes)| routes)
        .reduce(|a, b| a.or(b).unify().boxed())
        .expect("every role serves some routes")
        .recover(move |rejection| error::recover_on(rejection, role == Role::All))
        .unify()
        .with(warp::log::custom(log_request))
}

fn log_request(info: warp::log::Info<'_>) {
    tracing::info!(
        method = %info.method(),
        path = info.path(),
        status = info.status().as_u16(),
        elapsed_ms = info.elapsed().as_millis() as u64,
        "request"
    );
}

pub(crate) fn with_state(
    state: State,
) -> impl Filter<Extract = (State,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The `Authorization` header, if any.
pub(crate) fn authorization(
) -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
}

/// The token a request carries: `Authorization: Bearer …`, else a `token` parameter (the seed's
/// clients send it in the query or form).
pub(crate) fn token<'a>(header: Option<&'a str>, params: &'a Params) -> Result<&'a str, ApiError> {
    if let Some(h) = header {
        let (scheme, rest) = h
            .trim()
            .split_once(' ')
            .ok_or(EngineError::Unauthenticated)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(EngineError::Unauthenticated.into());
        }
        return Ok(rest.trim());
    }
    params
        .get("token")
        .ok_or_else(|| EngineError::Unauthenticated.into())
}

/// Who is calling, with the parameters the token was read from.
pub(crate) type Caller = Result<(User, Params), ApiError>;

/// Authentication, one filter for every route: the state and the [`Caller`] whose token is in
/// `Authorization: Bearer …`, else in a `token` parameter of `params` (the query for
/// ChunkVault's routes; query and form for the classic ones, as the original's clients send
/// it), with a `username` beside it that must be the token's. It never rejects: a rejection
/// would let a sibling route answer instead (a 405 where a 401 belongs) and leave a refused
/// body unread. Handlers apply `?` to the caller, after anything they owe a refused request.
pub(crate) fn caller<P>(
    state: State,
    params: P,
) -> impl Filter<Extract = (State, Caller), Error = warp::Rejection> + Clone
where
    P: Filter<Extract = (Result<Params, ApiError>,), Error = warp::Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    with_state(state)
        .and(authorization())
        .and(params)
        .then(
            |state: State, header: Option<String>, params: Result<Params, ApiError>| async move {
                let caller = match params {
                    Ok(params) => authenticate(&state, header.as_deref(), &params)
                        .await
                        .map(|user| (user, params)),
                    Err(e) => Err(e),
                };
                (state, caller)
            },
        )
        .untuple_one()
}

/// The query's parameters (ChunkVault's own routes: bodies are JSON or bytes, never forms).
pub(crate) fn query_params(
) -> impl Filter<Extract = (Result<Params, ApiError>,), Error = warp::Rejection> + Clone {
    warp::query::raw()
        .or_else(|_| async { Ok::<_, warp::Rejection>((String::new(),)) })
        .map(|q: String| Ok(Params::from_query(&q)))
}

pub(crate) async fn authenticate(
    state: &AppState,
    header: Option<&str>,
    params: &Params,
) -> Result<User, ApiError> {
    let token = token(header, params)?;
    let user = state.engine.accounts().authenticate(token).await?;
    // The seed's clients name the user beside the token; a token of someone else is refused.
    match params.get("username") {
        Some(name) if !name.is_empty() && name != user.username => {
            Err(EngineError::Unauthenticated.into())
        }
        _ => Ok(user),
    }
}

/// A refused whole-file upload's body is read and discarded up to this much, so small clients
/// get the answer; beyond it the connection is closed instead.
pub(crate) const UPLOAD_DRAIN_LIMIT: u64 = 16 << 20;

/// The request body as a stream of `Bytes`, never collected.
pub(crate) fn body_stream() -> impl Filter<Extract = (ByteStream,), Error = warp::Rejection> + Clone
{
    warp::body::stream().map(into_byte_stream)
}

fn into_byte_stream<S, B>(body: S) -> ByteStream
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    body.map(|r| {
        r.map(|mut b| b.copy_to_bytes(b.remaining()))
            .map_err(io::Error::other)
    })
    .boxed()
}

/// A request body handed to the engine that can be drained afterwards when the engine stops
/// early (refused part, digest mismatch, unknown upload). An unread body makes hyper close the
/// connection, and a client still sending then sees a reset instead of our answer.
pub(crate) struct Drainable(std::sync::Arc<tokio::sync::Mutex<ByteStream>>);

impl Drainable {
    pub(crate) fn new(body: ByteStream) -> Self {
        Drainable(std::sync::Arc::new(tokio::sync::Mutex::new(body)))
    }

    /// The body as a stream for the engine.
    pub(crate) fn stream(&self) -> ByteStream {
        futures::stream::unfold(self.0.clone(), |inner| async move {
            let item = inner.lock().await.next().await;
            item.map(|i| (i, inner))
        })
        .boxed()
    }

    /// Reads and discards what is left, up to `limit` bytes (past that, closing is cheaper).
    pub(crate) async fn drain(&self, limit: u64) {
        let mut body = self.0.lock().await;
        let mut seen = 0u64;
        while let Some(Ok(chunk)) = body.next().await {
            seen += chunk.len() as u64;
            if seen > limit {
                break;
            }
        }
    }
}

/// Runs `handler` over a drainable body; on error, drains up to `limit` bytes first.
pub(crate) async fn with_drained_body<F, Fut>(
    body: ByteStream,
    limit: u64,
    handler: F,
) -> Result<warp::reply::Response, ApiError>
where
    F: FnOnce(ByteStream) -> Fut,
    Fut: std::future::Future<Output = Result<warp::reply::Response, ApiError>>,
{
    let body = Drainable::new(body);
    let result = handler(body.stream()).await;
    if result.is_err() {
        body.drain(limit).await;
    }
    result
}
