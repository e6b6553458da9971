//! The ChunkVault HTTP server: translates HTTP into engine calls and back.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod fsck;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod stores;

use std::sync::Arc;
use std::time::Duration;

use chunkvault_engine::{Engine, EngineConfig, SessionStore, SqlMetaStore, SqlSessionStore};

use chunkvault_engine::files::CollisionScan;
use chunkvault_engine::transfer::{RetryPolicy, SqlTransferQueue, TransferQueue};
use chunkvault_engine::uploads::proof::InstantMode;
use config::ServeArgs;
use routes::{AppState, State};

/// The stores the configuration names, validated without opening anything: unique names, the
/// upload and transfer stores defined, no multi-node-unsafe combination.
pub fn plan_stores(args: &ServeArgs) -> anyhow::Result<Vec<stores::StoreSpec>> {
    let mut specs = args
        .stores
        .iter()
        .map(|s| stores::parse_store(s).map_err(|e| anyhow::anyhow!("--store: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !specs.iter().any(|s| s.name == "local") {
        specs.push(stores::StoreSpec {
            name: "local".into(),
            kind: stores::StoreKind::Local(args.data_dir.clone()),
        });
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|t| t.name == s.name) {
            anyhow::bail!("--store {} is defined twice", s.name);
        }
    }
    let upload_spec = specs
        .iter()
        .find(|s| s.name == args.upload_store)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--upload-store {} is not a defined store",
                args.upload_store
            )
        })?;
    if args.redis_url.is_some()
        && matches!(upload_spec.kind, stores::StoreKind::Local(_))
        && !args.shared_data_dir
    {
        anyhow::bail!(
            "Redis sessions let several nodes continue one upload, but the upload store {:?} \
             is a directory on this node: use an object store (--store, --upload-store), or \
             declare --shared-data-dir if every node mounts the same directory",
            args.upload_store
        );
    }
    if let Some(to) = &args.transfer_to {
        if !specs.iter().any(|s| &s.name == to) {
            anyhow::bail!("--transfer-to {to} is not a defined store");
        }
        if to == &args.upload_store {
            anyhow::bail!("--transfer-to {to} is the upload store");
        }
    }
    Ok(specs)
}

/// Opens the stores named by the configuration and builds the shared state.
pub async fn build_state(args: &ServeArgs) -> anyhow::Result<State> {
    let specs = plan_stores(args)?;
    tokio::fs::create_dir_all(&args.data_dir)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot create --data-dir {}: {e}", args.data_dir.display())
        })?;
    let mut db_options = chunkvault_engine::db::DbOptions::default();
    db_options.acquire_timeout = args.database_timeout;
    let meta = SqlMetaStore::connect_with(&args.database_url(), db_options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open --database-url: {e}"))?;

    let mut blobs = None;
    let mut others = Vec::new();
    for spec in &specs {
        let store = stores::open(spec).await?;
        if spec.name == args.upload_store {
            blobs = Some(store);
        } else {
            let store: Arc<dyn chunkvault_engine::BlobStore> = store;
            others.push(store);
        }
    }
    let blobs = blobs.expect("upload store checked above");
    let sessions: Arc<dyn SessionStore> = match &args.redis_url {
        Some(url) => redis_sessions(url, &args.redis_prefix).await?,
        None => Arc::new(SqlSessionStore::new(meta.db().clone())),
    };
    let mut config = EngineConfig::default();
    config.max_file_size = args.max_file_size;
    config.token_ttl = args.token_ttl;
    config.download_url_ttl = args.download_url_ttl;
    config.upload_ttl = args.upload_ttl;
    config.tus_lock_lease = args.tus_lock_lease;
    config.signup_rate = args.signup_rate.0;
    config.max_sessions_per_user = args.max_sessions_per_user;
    config.user_quota = args.user_quota;
    config.max_uploads_in_flight_per_user = args.max_uploads_per_user;
    config.collision_scan = match args.collision_scan.as_str() {
        "first-share" => CollisionScan::AtFirstShare,
        _ => CollisionScan::AtPublish,
    };
    config.instant_mode = match args.instant_upload.as_str() {
        "trusted" => InstantMode::Trusted,
        "off" => InstantMode::Off,
        _ => InstantMode::Proof,
    };
    let db = meta.db().clone();
    let mut engine = Engine::new(Arc::new(meta), blobs, sessions, config)
        .await?
        .with_stores(others)?;
    let policy = RetryPolicy {
        base: args.transfer_backoff,
        max_attempts: args.transfer_attempts.max(1),
    };
    let queue: Arc<dyn TransferQueue> = match &args.amqp_url {
        None => Arc::new(SqlTransferQueue::new(db, policy)),
        Some(url) => amqp_queue(url, &args.amqp_prefix, policy).await?,
    };
    if let Some(to) = &args.transfer_to {
        engine = engine
            .with_transfers(queue.clone(), to, args.transfer_after)
            .map_err(|e| anyhow::anyhow!("--transfer-to {to}: {e}"))?;
    }
    engine.files().collect_garbage().await?;
    let cors_origins = args
        .cors_origins
        .split(',')
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    Ok(Arc::new(AppState {
        engine,
        public_url: args.public_url.clone(),
        cors_origins,
        transfers: queue,
    }))
}

#[cfg(feature = "redis")]
async fn redis_sessions(url: &str, prefix: &str) -> anyhow::Result<Arc<dyn SessionStore>> {
    let store = chunkvault_engine::RedisSessionStore::connect(url, prefix)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach --redis-url: {e}"))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
async fn redis_sessions(_url: &str, _prefix: &str) -> anyhow::Result<Arc<dyn SessionStore>> {
    anyhow::bail!("--redis-url: this binary was built without the redis feature")
}

#[cfg(feature = "amqp")]
async fn amqp_queue(
    url: &str,
    prefix: &str,
    policy: RetryPolicy,
) -> anyhow::Result<Arc<dyn TransferQueue>> {
    let q = chunkvault_engine::transfer::amqp::AmqpTransferQueue::connect(url, prefix, policy)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach --amqp-url: {e}"))?;
    Ok(Arc::new(q))
}

#[cfg(not(feature = "amqp"))]
async fn amqp_queue(
    _url: &str,
    _prefix: &str,
    _policy: RetryPolicy,
) -> anyhow::Result<Arc<dyn TransferQueue>> {
    anyhow::bail!("--amqp-url: this binary was built without the amqp feature")
}

/// Relays the transfer jobs that uploads write to the outbox to the transfer queue, for as long
/// as this process lives (every node that publishes runs one).
pub fn spawn_transfer_relay(state: State) {
    tokio::spawn(async move {
        state
            .engine
            .files()
            .relay_transfers(Box::pin(std::future::pending()))
            .await;
    });
}

/// Runs transfer jobs in this process, for as long as it lives.
pub fn spawn_transfer_worker(state: State) {
    tokio::spawn(async move {
        let transfers = state.engine.transfers();
        state
            .transfers
            .consume(transfers, Box::pin(std::future::pending()))
            .await;
    });
}

/// Periodic housekeeping: expired upload sessions and their staged bytes, expired tokens and
/// proof challenges, blobs whose deletion failed earlier, the metadata database's planner statistics.
pub fn spawn_sweeper(state: State, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match state.engine.uploads().expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "expired upload sessions removed"),
                Err(e) => tracing::warn!(error = %e, "upload sweep failed"),
            }
            match state.engine.uploads().sweep_orphaned_staging().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(uploads = n, "orphaned staged uploads removed"),
                Err(e) => tracing::warn!(error = %e, "staging sweep failed"),
            }
            if let Err(e) = state.engine.accounts().purge_expired_tokens().await {
                tracing::warn!(error = %e, "token sweep failed");
            }
            if let Err(e) = state.engine.purge_expired_proofs().await {
                tracing::warn!(error = %e, "proof sweep failed");
            }
            if let Err(e) = state.engine.files().collect_garbage().await {
                tracing::warn!(error = %e, "blob sweep failed");
            }
            if let Err(e) = state.engine.optimize_metadata().await {
                tracing::warn!(error = %e, "metadata statistics refresh failed");
            }
        }
    });
}
