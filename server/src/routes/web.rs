//! The browser uploader and file manager (`web/`), embedded in the binary and served at `/`.
//!
//! Only the listed paths answer; anything else falls through to the API's JSON 404.

use warp::filters::BoxedFilter;
use warp::http::header::{self, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

/// Scripts only from this origin; WebAssembly (hash-wasm) may compile, nothing else is evaluated.
/// Requests only to this origin; no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../../../web", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Every file the page needs. `tests::every_web_file_is_served` keeps this in step with `web/`.
const ASSETS: &[Asset] = &[
    asset!("/index.html", HTML),
    asset!("/style.css", "text/css; charset=utf-8"),
    asset!("/app.js", JS),
    asset!("/uploader.js", JS),
    asset!("/hash-worker.js", JS),
    asset!("/vendor/hash-wasm/sha1.umd.min.js", JS),
    asset!("/vendor/hash-wasm/md5.umd.min.js", JS),
    asset!("/vendor/hash-wasm/LICENSE", "text/plain; charset=utf-8"),
    // The classic pages, at the tutorial's paths (they use the classic routes).
    asset!("/static/view/index.html", HTML),
    asset!("/static/view/signup.html", HTML),
    asset!("/static/view/signin.html", HTML),
    asset!("/static/view/home.html", HTML),
    asset!("/static/view/upload.html", HTML),
    asset!("/static/view/mpupload.html", HTML),
    asset!("/static/view/download.html", HTML),
    asset!("/static/js/auth.js", JS),
    asset!("/static/js/signup.js", JS),
    asset!("/static/js/signin.js", JS),
    asset!("/static/js/home.js", JS),
    asset!("/static/js/upload.js", JS),
    asset!("/static/js/mpupload.js", JS),
    asset!("/static/js/download.js", JS),
];

fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// `GET`/`HEAD` of the page's files.
pub fn routes() -> BoxedFilter<(Response,)> {
    // The path first: an unknown path must stay "not found" whatever the method.
    warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            find(path.as_str()).ok_or_else(warp::reject::not_found)
        })
        .and(warp::get().or(warp::head()).unify())
        .map(respond)
        .boxed()
}

/// One of the embedded pages by its path under `web/` (e.g. `/static/view/upload.html`), for
/// routes that serve a page at another path (the seed's `GET /file/upload`).
pub fn page(path: &str) -> Response {
    match find(path) {
        Some(asset) => respond(asset),
        None => crate::error::ApiError::NoRoute.into_response(),
    }
}

fn respond(asset: &'static Asset) -> Response {
    let mut resp = Response::new(asset.body.into());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary; revalidating is cheap next to a stale uploader.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error;

    #[tokio::test]
    async fn index_at_root_with_policy() {
        let resp = warp::test::request().path("/").reply(&routes()).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(std::str::from_utf8(resp.body())
            .unwrap()
            .contains("<script type=\"module\" src=\"/app.js\">"));
    }

    #[tokio::test]
    async fn scripts_as_javascript_and_head() {
        for path in ["/app.js", "/uploader.js", "/hash-worker.js"] {
            let resp = warp::test::request().path(path).reply(&routes()).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], JS, "{path}");
        }
        let resp = warp::test::request()
            .method("HEAD")
            .path("/style.css")
            .reply(&routes())
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_paths_keep_the_api_json_404() {
        let filter = routes().recover(error::recover);
        for path in [
            "/nope",
            "/app.js/x",
            "/vendor/",
            "/../Cargo.toml",
            "/index.htm",
        ] {
            let resp = warp::test::request().path(path).reply(&filter).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
            let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
            assert_eq!(body["code"], error::codes::NO_ROUTE, "{path}");
        }
        let resp = warp::test::request()
            .method("POST")
            .path("/nope")
            .reply(&filter)
            .await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = warp::test::request()
            .method("POST")
            .path("/")
            .reply(&filter)
            .await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    /// A file added to `web/` but not to `ASSETS` would be missing from the binary.
    #[test]
    #[allow(clippy::disallowed_methods)] // a plain test, no runtime to stall
    fn every_web_file_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.file_name() != Some("README.md".as_ref()) {
                    let rel = path.strip_prefix(&root).unwrap().to_str().unwrap();
                    on_disk.push(format!("/{rel}"));
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        served.sort();
        assert_eq!(on_disk, served);
    }
}
