//! What a failed client command says: the error, and what is probably wrong when the answer
//! was not ChunkVault's (a TLS client on a plain port, another server, a wrong base path) or
//! the saved sign-in no longer works.

use std::io;

use chunkvault_api::codes;

use crate::client::{NotChunkVault, ServerError};

/// Whether the command failed only because its output was closed (`chunkvault ls | head -1`):
/// that ends the command quietly, with success.
pub fn is_closed_output(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A hint for the user, when the error says what went wrong.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    if let Some(s) = e.downcast_ref::<ServerError>() {
        return match (s.status.as_u16(), s.code as u32) {
            (401, codes::UNAUTHENTICATED) => Some(
                "the saved sign-in is no longer valid (expired or signed out): run \
                 `chunkvault login -u <name>` again"
                    .into(),
            ),
            (404, codes::NO_ROUTE) => Some(
                "the server has no such route: is the server URL right, without a path \
                 after the host (e.g. http://host:8080)?"
                    .into(),
            ),
            (503 | 429, _) => Some("the server is busy or down: try again shortly".into()),
            _ => None,
        };
    }
    if let Some(n) = e.downcast_ref::<NotChunkVault>() {
        return Some(format!(
            "{} answered {} without ChunkVault's JSON: is the server URL (and its port) right?",
            n.url, n.status
        ));
    }
    for cause in e.chain() {
        if let Some(r) = cause.downcast_ref::<reqwest::Error>() {
            let text = format!("{r:?}");
            if text.contains("InvalidContentType") || text.contains("wrong version number") {
                return Some(
                    "TLS failed: the server speaks plain HTTP there; use http:// instead of \
                     https://"
                        .into(),
                );
            }
            if r.is_connect() {
                return Some(
                    "cannot connect: is the server running, and the URL's host and port right?"
                        .into(),
                );
            }
            if r.is_timeout() {
                return Some("the server did not answer in time: try again".into());
            }
        }
    }
    None
}
