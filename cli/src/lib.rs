//! The `chunkvault` program's client: login, logout, whoami, upload, uploads, download, ls,
//! mv, rm, share. They speak the
//! server's own API (`/api/*`, `/uploads`) over HTTP, like any other client; the server library
//! knows nothing of them. Also `migrate`, the admin command with a progress bar.
#![forbid(unsafe_code)]

mod client;
mod download;
pub mod explain;
mod files;
pub mod migrate;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

pub use client::Api;

/// Where the client finds its server and remembers its token.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Server URL [default: the one given at login]
    #[arg(long, env = "CHUNKVAULT_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Directory for the saved token [default: $XDG_CONFIG_HOME/chunkvault or ~/.config/chunkvault]
    #[arg(long, env = "CHUNKVAULT_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Your user name.
    #[arg(long, short)]
    pub username: String,
    /// [default: asked for on the terminal]
    #[arg(long, env = "CHUNKVAULT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Create the account first (if it exists already, just sign in).
    #[arg(long)]
    pub signup: bool,
}

/// Commands that need only the saved sign-in.
#[derive(Debug, Clone, Args)]
pub struct SignedInArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UploadsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Cancel this unfinished upload (its id, as listed), dropping what it sent; repeatable.
    #[arg(long, value_name = "ID")]
    pub cancel: Vec<String>,
    /// Cancel every unfinished upload.
    #[arg(long, conflicts_with = "cancel")]
    pub cancel_all: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ShareArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Id (as `ls` shows it), SHA1 or name of the file.
    pub file: String,
}

#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Files to upload.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Parts in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,
    /// Part size to ask for (256KiB–64MiB) [default: the server's, 5 MiB]
    #[arg(long, value_parser = chunkvault_api::parse_size)]
    pub chunk_size: Option<u64>,
    /// Limit the upload rate (bytes per second, e.g. 10MiB), like curl --limit-rate.
    #[arg(long, value_parser = chunkvault_api::parse_size)]
    pub limit_rate: Option<u64>,
    /// Tries per part before giving up (network errors, 5xx, 409, 429).
    #[arg(long, default_value_t = 8)]
    pub retries: u32,
    /// The check sent with each part, so a part corrupted on the way is refused and re-sent
    /// alone: `crc32c` (`x-amz-checksum-crc32c`, nearly free), `md5` (`Content-MD5`, costs
    /// CPU on both ends) or `none`. The server verifies the whole file's SHA1 in every case.
    #[arg(long, value_enum, default_value_t = PartCheck::Crc32c)]
    pub part_check: PartCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartCheck {
    Crc32c,
    Md5,
    None,
}

#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Id (as `ls` shows it), SHA1 or name of the file.
    pub file: String,
    /// Where to write it [default: the file's name in the current directory]
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long, short)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MvArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Id (as `ls` shows it), SHA1 or current name.
    pub file: String,
    /// The new name.
    pub new_name: String,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Ids (as `ls` shows them), SHA1s or names.
    #[arg(required = true)]
    pub files: Vec<String>,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let saved_server = client::saved(&args.client).await?.and_then(|s| s.server);
    let server = args.client.server.clone().or(saved_server).ok_or_else(|| {
        anyhow::anyhow!("which server? pass --server URL (it is remembered after the first login)")
    })?;
    let password = match args.password {
        Some(p) => p,
        None => tokio::task::spawn_blocking(|| rpassword::prompt_password("password: ")).await??,
    };
    let api = Api::anonymous(&server)?;
    let credentials = serde_json::json!({ "username": args.username, "password": password });
    if args.signup {
        match api
            .call(
                reqwest::Method::POST,
                "/api/account",
                Some(credentials.clone()),
            )
            .await
        {
            Ok(_) => eprintln!("created the account {}", args.username),
            Err(e)
                if e.downcast_ref::<client::ServerError>().is_some_and(|s| {
                    s.code == u64::from(chunkvault_api::codes::USERNAME_TAKEN)
                }) =>
            {
                eprintln!("the account {} exists already: signing in", args.username)
            }
            Err(e) => return Err(e),
        }
    }
    let data = api
        .call(reqwest::Method::POST, "/api/sessions", Some(credentials))
        .await?;
    let token = data["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("server sent no token"))?;
    client::save_credentials(&args.client, &server, &args.username, token).await?;
    eprintln!("signed in to {server} as {}", args.username);
    Ok(())
}

/// Revokes the saved token on the server and forgets it here.
pub async fn logout(args: SignedInArgs) -> anyhow::Result<()> {
    let Some(saved) = client::saved(&args.client).await? else {
        eprintln!("not signed in");
        return Ok(());
    };
    let api = Api::from_saved(&args.client).await?;
    match api
        .call(reqwest::Method::DELETE, "/api/sessions/current", None)
        .await
    {
        Ok(_) => {}
        // Already expired or revoked: forgetting it is all that is left to do.
        Err(e)
            if e.downcast_ref::<client::ServerError>()
                .is_some_and(|s| s.status == 401) => {}
        Err(e) => return Err(e),
    }
    client::remove_credentials(&args.client).await?;
    eprintln!(
        "signed out{}",
        saved.username.map(|u| format!(" {u}")).unwrap_or_default()
    );
    Ok(())
}

/// Who the saved token signs in as, and where.
pub async fn whoami(args: SignedInArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    let me = api.call(reqwest::Method::GET, "/api/account", None).await?;
    files::line(&format!(
        "{} on {}",
        me["username"].as_str().unwrap_or_default(),
        api.base
    ))
}

/// Uploads; Ctrl-C stops with how to go on (the parts sent are kept on the server).
pub async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    tokio::select! {
        res = upload::run(&api, &args) => res,
        _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
    }
}

/// Ctrl-C during an upload.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: run the same command again to resume (what was sent is kept on the server; `chunkvault uploads` lists it)")]
pub struct Interrupted;

pub async fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    download::run(&api, &args).await
}

pub async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    files::ls(&api).await
}

pub async fn mv(args: MvArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    files::mv(&api, &args.file, &args.new_name).await
}

pub async fn rm(args: RmArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    files::rm(&api, &args.files).await
}

pub async fn share(args: ShareArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    files::share(&api, &args.file).await
}

pub async fn uploads(args: UploadsArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    files::uploads(&api, &args).await
}

/// Exponential backoff with full jitter: 200 ms doubling, at most 10 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(200)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(10));
    cap.mul_f64(rand::random::<f64>().max(0.05))
}
