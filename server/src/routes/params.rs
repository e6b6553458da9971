//! Request parameters as the seed's clients send them: in the query string or in an
//! `application/x-www-form-urlencoded` body (form values win, as in Go's `r.Form`).

use std::collections::HashMap;

use bytes::Buf;
use futures::{Stream, StreamExt};
use warp::Filter;

use crate::error::ApiError;

/// Largest urlencoded form accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// How much of an oversized form is read and discarded before answering.
const DRAIN_FORM_BYTES: usize = 4 << 20;

#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn from_query(query: &str) -> Self {
        let mut p = Params::default();
        p.merge(query);
        p
    }

    fn merge(&mut self, urlencoded: &str) {
        for (k, v) in form_urlencoded_pairs(urlencoded) {
            self.0.entry(k).or_insert(v);
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter that must be present and non-empty.
    pub fn require(&self, name: &'static str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::MissingParam(name)),
        }
    }

    /// A page of a listing: `limit` (at least 1, `default` when absent, capped at `max`) and
    /// `offset` (0 when absent).
    pub fn page(&self, default: u64, max: u64) -> Result<(u32, u64), ApiError> {
        let limit = self.uint("limit")?.unwrap_or(default);
        if limit == 0 {
            return Err(ApiError::bad("limit", "must be at least 1"));
        }
        Ok((limit.min(max) as u32, self.uint("offset")?.unwrap_or(0)))
    }

    /// An optional non-negative integer: decimal digits only (no sign, no empty value).
    pub fn uint(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .map(Some)
                .ok_or_else(|| ApiError::bad(name, "must be a non-negative integer")),
        }
    }
}

fn form_urlencoded_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters merged under form parameters. Reads at most `MAX_FORM_BYTES` of body, and
/// only when the body is a urlencoded form.
pub fn params(
) -> impl Filter<Extract = (Result<Params, ApiError>,), Error = warp::Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and(
            warp::header::optional::<String>("content-type")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::body::stream())
        .then(
            |query: String, content_type: Option<String>, body| async move {
                let mut params = Params::default();
                let is_form = content_type
                    .as_deref()
                    .and_then(|ct| ct.split(';').next())
                    .is_some_and(|ct| {
                        ct.trim()
                            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                    });
                if is_form {
                    let form = read_limited(body, MAX_FORM_BYTES).await?;
                    let form = String::from_utf8(form)
                        .map_err(|_| ApiError::bad("body", "form is not UTF-8"))?;
                    params.merge(&form);
                }
                params.merge(&query);
                Ok(params)
            },
        )
}

pub async fn read_limited<S, B>(body: S, limit: usize) -> Result<Vec<u8>, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut out = Vec::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::bad("body", e.to_string()))?;
        if out.len() + chunk.remaining() > limit {
            // Read (a bounded amount of) the rest, so the client is still listening for our answer.
            let mut seen = out.len() + chunk.remaining();
            while let Some(Ok(more)) = body.next().await {
                seen += more.remaining();
                if seen > DRAIN_FORM_BYTES {
                    break;
                }
            }
            return Err(ApiError::FormTooLarge { limit });
        }
        while chunk.has_remaining() {
            let c = chunk.chunk();
            out.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_forms() {
        let p = Params::from_query("filename=%E6%96%87+1.txt&a=1&a=2&empty=&flag");
        assert_eq!(p.get("filename"), Some("文 1.txt"));
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("flag"), Some(""));
        assert!(p.require("empty").is_err());
        assert!(p.require("missing").is_err());
        assert!(Params::from_query("n=x").uint("n").is_err());
        for bad in ["n=", "n=+5", "n=-1", "n=%205", "n=18446744073709551616"] {
            assert!(Params::from_query(bad).uint("n").is_err(), "{bad}");
        }
        assert_eq!(Params::from_query("m=1").uint("n").unwrap(), None);
        assert_eq!(Params::from_query("n=5").uint("n").unwrap(), Some(5));
    }
}
