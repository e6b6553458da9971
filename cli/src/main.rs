#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use chunkvault_cli as cli;
use chunkvault_server::config::{ConfigCommand, FsckArgs, MigrateArgs, ServeArgs};
use chunkvault_server::{build_state, routes, spawn_sweeper};

#[derive(Debug, Parser)]
#[command(
    name = "chunkvault",
    version,
    about = "Resumable chunked-upload engine and file store"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Run only the transfer worker (jobs from RabbitMQ with --amqp-url, else from the
    /// database), with the same store and database flags as `serve`.
    Worker(Box<ServeArgs>),
    /// Move every blob of one store to another (e.g. Ceph → OSS); resumable, verified.
    Migrate(Box<MigrateArgs>),
    /// Check a store: re-hash every blob (or a sample), quarantine mismatches, find orphans.
    Fsck(Box<FsckArgs>),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Sign in to a server and remember the token.
    Login(chunkvault_cli::LoginArgs),
    /// Sign out: revoke the saved token and forget it.
    Logout(chunkvault_cli::SignedInArgs),
    /// Show who the saved sign-in is, and on which server.
    Whoami(chunkvault_cli::SignedInArgs),
    /// Upload files: hash, try instant upload, send missing parts in parallel; resumable.
    Upload(chunkvault_cli::UploadArgs),
    /// List unfinished uploads, or cancel them.
    Uploads(chunkvault_cli::UploadsArgs),
    /// Download a file by id, SHA1 or name; resumes a partial download, verifies the SHA1.
    Download(chunkvault_cli::DownloadArgs),
    /// List your files.
    Ls(chunkvault_cli::LsArgs),
    /// Rename a file.
    Mv(chunkvault_cli::MvArgs),
    /// Delete files.
    Rm(chunkvault_cli::RmArgs),
    /// Print a link anyone can download a file with, until it expires.
    Share(chunkvault_cli::ShareArgs),
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    if let Err(e) = chunkvault_server::config::apply_config_file(&raw) {
        eprintln!("chunkvault: {e}");
        return ExitCode::from(2);
    }
    let cli = match only_the_flags_used()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            return usage_error(&e);
        }
    };
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        Some(Command::Worker(args)) => {
            let log = (args.log.clone(), args.log_format.clone());
            return run_admin(log, worker(args));
        }
        Some(Command::Migrate(args)) => {
            let log = (args.serve.log.clone(), args.serve.log_format.clone());
            return run_admin(log, cli::migrate::run(args));
        }
        Some(Command::Fsck(args)) => {
            let log = (args.serve.log.clone(), args.serve.log_format.clone());
            return run_admin(log, chunkvault_server::fsck::run(args));
        }
        Some(Command::Config(ConfigCommand::Check(args))) => return config_check(&args),
        Some(client) => return run_client(client),
        None => match Cli::try_parse_from(["chunkvault", "serve"]) {
            Ok(Cli {
                command: Some(Command::Serve(args)),
            }) => args,
            Ok(_) => unreachable!("serve parses to serve"),
            Err(e) => {
                return usage_error(&e);
            }
        },
    };
    init_logging(&args.log, &args.log_format);
    let runtime = match server_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chunkvault: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunkvault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server's runtime: tokio's defaults, but at most 64 blocking threads instead of 512.
/// Blocking jobs are short (a batch written, a file opened, an fsync), so 64 keep two cores
/// busy; with 512, two hundred clients uploading at once kept ~200 threads alive, each with its
/// stack and its share of the allocator's per-thread arenas (`bench/load`: peak RSS, below).
fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(64)
        .build()
}

/// `serve` flags that matter only to the HTTP server.
const HTTP_ONLY: &[&str] = &[
    "listen",
    "public_url",
    "cors_origins",
    "trusted_proxies",
    "routes",
    "header_timeout",
    "body_timeout",
    "min_body_rate",
    "body_rate_grace",
    "max_file_size",
    "token_ttl",
    "download_url_ttl",
    "upload_ttl",
    "tus_lock_lease",
    "sweep_interval",
    "instant_upload",
    "collision_scan",
    "max_sessions_per_user",
    "max_uploads_per_user",
    "user_quota",
    "signup_rate",
    "no_transfer_worker",
];

/// `serve` flags of the transfer worker (moving blobs to a colder store).
const TRANSFER_ONLY: &[&str] = &[
    "transfer_to",
    "transfer_after",
    "transfer_attempts",
    "transfer_backoff",
    "amqp_url",
    "amqp_prefix",
    "shutdown_grace",
];

/// The command line, with each command's help showing only the flags it uses: `worker`,
/// `migrate` and `fsck` share `serve`'s flags (so one config file serves them all) and still
/// accept the others, but do not list them.
fn only_the_flags_used() -> clap::Command {
    let hide = |names: &'static [&'static [&'static str]]| {
        move |mut c: clap::Command| {
            for group in names {
                for name in *group {
                    c = c.mut_arg(*name, |a| a.hide(true));
                }
            }
            c
        }
    };
    Cli::command()
        .mut_subcommand("worker", hide(&[HTTP_ONLY]))
        .mut_subcommand("migrate", hide(&[HTTP_ONLY, TRANSFER_ONLY]))
        .mut_subcommand("fsck", hide(&[HTTP_ONLY, TRANSFER_ONLY]))
}

/// The client commands (`login`, `upload`, …).
/// An argument error on one line, with everything clap says is wrong (the missing arguments
/// included), without the usage page; exit status 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    let text = e.render().to_string();
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect();
    let said = said.join(" ");
    eprintln!(
        "chunkvault: {}",
        said.strip_prefix("error: ").unwrap_or(&said)
    );
    ExitCode::from(2)
}

fn run_client(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chunkvault: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(_)
            | Command::Worker(_)
            | Command::Migrate(_)
            | Command::Fsck(_)
            | Command::Config(_) => {
                unreachable!("handled by main")
            }
            Command::Login(a) => cli::login(a).await,
            Command::Logout(a) => cli::logout(a).await,
            Command::Whoami(a) => cli::whoami(a).await,
            Command::Upload(a) => cli::upload(a).await,
            Command::Uploads(a) => cli::uploads(a).await,
            Command::Download(a) => cli::download(a).await,
            Command::Ls(a) => cli::ls(a).await,
            Command::Mv(a) => cli::mv(a).await,
            Command::Rm(a) => cli::rm(a).await,
            Command::Share(a) => cli::share(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if cli::explain::is_closed_output(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<cli::Interrupted>().is_some() => {
            eprintln!("chunkvault: {e}");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("chunkvault: {e:#}");
            if let Some(hint) = cli::explain::hint(&e) {
                eprintln!("  {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `worker` and `migrate`: server-side commands without the HTTP server.
fn run_admin(
    log: (String, String),
    job: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    init_logging(&log.0, &log.1);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chunkvault: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunkvault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs transfer jobs until SIGTERM or Ctrl-C; the transfer in hand then has the shutdown grace
/// to finish, or is given back to the queue.
async fn worker(args: Box<ServeArgs>) -> anyhow::Result<()> {
    let state = build_state(&args).await?;
    println!("transfer worker running");
    tracing::info!("transfer worker running");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consumer = state.clone();
    let mut consuming = tokio::spawn(async move {
        let stop = Box::pin(async move {
            let _ = stopped.await;
        });
        consumer
            .transfers
            .consume(consumer.engine.transfers(), stop)
            .await;
    });
    tokio::select! {
        _ = &mut consuming => {
            tracing::info!("stopped");
            return Ok(());
        }
        _ = shutdown_signal() => {}
    }
    tracing::info!(grace = ?args.shutdown_grace, "stopping: the transfer in hand may finish");
    let _ = stop.send(());
    match tokio::time::timeout(args.shutdown_grace, &mut consuming).await {
        Ok(_) => tracing::info!("stopped"),
        Err(_) => {
            consuming.abort();
            state.transfers.release_in_flight().await;
            tracing::warn!(
                "shutdown grace expired: the transfer in hand was cut and goes back to the queue"
            );
        }
    }
    Ok(())
}

/// `config check`: validates without connecting to anything, prints the effective settings
/// as TOML that `--config` accepts (settings not set, and what is only reported, as comments).
fn config_check(args: &ServeArgs) -> ExitCode {
    for (k, v) in args.effective() {
        println!("{}", toml_setting(k, &v));
    }
    match chunkvault_server::plan_stores(args) {
        Ok(specs) => {
            for s in specs {
                println!("# store {} = {:?}", s.name, s.kind);
            }
            println!("# configuration is valid");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chunkvault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One effective setting as a TOML line: numbers and booleans bare, stores as an array,
/// anything else a string; unset (`-`) and the config file's own path as comments.
fn toml_setting(key: &str, value: &str) -> String {
    let string = |s: &str| toml::Value::String(s.to_owned()).to_string();
    if value == "-" || value.is_empty() {
        return format!("# {key} = (not set)");
    }
    if key == "config" {
        return format!("# read from {}", string(value));
    }
    let rendered = if value.parse::<u64>().is_ok() || value == "true" || value == "false" {
        value.to_owned()
    } else if key == "store" {
        let items: Vec<String> = value.split_whitespace().map(string).collect();
        format!("[{}]", items.join(", "))
    } else {
        string(value)
    };
    format!("{key} = {rendered}")
}
fn init_logging(filter: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Largest read buffer of one connection (hyper's default grows to ~400 KiB).
const READ_BUFFER: usize = 64 * 1024;

async fn serve(args: Box<ServeArgs>) -> anyhow::Result<()> {
    let state = build_state(&args).await?;
    spawn_sweeper(state.clone(), args.sweep_interval);
    if args.transfer_to.is_some() {
        chunkvault_server::spawn_transfer_relay(state.clone());
        if !args.no_transfer_worker {
            chunkvault_server::spawn_transfer_worker(state.clone());
        }
    }
    let api = routes::api(state.clone(), args.routes);
    // hyper directly rather than `warp::serve`, to bound the read buffer of each connection:
    // memory per part upload in flight stays small however many run at once.
    let routes_service = warp::service(api);
    let limits = std::sync::Arc::new(chunkvault_server::ops::RequestLimits {
        body_timeout: args.body_timeout,
        min_body_rate: args.min_body_rate,
        rate_grace: args.body_rate_grace,
        trusted_proxies: args.trusted_proxies.clone(),
    });
    let make = warp::hyper::service::make_service_fn(
        move |conn: &warp::hyper::server::conn::AddrStream| {
            let routes_service = routes_service.clone();
            let state = state.clone();
            let limits = limits.clone();
            let peer = conn.remote_addr();
            async move {
                Ok::<_, std::convert::Infallible>(warp::hyper::service::service_fn(move |req| {
                    chunkvault_server::ops::handle(
                        state.clone(),
                        limits.clone(),
                        peer,
                        routes_service.clone(),
                        req,
                    )
                }))
            }
        },
    );
    let builder = warp::hyper::Server::try_bind(&args.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    // TCP_NODELAY: a small response's head and body leave in separate writes; with Nagle's
    // algorithm the second waits for the client's delayed ACK (~40 ms on a kept-alive connection).
    let server = builder
        .tcp_nodelay(true)
        .http1_max_buf_size(READ_BUFFER)
        .http1_header_read_timeout(args.header_timeout)
        .serve(make);
    let addr = server.local_addr();
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let server = server.with_graceful_shutdown(async {
        let _ = drain_rx.await;
    });
    // Tests and scripts read this line to learn the port when --listen ends in :0.
    println!("listening on http://{addr}");
    tracing::info!(%addr, data_dir = %args.data_dir.display(), role = args.routes.as_str(), "chunkvault serving");
    let mut server = tokio::spawn(server);
    tokio::select! {
        res = &mut server => {
            res??;
            return Ok(());
        }
        _ = shutdown_signal() => {}
    }
    // Stop accepting; requests in flight (part uploads) may finish within the grace period.
    tracing::info!(grace = ?args.shutdown_grace, "shutting down: draining requests in flight");
    let _ = drain_tx.send(());
    match tokio::time::timeout(args.shutdown_grace, server).await {
        Ok(res) => res??,
        Err(_) => tracing::warn!("shutdown grace expired; requests still in flight were cut"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
