//! The `chunkvault` program's client: login, upload, download, ls, mv, rm. They speak the
//! server's own API (`/api/*`, `/uploads`) over HTTP, like any other client; the server library
//! knows nothing of them. Also `migrate`, the admin command with a progress bar.
#![forbid(unsafe_code)]

mod client;
mod download;
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
    #[arg(long, short)]
    pub username: String,
    /// [default: asked for on the terminal]
    #[arg(long, env = "CHUNKVAULT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Create the account first.
    #[arg(long)]
    pub signup: bool,
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
    /// SHA1 of the file, or its name.
    pub file: String,
    /// Where to write it [default: the file's name in the current directory]
    #[arg(long, short)]
    pub output: Option<PathBuf>,
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
    /// SHA1 or current name.
    pub file: String,
    pub new_name: String,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// SHA1s or names.
    #[arg(required = true)]
    pub files: Vec<String>,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let server = args
        .client
        .server
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--server is required for login"))?;
    let password = match args.password {
        Some(p) => p,
        None => tokio::task::spawn_blocking(|| rpassword::prompt_password("password: ")).await??,
    };
    let api = Api::anonymous(&server)?;
    let credentials = serde_json::json!({ "username": args.username, "password": password });
    if args.signup {
        api.call(
            reqwest::Method::POST,
            "/api/account",
            Some(credentials.clone()),
        )
        .await?;
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

pub async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    upload::run(&api, &args).await
}

pub async fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    download::run(&api, &args).await
}

pub async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    for f in api.list_files().await? {
        println!(
            "{}  {:>14}  {}  {}",
            f["sha1"].as_str().unwrap_or_default(),
            f["size"].as_u64().unwrap_or_default(),
            f["uploaded_at"].as_str().unwrap_or_default(),
            f["name"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn mv(args: MvArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    let file = api.resolve(&args.file).await?;
    let id = file["id"].as_str().unwrap_or_default();
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/files/{id}"),
        Some(serde_json::json!({ "name": args.new_name })),
    )
    .await?;
    Ok(())
}

pub async fn rm(args: RmArgs) -> anyhow::Result<()> {
    let api = Api::from_saved(&args.client).await?;
    for f in &args.files {
        let file = api.resolve(f).await?;
        let id = file["id"].as_str().unwrap_or_default();
        api.call(reqwest::Method::DELETE, &format!("/api/files/{id}"), None)
            .await?;
    }
    Ok(())
}

/// Exponential backoff with full jitter: 200 ms doubling, at most 10 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(200)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(10));
    cap.mul_f64(rand::random::<f64>().max(0.05))
}
