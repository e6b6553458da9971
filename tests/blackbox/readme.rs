//! The newcomer's walk: README.md's curl walkthrough and its command-line section, run
//! verbatim and in order against a fresh server, so the docs cannot drift from what works.
//! (Only the server's address is put in; `chunkvault` is this build.)

use std::process::Command;

use crate::support::Server;

const README: &str = include_str!("../../README.md");

/// Every ```sh block of the section under `heading`, in order.
fn block(heading: &str) -> String {
    let at = README
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let mut section = &README[at + heading.len() + 2..];
    if let Some(next) = section.find("\n## ") {
        section = &section[..next];
    }
    let mut out = String::new();
    let mut rest = section;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + "```sh\n".len()..];
        let end = body.find("```").expect("the block ends");
        out.push_str(&body[..end]);
        out.push('\n');
        rest = &body[end + 3..];
    }
    assert!(!out.is_empty(), "no sh block under {heading:?}");
    out
}

#[tokio::test]
async fn readme_walkthrough_and_cli_section_run_as_written() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let curl = block("## Walkthrough with curl");
    let cli = block("## Command-line client");
    assert!(curl.contains("http://127.0.0.1:8080") && cli.contains("http://127.0.0.1:8080"));
    // Files the CLI section names, as a newcomer would have them.
    std::fs::write(
        dir.path().join("big.iso"),
        crate::support::random_bytes(700_000),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("photos")).unwrap();
    for name in ["a.jpg", "b.jpg"] {
        std::fs::write(
            dir.path().join("photos").join(name),
            crate::support::random_bytes(3000),
        )
        .unwrap();
    }
    let script = format!(
        "set -euo pipefail\n{}\n{}\ncmp 笔记.txt copy.txt\ncmp big.iso copy.iso\n",
        curl.replace("http://127.0.0.1:8080", &s.base),
        cli.replace("http://127.0.0.1:8080", &s.base)
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_chunkvault"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(&dir)
                .env("PATH", path)
                .env("CHUNKVAULT_CONFIG_DIR", dir.join("cfg"))
                .env("CHUNKVAULT_PASSWORD", "correct-horse")
                .env_remove("CHUNKVAULT_SERVER")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // Every JSON answer ends its line (curl output does not run into the next).
    assert!(text.contains("\"msg\":\"OK\""), "{text}");
    assert!(text.contains("exists already: signing in"), "{text}");
    assert!(text.contains("deleted old.iso"), "{text}");
}
