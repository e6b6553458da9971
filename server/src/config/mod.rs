//! Command line and environment, validated once into typed settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

mod values;

pub use values::{parse_cidr, parse_rate, parse_size, redact_url, Cidr, Rate};
use values::{parse_database_url, parse_delay, parse_duration, parse_public_url, parse_redis_url};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(
        help_heading = "Network",
        long,
        env = "CHUNKVAULT_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Directory for the embedded database and the local blob store.
    #[arg(
        help_heading = "Storage",
        long,
        env = "CHUNKVAULT_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Metadata database: sqlite://…, mysql://… or postgres://… [default: sqlite://<data-dir>/chunkvault.db]
    #[arg(help_heading = "Storage", long, env = "CHUNKVAULT_DATABASE_URL", value_parser = parse_database_url, value_name = "URL")]
    pub database_url: Option<String>,

    /// How long a request waits for a database connection before it fails with 503: a database
    /// that is down or unreachable is reported within this time.
    #[arg(help_heading = "Storage", long, env = "CHUNKVAULT_DATABASE_TIMEOUT", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub database_timeout: Duration,

    /// Largest file accepted (e.g. 500MiB, 64GiB, or bytes).
    #[arg(help_heading = "Uploads and limits", long, env = "CHUNKVAULT_MAX_FILE_SIZE", default_value = "64GiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_file_size: u64,

    /// How long a sign-in token stays valid (e.g. 7d, 12h).
    #[arg(help_heading = "Accounts and links", long, env = "CHUNKVAULT_TOKEN_TTL", default_value = "7d", value_parser = parse_duration, value_name = "DURATION")]
    pub token_ttl: Duration,

    /// How long a signed download URL stays valid.
    #[arg(help_heading = "Accounts and links", long, env = "CHUNKVAULT_DOWNLOAD_URL_TTL", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub download_url_ttl: Duration,

    /// Base URL clients reach this server at, used in signed download URLs
    /// [default: from the request's Host header].
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_PUBLIC_URL", value_parser = parse_public_url, value_name = "URL")]
    pub public_url: Option<String>,

    /// Redis for upload sessions (the multi-node backend), e.g. redis://127.0.0.1:6379
    /// [default: sessions live in the metadata database]
    #[arg(help_heading = "Storage", long, env = "CHUNKVAULT_REDIS_URL", value_parser = parse_redis_url, value_name = "URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key, so deployments can share a Redis.
    #[arg(
        help_heading = "Storage",
        long,
        env = "CHUNKVAULT_REDIS_PREFIX",
        default_value = "chunkvault:",
        value_name = "PREFIX"
    )]
    pub redis_prefix: String,

    /// How long an upload session lives after its last activity.
    #[arg(help_heading = "Uploads and limits", long, env = "CHUNKVAULT_UPLOAD_TTL", default_value = "24h", value_parser = parse_duration, value_name = "DURATION")]
    pub upload_ttl: Duration,

    /// How long one tus PATCH holds its upload's writer lock; a PATCH still sending after that
    /// loses the lock to the next writer and none of its bytes are kept.
    #[arg(help_heading = "Uploads and limits", long, env = "CHUNKVAULT_TUS_LOCK_LEASE", default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub tus_lock_lease: Duration,

    /// How often expired upload sessions, tokens and unreferenced blobs are swept.
    #[arg(help_heading = "Uploads and limits", long, env = "CHUNKVAULT_SWEEP_INTERVAL", default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub sweep_interval: Duration,

    /// Origins allowed to call the tus endpoint from a browser (comma-separated, or *).
    #[arg(
        help_heading = "Network",
        long,
        env = "CHUNKVAULT_CORS_ORIGINS",
        default_value = "*",
        value_name = "ORIGINS"
    )]
    pub cors_origins: String,

    /// Log filter (tracing env-filter syntax), e.g. info or chunkvault=debug.
    #[arg(
        help_heading = "Logging and configuration",
        long,
        env = "CHUNKVAULT_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

    /// A named blob store, `NAME=URL` (repeatable): `local:DIR`, `s3://BUCKET[/PREFIX]?endpoint=…`
    /// or `oss://BUCKET[/PREFIX]?endpoint=…` (README, "Object storage"). The store `local`
    /// (`<data-dir>`) always exists unless redefined.
    /// (Parsed at start-up rather than by clap, whose errors would echo a secret someone put
    /// in the URL.)
    #[arg(
        help_heading = "Storage",
        long = "store",
        env = "CHUNKVAULT_STORES",
        value_delimiter = ' ',
        value_name = "NAME=URL"
    )]
    pub stores: Vec<String>,

    /// The store new uploads are written to.
    #[arg(
        help_heading = "Storage",
        long,
        env = "CHUNKVAULT_UPLOAD_STORE",
        default_value = "local",
        value_name = "NAME"
    )]
    pub upload_store: String,

    /// Declares `--data-dir` a directory every node shares (a network file system), so a
    /// local upload store is safe with several nodes (Redis sessions).
    #[arg(help_heading = "Storage", long, env = "CHUNKVAULT_SHARED_DATA_DIR")]
    pub shared_data_dir: bool,

    /// Move each new blob to this store, --transfer-after its upload (hot → cold tier).
    #[arg(
        help_heading = "Transfers between stores",
        long,
        env = "CHUNKVAULT_TRANSFER_TO",
        value_name = "NAME"
    )]
    pub transfer_to: Option<String>,

    /// How long new blobs stay in the upload store before they move (0s: at once).
    #[arg(help_heading = "Transfers between stores", long, env = "CHUNKVAULT_TRANSFER_AFTER", default_value = "0s", value_parser = parse_delay, value_name = "DURATION")]
    pub transfer_after: Duration,

    /// Failed tries after which a transfer job is dead (dead-letter queue, or marked dead).
    #[arg(
        help_heading = "Transfers between stores",
        long,
        env = "CHUNKVAULT_TRANSFER_ATTEMPTS",
        default_value_t = 5,
        value_name = "N"
    )]
    pub transfer_attempts: u32,

    /// First retry delay of a failed transfer; it doubles with each try (at most 5 minutes).
    #[arg(help_heading = "Transfers between stores", long, env = "CHUNKVAULT_TRANSFER_BACKOFF", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub transfer_backoff: Duration,

    /// RabbitMQ for transfer jobs, `amqp://user:password@host:5672/%2f`; without it the jobs
    /// wait in a table of the metadata database.
    #[arg(
        help_heading = "Transfers between stores",
        long,
        env = "CHUNKVAULT_AMQP_URL",
        value_name = "URL"
    )]
    pub amqp_url: Option<String>,

    /// Prefix of the exchange and queue names this deployment declares.
    #[arg(
        help_heading = "Transfers between stores",
        long,
        env = "CHUNKVAULT_AMQP_PREFIX",
        default_value = "chunkvault.",
        value_name = "PREFIX"
    )]
    pub amqp_prefix: String,

    /// Do not run transfer jobs in this process (leave them to `chunkvault worker`).
    #[arg(
        help_heading = "Transfers between stores",
        long,
        env = "CHUNKVAULT_NO_TRANSFER_WORKER"
    )]
    pub no_transfer_worker: bool,

    /// Instant upload of stored content: `proof` (the client proves it holds the bytes),
    /// `trusted` (a SHA1 and size suffice: only where every user may read every file) or `off`.
    #[arg(help_heading = "Uploads and limits", 
        long,
        env = "CHUNKVAULT_INSTANT_UPLOAD",
        default_value = "proof",
        value_parser = ["proof", "trusted", "off"],
        value_name = "MODE"
    )]
    pub instant_upload: String,

    /// When new content gets its SHA1 collision-attack verdict (a read of the whole blob):
    /// `publish` (in the background right after upload, so the first instant upload of it
    /// answers at once) or `first-share` (only when it is first shared: less CPU for content
    /// nobody uploads again, but that first instant upload waits seconds per GiB).
    #[arg(help_heading = "Uploads and limits",
        long,
        env = "CHUNKVAULT_COLLISION_SCAN",
        default_value = "publish",
        value_parser = ["publish", "first-share"],
        value_name = "WHEN"
    )]
    pub collision_scan: String,

    /// Open upload sessions one user may have at once (429 beyond).
    #[arg(
        help_heading = "Uploads and limits",
        long,
        env = "CHUNKVAULT_MAX_SESSIONS_PER_USER",
        default_value_t = 100,
        value_name = "N"
    )]
    pub max_sessions_per_user: u64,

    /// Upload bodies (parts, files, tus appends) one user may send to a node at once (429 beyond).
    #[arg(help_heading = "Uploads and limits", 
        long,
        env = "CHUNKVAULT_MAX_UPLOADS_PER_USER",
        default_value_t = 32,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "N"
    )]
    pub max_uploads_per_user: u64,

    /// Storage quota per user (the sum of their files' sizes); none by default.
    #[arg(help_heading = "Uploads and limits", long, env = "CHUNKVAULT_USER_QUOTA", value_parser = parse_size, value_name = "SIZE")]
    pub user_quota: Option<u64>,

    /// Time a client has to send a request's headers (slow clients are disconnected).
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_HEADER_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,

    /// Longest pause allowed inside a request body; a stalled upload is cut off.
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_timeout: Duration,

    /// Slowest average rate a request body may keep, measured from `--body-rate-grace` into the
    /// body on (a body trickling in slower is cut off); 0 turns the check off.
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_MIN_BODY_RATE", default_value = "16KiB", value_parser = parse_size, value_name = "BYTES_PER_SECOND")]
    pub min_body_rate: u64,

    /// How long a request body may take before `--min-body-rate` applies to its average.
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_BODY_RATE_GRACE", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_rate_grace: Duration,

    /// Sign-ups one client address may make, as COUNT/PERIOD (`10/hour`, `5/1m`), or `off`.
    #[arg(help_heading = "Accounts and links", long, env = "CHUNKVAULT_SIGNUP_RATE", default_value = "20/hour", value_parser = parse_rate, value_name = "RATE")]
    pub signup_rate: Rate,

    /// Proxies whose `X-Forwarded-For` names the client (addresses or CIDR ranges, comma
    /// separated); the client of any other connection is its socket peer.
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr, value_name = "ADDR[/BITS]")]
    pub trusted_proxies: Vec<Cidr>,

    /// Route groups this node serves: all, upload, download or account.
    #[arg(
        help_heading = "Network",
        long,
        env = "CHUNKVAULT_ROUTES",
        default_value = "all",
        value_enum,
        value_name = "ROLE"
    )]
    pub routes: crate::ops::Role,

    /// Log format: text (for people) or json (one object per line).
    #[arg(help_heading = "Logging and configuration", 
        long,
        env = "CHUNKVAULT_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"],
        value_name = "FORMAT"
    )]
    pub log_format: String,

    /// After SIGTERM: how long in-flight requests (`serve`) or the transfer in hand (`worker`)
    /// may take to finish before the process exits (a cut transfer goes back to the queue).
    #[arg(help_heading = "Network", long, env = "CHUNKVAULT_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_delay, value_name = "DURATION")]
    pub shutdown_grace: Duration,

    /// A TOML file of settings (keys are the flag names, `max_file_size = "1GiB"`); flags and
    /// environment variables take precedence over it.
    #[arg(
        help_heading = "Logging and configuration",
        long,
        env = "CHUNKVAULT_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Every setting with its effective value, secrets redacted (`config check`).
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        vec![
            ("listen", self.listen.to_string()),
            ("data_dir", self.data_dir.display().to_string()),
            ("database_url", redact_url(&self.database_url())),
            ("database_timeout", d(&self.database_timeout)),
            ("max_file_size", self.max_file_size.to_string()),
            ("token_ttl", d(&self.token_ttl)),
            ("download_url_ttl", d(&self.download_url_ttl)),
            ("public_url", opt(&self.public_url)),
            (
                "redis_url",
                self.redis_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or("-".into()),
            ),
            ("redis_prefix", self.redis_prefix.clone()),
            ("upload_ttl", d(&self.upload_ttl)),
            ("tus_lock_lease", d(&self.tus_lock_lease)),
            ("sweep_interval", d(&self.sweep_interval)),
            ("cors_origins", self.cors_origins.clone()),
            ("log", self.log.clone()),
            ("log_format", self.log_format.clone()),
            ("store", self.stores.join(" ")),
            ("upload_store", self.upload_store.clone()),
            ("shared_data_dir", self.shared_data_dir.to_string()),
            ("transfer_to", opt(&self.transfer_to)),
            ("transfer_after", d(&self.transfer_after)),
            ("transfer_attempts", self.transfer_attempts.to_string()),
            ("transfer_backoff", d(&self.transfer_backoff)),
            (
                "amqp_url",
                self.amqp_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or("-".into()),
            ),
            ("amqp_prefix", self.amqp_prefix.clone()),
            ("no_transfer_worker", self.no_transfer_worker.to_string()),
            ("routes", self.routes.as_str().into()),
            ("instant_upload", self.instant_upload.clone()),
            ("collision_scan", self.collision_scan.clone()),
            (
                "max_sessions_per_user",
                self.max_sessions_per_user.to_string(),
            ),
            (
                "max_uploads_per_user",
                self.max_uploads_per_user.to_string(),
            ),
            (
                "user_quota",
                self.user_quota
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            ("header_timeout", d(&self.header_timeout)),
            ("body_timeout", d(&self.body_timeout)),
            ("min_body_rate", self.min_body_rate.to_string()),
            ("body_rate_grace", d(&self.body_rate_grace)),
            (
                "signup_rate",
                match self.signup_rate.0 {
                    Some((n, per)) => format!("{n}/{}", d(&per)),
                    None => "off".into(),
                },
            ),
            (
                "trusted_proxies",
                self.trusted_proxies
                    .iter()
                    .map(|c| format!("{}/{}", c.addr, c.bits))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("shutdown_grace", d(&self.shutdown_grace)),
            (
                "config",
                self.config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or("-".into()),
            ),
        ]
    }
}

/// Applies `--config FILE` (or `CHUNKVAULT_CONFIG`) before the command line is parsed: each
/// key names a `serve` flag (`max_file_size` for `--max-file-size`) and becomes that flag's
/// environment variable unless the environment sets it already, so flags > environment >
/// file > defaults. An unknown key or a malformed file is an error.
pub fn apply_config_file(args: &[String]) -> Result<(), String> {
    use clap::Args as _;
    let mut path = std::env::var("CHUNKVAULT_CONFIG").ok();
    for (i, a) in args.iter().enumerate() {
        if a == "--config" {
            path = args.get(i + 1).cloned();
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.to_owned());
        }
    }
    let Some(path) = path else { return Ok(()) };
    #[allow(clippy::disallowed_methods)] // before the runtime starts
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config {path}: cannot read: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("--config {path}: {}", e.message()))?;
    let serve = ServeArgs::augment_args(clap::Command::new("serve"));
    for (key, value) in table {
        let long = key.replace('_', "-");
        let long = if long == "stores" {
            "store".to_owned()
        } else {
            long
        };
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| format!("--config {path}: unknown setting {key:?}"))?;
        let env = arg
            .get_env()
            .and_then(|e| e.to_str())
            .ok_or_else(|| format!("--config {path}: {key:?} cannot be set from a file"))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => {
                return Err(format!(
                    "--config {path}: {key:?} has unsupported value {other}"
                ))
            }
        };
        if std::env::var_os(env).is_none() {
            std::env::set_var(env, text);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (flags, environment, --config file) and print the effective
    /// values, secrets redacted; exits non-zero when it would not start.
    Check(Box<ServeArgs>),
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The store whose blobs move.
    #[arg(long, value_name = "NAME")]
    pub from: String,
    /// The store they move to.
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Only count what would move.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct FsckArgs {
    /// The store to check (default: the upload store).
    #[arg(long = "check-store", value_name = "NAME")]
    pub check_store: Option<String>,
    /// Re-hash only this fraction of the blobs, chosen at random (e.g. 0.05).
    #[arg(long, value_name = "FRACTION", default_value_t = 1.0)]
    pub sample: f64,
    /// Delete the orphans found (objects no blob row refers to, staging no session refers to).
    #[arg(long)]
    pub repair: bool,
    /// Objects and staging written this recently are never orphans (an upload or a transfer
    /// may be about to record them).
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub grace: Duration,
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl ServeArgs {
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("chunkvault.db").display()),
        }
    }
}
