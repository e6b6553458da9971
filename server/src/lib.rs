//! The ChunkVault HTTP server: translates HTTP into engine calls and back.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use chunkvault_engine::{
    Engine, EngineConfig, LocalBlobStore, RedisSessionStore, SessionStore, SqlMetaStore,
    SqlSessionStore,
};

use config::ServeArgs;
use routes::{AppState, State};

/// Temp files older than this are leftovers of a crash (uploads in flight are much younger).
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// Opens the stores named by the configuration and builds the shared state.
pub async fn build_state(args: &ServeArgs) -> anyhow::Result<State> {
    tokio::fs::create_dir_all(&args.data_dir)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot create --data-dir {}: {e}", args.data_dir.display())
        })?;
    let meta = SqlMetaStore::connect(&args.database_url())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open --database-url: {e}"))?;
    let blobs = LocalBlobStore::open("local", args.data_dir.clone())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the blob store in {}: {e}",
                args.data_dir.display()
            )
        })?;
    blobs.sweep_temp(STALE_TEMP).await?;
    let sessions: Arc<dyn SessionStore> = match &args.redis_url {
        Some(url) => Arc::new(
            RedisSessionStore::connect(url, &args.redis_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach --redis-url: {e}"))?,
        ),
        None => Arc::new(SqlSessionStore::new(meta.db().clone())),
    };
    let mut config = EngineConfig::default();
    config.max_file_size = args.max_file_size;
    config.token_ttl = args.token_ttl;
    config.download_url_ttl = args.download_url_ttl;
    config.upload_ttl = args.upload_ttl;
    let engine = Engine::new(Arc::new(meta), Arc::new(blobs), sessions, config).await?;
    engine.collect_garbage().await?;
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
    }))
}

/// Periodic housekeeping: expired upload sessions and their staged bytes, expired tokens,
/// blobs whose deletion failed earlier.
pub fn spawn_sweeper(state: State, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match state.engine.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "expired upload sessions removed"),
                Err(e) => tracing::warn!(error = %e, "upload sweep failed"),
            }
            let now = chunkvault_engine::types::now_millis();
            if let Err(e) = state.engine.meta().purge_expired_tokens(now).await {
                tracing::warn!(error = %e, "token sweep failed");
            }
            if let Err(e) = state.engine.collect_garbage().await {
                tracing::warn!(error = %e, "blob sweep failed");
            }
        }
    });
}
