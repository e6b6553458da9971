//! ChunkVault's own JSON resources, used by its web page and CLI: the account
//! (`/api/account`), sign-in tokens (`/api/sessions`), files (`/api/files`, by id) and their
//! share links. HTTP statuses say what happened; bodies are the `{code, msg, data}` envelope
//! with the stable error codes. Uploads are `/uploads` (REST parts) and `/files/` (tus).

use chunkvault_engine::{ByteStream, FileCursor, FileId, FileOrder, FileQuery, User, UserFile};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::params::{read_limited, MAX_FORM_BYTES};
use super::uploads::FileView;
use super::{
    authorization, body_stream, caller, download, query_params, timestamp, token,
    with_drained_body, with_state, Caller, State,
};
use crate::error::{ok, ok_with_status, reply, ApiError};
use crate::ops::ClientAddr;

/// Default and largest page of `GET /api/files`.
const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 1000;
/// The longest name search (`q`): longer than any file name.
const MAX_SEARCH_BYTES: usize = 1024;

/// The account and sign-in tokens (the account role).
pub fn account_routes(state: State) -> BoxedFilter<(Response,)> {
    let auth = || caller(state.clone(), query_params());
    let signup = warp::path!("api" / "account")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json_body())
        .and(client())
        .then(signup);
    let account = warp::path!("api" / "account")
        .and(warp::get())
        .and(auth())
        .then(account);
    let signin = warp::path!("api" / "sessions")
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json_body())
        .and(client())
        .then(signin);
    let signout = warp::path!("api" / "sessions" / "current")
        .and(warp::delete())
        .and(auth())
        .and(authorization())
        .then(signout);
    signup
        .or(account)
        .unify()
        .or(signin)
        .unify()
        .or(signout)
        .unify()
        .map(reply)
        .boxed()
}

/// `POST /api/files`, a whole-file upload (the upload role).
pub fn upload_routes(state: State) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "files")
        .and(warp::post())
        .and(caller(state, query_params()))
        .and(body_stream())
        .then(upload)
        .map(reply)
        .boxed()
}

/// What is stored: list, one file, rename, delete, content, links (the download role).
pub fn file_routes(state: State) -> BoxedFilter<(Response,)> {
    let auth = || caller(state.clone(), query_params());
    let list = warp::path!("api" / "files")
        .and(warp::get())
        .and(auth())
        .then(list);
    let show = warp::path!("api" / "files" / String)
        .and(warp::get())
        .and(auth())
        .then(show);
    let rename = warp::path!("api" / "files" / String)
        .and(warp::patch())
        .and(auth())
        .and(json_body())
        .then(rename);
    let delete = warp::path!("api" / "files" / String)
        .and(warp::delete())
        .and(auth())
        .then(delete);
    let content = warp::path!("api" / "files" / String / "content")
        .and(
            warp::head()
                .map(|| true)
                .or(warp::get().map(|| false))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(auth())
        .then(content);
    let link = warp::path!("api" / "files" / String / "links")
        .and(warp::post())
        .and(
            warp::header::optional::<String>("host")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(auth())
        .then(link);
    list.or(show)
        .unify()
        .or(rename)
        .unify()
        .or(delete)
        .unify()
        .or(content)
        .unify()
        .or(link)
        .unify()
        .map(reply)
        .boxed()
}

/// A JSON body, read up to the form limit.
fn json_body(
) -> impl Filter<Extract = (Result<Vec<u8>, ApiError>,), Error = warp::Rejection> + Clone {
    warp::body::stream().then(|b| async move { read_limited(b, MAX_FORM_BYTES).await })
}

/// The client's address, for sign-up and sign-in limits.
fn client() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<ClientAddr>()
        .map(|c: Option<ClientAddr>| c.map_or_else(|| "unknown".to_owned(), |c| c.0.to_string()))
}

/// A JSON body of type `T`, with what was expected in the error.
fn parse_json<T: DeserializeOwned>(
    body: Result<Vec<u8>, ApiError>,
    expected: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice(&body?)
        .map_err(|e| ApiError::bad("body", format!("expected JSON {expected}: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

const CREDENTIALS: &str = "{username, password}";

#[derive(Serialize)]
struct AccountView {
    username: String,
    created_at: String,
    last_active_at: String,
}

impl From<&User> for AccountView {
    fn from(u: &User) -> Self {
        AccountView {
            username: u.username.clone(),
            created_at: timestamp(u.created_at),
            last_active_at: timestamp(u.last_active_at),
        }
    }
}

#[derive(Serialize)]
struct SessionView {
    username: String,
    token: String,
    expires_at: String,
}

async fn signup(
    state: State,
    body: Result<Vec<u8>, ApiError>,
    client: String,
) -> Result<Response, ApiError> {
    let c: Credentials = parse_json(body, CREDENTIALS)?;
    state
        .engine
        .accounts()
        .signup(&c.username, &c.password, &client)
        .await?;
    Ok(ok_with_status(
        StatusCode::CREATED,
        serde_json::json!({ "username": c.username }),
    ))
}

async fn account(_state: State, caller: Caller) -> Result<Response, ApiError> {
    let (user, _) = caller?;
    Ok(ok(AccountView::from(&user)))
}

async fn signin(
    state: State,
    body: Result<Vec<u8>, ApiError>,
    client: String,
) -> Result<Response, ApiError> {
    let c: Credentials = parse_json(body, CREDENTIALS)?;
    let session = state
        .engine
        .accounts()
        .signin(&c.username, &c.password, &client)
        .await?;
    Ok(ok_with_status(
        StatusCode::CREATED,
        SessionView {
            username: session.user.username,
            token: session.token,
            expires_at: timestamp(session.expires_at),
        },
    ))
}

async fn signout(
    state: State,
    caller: Caller,
    header: Option<String>,
) -> Result<Response, ApiError> {
    // Only a live token can be revoked; anything else is a 401 like every other route.
    let (_, query) = caller?;
    state
        .engine
        .accounts()
        .signout(token(header.as_deref(), &query)?)
        .await?;
    Ok(ok(serde_json::Value::Null))
}

/// `GET /api/files?limit=&offset=&sort=&q=&after=`: a page of the caller's files, newest first
/// unless `sort` says otherwise; `q` keeps the names that contain it. A full page carries a
/// `Link: <…&after=CURSOR>; rel="next"` header: the next page continues after its last file
/// (keyset paging: as fast at the millionth file as at the first, and stable while files come
/// and go). `offset` still works.
async fn list(state: State, caller: Caller) -> Result<Response, ApiError> {
    let (user, params) = caller?;
    let (limit, offset) = params.page(DEFAULT_LIMIT, MAX_LIMIT)?;
    let order = match params.get("sort") {
        None => FileOrder::Newest,
        Some(s) => FileOrder::parse(s)
            .ok_or_else(|| ApiError::bad("sort", format!("must be one of {}", FileOrder::NAMES)))?,
    };
    let name_contains = params
        .get("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(|q| {
            if q.len() > MAX_SEARCH_BYTES {
                return Err(ApiError::bad(
                    "q",
                    format!("must be at most {MAX_SEARCH_BYTES} bytes"),
                ));
            }
            Ok(q.to_owned())
        })
        .transpose()?;
    let after = params.get("after").map(FileCursor::decode).transpose()?;
    if let Some(cursor) = &after {
        if offset > 0 {
            return Err(ApiError::bad("after", "cannot be combined with offset"));
        }
        if cursor.order != order {
            return Err(ApiError::bad(
                "after",
                "comes from a listing in another order (keep its sort)",
            ));
        }
    }
    let query = FileQuery {
        limit,
        offset,
        order,
        name_contains,
        after,
    };
    let files = state.engine.files().list_files(&user, &query).await?;
    let mut resp = ok(files.iter().map(FileView::from).collect::<Vec<_>>());
    if let Some(last) = files.last().filter(|_| files.len() == limit as usize) {
        let mut next = format!(
            "</api/files?sort={}&limit={limit}&after={}",
            order.as_str(),
            FileCursor::after(order, last).encode()
        );
        if let Some(q) = &query.name_contains {
            next.push_str("&q=");
            next.extend(percent_encoding::utf8_percent_encode(
                q,
                percent_encoding::NON_ALPHANUMERIC,
            ));
        }
        next.push_str(">; rel=\"next\"");
        if let Ok(v) = warp::http::HeaderValue::from_str(&next) {
            resp.headers_mut().insert(warp::http::header::LINK, v);
        }
    }
    Ok(resp)
}

/// `POST /api/files?name=…`: the body is the file (streamed, hashed on the way in).
async fn upload(state: State, caller: Caller, body: ByteStream) -> Result<Response, ApiError> {
    with_drained_body(body, super::UPLOAD_DRAIN_LIMIT, |body| async move {
        let (user, query) = caller?;
        let name = query.require("name")?;
        let file = state.engine.uploads().upload(&user, name, body).await?;
        Ok(ok_with_status(StatusCode::CREATED, FileView::from(&file)))
    })
    .await
}

/// The caller and their file `id`.
async fn own_file(state: &State, caller: Caller, id: &str) -> Result<(User, UserFile), ApiError> {
    let (user, _) = caller?;
    let id = FileId::parse(id)?;
    let file = state.engine.files().file_by_id(&user, &id).await?;
    Ok((user, file))
}

async fn show(id: String, state: State, caller: Caller) -> Result<Response, ApiError> {
    let (_, file) = own_file(&state, caller, &id).await?;
    Ok(ok(FileView::from(&file)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename(
    id: String,
    state: State,
    caller: Caller,
    body: Result<Vec<u8>, ApiError>,
) -> Result<Response, ApiError> {
    let (user, file) = own_file(&state, caller, &id).await?;
    let r: Rename = parse_json(body, "{name}")?;
    let renamed = state.engine.files().rename(&user, &file, &r.name).await?;
    Ok(ok(FileView::from(&renamed)))
}

async fn delete(id: String, state: State, caller: Caller) -> Result<Response, ApiError> {
    let (user, file) = own_file(&state, caller, &id).await?;
    state.engine.files().delete(&user, &file).await?;
    Ok(ok(serde_json::Value::Null))
}

async fn content(
    id: String,
    head: bool,
    headers: HeaderMap,
    state: State,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (_, file) = own_file(&state, caller, &id).await?;
    download::respond(&state, file, &headers, head).await
}

#[derive(Serialize)]
struct LinkView {
    url: String,
    expires_at: String,
}

async fn link(
    id: String,
    host: Option<String>,
    state: State,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (user, params) = caller?;
    let ttl = state.engine.files().link_ttl(params.uint("expires_in")?)?;
    let (_, file) = own_file(&state, Ok((user, params)), &id).await?;
    let link = download::share_link(&state, &file, host.as_deref(), ttl).await?;
    Ok(ok_with_status(
        StatusCode::CREATED,
        LinkView {
            url: link.url,
            expires_at: timestamp(link.expires_at),
        },
    ))
}
