//! `/user/signup`, `/user/signin`, `/user/info`, `/user/signout`.

use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use super::{accept, go_time, redirect, reply, resp_ok, text, Accept, HOME_PAGE, SIGNIN_PAGE};
use crate::error::ApiError;
use crate::ops::ClientAddr;
use crate::routes::params::params;
use crate::routes::{authorization, caller, token, web, with_state, Caller, Params, State};

pub fn routes(state: State) -> BoxedFilter<(Response,)> {
    let common = || {
        accept()
            .and(with_state(state.clone()))
            .and(authorization())
            .and(params())
    };
    let signed_in = || accept().and(caller(state.clone(), params()));
    let client = || {
        warp::ext::optional::<ClientAddr>().map(|c: Option<ClientAddr>| {
            c.map_or_else(|| "unknown".to_owned(), |c| c.0.to_string())
        })
    };
    let host = || {
        warp::header::optional::<String>("host")
            .or(warp::any().map(|| None))
            .unify()
    };
    // The pages: the sign-up page is served, sign-in redirects to its page (as the original).
    let signup_page = warp::path!("user" / "signup")
        .and(warp::get())
        .map(|| web::page("/static/view/signup.html"));
    let signin_page = warp::path!("user" / "signin")
        .and(warp::get())
        .map(|| redirect(SIGNIN_PAGE));
    let signup = warp::path!("user" / "signup")
        .and(warp::post())
        .and(common())
        .and(client())
        .then(signup);
    let signin = warp::path!("user" / "signin")
        .and(warp::post())
        .and(common())
        .and(client())
        .and(host())
        .then(signin);
    let info = warp::path!("user" / "info")
        .and(warp::get().or(warp::post()).unify())
        .and(signed_in())
        .then(info);
    let signout = warp::path!("user" / "signout")
        .and(warp::post())
        .and(signed_in())
        .and(authorization())
        .then(signout);
    signup_page
        .or(signin_page)
        .unify()
        .or(signup)
        .unify()
        .or(signin)
        .unify()
        .or(info)
        .unify()
        .or(signout)
        .unify()
        .boxed()
}

type Params_ = Result<Params, ApiError>;

/// The original's sign-up answer is the text `SUCCESS` (its page compares the body with it).
async fn signup(
    accept: Accept,
    state: State,
    _auth: Option<String>,
    params: Params_,
    client: String,
) -> Response {
    let result = async {
        let params = params?;
        let username = params.require("username")?;
        let password = params.require("password")?;
        state
            .engine
            .accounts()
            .signup(username, password, &client)
            .await?;
        Ok::<_, ApiError>(text("SUCCESS"))
    };
    reply(accept, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignedIn {
    /// Where the original's sign-in page goes next.
    location: String,
    username: String,
    token: String,
}

async fn signin(
    accept: Accept,
    state: State,
    _auth: Option<String>,
    params: Params_,
    client: String,
    host: Option<String>,
) -> Response {
    let result = async {
        let params = params?;
        let username = params.require("username")?;
        let password = params.require("password")?;
        let session = state
            .engine
            .accounts()
            .signin(username, password, &client)
            .await?;
        Ok::<_, ApiError>(resp_ok(
            accept,
            SignedIn {
                location: format!("{}{HOME_PAGE}", state.base_url(host.as_deref())),
                username: session.user.username,
                token: session.token,
            },
        ))
    };
    reply(accept, result.await)
}

/// The original's `User`. ChunkVault keeps no e-mail or phone number; `Status` 0 is "active".
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    username: String,
    email: &'static str,
    phone: &'static str,
    signup_at: String,
    last_active_at: String,
    status: u8,
}

async fn info(accept: Accept, _state: State, caller: Caller) -> Response {
    let result = async {
        let (user, _) = caller?;
        Ok::<_, ApiError>(resp_ok(
            accept,
            Info {
                username: user.username,
                email: "",
                phone: "",
                signup_at: go_time(user.created_at),
                last_active_at: go_time(user.last_active_at),
                status: 0,
            },
        ))
    };
    reply(accept, result.await)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignedOut {
    username: String,
}

/// Not in the original (its tokens never ended): revokes the token used.
async fn signout(accept: Accept, state: State, caller: Caller, header: Option<String>) -> Response {
    let result = async {
        // Only a live token can be revoked; anything else is a 401 like every other route.
        let (user, params) = caller?;
        state
            .engine
            .accounts()
            .signout(token(header.as_deref(), &params)?)
            .await?;
        Ok::<_, ApiError>(resp_ok(
            accept,
            SignedOut {
                username: user.username,
            },
        ))
    };
    reply(accept, result.await)
}
