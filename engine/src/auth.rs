//! Passwords, tokens and signed download links.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::types::{FileId, UserId};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Length of a token as handed to clients: 32 random bytes (256 bits), base64url.
const TOKEN_LEN: usize = 43;

pub fn check_password_policy(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid("password", "must be at least 8 characters"));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::invalid("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

/// Argon2id with the crate's recommended parameters. CPU-heavy: runs on the blocking pool.
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::backend("argon2", e.to_string()))
    })
    .await
    .map_err(|e| Error::backend("argon2", e))?
}

pub async fn verify_password(password: String, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&hash).map_err(|e| Error::backend("argon2", e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| Error::backend("argon2", e))?
}

/// A fresh bearer token.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The form a token is stored in. Malformed tokens are refused before any lookup.
pub fn token_hash(token: &str) -> Result<String> {
    if token.len() != TOKEN_LEN
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Unauthenticated);
    }
    Ok(hex::encode(Sha256::digest(token.as_bytes())))
}

/// The path signed download links point at.
pub const SIGNED_DOWNLOAD_PATH: &str = "/file/download/signed";

/// HMAC-SHA256 over the path, the file, its owner and the expiry (Unix seconds).
pub fn sign_download(key: &[u8], file: &FileId, owner: UserId, expires: i64) -> String {
    hex::encode(
        download_mac(key, file, owner, expires)
            .finalize()
            .into_bytes(),
    )
}

pub fn verify_download(
    key: &[u8],
    file: &FileId,
    owner: UserId,
    expires: i64,
    signature: &str,
) -> bool {
    let Ok(sig) = hex::decode(signature) else {
        return false;
    };
    download_mac(key, file, owner, expires)
        .verify_slice(&sig)
        .is_ok()
}

fn download_mac(key: &[u8], file: &FileId, owner: UserId, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(
        format!(
            "GET\n{SIGNED_DOWNLOAD_PATH}\n{}\n{}\n{expires}",
            file.as_str(),
            owner.0
        )
        .as_bytes(),
    );
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        let h = token_hash(&a).unwrap();
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a));
        assert!(token_hash("short").is_err());
        assert!(token_hash(&"!".repeat(TOKEN_LEN)).is_err());
    }

    #[test]
    fn signatures_bind_every_field() {
        let key = b"k";
        let f = FileId::generate();
        let g = FileId::generate();
        let sig = sign_download(key, &f, UserId(1), 100);
        assert!(verify_download(key, &f, UserId(1), 100, &sig));
        assert!(!verify_download(key, &g, UserId(1), 100, &sig));
        assert!(!verify_download(key, &f, UserId(2), 100, &sig));
        assert!(!verify_download(key, &f, UserId(1), 101, &sig));
        assert!(!verify_download(b"other", &f, UserId(1), 100, &sig));
        assert!(!verify_download(key, &f, UserId(1), 100, "zz"));
    }

    #[tokio::test]
    async fn password_hashing() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), h.clone())
            .await
            .unwrap());
        assert!(!verify_password("wrong horse".into(), h).await.unwrap());
    }
}
