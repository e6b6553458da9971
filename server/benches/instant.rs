//! Load generator for instant upload (秒传): many clients `POST /uploads` content the server
//! already holds, for a fixed time; prints hits per second and latency percentiles.
//! Run by `bench/run`, which starts the server and sets:
//! CHUNKVAULT_BENCH_URL, _TOKEN, _SHA1, _SIZE, and optionally _CLIENTS (16), _SECONDS (10).
//! With CHUNKVAULT_BENCH_FILE (the content's path) the server is expected to ask for proof of
//! ownership: each hit is `POST /uploads`, the client's SHA-256 of the challenged ranges (read
//! from memory), and `POST /uploads/proof`; its latency is both requests.

use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run bench/run)"))
}

#[tokio::main]
async fn main() {
    let Ok(base) = std::env::var("CHUNKVAULT_BENCH_URL") else {
        eprintln!("instant: CHUNKVAULT_BENCH_URL not set; run bench/run, which starts a server");
        return;
    };
    let token = env("CHUNKVAULT_BENCH_TOKEN");
    let sha1 = env("CHUNKVAULT_BENCH_SHA1");
    let size: u64 = env("CHUNKVAULT_BENCH_SIZE").parse().unwrap();
    let clients: usize = std::env::var("CHUNKVAULT_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let seconds: u64 = std::env::var("CHUNKVAULT_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // The content, for answering challenges (proof mode).
    let content = match std::env::var("CHUNKVAULT_BENCH_FILE") {
        Ok(p) => Some(std::sync::Arc::new(
            tokio::fs::read(p).await.expect("CHUNKVAULT_BENCH_FILE"),
        )),
        Err(_) => None,
    };
    let http = reqwest::Client::new();
    let body =
        serde_json::json!({ "filename": "instant.bin", "size": size, "sha1": sha1 }).to_string();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, base, token, body, content) = (
                http.clone(),
                base.clone(),
                token.clone(),
                body.clone(),
                content.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let resp = http
                        .post(format!("{base}/uploads"))
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => {
                            let mut v: serde_json::Value = r.json().await.unwrap_or_default();
                            if let (Some(content), true) =
                                (&content, v["data"]["challenge"].is_object())
                            {
                                let answer = serde_json::json!({
                                    "challenge": v["data"]["challenge"]["id"],
                                    "digests": digests(content, &v["data"]["challenge"]["ranges"]),
                                });
                                v = match http
                                    .post(format!("{base}/uploads/proof"))
                                    .bearer_auth(&token)
                                    .json(&answer)
                                    .send()
                                    .await
                                {
                                    Ok(r) if r.status().is_success() => {
                                        r.json().await.unwrap_or_default()
                                    }
                                    _ => serde_json::Value::Null,
                                };
                            }
                            if v["data"]["instant"] == true {
                                latencies.push(t.elapsed());
                            } else {
                                errors += 1;
                            }
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let start = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let mode = if content.is_some() {
        "proof of ownership"
    } else {
        "trusted"
    };
    println!(
        "instant upload ({mode}): {} hits in {:.1} s = {:.0}/s with {clients} clients; p50 {:.2} ms, p99 {:.2} ms; {errors} errors",
        all.len(),
        elapsed,
        all.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
}

/// SHA-256 (hex) of each `[start, end)` range of a challenge.
fn digests(content: &[u8], ranges: &serde_json::Value) -> Vec<String> {
    use sha2::Digest;
    ranges
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let (s, e) = (
                        r[0].as_u64().unwrap() as usize,
                        r[1].as_u64().unwrap() as usize,
                    );
                    hex::encode(sha2::Sha256::digest(&content[s..e]))
                })
                .collect()
        })
        .unwrap_or_default()
}
