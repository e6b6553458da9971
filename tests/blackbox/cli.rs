//! The `chunkvault` client commands against a real server.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;

use crate::support::{random_bytes, sha1_hex, Server};

fn cli(cfg: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args(args)
        .env("CHUNKVAULT_CONFIG_DIR", cfg)
        .env_remove("CHUNKVAULT_SERVER")
        .output()
        .unwrap();
    out
}

#[track_caller]
fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[tokio::test]
async fn login_upload_ls_download_mv_rm() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    ok(&cli(
        &cfg,
        &[
            "login",
            "--server",
            &s.base,
            "-u",
            "cli-user",
            "--password",
            "password-123",
            "--signup",
        ],
    ));
    let a = dir.path().join("季度 报告.bin");
    let b = dir.path().join("b.bin");
    let a_data = random_bytes(1_500_000);
    std::fs::write(&a, &a_data).unwrap();
    std::fs::write(&b, random_bytes(1000)).unwrap();
    let log = ok(&cli(
        &cfg,
        &[
            "upload",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--chunk-size",
            "256KiB",
            "--parallel",
            "3",
        ],
    ));
    assert!(log.contains("季度 报告.bin: uploaded"), "{log}");
    // Again: the server has it, nothing is sent.
    let log = ok(&cli(&cfg, &["upload", a.to_str().unwrap()]));
    assert!(log.contains("instant upload"), "{log}");

    let ls = cli(&cfg, &["ls"]);
    ok(&ls);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(
        listing.contains("季度 报告.bin")
            && listing.contains("b.bin")
            && listing.contains(&sha1_hex(&a_data)),
        "{listing}"
    );

    // Download by name; then by hash into a path with a partial file already there (resumed).
    let out = dir.path().join("copy.bin");
    ok(&cli(
        &cfg,
        &["download", "季度 报告.bin", "-o", out.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&out).unwrap(), a_data);
    let resumed = dir.path().join("resumed.bin");
    std::fs::write(dir.path().join("resumed.bin.part"), &a_data[..600_000]).unwrap();
    ok(&cli(
        &cfg,
        &[
            "download",
            &sha1_hex(&a_data),
            "-o",
            resumed.to_str().unwrap(),
        ],
    ));
    assert_eq!(std::fs::read(&resumed).unwrap(), a_data);
    let server_log = std::fs::read_to_string(&s.log).unwrap();
    assert!(
        server_log.contains("status=206"),
        "the partial file was resumed with a range request"
    );
    // A damaged partial file is detected by the SHA1 and fetched again.
    let damaged = dir.path().join("damaged.bin");
    std::fs::write(dir.path().join("damaged.bin.part"), vec![0u8; 600_000]).unwrap();
    ok(&cli(
        &cfg,
        &[
            "download",
            &sha1_hex(&a_data),
            "-o",
            damaged.to_str().unwrap(),
        ],
    ));
    assert_eq!(std::fs::read(&damaged).unwrap(), a_data);

    ok(&cli(&cfg, &["mv", "b.bin", "renamed.bin"]));
    ok(&cli(&cfg, &["rm", "renamed.bin"]));
    let listing = String::from_utf8_lossy(&cli(&cfg, &["ls"]).stdout).into_owned();
    assert!(
        !listing.contains("b.bin") && !listing.contains("renamed.bin") && listing.contains("季度"),
        "{listing}"
    );
    let missing = cli(&cfg, &["rm", "nothing-here"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no file named"));
}

/// Interrupted mid-upload (Ctrl-C), the CLI says how to resume and exits 130; it resumes on the
/// next run and re-sends no acknowledged part (counted from the server's log of stored parts).
#[tokio::test]
async fn upload_resumes_after_kill_without_resending() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    ok(&cli(
        &cfg,
        &[
            "login",
            "--server",
            &s.base,
            "-u",
            "killed",
            "--password",
            "password-123",
            "--signup",
        ],
    ));
    let token = s.signin("killed").await;
    let path = dir.path().join("big.bin");
    let data = random_bytes(48 * 256 * 1024);
    std::fs::write(&path, &data).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args([
            "upload",
            path.to_str().unwrap(),
            "--chunk-size",
            "256KiB",
            "--parallel",
            "2",
            "--limit-rate",
            "2MiB",
        ])
        .env("CHUNKVAULT_CONFIG_DIR", &cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some parts are acknowledged, then interrupt the client (Ctrl-C).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = loop {
        let (status, list) = s.get(&token, "/uploads").await;
        assert_eq!(status, StatusCode::OK);
        if let Some(up) = list["data"].as_array().and_then(|a| a.first()) {
            if up["received"].as_array().unwrap().len() >= 4 {
                break up["upload_id"].as_str().unwrap().to_owned();
            }
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(
        said.contains("run the same command again to resume"),
        "{said}"
    );
    let (_, st) = s.get(&token, &format!("/uploads/{id}")).await;
    let acknowledged: Vec<u64> = st["data"]["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert!(
        acknowledged.len() < 48,
        "the kill came too late to test anything"
    );

    let log = ok(&cli(
        &cfg,
        &["upload", path.to_str().unwrap(), "--chunk-size", "256KiB"],
    ));
    assert!(log.contains("resuming"), "{log}");
    let stored = std::fs::read_to_string(&s.log).unwrap();
    let mut count = [0u32; 49];
    for line in stored
        .lines()
        .filter(|l| l.contains("part stored") && l.contains(&id))
    {
        let n: usize = line
            .split("part=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        count[n] += 1;
    }
    for (n, c) in count.iter().enumerate().skip(1) {
        assert!(*c >= 1, "part {n} never stored");
    }
    for &n in &acknowledged {
        assert_eq!(count[n as usize], 1, "acknowledged part {n} was sent again");
    }
    let resp = s.download(&token, &sha1_hex(&data)).await;
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha1_hex(&data));
}

fn login(cfg: &Path, base: &str, user: &str) -> String {
    ok(&cli(
        cfg,
        &[
            "login",
            "--server",
            base,
            "-u",
            user,
            "--password",
            "password-123",
            "--signup",
        ],
    ))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn fails(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed: {}", stdout(out));
    stderr(out)
}

/// An argument error names what is missing (all of clap's message, on one line).
#[tokio::test]
async fn argument_errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    for (args, missing) in [
        (&["login"][..], "--username <USERNAME>"),
        (&["upload"][..], "<FILES>..."),
        (&["mv", "onlyone"][..], "<NEW_NAME>"),
    ] {
        let out = cli(&cfg, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(missing), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

/// Following the README in order: an account made elsewhere first, then `login --signup`
/// signs in; a second login needs no --server; whoami says who; logout revokes the token.
#[tokio::test]
async fn signup_login_whoami_logout() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    s.user("readme-alice").await; // as the README's curl walkthrough does
    let err = login(&cfg, &s.base, "readme-alice");
    assert!(err.contains("exists already: signing in"), "{err}");
    let again = cli(
        &cfg,
        &["login", "-u", "readme-alice", "--password", "password-123"],
    );
    ok(&again);
    let who = cli(&cfg, &["whoami"]);
    ok(&who);
    assert_eq!(stdout(&who).trim(), format!("readme-alice on {}", s.base));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.join("credentials.json")).unwrap())
            .unwrap();
    let token = saved["token"].as_str().unwrap().to_owned();
    let err = ok(&cli(&cfg, &["logout"]));
    assert!(err.contains("signed out readme-alice"), "{err}");
    assert!(!cfg.join("credentials.json").exists());
    let (status, _) = s.get(&token, "/api/account").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token is revoked");
    let err = fails(&cli(&cfg, &["ls"]));
    assert!(
        err.contains("not signed in: run `chunkvault login"),
        "{err}"
    );
}

/// A token revoked elsewhere: the error says to sign in again.
#[tokio::test]
async fn a_dead_token_says_how_to_sign_in_again() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &s.base, "revoked");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.join("credentials.json")).unwrap())
            .unwrap();
    let token = saved["token"].as_str().unwrap();
    let resp = s
        .req("DELETE", token, "/api/sessions/current")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let err = fails(&cli(&cfg, &["ls"]));
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("run `chunkvault login"), "{err}");
}

/// `ls | head -1` ends quietly: a closed stdout is not a crash.
#[tokio::test]
async fn a_closed_pipe_ends_quietly() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &s.base, "piped");
    let token = s.signin("piped").await;
    for i in 0..3 {
        s.upload(&token, &format!("f{i}.bin"), random_bytes(100 + i))
            .await;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .arg("ls")
        .env("CHUNKVAULT_CONFIG_DIR", &cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the listing is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// `ls` shows a header, ids and sizes people read; an empty account says so.
#[tokio::test]
async fn ls_reads_like_a_listing() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &s.base, "lister");
    let empty = cli(&cfg, &["ls"]);
    ok(&empty);
    assert_eq!(stdout(&empty), "");
    assert!(
        stderr(&empty).contains("no files yet"),
        "{}",
        stderr(&empty)
    );
    let token = s.signin("lister").await;
    s.upload(&token, "big.bin", random_bytes(1_572_864)).await;
    let out = cli(&cfg, &["ls"]);
    ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SIZE") && lines[0].ends_with("NAME"),
        "{text}"
    );
    let id = s.files(&token).await[0]["id"].as_str().unwrap().to_owned();
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("1.5 MiB") && lines[1].ends_with("big.bin"),
        "{text}"
    );
}

/// One name or one content under two files: the CLI refuses, naming the files by id, and
/// does nothing; the id picks one.
#[tokio::test]
async fn ambiguous_names_and_hashes_are_refused() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &s.base, "twins");
    let token = s.signin("twins").await;
    let x = random_bytes(2000);
    s.upload(&token, "same.bin", x.clone()).await;
    s.upload(&token, "same.bin", random_bytes(3000)).await;
    s.upload(&token, "other.bin", x.clone()).await;
    let files = s.files(&token).await;
    assert_eq!(files.len(), 3);

    let err = fails(&cli(&cfg, &["rm", "same.bin"]));
    assert!(err.contains("2 files named \"same.bin\""), "{err}");
    let err = fails(&cli(&cfg, &["rm", &sha1_hex(&x)]));
    assert!(err.contains("2 files with sha1"), "{err}");
    for f in files.iter().filter(|f| f["sha1"] == sha1_hex(&x)) {
        assert!(err.contains(f["id"].as_str().unwrap()), "{err}");
    }
    let out = dir.path().join("x.bin");
    fails(&cli(
        &cfg,
        &["download", "same.bin", "-o", out.to_str().unwrap()],
    ));
    assert_eq!(s.files(&token).await.len(), 3, "nothing was deleted");

    // One unknown name among several deletes nothing either.
    let err = fails(&cli(&cfg, &["rm", "other.bin", "nope.bin"]));
    assert!(err.contains("no file named \"nope.bin\""), "{err}");
    assert_eq!(s.files(&token).await.len(), 3);

    let pick = files.iter().find(|f| f["name"] == "other.bin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&cli(&cfg, &["rm", &pick]));
    let left = s.files(&token).await;
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|f| f["id"] != pick.as_str()));
}

/// `download` does not replace a file that is there, unless told to.
#[tokio::test]
async fn download_refuses_to_overwrite_without_force() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &s.base, "careful");
    let token = s.signin("careful").await;
    let data = random_bytes(5000);
    s.upload(&token, "keep.bin", data.clone()).await;
    let out = dir.path().join("local.bin");
    std::fs::write(&out, b"precious").unwrap();
    let err = fails(&cli(
        &cfg,
        &["download", "keep.bin", "-o", out.to_str().unwrap()],
    ));
    assert!(err.contains("exists: pass --force"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    ok(&cli(
        &cfg,
        &[
            "download",
            "keep.bin",
            "-o",
            out.to_str().unwrap(),
            "--force",
        ],
    ));
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

/// `share` prints a link that downloads the file without a token; `uploads` lists an
/// unfinished upload and cancels it.
#[tokio::test]
async fn share_and_unfinished_uploads() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &s.base, "sharer");
    let token = s.signin("sharer").await;
    let data = random_bytes(7000);
    s.upload(&token, "shared.bin", data.clone()).await;
    let out = cli(&cfg, &["share", "shared.bin"]);
    let err = ok(&out);
    assert!(err.contains("until"), "{err}");
    let url = stdout(&out).trim().to_owned();
    let body = reqwest::get(&url).await.unwrap();
    assert_eq!(body.status(), StatusCode::OK, "{url}");
    assert_eq!(body.bytes().await.unwrap().as_ref(), &data[..]);

    let none = cli(&cfg, &["uploads"]);
    ok(&none);
    assert!(stderr(&none).contains("no unfinished uploads"));
    let big = random_bytes(600_000);
    let (status, created) = s
        .create_upload(&token, "half.bin", &big, Some(262_144))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["data"]["upload_id"].as_str().unwrap().to_owned();
    let (status, _) = s.put_part(&token, &id, 1, 262_144, &big).await;
    assert_eq!(status, StatusCode::OK);
    let listed = cli(&cfg, &["uploads"]);
    ok(&listed);
    let text = stdout(&listed);
    assert!(
        text.contains(&id) && text.contains("256.0 KiB of 585.9 KiB") && text.contains("half.bin"),
        "{text}"
    );
    let err = ok(&cli(&cfg, &["uploads", "--cancel", &id]));
    assert!(err.contains(&format!("cancelled {id}")), "{err}");
    let (status, _) = s.get(&token, &format!("/uploads/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A 503 with `Retry-After` on a part: the CLI says it is retrying and waits as long as the
/// server asked before sending the part again. A proxy in front of a real server answers the
/// first attempt at one part with `503 Retry-After: 2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_said() {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;
    use warp::Filter;

    let s = Server::start();
    let upstream = s.base.clone();
    // (part path, when it arrived, whether it was refused)
    let seen: Arc<Mutex<Vec<(String, Instant, bool)>>> = Arc::default();
    let proxy = {
        let seen = seen.clone();
        let client = reqwest::Client::new();
        warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let (seen, client, upstream) = (seen.clone(), client.clone(), upstream.clone());
                    async move {
                        let path = path.as_str().to_owned();
                        if method == warp::http::Method::PUT && path.ends_with("/parts/2") {
                            let mut seen = seen.lock().unwrap();
                            let first = !seen.iter().any(|(p, _, _)| *p == path);
                            seen.push((path.clone(), Instant::now(), first));
                            if first {
                                return warp::http::Response::builder()
                                    .status(503)
                                    .header("retry-after", "2")
                                    .header("content-type", "application/json")
                                    .body(
                                        r#"{"code":15031,"msg":"service unavailable","data":null}"#
                                            .as_bytes()
                                            .to_vec(),
                                    )
                                    .unwrap();
                            }
                        }
                        let url = if query.is_empty() {
                            format!("{upstream}{path}")
                        } else {
                            format!("{upstream}{path}?{query}")
                        };
                        // warp speaks http 0.2, reqwest http 1: cross by bytes.
                        let method =
                            reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
                        let mut req = client.request(method, url).body(body);
                        for (k, v) in &headers {
                            if k != "host" && k != "content-length" {
                                req = req.header(k.as_str(), v.as_bytes());
                            }
                        }
                        let resp = req.send().await.unwrap();
                        let mut out =
                            warp::http::Response::builder().status(resp.status().as_u16());
                        for (k, v) in resp.headers() {
                            if k != "content-length" && k != "transfer-encoding" {
                                out = out.header(k.as_str(), v.as_bytes());
                            }
                        }
                        out.body(resp.bytes().await.unwrap().to_vec()).unwrap()
                    }
                },
            )
    };
    let (addr, serve) = warp::serve(proxy).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(serve);
    let via = format!("http://{addr}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    login(&cfg, &via, "patient");
    let path = dir.path().join("three-parts.bin");
    let data = random_bytes(3 * 262_144);
    std::fs::write(&path, &data).unwrap();
    let out = tokio::task::spawn_blocking({
        let (cfg, path) = (cfg.clone(), path.clone());
        move || {
            cli(
                &cfg,
                &[
                    "upload",
                    path.to_str().unwrap(),
                    "--chunk-size",
                    "256KiB",
                    "--parallel",
                    "1",
                ],
            )
        }
    })
    .await
    .unwrap();
    let err = ok(&out);
    assert!(
        err.contains("part 2: 503") && err.contains("retrying in 2.0 s (try 2 of 8)"),
        "{err}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let waited = seen[1].1 - seen[0].1;
    assert!(
        waited >= std::time::Duration::from_millis(1900),
        "the retry came after {waited:?}, not the 2 s asked"
    );
    let token = s.signin("patient").await;
    let resp = s.download(&token, &sha1_hex(&data)).await;
    assert_eq!(sha1_hex(&resp.bytes().await.unwrap()), sha1_hex(&data));
}

/// Each way of pointing the client at the wrong thing gets a line saying what is probably wrong:
/// TLS against a plain-HTTP port, nothing listening, another web server, a path after the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_server_gets_a_hint() {
    use std::io::{Read, Write};
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let addr = s.base.trim_start_matches("http://").to_owned();
    // Another web server: plain text for every request.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in other.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 9\r\nConnection: close\r\n\r\nIt works!",
            );
        }
    });
    // Nothing listening: a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cases = [
        (format!("https://{addr}"), "use http:// instead of https://"),
        (
            format!("http://{closed}"),
            "cannot connect: is the server running",
        ),
        (format!("http://{other_addr}"), "without ChunkVault's JSON"),
        (
            format!("{}/chunkvault", s.base),
            "the server has no such route",
        ),
    ];
    for (server, hint) in cases {
        let out = cli(
            &cfg,
            &[
                "login",
                "--server",
                &server,
                "-u",
                "someone",
                "--password",
                "password-123",
            ],
        );
        let said = fails(&out);
        assert!(said.contains(hint), "{server}: {said}");
        assert_eq!(
            said.lines().count(),
            2,
            "one error line and one hint: {said}"
        );
    }
}
