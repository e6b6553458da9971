//! A bounded load test on loopback: many clients uploading (REST parts, classic whole files,
//! instant uploads with proof of ownership), downloading (whole and ranges) and deleting at once
//! against one `chunkvault serve` process, for a fixed time. Every response must succeed, every
//! downloaded byte is checked against its SHA1, the user's file lists must hold exactly what
//! the clients uploaded, and the server's RSS must stay flat. Prints the figures; exits non-zero
//! on any error. Run through `bench/load` (which builds the release binaries).
//!
//!   load BIN [--clients 200] [--users 50] [--seconds 60] [--max-size 1572864] [--rss-limit-mib 192]
#![allow(clippy::disallowed_methods)] // a test driver, not the server: it may block

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures::StreamExt;
use rand::{Rng, RngCore};
use serde_json::{json, Value};
use sha1::Digest;

const CHUNK: usize = 256 * 1024;
const PASSWORD: &str = "load-test-password";

#[derive(Clone)]
struct Stored {
    id: String,
    sha1: String,
    name: String,
    size: usize,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    rng: rand::rngs::StdRng,
    /// Bytes of this client's last upload (for ranges and proofs).
    last: Option<(Vec<u8>, Stored)>,
    max_size: usize,
    serial: u64,
    prefix: String,
}

#[derive(Default)]
struct Totals {
    latencies: Mutex<BTreeMap<&'static str, Vec<f64>>>,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Totals {
    fn record(&self, op: &'static str, took: Duration) {
        let mut l = self.latencies.lock().unwrap();
        l.entry(op).or_default().push(took.as_secs_f64() * 1000.0);
    }
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1::Sha1::digest(data))
}

async fn body(resp: reqwest::Response, want: reqwest::StatusCode) -> Result<Value> {
    let status = resp.status();
    let text = resp.text().await?;
    ensure!(status == want, "HTTP {status} (wanted {want}): {text}");
    Ok(serde_json::from_str(&text)?)
}

impl Client {
    fn new(
        http: &reqwest::Client,
        base: &str,
        token: String,
        seed: u64,
        max_size: usize,
        prefix: String,
    ) -> Client {
        Client {
            http: http.clone(),
            base: base.to_owned(),
            token,
            rng: rand::SeedableRng::seed_from_u64(seed),
            last: None,
            max_size,
            serial: 0,
            prefix,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn content(&mut self) -> (Vec<u8>, String) {
        let size = self.rng.gen_range(1..=self.max_size);
        let mut data = vec![0u8; size];
        self.rng.fill_bytes(&mut data);
        self.serial += 1;
        (data, format!("{}-{}.bin", self.prefix, self.serial))
    }

    /// A new file over the REST API, in parts.
    async fn upload_rest(&mut self, totals: &Totals) -> Result<Stored> {
        let (data, name) = self.content();
        let sha1 = sha1_hex(&data);
        let init = json!({"filename": name, "size": data.len(), "sha1": sha1, "chunk_size": CHUNK});
        let created = body(
            self.req(reqwest::Method::POST, "/uploads")
                .json(&init)
                .send()
                .await?,
            reqwest::StatusCode::CREATED,
        )
        .await?;
        let id = created["data"]["upload_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no upload id: {created}"))?
            .to_owned();
        for (i, part) in data.chunks(CHUNK).enumerate() {
            let path = format!("/uploads/{id}/parts/{}", i + 1);
            body(
                self.req(reqwest::Method::PUT, &path)
                    .body(part.to_vec())
                    .send()
                    .await?,
                reqwest::StatusCode::OK,
            )
            .await?;
        }
        let done = body(
            self.req(reqwest::Method::POST, &format!("/uploads/{id}/complete"))
                .send()
                .await?,
            reqwest::StatusCode::CREATED,
        )
        .await?;
        ensure!(done["data"]["sha1"] == sha1.as_str(), "complete: {done}");
        self.uploaded(totals, data, sha1, &done["data"]["id"], name)
    }

    /// Records a finished upload of `data` as the file with id `id`.
    fn uploaded(
        &mut self,
        totals: &Totals,
        data: Vec<u8>,
        sha1: String,
        id: &Value,
        name: String,
    ) -> Result<Stored> {
        let stored = Stored {
            id: id.as_str().context("no file id")?.to_owned(),
            sha1,
            name,
            size: data.len(),
        };
        totals
            .bytes_up
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.last = Some((data, stored.clone()));
        Ok(stored)
    }

    /// A new file through the tutorial's `/file/upload`.
    async fn upload_classic(&mut self, totals: &Totals) -> Result<Stored> {
        let (data, name) = self.content();
        let sha1 = sha1_hex(&data);
        let part = reqwest::multipart::Part::bytes(data.clone()).file_name(name.clone());
        let form = reqwest::multipart::Form::new().part("file", part);
        let v = body(
            self.req(reqwest::Method::POST, "/file/upload")
                .multipart(form)
                .send()
                .await?,
            reqwest::StatusCode::OK,
        )
        .await?;
        ensure!(v["data"]["FileSha1"] == sha1.as_str(), "upload: {v}");
        // The classic answer has no id: find the file among the newest (names are unique).
        let newest = self.list_page(20).await?;
        let id = match newest.iter().find(|f| f["name"] == name.as_str()) {
            Some(f) => f["id"].clone(),
            None => self
                .list()
                .await?
                .into_iter()
                .find(|f| f["name"] == name.as_str())
                .map(|f| f["id"].clone())
                .ok_or_else(|| anyhow!("{name} is not listed after its upload"))?,
        };
        self.uploaded(totals, data, sha1, &id, name)
    }

    /// The last file again under a new name: instant, after proving ownership.
    async fn upload_instant(&mut self) -> Result<Option<Stored>> {
        let Some((data, _)) = &self.last else {
            return Ok(None);
        };
        let data = data.clone();
        self.serial += 1;
        let name = format!("{}-{}-copy.bin", self.prefix, self.serial);
        let sha1 = sha1_hex(&data);
        let init = json!({"filename": name, "size": data.len(), "sha1": sha1});
        let claim = body(
            self.req(reqwest::Method::POST, "/uploads")
                .json(&init)
                .send()
                .await?,
            reqwest::StatusCode::OK,
        )
        .await?;
        let challenge = &claim["data"]["challenge"];
        let digests: Vec<String> = challenge["ranges"]
            .as_array()
            .ok_or_else(|| anyhow!("no challenge: {claim}"))?
            .iter()
            .map(|r| {
                let (a, b) = (r[0].as_u64().unwrap_or(0), r[1].as_u64().unwrap_or(0));
                hex::encode(sha2::Sha256::digest(&data[a as usize..b as usize]))
            })
            .collect();
        let proof = json!({"challenge": challenge["id"], "digests": digests});
        let linked = body(
            self.req(reqwest::Method::POST, "/uploads/proof")
                .json(&proof)
                .send()
                .await?,
            reqwest::StatusCode::OK,
        )
        .await?;
        ensure!(linked["data"]["instant"] == true, "proof: {linked}");
        Ok(Some(Stored {
            id: linked["data"]["file"]["id"]
                .as_str()
                .context("no file id")?
                .to_owned(),
            sha1,
            name,
            size: data.len(),
        }))
    }

    /// Downloads a whole file, hashing the stream; returns the bytes' SHA1 and length.
    async fn download(&self, f: &Stored, totals: &Totals) -> Result<()> {
        let path = format!("/api/files/{}/content", f.id);
        let resp = self.req(reqwest::Method::GET, &path).send().await?;
        ensure!(
            resp.status() == reqwest::StatusCode::OK,
            "download: {}",
            resp.status()
        );
        let mut hasher = sha1::Sha1::new();
        let mut len = 0usize;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            len += chunk.len();
            hasher.update(&chunk);
        }
        totals.bytes_down.fetch_add(len as u64, Ordering::Relaxed);
        ensure!(len == f.size, "{}: {len} bytes, not {}", f.name, f.size);
        ensure!(
            hex::encode(hasher.finalize()) == f.sha1,
            "{}: corrupted download",
            f.name
        );
        Ok(())
    }

    /// A random range of the last file, checked against its bytes.
    async fn download_range(&mut self, totals: &Totals) -> Result<()> {
        let Some((data, f)) = &self.last else {
            return Ok(());
        };
        let a = self.rng.gen_range(0..data.len());
        let b = self.rng.gen_range(a..data.len());
        let path = format!("/api/files/{}/content", f.id);
        let resp = self
            .req(reqwest::Method::GET, &path)
            .header("range", format!("bytes={a}-{b}"))
            .send()
            .await?;
        ensure!(
            resp.status() == reqwest::StatusCode::PARTIAL_CONTENT,
            "range: {}",
            resp.status()
        );
        let got = resp.bytes().await?;
        totals
            .bytes_down
            .fetch_add(got.len() as u64, Ordering::Relaxed);
        ensure!(
            got[..] == data[a..=b],
            "{}: wrong bytes for {a}-{b}",
            f.name
        );
        Ok(())
    }

    async fn delete(&self, f: &Stored) -> Result<()> {
        body(
            self.req(reqwest::Method::DELETE, &format!("/api/files/{}", f.id))
                .send()
                .await?,
            reqwest::StatusCode::OK,
        )
        .await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Value>> {
        self.list_page(1000).await
    }

    /// The newest `limit` files.
    async fn list_page(&self, limit: u32) -> Result<Vec<Value>> {
        let v = body(
            self.req(reqwest::Method::GET, &format!("/api/files?limit={limit}"))
                .send()
                .await?,
            reqwest::StatusCode::OK,
        )
        .await?;
        Ok(v["data"].as_array().cloned().unwrap_or_default())
    }
}

/// One client's loop until `until`; returns the files it leaves stored.
async fn run_client(mut c: Client, until: Instant, totals: Arc<Totals>) -> Result<Vec<Stored>> {
    let mut mine: Vec<Stored> = Vec::new();
    while Instant::now() < until {
        let roll = c.rng.gen_range(0..100);
        let started = Instant::now();
        let op = match roll {
            0..=29 => {
                mine.push(c.upload_rest(&totals).await.context("REST upload")?);
                "upload (REST parts)"
            }
            30..=44 => {
                mine.push(c.upload_classic(&totals).await.context("classic upload")?);
                "upload (/file/upload)"
            }
            45..=54 => {
                if let Some(f) = c.upload_instant().await.context("instant upload")? {
                    mine.push(f);
                }
                "instant upload + proof"
            }
            55..=84 if !mine.is_empty() => {
                let f = &mine[c.rng.gen_range(0..mine.len())];
                c.download(f, &totals).await.context("download")?;
                "download"
            }
            85..=94 => {
                c.download_range(&totals).await.context("range download")?;
                "range download"
            }
            _ if !mine.is_empty() => {
                let f = mine.swap_remove(c.rng.gen_range(0..mine.len()));
                c.delete(&f).await.context("delete")?;
                if c.last.as_ref().is_some_and(|(_, l)| l.id == f.id) {
                    c.last = None;
                }
                "delete"
            }
            _ => continue,
        };
        totals.record(op, started.elapsed());
    }
    Ok(mine)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .context("usage: load BIN [--clients N] [--users N] [--seconds S]")?;
    let flag = |name: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).context("flag value")?.parse()?),
            None => Ok(default),
        }
    };
    let (clients, users, seconds) = (
        flag("--clients", 200)?,
        flag("--users", 50)?,
        flag("--seconds", 60)?,
    );
    let max_size = flag("--max-size", 1536 * 1024)? as usize;
    // An absolute cap besides "flat": 86–98 MiB measured at 200 clients (2026-12-06; 160–177
    // before the read buffer and write batches were bounded).
    let rss_limit_kib = flag("--rss-limit-mib", 144)? * 1024;

    let dir = tempfile::tempdir()?;
    let mut server = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            // 50 users sign up from one address.
            "--signup-rate",
            "off",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("server.log"))?)
        .spawn()
        .context("start the server")?;
    let pid = server.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().context("stdout")?),
        &mut line,
    )?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow!("server did not start: {line:?}"))?
        .to_owned();
    let mut result = drive(&base, pid, clients, users, seconds, max_size, rss_limit_kib).await;
    // A server that died during the run fails it, whatever the clients saw.
    if let Some(status) = server.try_wait()? {
        result = result.and(Err(anyhow!("the server exited during the run: {status}")));
    }
    let _ = server.kill();
    let _ = server.wait();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    if let Err(e) = result {
        eprintln!("server log (last 20 lines):");
        for l in log
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            eprintln!("  {l}");
        }
        return Err(e);
    }
    ensure!(
        errors.is_empty(),
        "the server logged errors:\n{}",
        errors.join("\n")
    );
    Ok(())
}

async fn drive(
    base: &str,
    pid: u32,
    clients: u64,
    users: u64,
    seconds: u64,
    max_size: usize,
    rss_limit_kib: u64,
) -> Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients as usize)
        .build()?;
    let mut tokens = Vec::new();
    let run = rand::random::<u32>();
    for u in 0..users {
        let name = format!("load{run:x}u{u}");
        let credentials = json!({ "username": name, "password": PASSWORD });
        body(
            http.post(format!("{base}/api/account"))
                .json(&credentials)
                .send()
                .await?,
            reqwest::StatusCode::CREATED,
        )
        .await?;
        let v = body(
            http.post(format!("{base}/api/sessions"))
                .json(&credentials)
                .send()
                .await?,
            reqwest::StatusCode::CREATED,
        )
        .await?;
        tokens.push(v["data"]["token"].as_str().context("token")?.to_owned());
    }

    let totals = Arc::new(Totals::default());
    let samples = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    samples
                        .lock()
                        .unwrap()
                        .push((start.elapsed().as_secs_f64(), kib));
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..clients {
        let token = tokens[(i % users) as usize].clone();
        let c = Client::new(
            &http,
            base,
            token,
            u64::from(run) ^ i,
            max_size,
            format!("c{i}"),
        );
        tasks.push((
            c.token.clone(),
            tokio::spawn(run_client(c, until, totals.clone())),
        ));
    }
    let mut kept: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (token, t) in tasks {
        match t.await? {
            Ok(files) => kept.entry(token).or_default().extend(files),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    sampler.abort();
    if !failures.is_empty() {
        bail!(
            "{} of {clients} clients failed; first: {}",
            failures.len(),
            failures[0]
        );
    }

    // Every user's list holds exactly what its clients kept; every file downloads intact.
    let checks = kept.iter().map(|(token, files)| {
        let c = Client::new(&http, base, token.clone(), 0, max_size, String::new());
        let totals = totals.clone();
        async move {
            let listed = c.list().await?;
            let mut want: Vec<(String, String)> = files
                .iter()
                .map(|f| (f.name.clone(), f.sha1.clone()))
                .collect();
            let mut got: Vec<(String, String)> = listed
                .iter()
                .map(|f| {
                    (
                        f["name"].as_str().unwrap_or_default().to_owned(),
                        f["sha1"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            want.sort();
            got.sort();
            ensure!(
                want == got,
                "a user's file list differs from what was uploaded"
            );
            for f in files {
                c.download(f, &totals).await.context("final verification")?;
            }
            Ok::<usize, anyhow::Error>(files.len())
        }
    });
    let verified: usize = futures::future::try_join_all(checks).await?.iter().sum();

    let samples = samples.lock().unwrap().clone();
    let third = seconds as f64 / 3.0;
    let peak = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0)
    };
    let (early, late) = (peak(0.0, third), peak(2.0 * third, f64::MAX));
    let overall = peak(0.0, f64::MAX);

    let lat = totals.latencies.lock().unwrap();
    let ops: usize = lat.values().map(Vec::len).sum();
    println!(
        "load test: {clients} clients, {users} users, {seconds} s, files up to {} KiB",
        max_size / 1024
    );
    println!(
        "{:<26} {:>8} {:>10} {:>10}",
        "operation", "count", "p50 ms", "p99 ms"
    );
    for (op, v) in lat.iter() {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        println!(
            "{op:<26} {:>8} {:>10.1} {:>10.1}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99)
        );
    }
    let up = totals.bytes_up.load(Ordering::Relaxed) as f64 / 1048576.0;
    let down = totals.bytes_down.load(Ordering::Relaxed) as f64 / 1048576.0;
    println!(
        "{ops} operations, 0 errors; {up:.0} MiB up, {down:.0} MiB down in {elapsed:.1} s ({:.0} ops/s)",
        ops as f64 / elapsed
    );
    println!("{verified} stored files listed and downloaded again at the end: all SHA1s match");
    println!(
        "server RSS: peak {:.1} MiB; first third {:.1} MiB, last third {:.1} MiB ({} samples)",
        overall as f64 / 1024.0,
        early as f64 / 1024.0,
        late as f64 / 1024.0,
        samples.len()
    );
    ensure!(
        overall <= rss_limit_kib,
        "server RSS peaked at {overall} KiB, over the {rss_limit_kib} KiB limit"
    );
    // Flat: the last third's peak within 25% (+16 MiB of allocator slack) of the first's.
    ensure!(
        late as f64 <= early as f64 * 1.25 + 16.0 * 1024.0,
        "server RSS grew: {early} KiB in the first third, {late} KiB in the last"
    );
    Ok(())
}
