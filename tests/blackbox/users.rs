use reqwest::StatusCode;

use crate::support::{assert_error, json, Server};

#[tokio::test]
async fn signup_signin_info_signout() {
    let s = Server::start();
    let (status, body) = s
        .form(
            "/user/signup",
            &[("username", "alice.W-1"), ("password", "password-123")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["Username"], "alice.W-1");
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
            &[("username", "alice.W-1"), ("password", "password-123")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["code"], 0);
    assert_eq!(body["msg"], "OK");
    assert_eq!(body["data"]["Username"], "alice.W-1");
    let token = body["data"]["Token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 22, "at least 128 bits");

    // Bearer header, query parameter and form parameter all work.
    let (status, info) = s.get(&token, "/user/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["data"]["Username"], "alice.W-1");
    assert!(info["data"]["SignupAt"].as_str().unwrap().ends_with('Z'));
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
            &[("username", "alice.W-1"), ("password", "password-123")],
        )
        .await;
    let other = other["data"]["Token"].as_str().unwrap().to_owned();
    assert_ne!(other, token);
    assert_eq!(s.post(&token, "/user/signout", &[]).await.0, StatusCode::OK);
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
        &s.post(&token, "/user/signout", &[]).await,
        StatusCode::UNAUTHORIZED,
        10101,
    );
    assert_eq!(s.get(&other, "/user/info").await.0, StatusCode::OK);
}

#[tokio::test]
async fn signup_and_signin_refuse_bad_input() {
    let s = Server::start();
    for (user, pass) in [
        ("ab", "password-123"),
        (&"a".repeat(65) as &str, "password-123"),
        ("bad name", "password-123"),
        ("bad/name", "password-123"),
        ("名字名字", "password-123"),
        ("gooduser", "short"),
    ] {
        assert_error(
            &s.form("/user/signup", &[("username", user), ("password", pass)])
                .await,
            StatusCode::BAD_REQUEST,
            10001,
        );
    }
    let (status, body) = s
        .form("/user/signup", &[("password", "password-123")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["msg"].as_str().unwrap().contains("username"), "{body}");

    s.user("carol").await;
    for (user, pass) in [("carol", "wrong-password"), ("nobody", "password-123")] {
        assert_error(
            &s.form("/user/signin", &[("username", user), ("password", pass)])
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
    assert_eq!(meta["data"]["FileName"], "x.txt");
}
