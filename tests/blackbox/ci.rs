//! Service-backed tests skip under a bare `cargo test` (a developer without Ceph), but never in
//! CI: there a missing service variable fails the test.

use std::process::Command;

/// Runs one test of this binary, exactly, with the S3 endpoint removed from its environment.
fn run_without_s3(ci: bool) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "s3::chunked_upload_download_presign_instant_on_ceph",
        "--nocapture",
    ])
    .env_remove("CHUNKVAULT_TEST_S3_ENDPOINT")
    .env_remove("CI");
    if ci {
        cmd.env("CI", "true");
    }
    cmd.output().unwrap()
}

#[test]
fn a_missing_service_fails_in_ci_and_skips_outside() {
    let outside = run_without_s3(false);
    let said = String::from_utf8_lossy(&outside.stderr);
    assert!(outside.status.success(), "{said}");
    assert!(said.contains("S3 test skipped"), "{said}");

    let in_ci = run_without_s3(true);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&in_ci.stdout),
        String::from_utf8_lossy(&in_ci.stderr)
    );
    assert!(
        !in_ci.status.success(),
        "passed in CI without its service: {said}"
    );
    assert!(
        said.contains("CHUNKVAULT_TEST_S3_ENDPOINT is not set, and CI is"),
        "{said}"
    );
}
