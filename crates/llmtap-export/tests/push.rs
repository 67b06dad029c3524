//! `resend::push_file`: a JSONL file re-sent to a live collector over each protocol, and the
//! documented error against a closed port.

mod common;

use std::path::Path;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use llmtap_export::proto::ExportTraceServiceRequest;
use llmtap_export::{
    BatchSettings, JsonlConfig, OtlpConfig, OtlpOverrides, OtlpProtocol, Pipeline,
};
use llmtap_export::{PushError, PushOptions, push_file};
use opentelemetry::trace::{Span as _, Tracer as _};
use prost::Message as _;

const SPANS: u64 = 37;

/// A real trace file: `SPANS` spans over several lines (batches of at most 5).
fn write_file(dir: &Path) -> Result<std::path::PathBuf> {
    let path = dir.join("traces.jsonl");
    let mut cfg = JsonlConfig::new(&path);
    cfg.batch = BatchSettings {
        max_queue_size: 1_024,
        max_export_batch_size: 5,
        scheduled_delay: Duration::from_millis(5),
    };
    let pipeline = Pipeline::builder()
        .service_name("pushed")
        .jsonl(Some(cfg))
        .build()?;
    let tracer = pipeline.tracer("push-test");
    for i in 0..SPANS {
        tracer.start(format!("span-{i}")).end();
    }
    pipeline.shutdown(Duration::from_secs(10));
    let (lines, spans) = common::count_file(&path)?;
    assert_eq!(spans, SPANS);
    assert!(lines >= 8, "several lines expected, got {lines}");
    Ok(path)
}

fn config(endpoint: String, protocol: OtlpProtocol) -> Result<OtlpConfig> {
    let env: [(&str, &str); 1] = [("OTEL_EXPORTER_OTLP_HEADERS", "x-test-key=push")];
    Ok(OtlpConfig::resolve(
        &env,
        &OtlpOverrides {
            endpoint: Some(endpoint),
            protocol: Some(protocol),
        },
    )?)
}

fn request_spans(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

async fn push_http(protocol: OtlpProtocol) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = write_file(dir.path())?;
    let (addr, records) = common::http_collector()?;
    let cfg = config(format!("http://{addr}"), protocol)?;
    let mut progress_calls = 0;
    let report = push_file(
        &path,
        &cfg,
        PushOptions {
            spans_per_request: 10,
        },
        |_| progress_calls += 1,
    )
    .await?;
    assert_eq!(report.spans_sent, SPANS);
    assert_eq!((report.spans_failed, report.spans_rejected), (0, 0));
    assert_eq!(report.read.spans, SPANS);
    assert_eq!(report.read.invalid_lines, 0);
    assert!(report.requests >= 3, "{report:?}");

    let recorded = records.lock().unwrap_or_else(PoisonError::into_inner);
    assert_eq!(recorded.len() as u64, report.requests);
    assert_eq!(progress_calls, report.requests);
    let mut received = 0;
    for rec in recorded.iter() {
        assert_eq!(rec.path, "/v1/traces");
        assert_eq!(rec.header("x-test-key"), Some("push"));
        let req = match protocol {
            OtlpProtocol::HttpJson => {
                assert_eq!(rec.header("content-type"), Some("application/json"));
                serde_json::from_slice::<ExportTraceServiceRequest>(&rec.body)?
            }
            _ => {
                assert_eq!(rec.header("content-type"), Some("application/x-protobuf"));
                ExportTraceServiceRequest::decode(rec.body.as_slice())?
            }
        };
        received += request_spans(&req);
    }
    assert_eq!(received, SPANS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_file_http_protobuf() -> Result<()> {
    push_http(OtlpProtocol::HttpProtobuf).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_file_http_json() -> Result<()> {
    push_http(OtlpProtocol::HttpJson).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_file_grpc() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = write_file(dir.path())?;
    let (addr, requests) = common::grpc_collector()?;
    let cfg = config(format!("http://{addr}"), OtlpProtocol::Grpc)?;
    let report = push_file(&path, &cfg, PushOptions::default(), |_| {}).await?;
    assert_eq!(report.spans_sent, SPANS);
    assert_eq!(report.spans_failed, 0);
    assert_eq!(report.requests, 1, "37 spans fit one 512-span request");
    assert_eq!(common::grpc_span_count(&requests) as u64, SPANS);
    let recorded = requests.lock().unwrap_or_else(PoisonError::into_inner);
    let (key, req) = recorded.first().context("one request")?;
    assert_eq!(key.as_deref(), Some("push"));
    // Resources travel as written in the file.
    let service = req
        .resource_spans
        .first()
        .and_then(|rs| rs.resource.as_ref())
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone());
    assert_eq!(
        service,
        Some(llmtap_export::proto::any_value::Value::StringValue(
            "pushed".into()
        ))
    );
    Ok(())
}

async fn push_closed(protocol: OtlpProtocol) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = write_file(dir.path())?;
    let port = common::closed_port()?;
    let cfg = config(format!("http://127.0.0.1:{port}"), protocol)?;
    let t = Instant::now();
    let err = push_file(&path, &cfg, PushOptions::default(), |_| {})
        .await
        .expect_err("nothing listens on the port");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    assert_eq!(err.kind(), "unreachable", "{err}");
    match err {
        PushError::Unreachable {
            endpoint, report, ..
        } => {
            assert!(endpoint.contains(&port.to_string()), "{endpoint}");
            assert_eq!(report.spans_sent, 0);
            assert_eq!(report.requests, 0);
            assert_eq!(
                report.spans_failed, SPANS,
                "every span is accounted as failed"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_file_to_closed_port_is_unreachable_http() -> Result<()> {
    push_closed(OtlpProtocol::HttpProtobuf).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_file_to_closed_port_is_unreachable_grpc() -> Result<()> {
    push_closed(OtlpProtocol::Grpc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_file_missing_file_is_a_read_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = config("http://127.0.0.1:1".to_owned(), OtlpProtocol::HttpProtobuf)?;
    let err = push_file(
        &dir.path().join("nope.jsonl"),
        &cfg,
        PushOptions::default(),
        |_| {},
    )
    .await
    .expect_err("missing file");
    assert_eq!(err.kind(), "read_open");
    Ok(())
}
