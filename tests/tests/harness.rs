//! Self-tests of the test harness: the fake collector really receives what real OTLP exporters
//! send over all three protocols, the tree comparator passes on the right golden and fails on
//! each wrong one for the right reason, and rotel (a real collector) sees our spans with their
//! parent links, directly and as a hop in front of the fake collector.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use anyhow::{Context as _, Result};
use llmtap_tests::rotel::{ForwardProtocol, Rotel, RotelOptions};
use llmtap_tests::spans::hex;
use llmtap_tests::tree::ExpectedForest;
use llmtap_tests::{
    FakeCollector, OtlpProtocol, RecordedSpan, SpanForest, assert_span_forest, check_span_forest,
    closed_port, jsonl,
};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{
    Compression, Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _,
    WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

// Test-only attribute keys (not gen_ai: the harness must not depend on the product vocabulary).
const AGENT: &str = "llmtap.test.agent";
const STEP: &str = "llmtap.test.step";
const TOKENS: &str = "llmtap.test.tokens";
const RATIO: &str = "llmtap.test.ratio";
const CACHED: &str = "llmtap.test.cached";
const TOOL_ARGS: &str = "llmtap.test.tool.args";

const SERVICE: &str = "llmtap-harness";
const WAIT: Duration = Duration::from_secs(20);
const GOLDEN: &str = "agent_run.json";
const AGENT_RUN_SPANS: usize = 6;

/// Emits the tree `agent_run.json` describes through `exporter` and flushes it. Returns the
/// trace id (hex).
async fn emit_agent_run(exporter: SpanExporter) -> Result<String> {
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder_empty().with_service_name(SERVICE).build())
        .build();
    let tracer = provider.tracer("llmtap-tests");

    let planner = tracer
        .span_builder("invoke_agent planner")
        .with_kind(SpanKind::Internal)
        .with_attributes([KeyValue::new(AGENT, "planner")])
        .start(&tracer);
    let trace_id = planner.span_context().trace_id().to_string();
    let planner_cx = Context::current_with_span(planner);

    let mut first = tracer
        .span_builder("chat gpt-4o")
        .with_kind(SpanKind::Client)
        .with_attributes([KeyValue::new(STEP, 1), KeyValue::new(TOKENS, 12)])
        .start_with_context(&tracer, &planner_cx);
    first.set_status(Status::Ok);
    first.end();

    let researcher = tracer
        .span_builder("invoke_agent researcher")
        .with_kind(SpanKind::Internal)
        .with_attributes([KeyValue::new(AGENT, "researcher")])
        .start_with_context(&tracer, &planner_cx);
    let researcher_cx = planner_cx.with_span(researcher);
    let mut failed = tracer
        .span_builder("chat gpt-4o")
        .with_kind(SpanKind::Client)
        .with_attributes([KeyValue::new(STEP, 2), KeyValue::new(TOKENS, 7)])
        .start_with_context(&tracer, &researcher_cx);
    failed.set_status(Status::error("upstream 500"));
    failed.end();
    tracer
        .span_builder("execute_tool search")
        .with_kind(SpanKind::Internal)
        .with_attributes([
            KeyValue::new(STEP, 3),
            KeyValue::new(TOOL_ARGS, r#"{"k":3,"q":"otel"}"#),
        ])
        .start_with_context(&tracer, &researcher_cx)
        .end();
    researcher_cx.span().end();

    tracer
        .span_builder("chat gpt-4o")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new(STEP, 4),
            KeyValue::new(TOKENS, 30),
            KeyValue::new(RATIO, 0.5),
            KeyValue::new(CACHED, true),
        ])
        .start_with_context(&tracer, &planner_cx)
        .end();
    planner_cx.span().end();

    // shutdown() blocks until the batch is exported; keep it off the async workers.
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await?
        .context("tracer provider shutdown (export) failed")?;
    Ok(trace_id)
}

fn grpc_exporter(endpoint: String) -> Result<SpanExporter> {
    Ok(SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()?)
}

fn http_exporter(traces_url: String, protocol: Protocol) -> Result<SpanExporter> {
    Ok(SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(traces_url)
        .with_timeout(Duration::from_secs(5))
        .build()?)
}

fn assert_all_came_over(spans: &[RecordedSpan], protocol: OtlpProtocol) {
    assert!(
        spans.iter().all(|s| s.protocol == Some(protocol)),
        "every span should have arrived over {protocol}"
    );
}

// ---- fake collector: three protocols ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_collector_receives_grpc_with_gzip_and_metadata() -> Result<()> {
    let collector = FakeCollector::start().await;
    let mut metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::new();
    metadata.insert("x-harness", "grpc".parse()?);
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(collector.grpc_endpoint())
        .with_compression(Compression::Gzip)
        .with_metadata(metadata)
        .build()?;
    let trace_id = emit_agent_run(exporter).await?;

    let spans = collector.wait_for_spans(AGENT_RUN_SPANS, WAIT).await?;
    assert_all_came_over(&spans, OtlpProtocol::Grpc);
    assert!(spans.iter().all(|s| s.trace_id() == trace_id));
    let requests = collector.requests();
    assert!(requests.iter().all(|r| r.gzip), "exporter was set to gzip");
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("x-harness").is_some_and(|v| v == "grpc")),
        "gRPC metadata should be recorded as headers"
    );
    assert_span_forest(&spans, GOLDEN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_collector_receives_http_protobuf_with_gzip_and_headers() -> Result<()> {
    let collector = FakeCollector::start().await;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(collector.http_traces_url())
        .with_compression(Compression::Gzip)
        .with_headers(HashMap::from([("x-harness".into(), "proto".into())]))
        .build()?;
    emit_agent_run(exporter).await?;

    let spans = collector.wait_for_spans(AGENT_RUN_SPANS, WAIT).await?;
    assert_all_came_over(&spans, OtlpProtocol::HttpProtobuf);
    let requests = collector.requests();
    assert!(requests.iter().all(|r| r.gzip), "exporter was set to gzip");
    assert!(
        requests
            .iter()
            .all(|r| r.headers.get("x-harness").is_some_and(|v| v == "proto"))
    );
    assert_span_forest(&spans, GOLDEN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_collector_receives_http_json() -> Result<()> {
    let collector = FakeCollector::start().await;
    emit_agent_run(http_exporter(
        collector.http_traces_url(),
        Protocol::HttpJson,
    )?)
    .await?;

    let spans = collector.wait_for_spans(AGENT_RUN_SPANS, WAIT).await?;
    assert_all_came_over(&spans, OtlpProtocol::HttpJson);
    assert!(collector.requests().iter().all(|r| !r.gzip));
    assert_span_forest(&spans, GOLDEN);
    Ok(())
}

/// Sends one raw HTTP/1.1 request and returns (status, body). Raw on purpose: these requests are
/// the malformed or unusual ones no exporter would send.
async fn raw_post(
    collector: &FakeCollector,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    let addr = collector.http_addr();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, v) in headers {
        request.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let response = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(&request)?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out)?;
        Ok(out)
    })
    .await??;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// One OTLP/JSON request with 64-bit ints written as JSON numbers, which the spec says
/// receivers must accept as well as strings.
const JSON_WITH_NUMBER_INTS: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"raw"}}]},"scopeSpans":[{"scope":{"name":"raw"},"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"chat raw","kind":3,"startTimeUnixNano":1700000000000000000,"endTimeUnixNano":"1700000000500000000","attributes":[{"key":"n","value":{"intValue":42}},{"key":"s","value":{"intValue":"43"}}],"unknownField":"receivers must ignore it"}]}]}]}"#;

#[tokio::test]
async fn fake_collector_accepts_number_ints_and_gzip_json() -> Result<()> {
    let collector = FakeCollector::start().await;
    let (status, _) = raw_post(
        &collector,
        "/v1/traces",
        &[("content-type", "application/json")],
        JSON_WITH_NUMBER_INTS.as_bytes(),
    )
    .await?;
    assert_eq!(status, 200);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(JSON_WITH_NUMBER_INTS.as_bytes())?;
    let (status, body) = raw_post(
        &collector,
        "/v1/traces",
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        &gz.finish()?,
    )
    .await?;
    assert_eq!(status, 200, "{body}");

    let spans = collector.wait_for_spans(2, WAIT).await?;
    for s in &spans {
        assert_eq!(s.name(), "chat raw");
        assert_eq!(s.span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(s.span.end_time_unix_nano, 1_700_000_000_500_000_000);
        assert_eq!(s.attr_i64("n"), Some(42));
        assert_eq!(s.attr_i64("s"), Some(43));
        assert_eq!(s.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.parent_span_id(), None);
    }
    let gzip_flags: Vec<bool> = collector.requests().iter().map(|r| r.gzip).collect();
    assert_eq!(gzip_flags, [false, true]);
    Ok(())
}

#[tokio::test]
async fn fake_collector_rejects_bad_requests_without_recording() -> Result<()> {
    let collector = FakeCollector::start().await;
    let json = [("content-type", "application/json")];
    assert_eq!(raw_post(&collector, "/v1/logs", &json, b"{}").await?.0, 404);
    assert_eq!(
        raw_post(
            &collector,
            "/v1/traces",
            &[("content-type", "text/plain")],
            b"x"
        )
        .await?
        .0,
        415
    );
    assert_eq!(
        raw_post(&collector, "/v1/traces", &json, b"{not json")
            .await?
            .0,
        400
    );
    let gz_json = [
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ];
    assert_eq!(
        raw_post(&collector, "/v1/traces", &gz_json, b"not gzip")
            .await?
            .0,
        400
    );
    let proto = [("content-type", "application/x-protobuf")];
    assert_eq!(
        raw_post(&collector, "/v1/traces", &proto, b"\xff\xff\xff")
            .await?
            .0,
        400
    );
    assert!(collector.requests().is_empty());
    assert_eq!(collector.rejected_count(), 4);
    Ok(())
}

// ---- fake collector: refusals -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_grpc_exports_are_retried_and_not_recorded() -> Result<()> {
    let collector = FakeCollector::start().await;
    collector.refuse_with(503);
    // The export fails after its retries; what matters here is what the collector saw.
    let _ = emit_agent_run(grpc_exporter(collector.grpc_endpoint())?).await;
    assert!(
        collector.refused_count() >= 2,
        "UNAVAILABLE is retryable, so the exporter should have tried more than once; refused {}",
        collector.refused_count()
    );
    assert!(collector.requests().is_empty());

    collector.accept();
    emit_agent_run(grpc_exporter(collector.grpc_endpoint())?).await?;
    let spans = collector.wait_for_spans(AGENT_RUN_SPANS, WAIT).await?;
    assert_eq!(
        spans.len(),
        AGENT_RUN_SPANS,
        "only the accepted run is recorded"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_next_lets_a_retry_through() -> Result<()> {
    let collector = FakeCollector::start().await;
    collector.refuse_next(1, 503);
    emit_agent_run(http_exporter(
        collector.http_traces_url(),
        Protocol::HttpBinary,
    )?)
    .await?;
    let spans = collector.wait_for_spans(AGENT_RUN_SPANS, WAIT).await?;
    assert_eq!(collector.refused_count(), 1);
    assert_eq!(
        spans.len(),
        AGENT_RUN_SPANS,
        "the retried batch arrives once"
    );
    assert_span_forest(&spans, GOLDEN);
    Ok(())
}

#[tokio::test]
async fn refusal_status_reaches_http_clients() -> Result<()> {
    let collector = FakeCollector::start().await;
    collector.refuse_with(429);
    let json = [("content-type", "application/json")];
    let body = JSON_WITH_NUMBER_INTS.as_bytes();
    assert_eq!(
        raw_post(&collector, "/v1/traces", &json, body).await?.0,
        429
    );
    collector.refuse_with(503);
    assert_eq!(
        raw_post(&collector, "/v1/traces", &json, body).await?.0,
        503
    );
    collector.wait_for_refusals(2, WAIT).await?;
    assert!(collector.requests().is_empty());
    collector.accept();
    assert_eq!(
        raw_post(&collector, "/v1/traces", &json, body).await?.0,
        200
    );
    assert_eq!(collector.requests().len(), 1);
    assert_eq!(collector.refused_count(), 2);
    Ok(())
}

#[tokio::test]
async fn wait_for_spans_times_out_with_a_useful_error() {
    let collector = FakeCollector::start().await;
    let err = collector
        .wait_for_spans(1, Duration::from_millis(100))
        .await
        .expect_err("nothing was sent");
    assert!(err.to_string().contains("got 0"), "{err}");
}

#[tokio::test]
async fn dropped_collector_stops_listening() -> Result<()> {
    let collector = FakeCollector::start().await;
    let (grpc, http) = (collector.grpc_addr(), collector.http_addr());
    assert!(tokio::net::TcpStream::connect(http).await.is_ok());
    drop(collector);
    // Aborted tasks close their listeners on the runtime's next turn.
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(http).await.is_ok()
        || tokio::net::TcpStream::connect(grpc).await.is_ok()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listening after drop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn closed_port_refuses_connections() {
    let port = closed_port();
    let err = tokio::net::TcpStream::connect(port.addr())
        .await
        .expect_err("nothing listens on a closed port");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(port.url().starts_with("http://127.0.0.1:"));
}

// ---- JSONL loading and the tree comparator ------------------------------------------------

fn fixture_spans() -> Vec<RecordedSpan> {
    jsonl::read_spans(llmtap_tests::tree::goldens_dir().join("agent_run.jsonl"))
        .expect("agent_run.jsonl fixture")
}

#[test]
fn jsonl_fixture_reads_string_and_number_ints() {
    let data =
        jsonl::read_traces_data(llmtap_tests::tree::goldens_dir().join("agent_run.jsonl")).unwrap();
    assert_eq!(data.len(), 2, "two lines, two TracesData");
    let spans = fixture_spans();
    assert_eq!(spans.len(), AGENT_RUN_SPANS);
    let failed = spans
        .iter()
        .find(|s| s.attr_i64(STEP) == Some(2))
        .expect("step 2");
    assert_eq!(failed.span.start_time_unix_nano, 1_700_000_000_200_000_000);
    assert_eq!(failed.attr_i64(TOKENS), Some(7));
    let first = spans
        .iter()
        .find(|s| s.attr_i64(STEP) == Some(1))
        .expect("step 1");
    assert_eq!(first.span.start_time_unix_nano, 1_700_000_000_050_000_000);
    assert_eq!(first.parent_span_id().as_deref(), Some("1000000000000001"));
    assert_eq!(first.scope_name, "llmtap-tests");
}

#[test]
fn jsonl_reader_names_the_bad_line() {
    let err = jsonl::parse_traces_data("{\"resourceSpans\":[]}\n\n{\"resourceSpans\":[{")
        .expect_err("torn last line");
    assert!(format!("{err:#}").contains("line 3"), "{err:#}");
}

#[test]
fn comparator_passes_on_the_right_golden() {
    assert_span_forest(&fixture_spans(), GOLDEN);
    // Also from TracesData directly, and with the absolute path.
    let data =
        jsonl::read_traces_data(llmtap_tests::tree::goldens_dir().join("agent_run.jsonl")).unwrap();
    assert_span_forest(&data, llmtap_tests::tree::goldens_dir().join(GOLDEN));
}

#[test]
fn comparator_ignores_span_order() {
    let mut spans = fixture_spans();
    spans.reverse();
    assert_span_forest(&spans, GOLDEN);
    spans.rotate_left(2);
    assert_span_forest(&spans, GOLDEN);
}

#[test]
fn comparator_fails_on_wrong_parent() {
    let m = check_span_forest(&fixture_spans(), "wrong_parent.json")
        .expect_err("the golden puts execute_tool search under the wrong parent");
    assert!(
        m.mentions("<root> > invoke_agent planner: unexpected span `invoke_agent researcher`")
            || m.mentions("invoke_agent researcher: unexpected span `execute_tool search`"),
        "{m}"
    );
    assert!(m.mentions("missing span `execute_tool search`"), "{m}");
}

#[test]
fn comparator_fails_on_wrong_attribute_value() {
    let m = check_span_forest(&fixture_spans(), "wrong_attribute.json")
        .expect_err("the golden says 8 tokens, the span has 7");
    assert!(
        m.mentions("invoke_agent researcher > chat gpt-4o: attribute `llmtap.test.tokens` expected 8, got 7"),
        "{m}"
    );
    assert_eq!(m.problems.len(), 1, "only the one wrong value: {m}");
}

#[test]
fn comparator_fails_on_missing_span() {
    let m = check_span_forest(&fixture_spans(), "wrong_missing_span.json")
        .expect_err("the golden expects a span that was never emitted");
    assert!(
        m.mentions("invoke_agent researcher: missing span `execute_tool fetch`"),
        "{m}"
    );
}

#[test]
fn assert_span_forest_panics_on_a_wrong_golden() {
    let spans = fixture_spans();
    for golden in [
        "wrong_parent.json",
        "wrong_attribute.json",
        "wrong_missing_span.json",
    ] {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            assert_span_forest(&spans, golden);
        }));
        let panic = result.expect_err(golden);
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("actual forest:"), "{golden}: {text}");
        assert!(text.contains(golden), "message names the golden: {text}");
    }
}

#[test]
fn comparator_fails_on_an_extra_span_and_on_a_duplicate() {
    let spans = fixture_spans();
    // One span fewer in the data than in the golden is a missing span; a span sent twice
    // (a span that ended twice) is an extra one.
    let mut doubled = spans.clone();
    let dup = doubled
        .iter()
        .find(|s| s.name() == "execute_tool search")
        .cloned()
        .unwrap();
    doubled.push(dup);
    let m = check_span_forest(&doubled, GOLDEN).expect_err("duplicate span");
    assert!(m.mentions("unexpected span `execute_tool search`"), "{m}");

    let fewer: Vec<RecordedSpan> = spans
        .into_iter()
        .filter(|s| s.attr_i64(STEP) != Some(4))
        .collect();
    let m = check_span_forest(&fewer, GOLDEN).expect_err("a chat span is missing");
    assert!(
        m.mentions("invoke_agent planner: missing span `chat gpt-4o`")
            || m.mentions("llmtap.test.step"),
        "{m}"
    );
}

#[test]
fn comparator_fails_on_kind_status_and_external_parent() {
    let spans = fixture_spans();
    let golden = |root: &str| {
        ExpectedForest::from_json_str(&format!(r#"{{"roots":[{root}]}}"#)).expect("valid golden")
    };
    let only_root: Vec<RecordedSpan> = spans
        .iter()
        .filter(|s| s.name() == "invoke_agent planner")
        .cloned()
        .collect();
    let forest = SpanForest::from_spans(only_root);
    forest
        .check(&golden(
            r#"{"name":"invoke_agent planner","kind":"internal","external_parent":false}"#,
        ))
        .expect("right kind");
    let m = forest
        .check(&golden(
            r#"{"name":"invoke_agent planner","kind":"client"}"#,
        ))
        .expect_err("wrong kind");
    assert!(m.mentions("kind expected client, got internal"), "{m}");
    let m = forest
        .check(&golden(
            r#"{"name":"invoke_agent planner","status":"error"}"#,
        ))
        .expect_err("wrong status");
    assert!(m.mentions("status expected error, got unset"), "{m}");
    let m = forest
        .check(&golden(
            r#"{"name":"invoke_agent planner","external_parent":true}"#,
        ))
        .expect_err("a true root");
    assert!(
        m.mentions("external_parent expected true, got false"),
        "{m}"
    );

    // A child without its parent becomes a root with an external parent.
    let orphan: Vec<RecordedSpan> = spans
        .into_iter()
        .filter(|s| s.name() == "execute_tool search")
        .collect();
    SpanForest::from_spans(orphan)
        .check(&golden(
            r#"{"name":"execute_tool search","external_parent":true}"#,
        ))
        .expect("orphan is an external-parent root");
}

#[test]
fn comparator_matchers() {
    let spans: Vec<RecordedSpan> = fixture_spans()
        .into_iter()
        .filter(|s| s.name() == "execute_tool search")
        .collect();
    let forest = SpanForest::from_spans(spans);
    let check = |attrs: &str| {
        let g = ExpectedForest::from_json_str(&format!(
            r#"{{"roots":[{{"name":"execute_tool search","attributes":{attrs}}}]}}"#
        ))
        .expect("valid golden");
        forest.check(&g)
    };
    check(r#"{"llmtap.test.step":{"$type":"int"},"llmtap.test.tool.args":{"$type":"string"}}"#)
        .unwrap();
    check(r#"{"llmtap.test.tool.args":{"$regex":"\\{.*otel.*\\}"}}"#).unwrap();
    check(r#"{"llmtap.test.tool.args":{"$json":{"k":3,"q":"otel"}}}"#).unwrap();
    check(r#"{"llmtap.test.step":{"$present":true},"nope":{"$absent":true}}"#).unwrap();

    for wrong in [
        r#"{"llmtap.test.step":3.0}"#,
        r#"{"llmtap.test.step":"3"}"#,
        r#"{"llmtap.test.step":{"$type":"double"}}"#,
        r#"{"llmtap.test.tool.args":{"$regex":"otel"}}"#,
        r#"{"llmtap.test.tool.args":{"$json":{"k":4,"q":"otel"}}}"#,
        r#"{"llmtap.test.step":{"$absent":true}}"#,
        r#"{"nope":{"$present":true}}"#,
        r#"{"nope":"x"}"#,
    ] {
        assert!(check(wrong).is_err(), "{wrong} should not match");
    }
}

#[test]
fn invalid_goldens_are_rejected_not_silently_passed() {
    for bad in [
        r#"{"roots":[{"name":"x","kidn":"client"}]}"#,
        r#"{"roots":[{"name":"x","kind":"clint"}]}"#,
        r#"{"roots":[{"name":"x","status":"failed"}]}"#,
        r#"{"roots":[{"name":"x","attributes":{"k":{"$regx":"a"}}}]}"#,
        r#"{"roots":[{"name":"x","attributes":{"k":{"$regex":"("}}}]}"#,
    ] {
        assert!(ExpectedForest::from_json_str(bad).is_err(), "{bad}");
    }
}

#[test]
fn to_golden_round_trips() {
    let forest = SpanForest::from_spans(fixture_spans());
    let golden = forest.to_golden(&[AGENT, STEP, TOKENS]);
    let parsed = ExpectedForest::from_json_str(&golden.to_string()).unwrap();
    forest
        .check(&parsed)
        .expect("a forest matches its own golden");
    assert_eq!(forest.len(), AGENT_RUN_SPANS);
    assert_eq!(forest.children_of("invoke_agent researcher").len(), 2);
}

// ---- rotel: a real collector ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_receives_our_spans_with_parent_links() -> Result<()> {
    let Some(rotel) = Rotel::start().await else {
        return Ok(());
    };
    let trace_id = emit_agent_run(grpc_exporter(rotel.grpc_endpoint())?).await?;
    let spans = rotel
        .wait_for_trace(&trace_id, AGENT_RUN_SPANS, WAIT)
        .await?;

    let by_name = |name: &'static str| spans.iter().filter(move |s| s.name == name);
    let planner = by_name("invoke_agent planner").next().context("planner")?;
    let researcher = by_name("invoke_agent researcher")
        .next()
        .context("researcher")?;
    assert_eq!(planner.parent_span_id, None, "planner is the root");
    assert_eq!(planner.resource_attr_str("service.name"), Some(SERVICE));
    assert_eq!(planner.kind, "SPAN_KIND_INTERNAL");
    assert_eq!(
        researcher.parent_span_id.as_deref(),
        Some(planner.span_id.as_str())
    );
    let tool = by_name("execute_tool search").next().context("tool")?;
    assert_eq!(
        tool.parent_span_id.as_deref(),
        Some(researcher.span_id.as_str())
    );
    assert_eq!(tool.attr_i64(STEP), Some(3));

    let chats: Vec<_> = by_name("chat gpt-4o").collect();
    assert_eq!(chats.len(), 3);
    for chat in chats {
        let parent = chat.parent_span_id.as_deref();
        let expected_parent = if chat.attr_i64(STEP) == Some(2) {
            assert_eq!(chat.status_code, "STATUS_CODE_ERROR");
            &researcher.span_id
        } else {
            &planner.span_id
        };
        assert_eq!(parent, Some(expected_parent.as_str()), "{chat:?}");
        assert_eq!(chat.kind, "SPAN_KIND_CLIENT");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_receives_http_json() -> Result<()> {
    let Some(rotel) = Rotel::start().await else {
        return Ok(());
    };
    let trace_id =
        emit_agent_run(http_exporter(rotel.http_traces_url(), Protocol::HttpJson)?).await?;
    let spans = rotel
        .wait_for_trace(&trace_id, AGENT_RUN_SPANS, WAIT)
        .await?;
    let chat = spans
        .iter()
        .find(|s| s.attr_i64(STEP) == Some(4))
        .context("step 4")?;
    assert_eq!(chat.attr("llmtap.test.cached"), Some("Bool(true)"));
    assert_eq!(chat.attr("llmtap.test.ratio"), Some("Double(0.5)"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotel_forwards_to_a_second_hop_keeping_the_tree() -> Result<()> {
    let collector = FakeCollector::start().await;
    let Some(rotel) = Rotel::start_with(RotelOptions {
        forward_to: Some((collector.grpc_endpoint(), ForwardProtocol::Grpc)),
        ..RotelOptions::default()
    })
    .await
    else {
        return Ok(());
    };
    let trace_id = emit_agent_run(http_exporter(
        rotel.http_traces_url(),
        Protocol::HttpBinary,
    )?)
    .await?;

    let spans = collector.wait_for_spans(AGENT_RUN_SPANS, WAIT).await?;
    assert_all_came_over(&spans, OtlpProtocol::Grpc);
    assert!(spans.iter().all(|s| s.trace_id() == trace_id));
    assert_span_forest(&spans, GOLDEN);
    // And the hop in the middle saw them too.
    rotel
        .wait_for_trace(&trace_id, AGENT_RUN_SPANS, WAIT)
        .await?;
    Ok(())
}

#[test]
fn hex_is_lowercase_and_padded() {
    assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
}
