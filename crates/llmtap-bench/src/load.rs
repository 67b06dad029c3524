//! Load generation: open-loop fixed-rate requests (latency measured from the *scheduled* send
//! time, so a stalled path cannot hide its queueing — no coordinated omission), and SSE clients
//! that timestamp every chunk.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::clock::unix_ns;

/// Reads a body to its end, dropping the bytes (bounded memory); false on a body error.
pub(crate) async fn drain<B>(mut body: B) -> bool
where
    B: http_body::Body + Unpin,
{
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return false;
        }
    }
    true
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(http)
}

pub(crate) const CHAT_BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarise the benefits of OpenTelemetry for LLM applications in one sentence."}],"temperature":0.2,"max_tokens":64}"#;
pub(crate) const STREAM_BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarise the benefits of OpenTelemetry for LLM applications in one sentence."}],"temperature":0.2,"max_tokens":64,"stream":true,"stream_options":{"include_usage":true}}"#;

/// A streamed chat request carrying a long agent conversation (~180 KB: a system prompt and 120
/// turns), the shape where parsing and redacting the request copy costs the most. `stream` comes
/// first: the bench upstream looks for it in the first 4 KiB only.
pub(crate) fn long_conversation_body() -> Vec<u8> {
    let mut messages = vec![serde_json::json!({
        "role": "system",
        "content": "You are a careful coding agent. ".repeat(20),
    })];
    for i in 0..120 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let turn = format!(
            "Step {i}: read the file src/lib.rs and explain the ownership model, then propose a patch with tests. "
        );
        messages.push(serde_json::json!({"role": role, "content": turn.repeat(15)}));
    }
    let head = r#"{"stream":true,"stream_options":{"include_usage":true},"model":"gpt-4o-mini","messages":"#;
    let mut body = head.as_bytes().to_vec();
    body.extend_from_slice(&serde_json::to_vec(&messages).unwrap_or_default());
    body.push(b'}');
    body
}

pub(crate) fn chat_request(
    url: &str,
    body: Bytes,
    headers: &[(&str, String)],
) -> anyhow::Result<Request<Full<Bytes>>> {
    let mut b = Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    Ok(b.body(Full::new(body))?)
}

/// Percentiles of a sample, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Pcts {
    pub(crate) n: usize,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) max_us: f64,
}

pub(crate) fn pcts(mut v: Vec<f64>) -> Pcts {
    if v.is_empty() {
        return Pcts::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[idx]
    };
    Pcts {
        n: v.len(),
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        max_us: v[v.len() - 1],
    }
}

/// Result of one fixed-rate run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RateRun {
    pub(crate) target_rps: f64,
    pub(crate) achieved_rps: f64,
    pub(crate) errors: usize,
    /// Requests not sent because `max_in_flight` were already outstanding (path overloaded).
    pub(crate) shed: usize,
    pub(crate) latency: Pcts,
}

/// Longest wait for one non-streaming call (head and body) before it counts as an error: a peer
/// that stops answering under overload must not hang the run.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One non-streaming chat call, body drained; true on a 2xx answer read to its end in time.
pub(crate) async fn one_call(
    client: &HttpClient,
    req: anyhow::Result<Request<Full<Bytes>>>,
) -> bool {
    let Ok(req) = req else {
        return false;
    };
    let call = async {
        match client.request(req).await {
            Ok(resp) => {
                let status = resp.status();
                drain(resp.into_body()).await && status.is_success()
            }
            Err(_) => false,
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or(false)
}

/// Open-loop: request i is due at `start + i/rate`; latency counts from that due time.
pub(crate) async fn fixed_rate(
    client: &HttpClient,
    url: &str,
    headers: &[(&'static str, String)],
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> RateRun {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<f64>>();
    let body = Bytes::from_static(CHAT_BODY.as_bytes());
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut shed = 0;
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            shed += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let client = client.clone();
        let tx = tx.clone();
        let in_flight = Arc::clone(&in_flight);
        let req = chat_request(url, body.clone(), headers);
        let due_std = due.into_std();
        tokio::spawn(async move {
            let ok = one_call(&client, req).await;
            let latency = due_std.elapsed().as_secs_f64() * 1e6;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(ok.then_some(latency));
        });
    }
    drop(tx);
    let mut lat = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(r) = rx.recv().await {
        match r {
            Some(l) => lat.push(l),
            None => errors += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    RateRun {
        target_rps: rate,
        achieved_rps: lat.len() as f64 / elapsed,
        errors,
        shed,
        latency: pcts(lat),
    }
}

/// Concurrency 1: `count` non-streaming calls one after another (the next leaves when the
/// previous answer has been read), as the public proxy boards measure. Latency per call, µs, and
/// the number of failed calls.
pub(crate) async fn serial_calls(
    client: &HttpClient,
    url: &str,
    headers: &[(&'static str, String)],
    count: usize,
) -> (Vec<f64>, usize) {
    let body = Bytes::from_static(CHAT_BODY.as_bytes());
    let mut lat = Vec::with_capacity(count);
    let mut errors = 0;
    for _ in 0..count {
        let req = chat_request(url, body.clone(), headers);
        let start = Instant::now();
        if one_call(client, req).await {
            lat.push(start.elapsed().as_secs_f64() * 1e6);
        } else {
            errors += 1;
        }
    }
    (lat, errors)
}

/// Longest wait for one whole streamed call.
const STREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// Timings of streamed calls.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct StreamRun {
    pub(crate) streams: usize,
    pub(crate) errors: usize,
    /// Request start → first body byte.
    pub(crate) ttfb: Pcts,
    /// Upstream send time of each chunk → its arrival at the client.
    pub(crate) chunk_delay: Pcts,
    /// Chunks whose transit was at least the inter-chunk gap: a proxy that held chunk n until
    /// chunk n+1 arrived would put nearly every chunk here.
    pub(crate) chunks_over_gap: usize,
}

impl StreamRun {
    /// `completed/total`, as the tables show it.
    pub(crate) fn completed_of_total(&self) -> String {
        format!("{}/{}", self.streams - self.errors, self.streams)
    }
}

/// Raw per-stream samples, so runs of one path interleaved with other paths' can be merged
/// before percentiles are taken.
#[derive(Debug, Default)]
pub(crate) struct StreamSamples {
    streams: usize,
    errors: usize,
    ttfb: Vec<f64>,
    delays: Vec<f64>,
}

impl StreamSamples {
    pub(crate) fn merge(&mut self, other: StreamSamples) {
        self.streams += other.streams;
        self.errors += other.errors;
        self.ttfb.extend(other.ttfb);
        self.delays.extend(other.delays);
    }

    pub(crate) fn into_run(self, gap_us: f64) -> StreamRun {
        let chunks_over_gap = self.delays.iter().filter(|d| **d >= gap_us).count();
        StreamRun {
            streams: self.streams,
            errors: self.errors,
            ttfb: pcts(self.ttfb),
            chunk_delay: pcts(self.delays),
            chunks_over_gap,
        }
    }
}

/// `count` streamed calls of `body` (see [`STREAM_BODY`]): `concurrency` clients, each running
/// streams back to back until `count` are done.
pub(crate) async fn stream_samples(
    client: &HttpClient,
    url: &str,
    body: Bytes,
    count: usize,
    concurrency: usize,
    headers: Vec<(&'static str, String)>,
) -> StreamSamples {
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<(f64, Vec<f64>)>>();
    let headers = Arc::new(headers);
    for _ in 0..concurrency {
        let (client, tx, next, headers) = (
            client.clone(),
            tx.clone(),
            Arc::clone(&next),
            Arc::clone(&headers),
        );
        let url = url.to_owned();
        let body = body.clone();
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let call = one_stream(&client, &url, &body, &headers);
                let r = tokio::time::timeout(STREAM_TIMEOUT, call).await;
                let _ = tx.send(r.ok().and_then(Result::ok));
            }
        });
    }
    drop(tx);
    let mut samples = StreamSamples::default();
    while let Some(r) = rx.recv().await {
        samples.streams += 1;
        match r {
            Some((t, d)) => {
                samples.ttfb.push(t);
                samples.delays.extend(d);
            }
            None => samples.errors += 1,
        }
    }
    samples
}

/// One SSE call: (TTFB µs, per-chunk transit µs).
async fn one_stream(
    client: &HttpClient,
    url: &str,
    body: &Bytes,
    headers: &[(&'static str, String)],
) -> anyhow::Result<(f64, Vec<f64>)> {
    let req = chat_request(url, body.clone(), headers)?;
    let start = Instant::now();
    let resp = client.request(req).await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut delays = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let now = unix_ns();
        ttfb.get_or_insert_with(|| start.elapsed().as_secs_f64() * 1e6);
        carry.extend_from_slice(&data);
        // Every complete event in `carry`: find its bench_t stamp.
        while let Some(end) = find(&carry, b"\n\n") {
            if let Some(t) = stamp(&carry[..end]) {
                delays.push(now.saturating_sub(t) as f64 / 1e3);
            }
            carry.drain(..end + 2);
        }
    }
    Ok((ttfb.unwrap_or(0.0), delays))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn stamp(event: &[u8]) -> Option<u64> {
    let key = b"\"bench_t\":";
    let at = find(event, key)? + key.len();
    let digits: Vec<u8> = event[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}
