//! Passwords, tokens and signed download links.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Password hashes computed at once. Each Argon2id run needs 19 MiB of working memory; run
/// freely, bursts of sign-ins would leave the allocator holding that much per thread that ever
/// hashed (seen: 300 MiB after 50 sign-ups). So a few runs at a time, each in a reused buffer.
const HASHING_AT_ONCE: usize = 2;

static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(HASHING_AT_ONCE));
static BUFFERS: std::sync::Mutex<Vec<Vec<Block>>> = std::sync::Mutex::new(Vec::new());

/// Runs Argon2 with `params` on the blocking pool, in one of the reused working buffers.
async fn argon2_raw(
    params: Params,
    password: String,
    salt: Vec<u8>,
    out_len: usize,
) -> Result<Vec<u8>> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| Error::backend("argon2", e))?;
    tokio::task::spawn_blocking(move || {
        let need = params.block_count();
        let mut blocks = BUFFERS
            .lock()
            .expect("argon2 buffers")
            .pop()
            .unwrap_or_default();
        if blocks.len() < need {
            blocks = vec![Block::default(); need];
        }
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = vec![0u8; out_len];
        let res = argon.hash_password_into_with_memory(
            password.as_bytes(),
            &salt,
            &mut out,
            &mut blocks[..need],
        );
        // Only buffers of the default size are kept (old hashes may use other parameters).
        if blocks.len() == Params::default().block_count() {
            BUFFERS.lock().expect("argon2 buffers").push(blocks);
        }
        res.map_err(|e| Error::backend("argon2", e.to_string()))?;
        Ok(out)
    })
    .await
    .map_err(|e| Error::backend("argon2", e))?
}

/// Argon2id with the crate's recommended parameters, as a PHC string.
pub async fn hash_password(password: String) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut raw = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut raw)
        .map_err(|e| Error::backend("argon2", e.to_string()))?
        .to_vec();
    let params = Params::default();
    let out = argon2_raw(
        params.clone(),
        password,
        salt_bytes,
        Params::DEFAULT_OUTPUT_LEN,
    )
    .await?;
    let bad = |e: argon2::password_hash::Error| Error::backend("argon2", e.to_string());
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(bad)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(bad)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches a stored PHC string (Argon2id; compared in constant time).
pub async fn verify_password(password: String, hash: String) -> Result<bool> {
    let bad = |e: argon2::password_hash::Error| Error::backend("argon2", e.to_string());
    let parsed = PasswordHash::new(&hash).map_err(bad)?;
    if parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed
            .version
            .is_some_and(|v| v != u32::from(Version::V0x13))
    {
        return Err(Error::backend("argon2", "unsupported password hash"));
    }
    let (Some(salt), Some(want)) = (parsed.salt, parsed.hash) else {
        return Err(Error::backend(
            "argon2",
            "password hash without salt or output",
        ));
    };
    let params = Params::try_from(&parsed).map_err(bad)?;
    let mut raw = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut raw).map_err(bad)?.to_vec();
    let got = argon2_raw(params, password, salt_bytes, want.len()).await?;
    // Output's equality is constant-time.
    Ok(Output::new(&got).map_err(bad)? == want)
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

    #[tokio::test]
    async fn hashes_are_standard_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        // Ours verify with the argon2 crate's own verifier, and its hashes (stored by
        // earlier versions) verify with ours.
        let ours = hash_password("correct horse".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("battery staple".into(), theirs.clone())
            .await
            .unwrap());
        assert!(!verify_password("battery stable".into(), theirs)
            .await
            .unwrap());
    }
}
