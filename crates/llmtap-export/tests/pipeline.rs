//! The export pipeline: shutdown semantics, a dead or hanging collector never slowing the
//! application or the file, exact per-sink counters, live forwarding over the three OTLP
//! protocols configured from `OTEL_*`, and malformed environment values.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::PoisonError;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use llmtap_export::proto::{ExportTraceServiceRequest, ResourceSpans, any_value};
use llmtap_export::{
    BatchSettings, JsonlConfig, OtlpConfig, Pipeline, PipelineStats, SinkSnapshot,
};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use prost::Message as _;

/// Generous slack on top of a shutdown timeout (slow CI, two cores, parallel tests).
const SLACK: Duration = Duration::from_secs(3);
/// Upper bound for one `span.end()`: far above a scheduler hiccup, far below an export that
/// blocks the caller (the hanging collector below holds each export for 20 s).
const END_BOUND: Duration = Duration::from_secs(1);

fn env_map(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn jsonl_cfg(path: &Path, max_queue_size: usize) -> JsonlConfig {
    let mut cfg = JsonlConfig::new(path);
    cfg.batch = BatchSettings {
        max_queue_size,
        max_export_batch_size: 512,
        scheduled_delay: Duration::from_millis(50),
    };
    cfg
}

/// Ends `n` spans and returns the longest single `end()`.
fn emit(pipeline: &Pipeline, prefix: &str, n: usize) -> Duration {
    let tracer = pipeline.tracer("pipeline-test");
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let mut span = tracer.start(format!("{prefix}-{i}"));
        span.set_attribute(KeyValue::new("i", i as i64));
        let t = Instant::now();
        span.end();
        slowest = slowest.max(t.elapsed());
    }
    slowest
}

fn sink(stats: Option<SinkSnapshot>, name: &str) -> Result<SinkSnapshot> {
    stats.with_context(|| format!("{name} sink is configured"))
}

// ---------------------------------------------------------------------------------------------
// 4. Idempotent shutdown

#[test]
fn shutdown_twice_is_fine_and_late_spans_count_as_dropped() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .build()?;
    let tracer = pipeline.tracer("early");
    let open_span = tracer.start("still-open-at-shutdown");
    emit(&pipeline, "before", 3);

    let first = pipeline.shutdown(Duration::from_secs(5));
    let t = Instant::now();
    let second = pipeline.shutdown(Duration::from_secs(5));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "second shutdown returns at once"
    );
    assert_eq!(first, second, "later calls return the first result");
    let jsonl = sink(first.jsonl, "jsonl")?;
    assert_eq!(
        jsonl,
        SinkSnapshot {
            written: 3,
            dropped: 0,
            failed: 0,
            queued: 0,
            sampled_out: 0,
        }
    );
    assert!(
        !pipeline.force_flush(Duration::from_millis(500)),
        "flushing stopped sinks reports failure"
    );

    // Spans ended after shutdown: an old tracer, a span opened before, a new tracer.
    tracer.start("late-old-tracer").end();
    drop(open_span);
    pipeline.tracer("late").start("late-new-tracer").end();
    pipeline
        .provider()
        .tracer("late-provider")
        .start("late-3")
        .end();
    let after = sink(pipeline.stats().jsonl, "jsonl")?;
    assert_eq!(after.written, 3);
    assert_eq!(
        after.dropped, 4,
        "late spans are counted dropped: {after:?}"
    );
    assert_eq!(pipeline.shutdown(Duration::from_secs(1)), first);

    // Nothing late reached the file.
    let mut names = common::span_names(&path)?;
    names.sort();
    assert_eq!(names, ["before-0", "before-1", "before-2"]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. Collector down: the file gets everything, counters are exact, nothing blocks

fn collector_down(protocol: &str) -> Result<()> {
    const SPANS: usize = 50;
    let port = common::closed_port()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let env = env_map(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "300".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ]);
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;

    let t = Instant::now();
    let slowest = emit(&pipeline, "down", SPANS);
    // Let a few exports fail while spans are still being produced.
    thread::sleep(Duration::from_millis(100));
    let slowest = slowest.max(emit(&pipeline, "down-late", SPANS));
    let producing = t.elapsed();
    assert!(
        slowest < END_BOUND,
        "span end blocked for {slowest:?} ({protocol})"
    );
    assert!(producing < Duration::from_secs(10), "{producing:?}");

    let timeout = Duration::from_secs(8);
    let t = Instant::now();
    let stats = pipeline.shutdown(timeout);
    let took = t.elapsed();
    assert!(
        took < timeout + SLACK,
        "shutdown took {took:?} ({protocol})"
    );

    let total = 2 * SPANS as u64;
    let jsonl = sink(stats.jsonl, "jsonl")?;
    assert_eq!(
        jsonl,
        SinkSnapshot {
            written: total,
            dropped: 0,
            failed: 0,
            queued: 0,
            sampled_out: 0,
        }
    );
    assert_eq!(common::count_file(&path)?.1, total);
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!(
        otlp,
        SinkSnapshot {
            written: 0,
            dropped: 0,
            failed: total,
            queued: 0,
            sampled_out: 0,
        },
        "{protocol}"
    );
    Ok(())
}

#[test]
fn collector_down_grpc() -> Result<()> {
    collector_down("grpc")
}

#[test]
fn collector_down_http_protobuf() -> Result<()> {
    collector_down("http/protobuf")
}

#[test]
fn collector_down_http_json() -> Result<()> {
    collector_down("http/json")
}

/// A collector that accepts connections and never answers: every export hangs until its own
/// 20 s timeout, so only the pipeline's bound can make shutdown return.
#[test]
fn shutdown_is_bounded_when_the_collector_hangs() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let env = env_map(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "20000".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20".to_owned()),
    ]);
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;
    let slowest = emit(&pipeline, "hang", 100);
    thread::sleep(Duration::from_millis(200));
    let slowest = slowest.max(emit(&pipeline, "hang-late", 100));
    assert!(slowest < END_BOUND, "span end blocked for {slowest:?}");

    let timeout = Duration::from_secs(1);
    let t = Instant::now();
    let stats = pipeline.shutdown(timeout);
    let took = t.elapsed();
    assert!(took < timeout + SLACK, "shutdown took {took:?}");
    let jsonl = sink(stats.jsonl, "jsonl")?;
    assert_eq!((jsonl.written, jsonl.failed, jsonl.dropped), (200, 0, 0));
    assert_eq!(common::count_file(&path)?.1, 200);
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!(otlp.written, 0, "nothing can have been acknowledged");
    // A second call is instant and reports the same.
    let t = Instant::now();
    assert_eq!(pipeline.shutdown(timeout), stats);
    assert!(t.elapsed() < Duration::from_secs(2));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 6. 10,000 spans with the collector dead

#[test]
fn ten_thousand_spans_with_a_dead_collector() -> Result<()> {
    const SPANS: u64 = 10_000;
    let port = common::closed_port()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let env = env_map(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "200".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]);
    // The file queue holds the whole burst; the OTLP queue (spec default 2048) cannot.
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 16_384)))
        .from_env(&env)?
        .build()?;
    let t = Instant::now();
    let slowest = emit(&pipeline, "burst", SPANS as usize);
    assert!(slowest < END_BOUND, "span end blocked for {slowest:?}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    let timeout = Duration::from_secs(20);
    let t = Instant::now();
    let stats = pipeline.shutdown(timeout);
    assert!(t.elapsed() < timeout + SLACK);

    let jsonl = sink(stats.jsonl, "jsonl")?;
    assert_eq!(
        jsonl,
        SinkSnapshot {
            written: SPANS,
            dropped: 0,
            failed: 0,
            queued: 0,
            sampled_out: 0,
        }
    );
    assert_eq!(common::count_file(&path)?.1, SPANS);

    // sink.rs: written + failed + dropped + queued == spans handed to the sink, and a completed
    // shutdown leaves nothing queued.
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!(otlp.written, 0, "{otlp:?}");
    assert_eq!(otlp.queued, 0, "{otlp:?}");
    assert_eq!(otlp.failed + otlp.dropped, SPANS, "{otlp:?}");
    // At least the batches left at shutdown were attempted. (How many spans were dropped
    // rather than failed depends on how fast this machine produces spans.)
    assert!(otlp.failed > 0, "exports were attempted: {otlp:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. Live collectors, configured from OTEL_*

fn resource_attr(rs: &ResourceSpans, key: &str) -> Option<String> {
    rs.resource
        .as_ref()?
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
        .and_then(|v| match v {
            any_value::Value::StringValue(s) => Some(s),
            _ => None,
        })
}

fn count_request_spans(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum()
}

fn run_pipeline(env: &HashMap<String, String>, spans: usize) -> Result<PipelineStats> {
    let pipeline = Pipeline::builder()
        .service_name("fallback-name")
        .from_env(env)?
        .build()?;
    emit(&pipeline, "live", spans);
    Ok(pipeline.shutdown(Duration::from_secs(15)))
}

#[test]
fn live_grpc_collector_gets_spans_resource_and_metadata() -> Result<()> {
    const SPANS: usize = 25;
    let (addr, requests) = common::grpc_collector()?;
    let env = env_map(&[
        // For gRPC the base endpoint is the server address, nothing appended.
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-test-key=abc%2C123".to_owned(),
        ),
        ("OTEL_SERVICE_NAME", "svc-grpc".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=loses,deployment.environment=ci%20run".to_owned(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ]);
    let stats = run_pipeline(&env, SPANS)?;
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!(
        (otlp.written, otlp.failed, otlp.dropped, otlp.queued),
        (SPANS as u64, 0, 0, 0)
    );
    assert!(stats.jsonl.is_none());
    assert_eq!(common::grpc_span_count(&requests), SPANS);
    let recorded = requests.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(!recorded.is_empty());
    for (key, req) in recorded.iter() {
        assert_eq!(key.as_deref(), Some("abc,123"), "percent-decoded header");
        for rs in &req.resource_spans {
            assert_eq!(
                resource_attr(rs, "service.name").as_deref(),
                Some("svc-grpc")
            );
            assert_eq!(
                resource_attr(rs, "deployment.environment").as_deref(),
                Some("ci run")
            );
        }
    }
    Ok(())
}

#[test]
fn live_http_protobuf_collector_base_endpoint_gets_v1_traces() -> Result<()> {
    const SPANS: usize = 30;
    let (addr, records) = common::http_collector()?;
    let env = env_map(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}/base")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-test-key=k%201, x-other = two".to_owned(),
        ),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=svc%20proto,team=obs".to_owned(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ]);
    let stats = run_pipeline(&env, SPANS)?;
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!((otlp.written, otlp.failed), (SPANS as u64, 0));

    let recorded = records.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(!recorded.is_empty());
    let mut spans = 0;
    for rec in recorded.iter() {
        assert_eq!(rec.path, "/base/v1/traces", "base endpoint + /v1/traces");
        assert_eq!(rec.header("x-test-key"), Some("k 1"));
        assert_eq!(rec.header("x-other"), Some("two"));
        assert_eq!(rec.header("content-type"), Some("application/x-protobuf"));
        let req = ExportTraceServiceRequest::decode(rec.body.as_slice())?;
        spans += count_request_spans(&req);
        for rs in &req.resource_spans {
            assert_eq!(
                resource_attr(rs, "service.name").as_deref(),
                Some("svc proto"),
                "service.name from OTEL_RESOURCE_ATTRIBUTES"
            );
            assert_eq!(resource_attr(rs, "team").as_deref(), Some("obs"));
        }
    }
    assert_eq!(spans, SPANS);
    Ok(())
}

#[test]
fn live_http_json_collector_traces_endpoint_used_as_is() -> Result<()> {
    const SPANS: usize = 20;
    let (addr, records) = common::http_collector()?;
    let env = env_map(&[
        // The per-signal endpoint wins over the base one and is used verbatim.
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{addr}/custom/ingest"),
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}/base")),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json".to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-test-key=traces".to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-test-key=generic".to_owned(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ]);
    let stats = run_pipeline(&env, SPANS)?;
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!((otlp.written, otlp.failed), (SPANS as u64, 0));

    let recorded = records.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(!recorded.is_empty());
    let mut spans = 0;
    for rec in recorded.iter() {
        assert_eq!(rec.path, "/custom/ingest", "per-signal endpoint used as-is");
        assert_eq!(rec.header("x-test-key"), Some("traces"));
        assert!(
            rec.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{:?}",
            rec.header("content-type")
        );
        // OTLP/JSON body: hex ids, parsed by the proto serde types.
        let raw: serde_json::Value = serde_json::from_slice(&rec.body)?;
        let trace_id = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
            .as_str()
            .context("traceId string")?;
        assert_eq!(trace_id.len(), 32);
        let req: ExportTraceServiceRequest = serde_json::from_slice(&rec.body)?;
        spans += count_request_spans(&req);
        for rs in &req.resource_spans {
            assert_eq!(
                resource_attr(rs, "service.name").as_deref(),
                Some("fallback-name"),
                "builder default when the environment names no service"
            );
        }
    }
    assert_eq!(spans, SPANS);
    Ok(())
}

/// Endpoint resolution rules on the parsed config (no network).
#[test]
fn endpoint_rules_from_env() -> Result<()> {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/x/")],
            "http://c:4318/x/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
            "http://c:4318/v1/traces",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318")],
            "http://c:4318/",
        ),
        (
            &[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/v1/traces/extra",
            )],
            "http://c:4318/v1/traces/extra",
        ),
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "http://c:4317",
        ),
    ];
    for (pairs, want) in cases {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        let cfg = OtlpConfig::from_env(&env)?.context("endpoint set: forwarding on")?;
        assert_eq!(cfg.endpoint, *want, "{pairs:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 8. Malformed environment, and the off switches

#[test]
fn unusable_otel_values_are_ignored_with_one_warning_naming_the_variable() -> Result<()> {
    const EP: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    /// (environment, the one variable warned about, value the warning must show if not secret)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
    let cases: &[Case<'_>] = &[
        // The five values a shared environment sets for other services (issue 18).
        (
            &[EP, ("OTEL_TRACES_SAMPLER", "xray")],
            "OTEL_TRACES_SAMPLER",
            Some("xray"),
        ),
        (
            &[EP, ("OTEL_TRACES_SAMPLER", "jaeger_remote")],
            "OTEL_TRACES_SAMPLER",
            Some("jaeger_remote"),
        ),
        (
            &[
                EP,
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "fifty"),
            ],
            "OTEL_TRACES_SAMPLER_ARG",
            Some("fifty"),
        ),
        (
            &[EP, ("OTEL_SDK_DISABLED", "1")],
            "OTEL_SDK_DISABLED",
            Some("1"),
        ),
        (
            &[EP, ("OTEL_TRACES_EXPORTER", "otlp,prometheus,otlpp")],
            "OTEL_TRACES_EXPORTER",
            Some("otlpp"),
        ),
        // And the rest of the spec's variables.
        (
            &[EP, ("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus")],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            Some("bogus"),
        ),
        (
            &[EP, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/xml")],
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            Some("http/xml"),
        ),
        (
            &[EP, ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            Some("10s"),
        ),
        (
            &[EP, ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            Some("zstd"),
        ),
        (
            &[EP, ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "brotli")],
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            Some("brotli"),
        ),
        (
            &[EP, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
            "OTEL_EXPORTER_OTLP_HEADERS",
            None,
        ),
        (
            &[EP, ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad key=x")],
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            None,
        ),
        (
            &[EP, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            "OTEL_BSP_MAX_QUEUE_SIZE",
            Some("0"),
        ),
        (
            &[("OTEL_RESOURCE_ATTRIBUTES", "service.name")],
            "OTEL_RESOURCE_ATTRIBUTES",
            Some("service.name"),
        ),
    ];
    for (pairs, var, value) in cases {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        let builder = Pipeline::builder()
            .from_env(&env)
            .with_context(|| format!("{pairs:?} must not stop the pipeline"))?;
        let warnings = builder.env_warnings().to_vec();
        assert_eq!(warnings.len(), 1, "{pairs:?}: {warnings:?}");
        assert_eq!(warnings[0].var, *var, "{pairs:?}");
        assert!(warnings[0].message.starts_with(var), "{warnings:?}");
        if let Some(value) = value {
            assert!(warnings[0].message.contains(value), "{warnings:?}");
        }
        // The defaults stand in: the pipeline builds.
        let pipeline = builder.build()?;
        pipeline.shutdown(Duration::from_secs(1));
    }

    // What the defaults are: SDK on, otlp kept from a list with unknown names, 10 s timeout.
    let env = [
        EP,
        ("OTEL_SDK_DISABLED", "1"),
        ("OTEL_TRACES_EXPORTER", "otlp,prometheus"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
    ];
    let cfg = OtlpConfig::from_env(&env)?.context("forwarding stays on")?;
    assert_eq!(cfg.timeout, Duration::from_secs(10));
    assert_eq!(cfg.compression, llmtap_export::OtlpCompression::None);
    // `0` means no limit.
    let env = [EP, ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")];
    let cfg = OtlpConfig::from_env(&env)?.context("forwarding on")?;
    assert!(
        cfg.timeout >= Duration::from_secs(24 * 3600),
        "{:?}",
        cfg.timeout
    );

    // Header values are secrets: never echoed; the valid entries are kept.
    let env = [
        EP,
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20sk-live-SECRET,bad key=sk-other-SECRET",
        ),
    ];
    let builder = Pipeline::builder().from_env(&env)?;
    let message = builder.env_warnings()[0].message.clone();
    assert!(message.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{message}");
    assert!(!message.contains("SECRET"), "secret leaked: {message}");
    let cfg = OtlpConfig::from_env(&env)?.context("forwarding on")?;
    assert_eq!(
        cfg.headers,
        [(
            "authorization".to_owned(),
            "Bearer sk-live-SECRET".to_owned()
        )]
    );
    Ok(())
}

#[test]
fn bad_endpoints_and_llmtap_settings_stay_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://host:21")],
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://")],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            &[("LLMTAP_JSONL_SAMPLED", "sometimes")],
            "LLMTAP_JSONL_SAMPLED",
        ),
    ];
    for (pairs, var) in cases {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        let err = match Pipeline::builder().from_env(&env) {
            Ok(_) => panic!("{pairs:?} must be rejected"),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(message.contains(var), "{message}");
        assert!(!message.contains('\n'), "one line: {message}");
        assert_eq!(err.kind(), "invalid_config");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Sampling decides what is forwarded, not what is recorded locally

fn sampled_run(
    sampler: &[(&str, &str)],
    follow: Option<&str>,
) -> Result<(PipelineStats, u64, usize)> {
    const SPANS: usize = 40;
    let (addr, records) = common::http_collector()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let mut pairs = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ];
    pairs.extend(sampler.iter().map(|(k, v)| (*k, (*v).to_owned())));
    if let Some(follow) = follow {
        pairs.push(("LLMTAP_JSONL_SAMPLED", follow.to_owned()));
    }
    let env = env_map(&pairs);
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;
    emit(&pipeline, "sampled", SPANS);
    let stats = pipeline.shutdown(Duration::from_secs(15));
    let in_file = if path.exists() {
        common::count_file(&path)?.1
    } else {
        0
    };
    let received: usize = records
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .map(|r| {
            ExportTraceServiceRequest::decode(r.body.as_slice())
                .map(|req| count_request_spans(&req))
                .unwrap_or(0)
        })
        .sum();
    Ok((stats, in_file, received))
}

#[test]
fn always_off_keeps_every_span_in_the_file_and_forwards_none() -> Result<()> {
    let (stats, in_file, received) = sampled_run(&[("OTEL_TRACES_SAMPLER", "always_off")], None)?;
    assert_eq!(in_file, 40, "the file is the local record");
    assert_eq!(received, 0, "the collector gets nothing");
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!((otlp.written, otlp.sampled_out), (0, 40));
    assert_eq!(sink(stats.jsonl, "jsonl")?.written, 40);

    // LLMTAP_JSONL_SAMPLED=true: the file follows the sampler too.
    let (stats, in_file, received) =
        sampled_run(&[("OTEL_TRACES_SAMPLER", "always_off")], Some("true"))?;
    assert_eq!((in_file, received), (0, 0));
    // Not even recorded: the sampler drops them before any sink sees them.
    assert_eq!(sink(stats.jsonl, "jsonl")?.written, 0);

    // A ratio thins only what is forwarded; every span is either sent or counted out.
    let (stats, in_file, received) = sampled_run(
        &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ],
        None,
    )?;
    let otlp = sink(stats.otlp, "otlp")?;
    assert_eq!(in_file, 40);
    assert_eq!(received as u64, otlp.written);
    assert_eq!(otlp.written + otlp.sampled_out, 40);
    assert!(otlp.written > 0 && otlp.sampled_out > 0, "{otlp:?}");
    Ok(())
}

#[test]
fn sampled_out_spans_propagate_an_unsampled_context() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let env = [("OTEL_TRACES_SAMPLER", "always_off")];
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;
    let tracer = pipeline.tracer("flags");
    let span = tracer.start("recorded-not-sampled");
    let cx = span.span_context().clone();
    assert!(cx.is_valid());
    assert!(!cx.is_sampled(), "traceparent sent on must say not sampled");
    drop(span);
    let stats = pipeline.shutdown(Duration::from_secs(5));
    assert_eq!(sink(stats.jsonl, "jsonl")?.written, 1);
    // The file says so too: the W3C sampled bit of the span's flags is off.
    let text = std::fs::read_to_string(&path)?;
    let line: serde_json::Value = serde_json::from_str(text.lines().next().context("a line")?)?;
    let flags = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["flags"]
        .as_u64()
        .context("flags")?;
    assert_eq!(flags & 1, 0, "flags {flags:#x}");
    Ok(())
}

#[test]
fn traces_exporter_none_and_sdk_disabled_switch_sinks_off() -> Result<()> {
    let port = common::closed_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir()?;

    // OTEL_TRACES_EXPORTER=none: no forwarding, the file still works.
    let env = env_map(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ("OTEL_TRACES_EXPORTER", "none".to_owned()),
    ]);
    assert_eq!(OtlpConfig::from_env(&env)?, None);
    let path = dir.path().join("none.jsonl");
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;
    emit(&pipeline, "kept", 4);
    let stats = pipeline.shutdown(Duration::from_secs(5));
    assert!(stats.otlp.is_none(), "{stats:?}");
    assert_eq!(sink(stats.jsonl, "jsonl")?.written, 4);
    assert_eq!(common::count_file(&path)?.1, 4);

    // Control: the same endpoint without the switch does configure forwarding.
    let env_on = env_map(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())]);
    assert!(OtlpConfig::from_env(&env_on)?.is_some());
    let env_list = env_map(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        ("OTEL_TRACES_EXPORTER", "otlp,console".to_owned()),
    ]);
    assert!(OtlpConfig::from_env(&env_list)?.is_some());

    // OTEL_SDK_DISABLED=true: everything off, even an explicit file.
    let env = env_map(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_SDK_DISABLED", "TRUE".to_owned()),
    ]);
    assert_eq!(OtlpConfig::from_env(&env)?, None);
    let path = dir.path().join("disabled/never.jsonl");
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;
    emit(&pipeline, "gone", 4);
    let stats = pipeline.shutdown(Duration::from_secs(5));
    assert_eq!(
        stats,
        PipelineStats {
            jsonl: None,
            otlp: None
        }
    );
    assert!(!path.exists(), "a disabled SDK creates no file");
    assert!(!dir.path().join("disabled").exists());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 10. Each signal its own settings

#[test]
fn traces_and_metrics_each_get_their_own_headers_protocol_and_compression() -> Result<()> {
    use llmtap_core::call::LlmCall;
    use llmtap_core::semconv::{operation, provider};

    let (addr, records) = common::http_collector()?;
    let env = env_map(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=g".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "authorization=Bearer%20traces-only".to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json".to_owned()),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "x-metrics=m".to_owned(),
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "http/protobuf".to_owned(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "50".to_owned()),
    ]);
    let pipeline = Pipeline::builder().from_env(&env)?.build()?;
    emit(&pipeline, "signal", 3);
    let metrics = pipeline
        .metrics()
        .context("metrics on with the base endpoint")?;
    let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
    call.timings.duration = Some(Duration::from_millis(120));
    metrics.record(&call);
    pipeline.shutdown(Duration::from_secs(15));

    let recorded = records
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let traces: Vec<_> = recorded.iter().filter(|r| r.path == "/v1/traces").collect();
    let metric_posts: Vec<_> = recorded
        .iter()
        .filter(|r| r.path == "/v1/metrics")
        .collect();
    assert!(!traces.is_empty(), "paths: {:?}", paths(&recorded));
    assert!(!metric_posts.is_empty(), "paths: {:?}", paths(&recorded));
    for r in &traces {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("authorization"), Some("Bearer traces-only"));
        assert_eq!(
            r.header("x-generic"),
            None,
            "the signal's headers replace the generic ones"
        );
    }
    for r in &metric_posts {
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(
            r.header("content-encoding"),
            None,
            "traces' compression stays theirs"
        );
        assert_eq!(
            r.header("authorization"),
            None,
            "traces' auth header never leaks"
        );
        assert_eq!(r.header("x-metrics"), Some("m"));
    }
    Ok(())
}

fn paths(records: &[common::HttpRecord]) -> Vec<&str> {
    records.iter().map(|r| r.path.as_str()).collect()
}

#[test]
fn otlp_exporter_without_endpoint_sends_to_the_spec_default() -> Result<()> {
    let env = [("OTEL_TRACES_EXPORTER", "otlp")];
    let cfg = OtlpConfig::from_env(&env)?.context("otlp named: forwarding on")?;
    assert_eq!(cfg.endpoint, "http://localhost:4318/v1/traces");
    let env = [
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ];
    let cfg = OtlpConfig::from_env(&env)?.context("otlp named: forwarding on")?;
    assert_eq!(cfg.endpoint, "http://localhost:4317");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 11. One semconv version per output, named by its schema URL

fn convention_run(opt_in: Option<&str>) -> Result<serde_json::Value> {
    use llmtap_core::semconv as sc;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let env: Vec<(&str, &str)> = opt_in
        .map(|v| vec![("OTEL_SEMCONV_STABILITY_OPT_IN", v)])
        .unwrap_or_default();
    let env: HashMap<&str, &str> = env.into_iter().collect();
    let pipeline = Pipeline::builder()
        .jsonl(Some(jsonl_cfg(&path, 1_024)))
        .from_env(&env)?
        .build()?;
    let mut span = pipeline.tracer("llmtap-proxy").start("chat m");
    span.set_attribute(KeyValue::new(
        sc::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        7_i64,
    ));
    span.set_attribute(KeyValue::new(sc::GEN_AI_REQUEST_TOP_K, 40.0));
    span.set_attribute(KeyValue::new(sc::LLMTAP_REQUEST_REASONING_LEVEL, "high"));
    span.end();
    pipeline.shutdown(Duration::from_secs(5));
    let text = std::fs::read_to_string(&path)?;
    Ok(serde_json::from_str(
        text.lines().next().context("one line")?,
    )?)
}

fn span_attr_keys(line: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
        .as_array()
        .map(|attrs| {
            attrs
                .iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_owned(),
                        kv["value"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn default_output_is_v1_41_and_the_opt_in_switches_names_and_schema_together() -> Result<()> {
    let line = convention_run(None)?;
    let resource_spans = &line["resourceSpans"][0];
    assert_eq!(
        resource_spans["schemaUrl"],
        "https://opentelemetry.io/schemas/1.41.0"
    );
    let scope_spans = &resource_spans["scopeSpans"][0];
    assert_eq!(
        scope_spans["schemaUrl"],
        "https://opentelemetry.io/schemas/1.41.0"
    );
    assert_eq!(scope_spans["scope"]["name"], "llmtap-proxy");
    assert_eq!(scope_spans["scope"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        span_attr_keys(&line),
        [
            (
                "gen_ai.usage.cache_creation.input_tokens".to_owned(),
                serde_json::json!({"intValue": "7"})
            ),
            (
                "gen_ai.request.top_k".to_owned(),
                serde_json::json!({"doubleValue": 40.0})
            ),
            (
                "llmtap.request.reasoning.level".to_owned(),
                serde_json::json!({"stringValue": "high"})
            ),
        ]
    );

    let line = convention_run(Some("http,gen_ai_latest_experimental"))?;
    let resource_spans = &line["resourceSpans"][0];
    let latest = "https://opentelemetry.io/schemas/gen-ai/1.42.0";
    assert_eq!(resource_spans["schemaUrl"], latest);
    assert_eq!(resource_spans["scopeSpans"][0]["schemaUrl"], latest);
    assert_eq!(
        span_attr_keys(&line),
        [
            (
                "gen_ai.usage.cache_write.input_tokens".to_owned(),
                serde_json::json!({"intValue": "7"})
            ),
            (
                "gen_ai.request.top_k".to_owned(),
                serde_json::json!({"intValue": "40"})
            ),
            (
                "gen_ai.request.reasoning.level".to_owned(),
                serde_json::json!({"stringValue": "high"})
            ),
        ]
    );
    Ok(())
}
