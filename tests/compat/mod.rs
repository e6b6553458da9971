//! Compatibility with filestore-server's own clients: the calls its pages (`static/view/*.html`,
//! `static/js/auth.js`) and its Go test clients (`test/test_mpupload.go`,
//! `test/test_fastupload.go`) make, replayed as they make them — parameters in the query string
//! or an urlencoded form, `username` and `token` beside them, no `Accept: application/json` —
//! asserting what those clients read from the answers: bodies compared with `SUCCESS`,
//! `JSON.parse`d text, `data.Token`, `data[i].FileHash`, the download URL as the body, codes 0
//! and -1. Run as part of the black-box suite (tests/blackbox/main.rs).

use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use crate::support::{answer_challenge, assert_go_time, random_bytes, sha1_hex, Server};

/// What a browser sends when it navigates or posts a form.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// What jQuery's `$.ajax` sends without a `dataType`.
const JQUERY_ACCEPT: &str = "*/*";

/// A client of the original: follows no redirect (the tests look at them), sends no JSON
/// `Accept`.
struct Original {
    base: String,
    http: Client,
    username: String,
    token: String,
}

impl Original {
    fn new(s: &Server) -> Self {
        Original {
            base: s.base.clone(),
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            username: String::new(),
            token: String::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// auth.js's `queryParams()`.
    fn query_params(&self) -> String {
        format!("username={}&token={}", self.username, self.token)
    }

    /// `$.ajax({url, type: "POST", data})`: an urlencoded form.
    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url(path))
            .header(ACCEPT, JQUERY_ACCEPT)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The same call with auth.js's parameters in the query string, as the pages make it.
    async fn post_authed(&self, path: &str, extra_query: &str, form: &[(&str, &str)]) -> Response {
        let sep = if extra_query.is_empty() { "" } else { "&" };
        let path = format!("{path}?{extra_query}{sep}{}", self.query_params());
        self.post_form(&path, form).await
    }

    /// Signs up and in through the pages' calls; keeps the token as signin.html does.
    async fn sign_up_and_in(&mut self, username: &str) -> Value {
        let password = "tutorial-pass-1";
        let resp = self
            .post_form(
                "/user/signup",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        // signup.html: `if (data == 'SUCCESS')`.
        assert_eq!(resp.text().await.unwrap(), "SUCCESS");
        let resp = self
            .post_form(
                "/user/signin",
                &[("username", username), ("password", password)],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = parsed_text(resp).await;
        self.username = body["data"]["Username"].as_str().unwrap().to_owned();
        self.token = body["data"]["Token"].as_str().unwrap().to_owned();
        body
    }

    /// index.html's form: the file posted to `/file/upload?username=…&token=…`.
    async fn upload_form(&self, name: &str, data: &[u8], accept: &str) -> Response {
        let part = reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        self.http
            .post(self.url(&format!("/file/upload?{}", self.query_params())))
            .header(ACCEPT, accept)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// home.html's list: `POST /file/query?…` with `limit` in the form; `JSON.parse(body)`.
    async fn query(&self) -> Vec<Value> {
        let resp = self
            .post_authed("/file/query", "", &[("limit", "15")])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        parsed_text(resp).await.as_array().unwrap().clone()
    }
}

/// A body the original's pages `JSON.parse`: it must come as text (jQuery hands `text/plain` over
/// as a string; `application/json` would arrive already parsed and break them).
async fn parsed_text(resp: Response) -> Value {
    let ct = resp.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    assert_eq!(ct, "text/plain; charset=utf-8", "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON.parse fails ({e}): {text}"))
}

/// The error every refusal carries: a 4xx JSON envelope with a stable code.
async fn assert_refused(resp: Response, status: StatusCode, code: u64) {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// What download.html reads: `name.match(/attachment; filename="(.*)"/)[1]` (greedy).
fn page_file_name(disposition: &str) -> Option<&str> {
    let rest = &disposition[disposition.find("attachment; filename=\"")? + 22..];
    Some(&rest[..rest.rfind('"')?])
}

#[tokio::test]
async fn sign_up_and_sign_in_as_the_pages_do() {
    let s = Server::start();
    let mut c = Original::new(&s);

    // The pages at the original paths.
    let resp = c.http.get(c.url("/user/signup")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("<form"));
    let resp = c.http.get(c.url("/user/signin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()[LOCATION], "/static/view/signin.html");
    for page in [
        "signin", "signup", "home", "index", "upload", "download", "mpupload",
    ] {
        let resp = c
            .http
            .get(c.url(&format!("/static/view/{page}.html")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{page}.html");
    }
    let auth_js = c
        .http
        .get(c.url("/static/js/auth.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(auth_js.status(), StatusCode::OK);
    assert!(auth_js
        .text()
        .await
        .unwrap()
        .contains("function queryParams"));

    // signin.html: `JSON.parse(body)`, then `data.Token`, `data.Username`, `data.Location`.
    let signed_in = c.sign_up_and_in("tutorial").await;
    assert_eq!(signed_in["code"], 0);
    assert_eq!(signed_in["msg"], "OK");
    let location = signed_in["data"]["Location"].as_str().unwrap();
    assert_eq!(location, format!("{}/static/view/home.html", s.base));
    assert_eq!(c.username, "tutorial");
    assert!(!c.token.is_empty());

    // home.html: `POST /user/info?` + queryParams(); shows data.Username and data.SignupAt.
    let resp = c.post_authed("/user/info", "", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let info = parsed_text(resp).await;
    assert_eq!(info["code"], 0);
    let user = &info["data"];
    assert_eq!(user["Username"], "tutorial");
    assert_go_time(&user["SignupAt"]);
    assert_go_time(&user["LastActiveAt"]);
    assert_eq!(user["Email"], "");
    assert_eq!(user["Phone"], "");
    assert_eq!(user["Status"], 0);
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{user}");

    // A client that asks for JSON gets the same answer as application/json.
    let resp = c
        .http
        .get(c.url(&format!("/user/info?{}", c.query_params())))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["data"]["Username"], "tutorial");

    // Deliberate differences: a taken name and a short password are clear 4xx errors (the
    // original answered 200 `FAILED` / `Invalid parameter`); wrong credentials are a 401.
    let resp = c
        .post_form(
            "/user/signup",
            &[("username", "tutorial"), ("password", "another-pass-1")],
        )
        .await;
    assert_refused(resp, StatusCode::CONFLICT, 10901).await;
    let resp = c
        .post_form(
            "/user/signup",
            &[("username", "shorty"), ("password", "1234567")],
        )
        .await;
    assert_refused(resp, StatusCode::BAD_REQUEST, 10001).await;
    let resp = c
        .post_form(
            "/user/signin",
            &[("username", "tutorial"), ("password", "wrong-password")],
        )
        .await;
    assert_refused(resp, StatusCode::UNAUTHORIZED, 10102).await;
}

#[tokio::test]
async fn home_page_upload_list_rename_download_delete() {
    let s = Server::start();
    let mut c = Original::new(&s);
    c.sign_up_and_in("homeuser").await;

    // upload.html / `GET /file/upload?…` is the page; `/file/upload/suc` the original's text.
    let resp = c
        .http
        .get(c.url(&format!("/file/upload?{}", c.query_params())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("multipart/form-data"));
    let resp = c.http.get(c.url("/file/upload/suc")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "Upload finished!");

    // index.html's form, posted by a browser: the original's redirect to the home page.
    let data = random_bytes(70_000);
    let sha1 = sha1_hex(&data);
    let resp = c.upload_form("报告 v1.pdf", &data, BROWSER_ACCEPT).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()[LOCATION], "/static/view/home.html");
    // upload.html (2020) posts with XHR and reads `res.code == 0`.
    let other = random_bytes(1000);
    let resp = c.upload_form("other.bin", &other, JQUERY_ACCEPT).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let up = parsed_text(resp).await;
    assert_eq!(up["code"], 0);
    assert_eq!(up["data"]["FileSha1"], sha1_hex(&other));

    // home.html's table: `data[i].FileHash`, `FileName`, `FileSize`, `UploadAt`, `LastUpdated`.
    let rows = c.query().await;
    assert_eq!(rows.len(), 2);
    let row = rows
        .iter()
        .find(|r| r["FileHash"] == sha1.as_str())
        .unwrap();
    assert_eq!(row["FileName"], "报告 v1.pdf");
    assert_eq!(row["FileSize"], 70_000);
    assert_go_time(&row["UploadAt"]);
    assert_go_time(&row["LastUpdated"]);
    assert_eq!(row["UserName"], "homeuser");
    let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6, "{row}");

    // `/file/meta`: the bare FileMeta; Location names a store, never a path on the server.
    let resp = c
        .post_authed("/file/meta", &format!("filehash={sha1}"), &[])
        .await;
    let meta = parsed_text(resp).await;
    assert_eq!(meta["FileSha1"], sha1.as_str());
    assert_eq!(meta["FileName"], "报告 v1.pdf");
    assert_eq!(meta["FileSize"], 70_000);
    assert_eq!(meta["Location"], "local");
    assert_go_time(&meta["UploadAt"]);
    assert_eq!(meta.as_object().unwrap().len(), 5, "{meta}");

    // downloadFile(): `POST /file/downloadurl?filehash=…&…`; the body is the URL the page opens
    // (in an iframe, with no token).
    let resp = c
        .post_authed("/file/downloadurl", &format!("filehash={sha1}"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    let url = resp.text().await.unwrap();
    assert!(url.starts_with(&s.base), "{url}");
    assert!(
        !url.contains(&c.token),
        "the link must not carry the token: {url}"
    );
    let resp = c.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // download.html: `name.match(/attachment; filename="(.*)"/)`.
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    let name = page_file_name(&disposition).unwrap();
    assert_eq!(name, "__ v1.pdf", "{disposition}");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[..]);

    // download.html's resumable fetch: `/file/download/range` (and `/file/download`) with Range.
    for path in ["/file/download/range", "/file/download"] {
        let resp = c
            .http
            .get(c.url(&format!("{path}?filehash={sha1}&{}", c.query_params())))
            .header("range", "bytes=100-")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{path}");
        assert_eq!(resp.headers()["content-range"], "bytes 100-69999/70000");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[100..]);
    }
    // The original took any method on its download route; a POST downloads too.
    let resp = c
        .post_authed("/file/download", &format!("filehash={sha1}"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().len(), 70_000);

    // Rename: `POST /file/update?op=0&filehash=…&…&filename=…`; the answer is the bare UserFile.
    let resp = c
        .post_authed(
            "/file/update",
            &format!("op=0&filehash={sha1}&filename=renamed.pdf"),
            &[],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let renamed = parsed_text(resp).await;
    assert_eq!(renamed["FileName"], "renamed.pdf");
    assert_eq!(renamed["FileHash"], sha1.as_str());
    let rows = c.query().await;
    assert!(rows.iter().any(|r| r["FileName"] == "renamed.pdf"));

    // Delete: an empty 200; the list no longer has it.
    let resp = c
        .post_authed("/file/delete", &format!("filehash={sha1}"), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().is_empty());
    let rows = c.query().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["FileName"], "other.bin");
}

#[tokio::test]
async fn tokens_as_the_original_clients_send_them() {
    let s = Server::start();
    let mut c = Original::new(&s);
    c.sign_up_and_in("tokenuser").await;
    let mut bob = Original::new(&s);
    bob.sign_up_and_in("bobuser").await;

    // auth.js with an empty localStorage sends `username=null&token=null`.
    let resp = c
        .post_form("/file/query?username=null&token=null", &[("limit", "15")])
        .await;
    assert_refused(resp, StatusCode::UNAUTHORIZED, 10101).await;
    // A browser navigating without a valid token goes to the sign-in page, as the original's
    // interceptor sent it.
    let resp = c
        .http
        .get(c.url("/file/query?username=null&token=null"))
        .header(ACCEPT, BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()[LOCATION], "/static/view/signin.html");
    // A token of someone else than the username beside it is refused.
    let resp = c
        .post_form(
            &format!("/file/query?username=tokenuser&token={}", bob.token),
            &[],
        )
        .await;
    assert_refused(resp, StatusCode::UNAUTHORIZED, 10101).await;
    // The token in the form body (as the Go clients' PostForm sends it) works as in the query.
    let resp = c
        .post_form(
            "/user/info",
            &[("username", "tokenuser"), ("token", c.token.as_str())],
        )
        .await;
    assert_eq!(parsed_text(resp).await["data"]["Username"], "tokenuser");

    // Deliberate difference: a `token` field after the file in a multipart upload is refused
    // (the server never holds a file body before it knows who sends it).
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(vec![1u8; 100]).file_name("x.bin"),
        )
        .text("token", c.token.clone());
    let resp = c
        .http
        .post(c.url("/file/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_refused(resp, StatusCode::UNAUTHORIZED, 10101).await;
    assert!(c.query().await.is_empty());
}

/// test_mpupload.go (2020): init, parts posted as raw bodies with a `multipart/form-data`
/// content type (concurrently), complete; then resuming and cancelling by file hash.
#[tokio::test]
async fn go_mpupload_client() {
    let s = Server::start();
    let mut c = Original::new(&s);
    c.sign_up_and_in("goclient").await;
    let data = random_bytes(12 << 20);
    let sha1 = sha1_hex(&data);
    let size = data.len().to_string();

    let init = |c: &Original| {
        let (sha1, size, token) = (sha1.clone(), size.clone(), c.token.clone());
        let req = c.http.post(c.url("/file/mpupload/init")).form(&[
            ("username", "goclient"),
            ("token", token.as_str()),
            ("filehash", sha1.as_str()),
            ("filesize", size.as_str()),
        ]);
        async move { parsed_text(req.send().await.unwrap()).await }
    };
    // `jsonit.Get(body, "data").Get("UploadID")`, `ChunkSize`, `ChunkCount`, `ChunkExists`.
    let body = init(&c).await;
    assert_eq!(body["code"], 0, "{body}");
    let info = &body["data"];
    let upload_id = info["UploadID"].as_str().unwrap().to_owned();
    let chunk_size = info["ChunkSize"].as_u64().unwrap() as usize;
    let chunk_count = info["ChunkCount"].as_u64().unwrap() as usize;
    assert_eq!(chunk_size, 5 << 20, "the original's 5 MiB chunks");
    assert_eq!(chunk_count, 3);
    assert_eq!(info["ChunkExists"], serde_json::json!([]));
    assert_eq!(info["FileHash"], sha1.as_str());
    assert_eq!(info["FileSize"], 12 << 20);

    let part = |c: &Original, index: usize| {
        let chunk = data[(index - 1) * chunk_size..(index * chunk_size).min(data.len())].to_vec();
        let url = c.url(&format!(
            "/file/mpupload/uppart?username=goclient&token={}&uploadid={upload_id}&index={index}&chkhash={}",
            c.token,
            sha1_hex(&chunk)
        ));
        let req = c
            .http
            .post(url)
            .header(CONTENT_TYPE, "multipart/form-data")
            .body(chunk);
        async move { parsed_text(req.send().await.unwrap()).await }
    };
    // Part 2 first; then init again: the same upload, resumed, with part 2 in ChunkExists.
    let answer = part(&c, 2).await;
    assert_eq!(
        answer,
        serde_json::json!({"code": 0, "msg": "OK", "data": null})
    );
    let again = init(&c).await;
    assert_eq!(again["data"]["UploadID"], upload_id.as_str());
    assert_eq!(again["data"]["ChunkExists"], serde_json::json!([2]));
    // The rest concurrently, as the Go client's goroutines.
    let (a, b) = tokio::join!(part(&c, 1), part(&c, 3));
    assert_eq!(a["code"], 0, "{a}");
    assert_eq!(b["code"], 0, "{b}");

    let resp = c
        .http
        .post(c.url("/file/mpupload/complete"))
        .form(&[
            ("username", "goclient"),
            ("token", c.token.as_str()),
            ("filehash", sha1.as_str()),
            ("filesize", size.as_str()),
            ("filename", "big.iso"),
            ("uploadid", upload_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let done = parsed_text(resp).await;
    assert_eq!(
        done,
        serde_json::json!({"code": 0, "msg": "OK", "data": null})
    );
    let rows = c.query().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["FileName"], "big.iso");
    assert_eq!(rows[0]["FileHash"], sha1.as_str());
    let resp = c
        .http
        .get(c.url(&format!(
            "/file/download?filehash={sha1}&{}",
            c.query_params()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[..]);

    // mpupload.html and the 2020 client stop on code 10006: the user holds this file already.
    let held = init(&c).await;
    assert_eq!(
        held,
        serde_json::json!({"code": 10006, "msg": "file already exists", "data": null})
    );

    // test_mpupload_cancel.go: cancel by `filehash`.
    let small = random_bytes(300_000);
    let small_sha1 = sha1_hex(&small);
    let resp = c
        .post_authed(
            "/file/mpupload/init",
            &format!("filehash={small_sha1}&filesize=300000&filename=small.bin"),
            &[],
        )
        .await;
    let id = parsed_text(resp).await["data"]["UploadID"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = c
        .post_form(
            "/file/mpupload/cancel",
            &[
                ("username", "goclient"),
                ("token", c.token.as_str()),
                ("filehash", small_sha1.as_str()),
            ],
        )
        .await;
    assert_eq!(
        parsed_text(resp).await,
        serde_json::json!({"code": 0, "msg": "OK", "data": null})
    );
    let resp = c
        .post_authed("/file/mpupload/status", &format!("uploadid={id}"), &[])
        .await;
    assert_refused(resp, StatusCode::NOT_FOUND, 10401).await;
}

/// mpupload.html and the 2020 Go client stop on code 10006 ("file already exists").
#[tokio::test]
async fn mpupload_init_of_content_linked_at_once() {
    let s = Server::start_with(&["--instant-upload", "trusted"]);
    let mut alice = Original::new(&s);
    alice.sign_up_and_in("alicemp").await;
    let data = random_bytes(50_000);
    let sha1 = sha1_hex(&data);
    let resp = alice.upload_form("a.bin", &data, JQUERY_ACCEPT).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Another user, with trusted instant upload: linked at once, so "already exists" too.
    let mut bob = Original::new(&s);
    bob.sign_up_and_in("bobmp").await;
    let resp = bob
        .post_authed(
            "/file/mpupload/init",
            &format!("filehash={sha1}&filesize=50000&filename=again.bin"),
            &[],
        )
        .await;
    let body = parsed_text(resp).await;
    assert_eq!(body["code"], 10006, "{body}");
    assert!(body["data"].is_null());
    let rows = bob.query().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["FileName"], "again.bin");
}

/// test_fastupload.go and the pages' instant upload: code 0 means the file is the caller's;
/// anything else is the original's fallback code -1, after which the client uploads normally —
/// so a client that cannot prove ownership never loses its file.
#[tokio::test]
async fn go_fastupload_client_falls_back_and_never_loses_a_file() {
    let s = Server::start();
    let mut alice = Original::new(&s);
    alice.sign_up_and_in("alicefast").await;
    let mut bob = Original::new(&s);
    bob.sign_up_and_in("bobfast").await;
    let data = random_bytes(200_000);
    let sha1 = sha1_hex(&data);
    let fast = |c: &Original, extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("username", c.username.clone()),
            ("token", c.token.clone()),
            ("filehash", sha1.clone()),
            ("filename", "same.bin".to_owned()),
            ("filesize", "200000".to_owned()),
        ];
        form.extend(extra);
        let req = c.http.post(c.url("/file/fastupload")).form(&form);
        async move { parsed_text(req.send().await.unwrap()).await }
    };

    // Content nobody stored: -1, "upload normally".
    let answer = fast(&alice, vec![]).await;
    assert_eq!(
        answer,
        serde_json::json!({"code": -1, "msg": "秒传失败，请访问普通上传接口", "data": null})
    );
    let resp = alice.upload_form("same.bin", &data, JQUERY_ACCEPT).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Bob's client cannot answer a challenge: -1 again (the challenge beside it), nothing linked;
    // the client uploads normally and has its file.
    let answer = fast(&bob, vec![]).await;
    assert_eq!(answer["code"], -1, "{answer}");
    assert_eq!(answer["msg"], "秒传失败，请访问普通上传接口");
    let challenge = answer["data"]["Challenge"].clone();
    assert!(challenge["id"].is_string(), "{answer}");
    assert!(bob.query().await.is_empty(), "nothing linked without proof");
    let resp = bob.upload_form("same.bin", &data, JQUERY_ACCEPT).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rows = bob.query().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["FileHash"], sha1.as_str());

    // A third user whose client answers the challenge gets code 0 and the file, no bytes sent.
    let mut carol = Original::new(&s);
    carol.sign_up_and_in("carolfast").await;
    let answer = fast(&carol, vec![]).await;
    let challenge = &answer["data"]["Challenge"];
    let digests = answer_challenge(&data, &challenge["ranges"]).join(",");
    let proved = fast(
        &carol,
        vec![
            ("challenge", challenge["id"].as_str().unwrap().to_owned()),
            ("digests", digests),
        ],
    )
    .await;
    assert_eq!(proved["code"], 0, "{proved}");
    assert_eq!(proved["msg"], "秒传成功");
    assert_eq!(proved["data"]["FileSha1"], sha1.as_str());
    assert_eq!(carol.query().await.len(), 1);
    // A wrong answer is the fallback too.
    let mut dave = Original::new(&s);
    dave.sign_up_and_in("davefast").await;
    let answer = fast(&dave, vec![]).await;
    let wrong = fast(
        &dave,
        vec![
            (
                "challenge",
                answer["data"]["Challenge"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            ("digests", "00".repeat(32)),
        ],
    )
    .await;
    assert_eq!(wrong["code"], -1, "{wrong}");
    assert!(dave.query().await.is_empty());

    // test_fastupload.go sends no `filesize`: nothing can be claimed, so "upload normally".
    let resp = alice
        .post_form(
            "/file/fastupload",
            &[
                ("username", "alicefast"),
                ("token", alice.token.as_str()),
                ("filehash", sha1.as_str()),
                ("filename", "just_for_test"),
            ],
        )
        .await;
    assert_eq!(parsed_text(resp).await["code"], -1);
    // …and its `filehash=no_such_file_hash` is not a SHA1: a clear 400.
    let resp = alice
        .post_form(
            "/file/fastupload",
            &[
                ("username", "alicefast"),
                ("token", alice.token.as_str()),
                ("filehash", "no_such_file_hash"),
                ("filename", "just_for_test"),
            ],
        )
        .await;
    assert_refused(resp, StatusCode::BAD_REQUEST, 10003).await;
}
