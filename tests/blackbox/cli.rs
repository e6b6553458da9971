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

/// Killed mid-upload, the CLI resumes on the next run and re-sends no acknowledged part
/// (counted from the server's log of stored parts).
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some parts are acknowledged, then kill the client outright.
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
    child.kill().unwrap();
    child.wait().unwrap();
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
