//! `/user/signup`, `/user/signin`, `/user/info`, `/user/signout`.

use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::timestamp;
use crate::error::{ok, reply, ApiError};
use crate::ops::ClientAddr;
use crate::routes::params::params;
use crate::routes::{authenticate, authorization, token, with_state, Params, State};

pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let common = || with_state(state.clone()).and(authorization()).and(params());
    let client = || {
        warp::ext::optional::<ClientAddr>().map(|c: Option<ClientAddr>| {
            c.map_or_else(|| "unknown".to_owned(), |c| c.0.to_string())
        })
    };
    let signup = warp::path!("user" / "signup")
        .and(warp::post())
        .and(common())
        .and(client())
        .then(signup);
    let signin = warp::path!("user" / "signin")
        .and(warp::post())
        .and(common())
        .and(client())
        .then(signin);
    let info = warp::path!("user" / "info")
        .and(warp::get().or(warp::post()).unify())
        .and(common())
        .then(info);
    let signout = warp::path!("user" / "signout")
        .and(warp::post())
        .and(common())
        .then(signout);
    signup
        .or(signin)
        .unify()
        .or(info)
        .unify()
        .or(signout)
        .unify()
        .map(reply)
        .boxed()
}

type Params_ = Result<Params, ApiError>;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignedUp {
    username: String,
}

async fn signup(
    state: State,
    _auth: Option<String>,
    params: Params_,
    client: String,
) -> Result<Response, ApiError> {
    let params = params?;
    let username = params.require("username")?;
    let password = params.require("password")?;
    state.engine.signup(username, password, &client).await?;
    Ok(ok(SignedUp {
        username: username.to_owned(),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignedIn {
    username: String,
    token: String,
    expires_at: String,
    /// Where the seed's web client goes after sign-in.
    location: &'static str,
}

async fn signin(
    state: State,
    _auth: Option<String>,
    params: Params_,
    client: String,
) -> Result<Response, ApiError> {
    let params = params?;
    let username = params.require("username")?;
    let password = params.require("password")?;
    let session = state.engine.signin(username, password, &client).await?;
    Ok(ok(SignedIn {
        username: session.user.username,
        token: session.token,
        expires_at: timestamp(session.expires_at),
        location: "/",
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    username: String,
    signup_at: String,
    last_active_at: String,
}

async fn info(state: State, auth: Option<String>, params: Params_) -> Result<Response, ApiError> {
    let params = params?;
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    Ok(ok(Info {
        username: user.username,
        signup_at: timestamp(user.created_at),
        last_active_at: timestamp(user.last_active_at),
    }))
}

async fn signout(
    state: State,
    auth: Option<String>,
    params: Params_,
) -> Result<Response, ApiError> {
    let params = params?;
    // Only a live token can be revoked; anything else is a 401 like every other route.
    let user = authenticate(&state, auth.as_deref(), &params).await?;
    state
        .engine
        .signout(token(auth.as_deref(), &params)?)
        .await?;
    Ok(ok(SignedUp {
        username: user.username,
    }))
}
