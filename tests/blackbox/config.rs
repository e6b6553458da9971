use std::process::Command;

/// A bad configuration value stops the server with exit status ≠ 0 and one clear line.
#[test]
fn bad_values_exit_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, mentions) in [
        ("--listen", "not-an-address", "--listen"),
        ("--max-file-size", "0", "--max-file-size"),
        ("--max-file-size", "12XB", "--max-file-size"),
        ("--token-ttl", "forever", "--token-ttl"),
        ("--database-url", "ftp://db", "--database-url"),
        ("--public-url", "javascript:alert(1)", "--public-url"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args([flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{flag} {value}: {stderr}"
        );
        assert!(stderr.contains(mentions), "{flag} {value}: {stderr}");
    }
    // Store settings: one line naming the flag, and never a secret put in a URL.
    for (args, mentions) in [
        (vec!["--store", "x=ftp://host/b"], "--store"),
        (
            vec!["--store", "x=s3://AKID:s3cr3t@bucket?endpoint=http://h"],
            "credentials do not belong in the URL",
        ),
        (vec!["--upload-store", "nowhere"], "--upload-store nowhere"),
        (
            vec!["--redis-url", "redis://127.0.0.1:1"],
            "--shared-data-dir",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
        assert!(!stderr.contains("s3cr3t"), "secret echoed: {stderr}");
    }
    // The same through the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .arg("serve")
        .env("CHUNKVAULT_MAX_FILE_SIZE", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

#[test]
fn unusable_database_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("chunkvault: cannot open --database-url"),
        "{stderr}"
    );
}

/// `config check` prints TOML that `--config` takes back (unset settings as comments), and
/// the example file shipped in `deploy/` passes the check.
#[test]
fn config_check_output_is_a_config_file_and_the_example_passes() {
    let dir = tempfile::tempdir().unwrap();
    let check = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(["config", "check"])
            .args(args)
            .env_remove("CHUNKVAULT_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let data = dir.path().to_str().unwrap();
    let printed = check(&[
        "--data-dir",
        data,
        "--store",
        "cold=local:/tmp/cold",
        "--max-file-size",
        "3GiB",
        "--token-ttl",
        "2h",
    ]);
    let table: toml::Table = printed
        .parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{printed}"));
    assert_eq!(table["max_file_size"].as_integer(), Some(3 << 30));
    assert_eq!(table["token_ttl"].as_str(), Some("2h"));
    assert_eq!(
        table["store"].as_array().unwrap()[0].as_str(),
        Some("cold=local:/tmp/cold")
    );
    assert!(
        !table.contains_key("public_url"),
        "unset settings are comments"
    );
    assert!(printed.contains("# configuration is valid"));

    // Fed back as a config file, it gives the same settings.
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, &printed).unwrap();
    let again = check(&["--config", file.to_str().unwrap()]);
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("# read from") && !l.starts_with("# config ="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&again), strip(&printed));

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/chunkvault.example.toml"
    );
    let shown = check(&["--config", example, "--data-dir", data]);
    assert!(shown.contains("instant_upload = \"proof\""), "{shown}");
}

/// `serve --help` groups its flags by concern; `worker`, `migrate` and `fsck` list only the
/// flags they use (and still accept the others, so one config file serves every command).
#[test]
fn each_command_lists_the_flags_it_uses() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_chunkvault"))
            .args(args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let serve = help(&["serve"]);
    for heading in [
        "Network:",
        "Storage:",
        "Uploads and limits:",
        "Accounts and links:",
        "Transfers between stores:",
        "Logging and configuration:",
    ] {
        assert!(serve.contains(heading), "serve --help lacks {heading}");
    }
    let worker = help(&["worker"]);
    assert!(worker.contains("--transfer-to") && worker.contains("--database-url"));
    assert!(!worker.contains("--listen") && !worker.contains("--cors-origins"));
    for cmd in ["migrate", "fsck"] {
        let h = help(&[cmd]);
        assert!(
            h.contains("--store") && h.contains("--database-url"),
            "{cmd}"
        );
        for hidden in [
            "--listen",
            "--cors-origins",
            "--transfer-to",
            "--max-file-size",
        ] {
            assert!(!h.contains(hidden), "{cmd} --help lists {hidden}");
        }
    }
    // Hidden, not refused.
    help(&["fsck", "--listen", "127.0.0.1:1"]);
    let login = help(&["login"]);
    assert!(login.contains("Your user name"), "{login}");
}
