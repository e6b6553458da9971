//! Helpers shared by the engine's conformance tests.
// Each test crate uses some of them.
#![allow(dead_code)]

use sqlx::Connection;

pub mod plans;

/// A database of its own on the MariaDB/PostgreSQL server at `base`, dropped when this value goes
/// away — also when the test panics, so failed runs leave nothing behind.
pub struct ScratchDb {
    pub url: String,
    base: String,
    name: String,
}

impl ScratchDb {
    pub async fn create(base: &str, prefix: &str) -> ScratchDb {
        sqlx::any::install_default_drivers();
        let name = format!("{prefix}_{}", hex::encode(rand::random::<[u8; 6]>()));
        let (server, _) = base.rsplit_once('/').expect("URL with a database path");
        let mut admin = sqlx::AnyConnection::connect(base)
            .await
            .unwrap_or_else(|e| panic!("{base} is not reachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        ScratchDb {
            url: format!("{server}/{name}"),
            base: base.to_owned(),
            name,
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // PostgreSQL may still be tearing down a closed pool's backends: force the drop.
        let sql = if self.base.starts_with("postgres") {
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
        } else {
            format!("DROP DATABASE IF EXISTS {}", self.name)
        };
        let base = self.base.clone();
        // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::AnyConnection::connect(&base).await {
                    let _ = sqlx::query(&sql).execute(&mut c).await;
                }
            });
        })
        .join();
    }
}

/// The service variable `name` (a database URL, the Redis URL, the S3 endpoint). Outside CI a
/// missing one skips the test that needs it (the caller prints why); with `CI` set it fails the
/// test: CI must never pass by skipping.
pub fn service_var(name: &str) -> Result<String, std::env::VarError> {
    let value = std::env::var(name);
    if value.is_err() && std::env::var_os("CI").is_some() {
        panic!("{name} is not set, and CI is: a test that needs this service cannot be skipped");
    }
    value
}
