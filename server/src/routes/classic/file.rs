//! `/file/upload`, `/file/meta`, `/file/query`, `/file/download`, `/file/update`,
//! `/file/delete`, `/file/downloadurl` and the signed download links.

use std::io;

use chunkvault_engine::{
    ByteStream, Error as EngineError, FileId, FileQuery, Sha1Hex, SignedLink, User, UserFile,
};
use futures::StreamExt;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::Filter;

use super::{
    accept, file_meta, json, redirect, reply, resp_ok, text, Accept, UserFileMeta, HOME_PAGE,
};
use crate::error::ApiError;
use crate::routes::params::params;
use crate::routes::{
    authenticate, authorization, body_stream, caller, download, web, with_drained_body, with_state,
    AppState, Caller, Params, State,
};

/// Default and largest page size of `/file/query`.
const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 1000;

type Params_ = Result<Params, ApiError>;

/// The upload page, the form upload and its answer page (the upload role).
pub fn upload_routes(state: State) -> BoxedFilter<(Response,)> {
    let upload_page = warp::path!("file" / "upload")
        .and(warp::get())
        .map(|| web::page("/static/view/upload.html"));
    let upload_suc = warp::path!("file" / "upload" / "suc")
        .and(warp::get())
        .map(|| text("Upload finished!"));
    let upload = warp::path!("file" / "upload")
        .and(warp::post())
        .and(accept())
        .and(with_state(state))
        .and(authorization())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(
            warp::header::optional::<String>("content-type")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(body_stream())
        .then(upload);
    upload_page
        .or(upload_suc)
        .unify()
        .or(upload)
        .unify()
        .boxed()
}

/// Meta, listing, downloads, signed links, rename, delete (the download role).
pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let get_or_post = || warp::get().or(warp::post()).unify();
    let signed_in = || accept().and(caller(state.clone(), params()));
    let host = || {
        warp::header::optional::<String>("host")
            .or(warp::any().map(|| None))
            .unify()
    };

    let meta = warp::path!("file" / "meta")
        .and(get_or_post())
        .and(signed_in())
        .then(meta);
    let query = warp::path!("file" / "query")
        .and(get_or_post())
        .and(signed_in())
        .then(query);
    // HEAD, GET and (as the original accepted any method) POST.
    let head = || {
        warp::head()
            .map(|| true)
            .or(warp::get().or(warp::post()).unify().map(|| false))
            .unify()
    };
    let download = warp::path!("file" / "download")
        .or(warp::path!("file" / "download" / "range"))
        .unify()
        .and(head())
        .and(warp::header::headers_cloned())
        .and(signed_in())
        .then(download);
    let signed = warp::path!("file" / "download" / "signed")
        .and(
            warp::head()
                .map(|| true)
                .or(warp::get().map(|| false))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(with_state(state.clone()))
        .and(params())
        .then(signed_download)
        .map(crate::error::reply);
    let update = warp::path!("file" / "update")
        .and(warp::post())
        .and(signed_in())
        .then(update);
    let delete = warp::path!("file" / "delete")
        .and(get_or_post())
        .and(signed_in())
        .then(delete);
    let download_url = warp::path!("file" / "downloadurl")
        .and(get_or_post())
        .and(host())
        .and(signed_in())
        .then(download_url);

    meta.or(query)
        .unify()
        .or(download)
        .unify()
        .or(signed)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(download_url)
        .unify()
        .boxed()
}

/// The field that may carry the token in a multipart upload; nothing else is read into memory.
const MAX_TOKEN_FIELD: u64 = 4096;

/// A browser's form post is sent on to the home page, as the original did; API clients get
/// the stored file.
async fn upload(
    accept: Accept,
    state: State,
    auth: Option<String>,
    query: String,
    content_type: Option<String>,
    body: ByteStream,
) -> Response {
    let result = with_drained_body(body, crate::routes::UPLOAD_DRAIN_LIMIT, |body| async {
        let (state, file) = upload_form(state, auth, query, content_type, body).await?;
        if accept.html {
            return Ok(redirect(HOME_PAGE));
        }
        Ok(resp_ok(accept, file_meta(&state, &file).await?))
    })
    .await;
    reply(accept, result)
}

async fn upload_form(
    state: State,
    auth: Option<String>,
    query: String,
    content_type: Option<String>,
    body: ByteStream,
) -> Result<(State, UserFile), ApiError> {
    let params = Params::from_query(&query);
    // Authenticate before reading any of the body when the token is in the header or query.
    let mut user: Option<User> = if auth.is_some() || params.get("token").is_some() {
        Some(authenticate(&state, auth.as_deref(), &params).await?)
    } else {
        None
    };
    let Some(boundary) = content_type.and_then(|ct| multer::parse_boundary(ct).ok()) else {
        // Without a form there is no token field to wait for: say what is missing first.
        return Err(match user {
            None => EngineError::Unauthenticated.into(),
            Some(_) => ApiError::UnsupportedMediaType {
                expected: "multipart/form-data with a boundary",
            },
        });
    };
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().for_field("token", MAX_TOKEN_FIELD));
    let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
    let multipart_err = |e: multer::Error| ApiError::Multipart(e.to_string());
    while let Some(field) = form.next_field().await.map_err(multipart_err)? {
        match field.name() {
            // The seed's page posts the token as a form field before the file.
            Some("token") if user.is_none() => {
                let t = field.text().await.map_err(multipart_err)?;
                user = Some(state.engine.accounts().authenticate(t.trim()).await?);
            }
            Some("file") => {
                let user = user.ok_or(EngineError::Unauthenticated)?;
                let name = field
                    .file_name()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad("file", "the part has no filename"))?;
                let bytes = field.map(|r| r.map_err(io::Error::other)).boxed();
                let file = state.engine.uploads().upload(&user, &name, bytes).await?;
                return Ok((state, file));
            }
            // Other fields are skipped: streamed past, not stored.
            _ => {}
        }
    }
    if user.is_none() {
        return Err(EngineError::Unauthenticated.into());
    }
    Err(ApiError::MissingParam("file"))
}

/// The caller's file named by `filehash` (and `fileid`, when given).
async fn caller_file(state: &AppState, user: &User, params: &Params) -> Result<UserFile, ApiError> {
    let sha1 = Sha1Hex::parse(params.require("filehash")?)?;
    let id = match params.get("fileid") {
        None | Some("") => None,
        Some(id) => Some(FileId::parse(id)?),
    };
    Ok(state.engine.files().file(user, &sha1, id.as_ref()).await?)
}

async fn meta(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let file = caller_file(&state, &user, &params).await?;
        Ok::<_, ApiError>(json(accept, &file_meta(&state, &file).await?))
    };
    reply(accept, result.await)
}

/// The caller's files, newest first, as a bare array (`limit`, default 20; `offset`).
async fn query(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let (limit, offset) = params.page(DEFAULT_LIMIT, MAX_LIMIT)?;
        let files = state
            .engine
            .files()
            .list_files(&user, &FileQuery::page(limit, offset))
            .await?;
        let rows: Vec<_> = files
            .iter()
            .map(|f| UserFileMeta::new(f, &user.username))
            .collect();
        Ok(json(accept, &rows))
    };
    reply(accept, result.await)
}

async fn download(
    head: bool,
    headers: HeaderMap,
    accept: Accept,
    state: State,
    caller: Caller,
) -> Response {
    let result = async {
        let (user, params) = caller?;
        let file = caller_file(&state, &user, &params).await?;
        download::respond(&state, file, &headers, head).await
    };
    reply(accept, result.await)
}

async fn signed_download(
    head: bool,
    headers: HeaderMap,
    state: State,
    params: Params_,
) -> Result<Response, ApiError> {
    let params = params?;
    let forbidden = || ApiError::Engine(EngineError::BadSignature);
    let link = SignedLink {
        file: FileId::parse(params.require("id")?).map_err(|_| forbidden())?,
        expires: params
            .require("expires")?
            .parse()
            .map_err(|_| forbidden())?,
        signature: params.require("sig")?.to_owned(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let file = state.engine.files().open_link(&link, now).await?;
    download::respond(&state, file, &headers, head).await
}

async fn update(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let op = params.require("op")?;
        if op != "0" {
            return Err(ApiError::bad("op", "only op=0 (rename) is supported"));
        }
        let new_name = params.require("filename")?;
        let file = caller_file(&state, &user, &params).await?;
        let renamed = state.engine.files().rename(&user, &file, new_name).await?;
        Ok(json(accept, &UserFileMeta::new(&renamed, &user.username)))
    };
    reply(accept, result.await)
}

/// The original answered a deletion with an empty 200.
async fn delete(accept: Accept, state: State, caller: Caller) -> Response {
    let result = async {
        let (user, params) = caller?;
        let file = caller_file(&state, &user, &params).await?;
        state.engine.files().delete(&user, &file).await?;
        Ok::<_, ApiError>(text(""))
    };
    reply(accept, result.await)
}

/// The body is the URL itself, as plain text: a link that needs no token (signed, or presigned
/// by the object store), where the original put the caller's token into the URL.
async fn download_url(
    host: Option<String>,
    accept: Accept,
    state: State,
    caller: Caller,
) -> Response {
    let result = async {
        let (user, params) = caller?;
        let file = caller_file(&state, &user, &params).await?;
        let ttl = state.engine.files().link_ttl(None)?;
        let link = download::share_link(&state, &file, host.as_deref(), ttl).await?;
        Ok::<_, ApiError>(text(link.url))
    };
    reply(accept, result.await)
}
