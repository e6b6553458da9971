//! The Prometheus metrics: HTTP requests by route template, method and status, latency, part
//! upload time, bytes in and out, store errors, and the engine's own counters (`/metrics`).

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::routes::State;

/// A bounded label for a path: its template in the route table (the OpenAPI document), with
/// every parameter written `{id}`; `unmatched` for any path not in the table. However many
/// paths clients make up, the labels stay as many as the routes.
pub fn route_label(path: &str) -> String {
    match crate::openapi::route_template(path) {
        Some(template) => template
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    "{id}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/"),
        None => "unmatched".to_owned(),
    }
}

/// A bounded label for a method: the ones routes use, `other` for the rest.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 8] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

pub struct Metrics {
    registry: Registry,
    pub(super) requests: IntCounterVec,
    pub(super) duration: HistogramVec,
    pub(super) part_seconds: HistogramVec,
    pub(super) bytes_in: IntCounter,
    pub(super) bytes_out: IntCounter,
    store_errors: IntCounterVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "chunkvault_http_requests_total",
            "HTTP requests by route and status",
        ),
        &["route", "method", "status"],
    )
    .expect("metric");
    let duration = HistogramVec::new(
        HistogramOpts::new(
            "chunkvault_http_request_seconds",
            "Time to the response head, by route",
        ),
        &["route", "method"],
    )
    .expect("metric");
    let part_seconds = HistogramVec::new(
        HistogramOpts::new(
            "chunkvault_part_upload_seconds",
            "Time to store one uploaded part (REST, multipart, tus PATCH), body included",
        )
        .buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]),
        &["protocol"],
    )
    .expect("metric");
    let bytes_in =
        IntCounter::new("chunkvault_http_bytes_in_total", "Request body bytes").expect("metric");
    let bytes_out =
        IntCounter::new("chunkvault_http_bytes_out_total", "Response body bytes").expect("metric");
    let store_errors = IntCounterVec::new(
        Opts::new(
            "chunkvault_backend_errors_total",
            "Failed calls to a backend (database, session store, blob store, broker)",
        ),
        &["backend"],
    )
    .expect("metric");
    for c in [
        Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(duration.clone()),
        Box::new(part_seconds.clone()),
        Box::new(bytes_in.clone()),
        Box::new(bytes_out.clone()),
        Box::new(store_errors.clone()),
    ] {
        registry.register(c).expect("unique metric");
    }
    Metrics {
        registry,
        requests,
        duration,
        part_seconds,
        bytes_in,
        bytes_out,
        store_errors,
    }
});

/// Counts a failed backend call (from the error mapping).
pub fn backend_error(backend: &str) {
    METRICS.store_errors.with_label_values(&[backend]).inc();
}

pub(super) fn part_protocol(method: &str, route: &str) -> Option<&'static str> {
    match (method, route) {
        ("PUT", "/uploads/{id}/parts/{id}") => Some("rest"),
        ("POST", "/file/mpupload/uppart") => Some("mpupload"),
        ("PATCH", "/files/{id}") => Some("tus"),
        _ => None,
    }
}
/// The Prometheus exposition: the HTTP metrics and the engine's own counters.
pub fn render_metrics(state: &State) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut buf)
        .expect("text encoding");
    let mut out = String::from_utf8(buf).expect("utf-8 metrics");
    let stats: std::collections::HashMap<_, _> =
        state.engine.stats().snapshot().into_iter().collect();
    let counter = |out: &mut String, name: &str, help: &str, lines: &[(String, u64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for (labels, v) in lines {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let events = ["opened", "completed", "aborted", "expired"]
        .iter()
        .map(|e| {
            (
                format!("{{event=\"{e}\"}}"),
                stats[format!("sessions_{e}").as_str()],
            )
        })
        .collect::<Vec<_>>();
    counter(
        &mut out,
        "chunkvault_upload_sessions_total",
        "Upload sessions by event",
        &events,
    );
    out.push_str(&format!(
        "# HELP chunkvault_uploads_in_flight Upload bodies being received\n\
         # TYPE chunkvault_uploads_in_flight gauge\n\
         chunkvault_uploads_in_flight {}\n",
        stats["uploads_in_flight"]
    ));
    counter(
        &mut out,
        "chunkvault_instant_uploads_total",
        "Uploads finished at once because the content was stored (秒传)",
        &[(String::new(), stats["instant_hits"])],
    );
    counter(
        &mut out,
        "chunkvault_collision_scans_total",
        "Stored blobs read once for their SHA1 collision-attack verdict",
        &[(String::new(), stats["collision_scans"])],
    );
    counter(
        &mut out,
        "chunkvault_blobs_quarantined_total",
        "Stored blobs found not to hash to their SHA1 and set aside",
        &[(String::new(), stats["quarantined"])],
    );
    out.push_str(
        "# HELP chunkvault_sha1_verify_seconds SHA1 verification before publication\n\
         # TYPE chunkvault_sha1_verify_seconds summary\n",
    );
    out.push_str(&format!(
        "chunkvault_sha1_verify_seconds_sum {}\nchunkvault_sha1_verify_seconds_count {}\n",
        stats["sha1_verify_nanos"] as f64 / 1e9,
        stats["sha1_verifications"]
    ));
    let transfers = ["moved", "noop", "failed"]
        .iter()
        .map(|o| {
            (
                format!("{{outcome=\"{o}\"}}"),
                stats[format!("transfers_{o}").as_str()],
            )
        })
        .collect::<Vec<_>>();
    counter(
        &mut out,
        "chunkvault_transfer_jobs_total",
        "Transfer jobs run by this process, by outcome",
        &transfers,
    );
    out
}
