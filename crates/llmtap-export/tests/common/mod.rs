//! Shared helpers for the llmtap-export integration tests: span counting, a closed port, and
//! two tiny collectors (HTTP/1.1 on a std thread; gRPC with tonic) that record what arrives.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use anyhow::{Context, Result};
use llmtap_export::JsonlReader;
use llmtap_export::proto::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// (lines, spans) in a JSONL file, via the reader; fails on torn or invalid lines.
pub fn count_file(path: &Path) -> Result<(u64, u64)> {
    let mut reader = JsonlReader::open(path)?;
    for item in reader.by_ref() {
        item?;
    }
    let stats = reader.stats();
    anyhow::ensure!(
        stats.invalid_lines == 0 && !stats.torn_last_line,
        "unexpected bad lines: {stats:?}"
    );
    Ok((stats.traces, stats.spans))
}

/// Span names in a JSONL file, in file order.
pub fn span_names(path: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for data in JsonlReader::open(path)? {
        for rs in data?.resource_spans {
            for ss in rs.scope_spans {
                names.extend(ss.spans.into_iter().map(|s| s.name));
            }
        }
    }
    Ok(names)
}

/// One HTTP request as received.
#[derive(Debug, Clone)]
pub struct HttpRecord {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Minimal OTLP/HTTP collector: answers every request `200 OK` with an empty body and records
/// it. HTTP/1.1 with content-length bodies only (what both OTLP clients send).
pub fn http_collector() -> Result<(SocketAddr, Arc<Mutex<Vec<HttpRecord>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink = records.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            thread::spawn(move || {
                let _ = serve_http_connection(stream, &sink);
            });
        }
    });
    Ok((addr, records))
}

fn serve_http_connection(stream: std::net::TcpStream, sink: &Mutex<Vec<HttpRecord>>) -> Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .context("request without content-length")?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(HttpRecord {
                path,
                headers,
                body,
            });
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        writer.flush()?;
    }
}

/// What the gRPC collector received: `(x-test-key metadata, request)` per call.
pub type GrpcRequests = Arc<Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>>;

#[derive(Debug, Default)]
struct GrpcRecorder {
    requests: GrpcRequests,
}

#[tonic::async_trait]
impl TraceService for GrpcRecorder {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let auth = request
            .metadata()
            .get("x-test-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((auth, request.into_inner()));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// gRPC collector on its own runtime thread (so it serves even while a test thread blocks).
/// Records `(x-test-key metadata, request)`.
pub fn grpc_collector() -> Result<(SocketAddr, GrpcRequests)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let recorder = GrpcRecorder::default();
    let requests = recorder.requests.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    // Served with hyper directly: the workspace builds tonic without its `router` feature.
    let service = TraceServiceServer::new(recorder)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    thread::spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper_util::service::TowerToHyperService::new(service),
                    )
                    .await;
                });
            }
        });
    });
    Ok((addr, requests))
}

/// Spans in recorded gRPC requests.
pub fn grpc_span_count(
    requests: &Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>,
) -> usize {
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .flat_map(|(_, r)| r.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum()
}
