use reqwest::StatusCode;
use serde_json::json as j;

use crate::support::{assert_error, assert_go_time, content_type, json, Server, PASSWORD};

/// The classic account routes, answered as filestore-server answered them.
#[tokio::test]
async fn signup_signin_info_signout() {
    let s = Server::start();
    let resp = s
        .client
        .post(s.url("/user/signup"))
        .form(&[("username", "alice.W-1"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        content_type(&resp).as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.text().await.unwrap(), "SUCCESS");
    assert_error(
        &s.form(
            "/user/signup",
            &[("username", "alice.W-1"), ("password", "password-456")],
        )
        .await,
        StatusCode::CONFLICT,
        10901,
    );

    let (status, body) = s
        .form(
            "/user/signin",
            &[("username", "alice.W-1"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["code"], 0);
    assert_eq!(body["msg"], "OK");
    assert_eq!(body["data"]["Username"], "alice.W-1");
    assert_eq!(
        body["data"]["Location"],
        format!("{}/static/view/home.html", s.base).as_str()
    );
    let token = body["data"]["Token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 22, "at least 128 bits");

    // Bearer header, query parameter and form parameter all work.
    let (status, info) = s.get(&token, "/user/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["code"], 0);
    let d = &info["data"];
    assert_eq!(d["Username"], "alice.W-1");
    assert_eq!(
        (&d["Email"], &d["Phone"], &d["Status"]),
        (&j!(""), &j!(""), &j!(0))
    );
    assert_go_time(&d["SignupAt"]);
    assert_go_time(&d["LastActiveAt"]);
    let (status, _) = json(
        s.client
            .get(s.url(&format!("/user/info?token={token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.form("/user/info", &[("token", &token)]).await;
    assert_eq!(status, StatusCode::OK);

    // A second session is independent; signout revokes only the one used.
    let (_, other) = s
        .form(
            "/user/signin",
            &[("username", "alice.W-1"), ("password", PASSWORD)],
        )
        .await;
    let other = other["data"]["Token"].as_str().unwrap().to_owned();
    assert_ne!(other, token);
    let (status, out) = s.post(&token, "/user/signout", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        out,
        j!({"code": 0, "msg": "OK", "data": {"Username": "alice.W-1"}})
    );
    assert_error(
        &s.get(&token, "/user/info").await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    assert_error(
        &s.get(&token, "/file/query").await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    assert_error(
        &s.api("GET", Some(&token), "/api/files", None).await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    assert_error(
        &s.post(&token, "/user/signout", &[]).await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    assert_eq!(s.get(&other, "/user/info").await.0, StatusCode::OK);
    // Accounts made here are accounts for the API too, and the other way round.
    assert_eq!(
        s.api("GET", Some(&other), "/api/account", None).await.0,
        StatusCode::OK
    );
    let api_token = s.user("bob-api").await;
    let (status, info) = s.get(&api_token, "/user/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["data"]["Username"], "bob-api");
}

/// The pages: sign-up served, sign-in sent to its page; a JSON answer as `application/json`
/// when asked for; a browser without a valid token is sent to the sign-in page.
#[tokio::test]
async fn pages_content_types_and_browser_redirects() {
    let s = Server::start();
    let resp = s.client.get(s.url("/user/signup")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(content_type(&resp).unwrap().starts_with("text/html"));
    let resp = s.client.get(s.url("/user/signin")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()["location"], "/static/view/signin.html");

    let token = s.user("carla").await;
    let resp = s
        .req("GET", &token, "/user/info")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(content_type(&resp).as_deref(), Some("application/json"));
    let (status, info) = json(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["data"]["Username"], "carla");

    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for path in ["/user/info", "/file/query", "/file/meta?filehash=0"] {
        for auth in [None, Some("Bearer not-a-token")] {
            let mut req = s.client.get(s.url(path)).header("accept", browser);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::FOUND, "{path} {auth:?}");
            assert_eq!(
                resp.headers()["location"],
                "/static/view/signin.html",
                "{path}"
            );
        }
    }
    // A browser with a valid token gets the answer itself.
    let resp = s
        .client
        .get(s.url("/user/info"))
        .bearer_auth(&token)
        .header("accept", browser)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// ChunkVault's own account and session resources.
#[tokio::test]
async fn api_account_and_sessions() {
    let s = Server::start();
    let creds = j!({"username": "dana", "password": PASSWORD});
    let (status, body) = s
        .api("POST", None, "/api/account", Some(creds.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        j!({"code": 0, "msg": "OK", "data": {"username": "dana"}})
    );
    assert_error(
        &s.api("POST", None, "/api/account", Some(creds.clone()))
            .await,
        StatusCode::CONFLICT,
        10901,
    );

    let (status, session) = s
        .api("POST", None, "/api/sessions", Some(creds.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["data"]["username"], "dana");
    assert!(session["data"]["expires_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let token = session["data"]["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 22, "at least 128 bits");

    let (status, account) = s.api("GET", Some(&token), "/api/account", None).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["data"]["username"], "dana");
    for field in ["created_at", "last_active_at"] {
        assert!(
            account["data"][field].as_str().unwrap().ends_with('Z'),
            "{account}"
        );
    }
    // The token as a query parameter works too.
    let (status, _) = s
        .api("GET", None, &format!("/api/account?token={token}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // A second session is independent; DELETE /api/sessions/current revokes only the one used.
    let other = s.signin("dana").await;
    assert_ne!(other, token);
    let (status, out) = s
        .api("DELETE", Some(&token), "/api/sessions/current", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(out, j!({"code": 0, "msg": "OK", "data": null}));
    for (method, path) in [
        ("GET", "/api/account"),
        ("GET", "/api/files"),
        ("DELETE", "/api/sessions/current"),
    ] {
        assert_error(
            &s.api(method, Some(&token), path, None).await,
            StatusCode::UNAUTHORIZED,
            10101,
        );
    }
    assert_error(
        &s.get(&token, "/user/info").await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    assert_eq!(
        s.api("GET", Some(&other), "/api/account", None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn signup_and_signin_refuse_bad_input() {
    let s = Server::start();
    for (user, pass) in [
        ("ab", PASSWORD),
        (&"a".repeat(65) as &str, PASSWORD),
        ("bad name", PASSWORD),
        ("bad/name", PASSWORD),
        ("名字名字", PASSWORD),
        ("gooduser", "short"),
        ("gooduser", "1234567"),
    ] {
        assert_error(
            &s.form("/user/signup", &[("username", user), ("password", pass)])
                .await,
            StatusCode::BAD_REQUEST,
            10001,
        );
        assert_error(
            &s.api(
                "POST",
                None,
                "/api/account",
                Some(j!({"username": user, "password": pass})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            10001,
        );
    }
    let (status, body) = s.form("/user/signup", &[("password", PASSWORD)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["msg"].as_str().unwrap().contains("username"), "{body}");
    let (status, body) = s
        .api(
            "POST",
            None,
            "/api/account",
            Some(j!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["msg"].as_str().unwrap().contains("username"), "{body}");
    let resp = s
        .client
        .post(s.url("/api/account"))
        .body("username=x&password=y")
        .send()
        .await
        .unwrap();
    assert_error(&json(resp).await, StatusCode::BAD_REQUEST, 10001);
    // Nobody was made by any of these.
    assert_error(
        &s.api(
            "POST",
            None,
            "/api/sessions",
            Some(j!({"username": "gooduser", "password": "short"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        10102,
    );

    s.user("carol").await;
    for (user, pass) in [("carol", "wrong-password"), ("nobody", PASSWORD)] {
        assert_error(
            &s.form("/user/signin", &[("username", user), ("password", pass)])
                .await,
            StatusCode::UNAUTHORIZED,
            10102,
        );
        assert_error(
            &s.api(
                "POST",
                None,
                "/api/sessions",
                Some(j!({"username": user, "password": pass})),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            10102,
        );
    }
}

#[tokio::test]
async fn every_file_route_requires_a_valid_token() {
    let s = Server::start();
    let token = s.user("dave").await;
    let (_, f) = s.upload(&token, "x.txt", b"x".to_vec()).await;
    let hash = f["data"]["FileSha1"].as_str().unwrap().to_owned();
    let id = s.file_id(&token, &hash).await;
    let routes = [
        ("GET", format!("/file/meta?filehash={hash}")),
        ("GET", "/file/query".to_owned()),
        ("GET", format!("/file/download?filehash={hash}")),
        ("HEAD", format!("/file/download?filehash={hash}")),
        (
            "POST",
            format!("/file/update?op=0&filehash={hash}&filename=y"),
        ),
        ("POST", format!("/file/delete?filehash={hash}")),
        ("POST", format!("/file/downloadurl?filehash={hash}")),
        ("POST", "/file/upload".to_owned()),
        ("GET", "/user/info".to_owned()),
        ("GET", "/api/account".to_owned()),
        ("DELETE", "/api/sessions/current".to_owned()),
        ("GET", "/api/files".to_owned()),
        ("POST", "/api/files?name=y".to_owned()),
        ("GET", format!("/api/files/{id}")),
        ("PATCH", format!("/api/files/{id}")),
        ("DELETE", format!("/api/files/{id}")),
        ("GET", format!("/api/files/{id}/content")),
        ("HEAD", format!("/api/files/{id}/content")),
        ("POST", format!("/api/files/{id}/links")),
    ];
    let malformed = "Bearer not-a-token";
    let unknown = format!("Bearer {}", "A".repeat(43));
    for (method, path) in &routes {
        for auth in [
            None,
            Some(malformed),
            Some(unknown.as_str()),
            Some("Basic YTpi"),
        ] {
            let mut req = s.client.request(method.parse().unwrap(), s.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if *method == "PATCH" {
                req = req.json(&j!({"name": "y"}));
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            if *method != "HEAD" {
                assert_error(&json(resp).await, StatusCode::UNAUTHORIZED, 10101);
            }
        }
    }
    // Nothing changed.
    let (status, meta) = s.get(&token, &format!("/file/meta?filehash={hash}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["FileName"], "x.txt");
    let files = s.files(&token).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["name"], "x.txt");
}
