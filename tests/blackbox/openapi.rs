//! The OpenAPI document at `/openapi.json`: it parses, it names every route the server has, and
//! the server agrees with it method by method — a documented method reaches its route and answers
//! a status the document lists for it; any other method is a 405 whose `Allow` is the document's.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::Server;

/// Every route of the server (README "API", `server/src/routes/`, `ops.rs`, the web page).
const ROUTES: &[&str] = &[
    "GET /user/signup",
    "POST /user/signup",
    "GET /user/signin",
    "POST /user/signin",
    "GET /user/info",
    "POST /user/info",
    "POST /user/signout",
    "GET /file/upload",
    "POST /file/upload",
    "GET /file/upload/suc",
    "GET /file/meta",
    "POST /file/meta",
    "GET /file/query",
    "POST /file/query",
    "GET /file/download",
    "HEAD /file/download",
    "POST /file/download",
    "GET /file/download/range",
    "HEAD /file/download/range",
    "POST /file/download/range",
    "GET /file/download/signed",
    "HEAD /file/download/signed",
    "POST /file/update",
    "GET /file/delete",
    "POST /file/delete",
    "GET /file/downloadurl",
    "POST /file/downloadurl",
    "POST /file/fastupload",
    "POST /file/mpupload/init",
    "POST /file/mpupload/uppart",
    "PUT /file/mpupload/uppart",
    "POST /file/mpupload/complete",
    "POST /file/mpupload/cancel",
    "GET /file/mpupload/status",
    "POST /file/mpupload/status",
    "POST /api/account",
    "GET /api/account",
    "POST /api/sessions",
    "DELETE /api/sessions/current",
    "GET /api/files",
    "POST /api/files",
    "GET /api/files/{file_id}",
    "PATCH /api/files/{file_id}",
    "DELETE /api/files/{file_id}",
    "GET /api/files/{file_id}/content",
    "HEAD /api/files/{file_id}/content",
    "POST /api/files/{file_id}/links",
    "POST /uploads",
    "GET /uploads",
    "POST /uploads/proof",
    "GET /uploads/{id}",
    "DELETE /uploads/{id}",
    "PUT /uploads/{id}/parts/{n}",
    "POST /uploads/{id}/complete",
    "OPTIONS /files/",
    "POST /files/",
    "OPTIONS /files/{id}",
    "HEAD /files/{id}",
    "PATCH /files/{id}",
    "DELETE /files/{id}",
    "GET /healthz",
    "HEAD /healthz",
    "GET /readyz",
    "HEAD /readyz",
    "GET /metrics",
    "HEAD /metrics",
    "GET /openapi.json",
    "HEAD /openapi.json",
    "GET /",
    "HEAD /",
    "GET /index.html",
    "HEAD /index.html",
    "GET /style.css",
    "HEAD /style.css",
    "GET /app.js",
    "HEAD /app.js",
    "GET /uploader.js",
    "HEAD /uploader.js",
    "GET /hash-worker.js",
    "HEAD /hash-worker.js",
    "GET /vendor/hash-wasm/sha1.umd.min.js",
    "HEAD /vendor/hash-wasm/sha1.umd.min.js",
    "GET /vendor/hash-wasm/md5.umd.min.js",
    "HEAD /vendor/hash-wasm/md5.umd.min.js",
    "GET /vendor/hash-wasm/LICENSE",
    "HEAD /vendor/hash-wasm/LICENSE",
    "GET /static/view/index.html",
    "HEAD /static/view/index.html",
    "GET /static/view/signup.html",
    "HEAD /static/view/signup.html",
    "GET /static/view/signin.html",
    "HEAD /static/view/signin.html",
    "GET /static/view/home.html",
    "HEAD /static/view/home.html",
    "GET /static/view/upload.html",
    "HEAD /static/view/upload.html",
    "GET /static/view/mpupload.html",
    "HEAD /static/view/mpupload.html",
    "GET /static/view/download.html",
    "HEAD /static/view/download.html",
    "GET /static/js/auth.js",
    "HEAD /static/js/auth.js",
    "GET /static/js/signup.js",
    "HEAD /static/js/signup.js",
    "GET /static/js/signin.js",
    "HEAD /static/js/signin.js",
    "GET /static/js/home.js",
    "HEAD /static/js/home.js",
    "GET /static/js/upload.js",
    "HEAD /static/js/upload.js",
    "GET /static/js/mpupload.js",
    "HEAD /static/js/mpupload.js",
    "GET /static/js/download.js",
    "HEAD /static/js/download.js",
];

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A concrete path for a template: ids that look right but name nothing.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", &"0".repeat(32))
        .replace("{file_id}", &"0".repeat(20))
        .replace("{n}", "1")
}

#[tokio::test]
async fn document_lists_every_route_and_the_server_agrees() {
    let s = Server::start();
    let resp = s.client.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0."));
    let paths = doc["paths"].as_object().unwrap();

    let mut documented: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method.to_ascii_lowercase()).is_some() {
                documented.push(format!("{method} {path}"));
            }
        }
    }
    let mut expected: Vec<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    expected.sort();
    documented.sort();
    assert_eq!(
        documented, expected,
        "the document and the route list differ"
    );

    for (template, item) in paths {
        let path = concrete(template);
        let allowed: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| item.get(m.to_ascii_lowercase()).is_some())
            .collect();
        for method in METHODS {
            // No token: every route that needs one answers 401, itself, not a router 404.
            let resp = s
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), s.url(&path))
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let allow = resp
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp.bytes().await.unwrap();
            let what = format!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            if let Some(op) = item.get(method.to_ascii_lowercase()) {
                let listed = op["responses"]
                    .as_object()
                    .unwrap()
                    .contains_key(status.as_str());
                assert!(listed, "undocumented status: {what}");
                if status == StatusCode::NOT_FOUND && method != "HEAD" {
                    let err: Value = serde_json::from_slice(&body).unwrap();
                    assert_ne!(err["code"], 10402, "no route: {what}");
                }
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
                let mut got: Vec<String> = allow
                    .unwrap_or_else(|| panic!("no Allow: {what}"))
                    .split(", ")
                    .map(str::to_owned)
                    .collect();
                got.sort();
                let mut want: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
                want.sort();
                assert_eq!(got, want, "Allow of {path}");
            }
        }
    }
}

#[tokio::test]
async fn every_role_serves_the_document() {
    for role in ["upload", "download", "account"] {
        let s = Server::start_with(&["--routes", role]);
        let resp = s.client.get(s.url("/openapi.json")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{role}");
        let doc: Value = resp.json().await.unwrap();
        assert!(doc["paths"]["/uploads"].is_object(), "{role}");
    }
}

/// Each role mounts its own route groups only: a route of another group is "no route" (404,
/// code 10402) there — also where only the method differs (`POST /api/files` uploads, `GET`
/// lists) — and a route of its own answers (here 401 without a token, or the page).
#[tokio::test]
async fn roles_mount_their_route_groups() {
    let routes = [
        ("upload", "POST", "/uploads"),
        ("upload", "POST", "/files/"),
        ("upload", "POST", "/api/files"),
        ("upload", "POST", "/file/upload"),
        ("upload", "GET", "/file/upload/suc"),
        ("upload", "POST", "/file/fastupload"),
        ("upload", "POST", "/file/mpupload/init"),
        ("download", "GET", "/api/files"),
        ("download", "PATCH", "/api/files/00000000000000000000"),
        ("download", "GET", "/api/files/00000000000000000000/content"),
        ("download", "GET", "/file/query"),
        ("download", "GET", "/file/download"),
        ("download", "GET", "/file/download/signed"),
        ("download", "POST", "/file/delete"),
        ("account", "POST", "/api/sessions"),
        ("account", "GET", "/api/account"),
        ("account", "POST", "/user/signin"),
        ("account", "GET", "/static/view/home.html"),
        ("account", "GET", "/"),
    ];
    for role in ["upload", "download", "account"] {
        let s = Server::start_with(&["--routes", role]);
        for (group, method, path) in routes {
            let resp = s
                .client
                .request(Method::from_bytes(method.as_bytes()).unwrap(), s.url(path))
                .header("Tus-Resumable", "1.0.0")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            let no_route = status == StatusCode::NOT_FOUND && body.contains("10402");
            assert_eq!(
                no_route,
                group != role,
                "{role} node, {method} {path}: {status} {body}"
            );
        }
    }
}
