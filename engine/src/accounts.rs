//! Accounts: sign-up, sign-in with its throttling, tokens. Over the metadata store's users,
//! tokens and events only.

use std::sync::Arc;
use std::time::Duration;

use crate::auth;
use crate::error::{Error, Result};
use crate::meta::AccountStore;
use crate::types::{now_millis, Millis, UserId, Username};
use crate::EngineConfig;

/// A signed-in user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub created_at: Millis,
    pub last_active_at: Millis,
}

/// A token handed out at sign-in.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub user: User,
    pub token: String,
    pub expires_at: Millis,
}

/// Failed sign-ins one client address may make for one username, and for all usernames
/// together, within `SIGNIN_WINDOW`, before further attempts get 429.
const SIGNIN_MAX_FAILURES: u64 = 10;
const SIGNIN_MAX_ADDRESS_FAILURES: u64 = 50;
const SIGNIN_WINDOW: Duration = Duration::from_secs(600);

/// Verified against when the username is unknown, so sign-in takes as long either way.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2d0KDqYfxbqu5WZMrvYwYbUMnqMR1Q6+JZALj5bqYlM";

/// Users and their sign-in tokens.
#[derive(Debug)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    token_ttl: Duration,
    signup_rate: Option<(u64, Duration)>,
}

impl Accounts {
    pub(crate) fn new(store: Arc<dyn AccountStore>, config: &EngineConfig) -> Self {
        Accounts {
            store,
            token_ttl: config.token_ttl,
            signup_rate: config.signup_rate,
        }
    }

    /// Creates an account. `client` is the client's address (the socket peer, or the address a
    /// trusted proxy forwarded): sign-ups are limited per address (`signup_rate`).
    pub async fn signup(&self, username: &str, password: &str, client: &str) -> Result<UserId> {
        let username = Username::parse(username)?;
        auth::check_password_policy(password)?;
        let now = now_millis();
        if let Some((max, per)) = self.signup_rate {
            let since = now - per.as_millis() as i64;
            if self.store.events_since("signup", client, since).await? >= max {
                return Err(Error::TooManyRequests {
                    retry_after: per.as_secs().max(1),
                });
            }
        }
        let hash = auth::hash_password(password.to_owned()).await?;
        let id = self.store.create_user(&username, &hash, now).await?;
        self.store.record_event("signup", client, now).await?;
        Ok(id)
    }

    /// Signs in. Failures throttle the client address that makes them (per username, and
    /// overall), never the account: the right password from another address is accepted
    /// while an attacker keeps failing.
    pub async fn signin(&self, username: &str, password: &str, client: &str) -> Result<SignIn> {
        let per_name = format!("{client} {}", username.chars().take(64).collect::<String>());
        let now = now_millis();
        let since = now - SIGNIN_WINDOW.as_millis() as i64;
        if self
            .store
            .events_since("signin-fail", &per_name, since)
            .await?
            >= SIGNIN_MAX_FAILURES
            || self
                .store
                .events_since("signin-fail", client, since)
                .await?
                >= SIGNIN_MAX_ADDRESS_FAILURES
        {
            return Err(Error::TooManyRequests {
                retry_after: SIGNIN_WINDOW.as_secs(),
            });
        }
        // Same answer for an unknown user and a wrong password; hash anyway so both take as long.
        let record = self.store.user_by_name(username).await?;
        let (hash, record) = match record {
            Some(r) => (r.password_hash.clone(), Some(r)),
            None => (DUMMY_HASH.to_owned(), None),
        };
        let ok = auth::verify_password(password.to_owned(), hash).await?;
        let record = match (ok, record) {
            (true, Some(r)) => r,
            _ => {
                self.store
                    .record_event("signin-fail", &per_name, now)
                    .await?;
                self.store.record_event("signin-fail", client, now).await?;
                return Err(Error::BadCredentials);
            }
        };
        let now = now_millis();
        let token = auth::new_token();
        let expires_at = now.saturating_add(self.token_ttl.as_millis() as i64);
        self.store
            .insert_token(&auth::token_hash(&token)?, record.id, now, expires_at)
            .await?;
        self.store.touch_user(record.id, now).await?;
        Ok(SignIn {
            user: User {
                id: record.id,
                username: record.username,
                created_at: record.created_at,
                last_active_at: now,
            },
            token,
            expires_at,
        })
    }

    /// The user a token belongs to; `Unauthenticated` for anything but a live token.
    pub async fn authenticate(&self, token: &str) -> Result<User> {
        let hash = auth::token_hash(token)?;
        let record = self
            .store
            .token_user(&hash, now_millis())
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(User {
            id: record.id,
            username: record.username,
            created_at: record.created_at,
            last_active_at: record.last_active_at,
        })
    }

    /// Revokes a token (idempotent for a token that was valid a moment ago).
    pub async fn signout(&self, token: &str) -> Result<()> {
        let hash = auth::token_hash(token)?;
        self.store.delete_token(&hash).await?;
        Ok(())
    }

    /// Removes tokens that expired before now; how many.
    pub async fn purge_expired_tokens(&self) -> Result<u64> {
        self.store.purge_expired_tokens(now_millis()).await
    }
}
