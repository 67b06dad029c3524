//! The JSONL sink on disk: OTLP/JSON encoding rules checked on the raw written text, file mode
//! and start-up errors, size-based rotation, and a disk that is full at run time.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use llmtap_export::proto::{TracesData, any_value};
use llmtap_export::{BatchSettings, JsonlConfig, JsonlError, Pipeline, PipelineError};
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Array, Context, KeyValue, Value};
use serde_json::Value as Json;

const SHUTDOWN: Duration = Duration::from_secs(10);

/// Batches of a few spans written every 10 ms: many lines, fast tests.
fn small_batches(path: &Path, max_export_batch_size: usize) -> JsonlConfig {
    let mut cfg = JsonlConfig::new(path);
    cfg.batch = BatchSettings {
        max_queue_size: 8_192,
        max_export_batch_size,
        scheduled_delay: Duration::from_millis(10),
    };
    cfg
}

// ---------------------------------------------------------------------------------------------
// 1. OTLP/JSON encoding rules, on the raw text

const LINK_TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const LINK_SPAN_HEX: &str = "00f067aa0ba902b7";
/// 2^53 + 1: not representable as an f64, so a reader going through a JSON number would
/// change it; OTLP/JSON writes it as the string "9007199254740993".
const BIG_INT: i64 = (1 << 53) + 1;

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every object key anywhere in `v` (attribute keys are values of `"key"`, not object keys).
fn collect_object_keys(v: &Json, out: &mut Vec<String>) {
    match v {
        Json::Object(map) => {
            for (k, child) in map {
                out.push(k.clone());
                collect_object_keys(child, out);
            }
        }
        Json::Array(items) => items.iter().for_each(|c| collect_object_keys(c, out)),
        _ => {}
    }
}

/// Every value of an id field anywhere in `v`, with the field name.
fn collect_ids(v: &Json, out: &mut Vec<(String, Json)>) {
    match v {
        Json::Object(map) => {
            for (k, child) in map {
                if matches!(k.as_str(), "traceId" | "spanId" | "parentSpanId") {
                    out.push((k.clone(), child.clone()));
                }
                collect_ids(child, out);
            }
        }
        Json::Array(items) => items.iter().for_each(|c| collect_ids(c, out)),
        _ => {}
    }
}

fn raw_spans(line: &Json) -> Vec<Json> {
    let mut out = Vec::new();
    for rs in line["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            out.extend(ss["spans"].as_array().into_iter().flatten().cloned());
        }
    }
    out
}

/// The `value` object of attribute `key` in a raw `attributes` array.
fn raw_attr<'a>(attrs: &'a Json, key: &str) -> Option<&'a Json> {
    attrs
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

#[test]
fn jsonl_lines_follow_otlp_json_rules() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let pipeline = Pipeline::builder()
        .service_name("encoding-test")
        .jsonl(Some(small_batches(&path, 512)))
        .build()?;
    let tracer = pipeline.tracer("encoding");

    let link_ctx = SpanContext::new(
        TraceId::from_hex(LINK_TRACE_HEX)?,
        SpanId::from_hex(LINK_SPAN_HEX)?,
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let root = tracer
        .span_builder("root")
        .with_kind(SpanKind::Server)
        .start(&tracer);
    let root_ctx = root.span_context().clone();
    let cx = Context::new().with_span(root);
    let mut child = tracer
        .span_builder("child")
        .with_kind(SpanKind::Client)
        .with_links(vec![Link::new(
            link_ctx,
            vec![KeyValue::new("link.reason", "retry-of")],
            0,
        )])
        .with_attributes(vec![
            KeyValue::new("attr.int", 42_i64),
            KeyValue::new("attr.double", 1.5_f64),
            KeyValue::new("attr.bool", true),
            KeyValue::new("attr.string", "hello \"world\"\nnext"),
            KeyValue::new("attr.big", BIG_INT),
            KeyValue::new("attr.ints", Value::Array(Array::I64(vec![1, -2, BIG_INT]))),
            KeyValue::new(
                "attr.strings",
                Value::Array(Array::String(vec!["a".into(), "b".into()])),
            ),
        ])
        .start_with_context(&tracer, &cx);
    let child_ctx = child.span_context().clone();
    child.add_event(
        "gen_ai.choice",
        vec![
            KeyValue::new("event.index", 7_i64),
            KeyValue::new("event.ok", false),
        ],
    );
    child.add_event("second", vec![]);
    child.set_status(Status::error("boom"));
    child.end();
    cx.span().end();

    let stats = pipeline.shutdown(SHUTDOWN);
    let jsonl = stats.jsonl.context("jsonl sink configured")?;
    assert_eq!((jsonl.written, jsonl.failed, jsonl.dropped), (2, 0, 0));

    let text = fs::read_to_string(&path)?;
    assert!(text.ends_with('\n'), "file must end with a newline");
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());

    let mut raw_by_name = std::collections::HashMap::new();
    let mut typed_spans = Vec::new();
    for line in &lines {
        let value: Json = serde_json::from_str(line).context("line is one JSON value")?;
        ensure!(value.is_object(), "each line is one TracesData object");

        // camelCase keys only (no snake_case, no PascalCase).
        let mut keys = Vec::new();
        collect_object_keys(&value, &mut keys);
        for key in &keys {
            assert!(
                key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && key.chars().all(|c| c.is_ascii_alphanumeric()),
                "object key {key:?} is not lowerCamelCase"
            );
        }
        for required in [
            "resourceSpans",
            "scopeSpans",
            "startTimeUnixNano",
            "traceId",
        ] {
            assert!(keys.iter().any(|k| k == required), "missing key {required}");
        }

        // Ids: lowercase hex strings of the right length, everywhere (links included).
        let mut ids = Vec::new();
        collect_ids(&value, &mut ids);
        for (field, id) in &ids {
            let s = id
                .as_str()
                .with_context(|| format!("{field} is not a string: {id}"))?;
            let ok = match field.as_str() {
                "traceId" => is_lower_hex(s, 32),
                "spanId" => is_lower_hex(s, 16),
                // A root span has no parent: empty (or absent).
                _ => s.is_empty() || is_lower_hex(s, 16),
            };
            assert!(
                ok,
                "{field} = {s:?} is not lowercase hex of the right length"
            );
        }

        for span in raw_spans(&value) {
            let name = span["name"].as_str().context("span name")?.to_owned();
            raw_by_name.insert(name, span);
        }

        // The line also re-parses as TracesData through the proto serde types.
        let data: TracesData = serde_json::from_str(line).context("re-parse as TracesData")?;
        for rs in data.resource_spans {
            let resource = rs.resource.context("resource")?;
            let service = resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.clone())
                .and_then(|v| v.value);
            assert_eq!(
                service,
                Some(any_value::Value::StringValue("encoding-test".into()))
            );
            for ss in rs.scope_spans {
                typed_spans.extend(ss.spans);
            }
        }
    }
    assert_eq!(raw_by_name.len(), 2, "both spans written exactly once");
    assert_eq!(typed_spans.len(), 2);

    let root_hex = root_ctx.span_id().to_string();
    let trace_hex = root_ctx.trace_id().to_string();
    let raw_root = &raw_by_name["root"];
    let raw_child = &raw_by_name["child"];

    // Ids match the SDK's, in hex.
    assert_eq!(raw_root["traceId"], trace_hex.as_str());
    assert_eq!(raw_root["spanId"], root_hex.as_str());
    assert_eq!(raw_child["traceId"], trace_hex.as_str());
    assert_eq!(
        raw_child["spanId"],
        child_ctx.span_id().to_string().as_str()
    );
    assert_eq!(raw_child["parentSpanId"], root_hex.as_str());
    assert!(
        raw_root
            .get("parentSpanId")
            .is_none_or(|p| p.as_str() == Some("")),
        "root span has no parent: {raw_root}"
    );

    // The link (opentelemetry-rust#2065: link ids were base64).
    let link = &raw_child["links"][0];
    assert_eq!(link["traceId"], LINK_TRACE_HEX);
    assert_eq!(link["spanId"], LINK_SPAN_HEX);
    assert_eq!(
        raw_attr(&link["attributes"], "link.reason"),
        Some(&serde_json::json!({"stringValue": "retry-of"}))
    );

    // Enums are integers.
    assert_eq!(raw_root["kind"], Json::from(2), "SERVER = 2");
    assert_eq!(raw_child["kind"], Json::from(3), "CLIENT = 3");
    assert_eq!(raw_child["status"]["code"], Json::from(2), "ERROR = 2");
    assert_eq!(raw_child["status"]["message"], "boom");

    // 64-bit integers are decimal strings.
    for span in [raw_root, raw_child] {
        for field in ["startTimeUnixNano", "endTimeUnixNano"] {
            let s = span[field]
                .as_str()
                .with_context(|| format!("{field} is not a string: {}", span[field]))?;
            let n: u64 = s.parse()?;
            assert!(
                n > 1_600_000_000_000_000_000,
                "{field} = {n} is not a recent time"
            );
        }
    }
    let events = raw_child["events"].as_array().context("events")?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["name"], "gen_ai.choice");
    assert!(
        events[0]["timeUnixNano"]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok())
    );
    assert_eq!(
        raw_attr(&events[0]["attributes"], "event.index"),
        Some(&serde_json::json!({"intValue": "7"}))
    );
    assert_eq!(
        raw_attr(&events[0]["attributes"], "event.ok"),
        Some(&serde_json::json!({"boolValue": false}))
    );

    // Attribute values.
    let attrs = &raw_child["attributes"];
    let expect = [
        ("attr.int", serde_json::json!({"intValue": "42"})),
        ("attr.double", serde_json::json!({"doubleValue": 1.5})),
        ("attr.bool", serde_json::json!({"boolValue": true})),
        (
            "attr.string",
            serde_json::json!({"stringValue": "hello \"world\"\nnext"}),
        ),
        (
            "attr.big",
            serde_json::json!({"intValue": "9007199254740993"}),
        ),
        (
            "attr.ints",
            serde_json::json!({"arrayValue": {"values": [
                {"intValue": "1"}, {"intValue": "-2"}, {"intValue": "9007199254740993"}
            ]}}),
        ),
        (
            "attr.strings",
            serde_json::json!({"arrayValue": {"values": [
                {"stringValue": "a"}, {"stringValue": "b"}
            ]}}),
        ),
    ];
    for (key, want) in &expect {
        assert_eq!(raw_attr(attrs, key), Some(want), "attribute {key}");
    }
    // The embedded newline is escaped: one physical line per TracesData.
    assert!(!text.trim_end_matches('\n').contains("\nnext"));

    // The typed re-parse sees the same spans.
    let typed_child = typed_spans
        .iter()
        .find(|s| s.name == "child")
        .context("child re-parsed")?;
    assert_eq!(
        typed_child.trace_id,
        root_ctx.trace_id().to_bytes().to_vec()
    );
    assert_eq!(typed_child.span_id, child_ctx.span_id().to_bytes().to_vec());
    assert_eq!(
        typed_child.parent_span_id,
        root_ctx.span_id().to_bytes().to_vec()
    );
    assert_eq!(typed_child.kind, 3);
    assert_eq!(typed_child.status.as_ref().map(|s| s.code), Some(2));
    let typed_link = typed_child.links.first().context("link re-parsed")?;
    assert_eq!(hex_of(&typed_link.trace_id), LINK_TRACE_HEX);
    assert_eq!(hex_of(&typed_link.span_id), LINK_SPAN_HEX);
    let typed_attr = |key: &str| {
        typed_child
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(
        typed_attr("attr.big"),
        Some(any_value::Value::IntValue(BIG_INT))
    );
    assert_eq!(typed_attr("attr.int"), Some(any_value::Value::IntValue(42)));
    assert_eq!(
        typed_attr("attr.double"),
        Some(any_value::Value::DoubleValue(1.5))
    );
    assert_eq!(
        typed_attr("attr.bool"),
        Some(any_value::Value::BoolValue(true))
    );
    assert_eq!(typed_child.events.len(), 2);
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// 2. File mode, parent directories, start-up errors

#[cfg(unix)]
#[test]
fn file_is_private_parents_created_and_bad_paths_fail_at_build() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a/b/c/traces.jsonl");
    let pipeline = Pipeline::builder()
        .jsonl(Some(JsonlConfig::new(&path)))
        .build()?;
    // The file exists from build() on, before any span.
    let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "trace file mode is {mode:o}");
    for created in ["a", "a/b", "a/b/c"] {
        let meta = fs::metadata(dir.path().join(created))?;
        assert!(meta.is_dir());
        assert_eq!(
            meta.permissions().mode() & 0o077,
            0,
            "{created} must not be group/other accessible"
        );
    }
    let tracer = pipeline.tracer("mode");
    tracer.start("one").end();
    let stats = pipeline.shutdown(SHUTDOWN);
    assert_eq!(stats.jsonl.map(|s| s.written), Some(1));
    assert_eq!(common::count_file(&path)?, (1, 1));

    // A path under a regular file fails even for root.
    let blocker = dir.path().join("regular-file");
    fs::write(&blocker, b"not a directory")?;
    for bad in [
        blocker.join("traces.jsonl"),
        blocker.join("sub/dir/traces.jsonl"),
    ] {
        let err = Pipeline::builder()
            .jsonl(Some(JsonlConfig::new(&bad)))
            .build()
            .expect_err("a path under a regular file cannot be opened");
        let message = err.to_string();
        assert!(
            matches!(err, PipelineError::Jsonl(JsonlError::CreateDir { .. })),
            "{err:?}"
        );
        assert_eq!(err.kind(), "jsonl_create_dir");
        let parent = bad.parent().map(Path::display).map(|d| d.to_string());
        assert!(
            parent.is_some_and(|p| message.contains(&p)),
            "message must name the path: {message}"
        );
    }

    // The path itself is a directory: an open error naming it.
    let as_dir = dir.path().join("is-a-dir");
    fs::create_dir(&as_dir)?;
    let err = Pipeline::builder()
        .jsonl(Some(JsonlConfig::new(&as_dir)))
        .build()
        .expect_err("a directory cannot be the trace file");
    assert!(
        matches!(err, PipelineError::Jsonl(JsonlError::Open { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), "jsonl_open");
    assert!(
        err.to_string().contains(&as_dir.display().to_string()),
        "message must name the path: {err}"
    );
    // The blocker file was not touched.
    assert_eq!(fs::read(&blocker)?, b"not a directory");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Size-based rotation

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[test]
fn rotation_keeps_lines_whole_and_loses_no_span() -> Result<()> {
    const SPANS: usize = 400;
    const MAX_BYTES: u64 = 6 * 1024;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let mut cfg = small_batches(&path, 4);
    cfg.max_bytes = Some(MAX_BYTES);
    cfg.keep_files = 1_000;
    let pipeline = Pipeline::builder().jsonl(Some(cfg)).build()?;
    let tracer = pipeline.tracer("rotation");
    for i in 0..SPANS {
        let mut span = tracer.start(format!("span-{i:04}"));
        span.set_attribute(KeyValue::new("payload", "x".repeat(200)));
        span.end();
        if i.is_multiple_of(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let stats = pipeline.shutdown(SHUTDOWN);
    let jsonl = stats.jsonl.context("jsonl")?;
    assert_eq!(
        (jsonl.written, jsonl.failed, jsonl.dropped, jsonl.queued),
        (SPANS as u64, 0, 0, 0)
    );

    let mut files = vec![path.clone()];
    let mut n = 1;
    while rotated(&path, n).exists() {
        files.push(rotated(&path, n));
        n += 1;
    }
    assert!(
        files.len() >= 3,
        "expected several rotations, got {} files",
        files.len()
    );
    // Nothing else in the directory (no stray temp files, no gap in the numbering).
    assert_eq!(fs::read_dir(dir.path())?.count(), files.len());

    let mut total_spans = 0;
    let mut names = Vec::new();
    for file in &files {
        let bytes = fs::read(file)?;
        ensure!(
            bytes.last() == Some(&b'\n'),
            "{} does not end with a newline",
            file.display()
        );
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        assert!(
            bytes.len() as u64 <= MAX_BYTES || lines == 1,
            "{} is {} bytes over {} lines, above the {MAX_BYTES} limit",
            file.display(),
            bytes.len(),
            lines
        );
        // Every line of every file decodes: no line was split across files.
        let (_, spans) = common::count_file(file)?;
        total_spans += spans;
        names.extend(common::span_names(file)?);
    }
    assert_eq!(total_spans, SPANS as u64);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), SPANS, "every span exactly once");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 9. Disk full at run time

#[cfg(target_os = "linux")]
#[test]
fn disk_full_counts_failures_and_goes_on() -> Result<()> {
    let full = Path::new("/dev/full");
    ensure!(full.exists(), "/dev/full is missing on this Linux system");
    let pipeline = Pipeline::builder()
        .jsonl(Some(small_batches(full, 8)))
        .build()
        .context("opening /dev/full for appending succeeds")?;
    let tracer = pipeline.tracer("full");
    for i in 0..30 {
        tracer.start(format!("lost-{i}")).end();
    }
    // Writes fail with ENOSPC in the background; the application carries on.
    pipeline.force_flush(SHUTDOWN);
    let mid = pipeline.stats().jsonl.context("jsonl")?;
    assert_eq!((mid.written, mid.failed, mid.queued), (0, 30, 0), "{mid:?}");
    for i in 0..10 {
        tracer.start(format!("lost-late-{i}")).end();
    }
    let stats = pipeline.shutdown(SHUTDOWN);
    let jsonl = stats.jsonl.context("jsonl")?;
    assert_eq!(jsonl.written, 0);
    assert_eq!(jsonl.failed, 40, "{jsonl:?}");
    assert_eq!((jsonl.dropped, jsonl.queued), (0, 0));

    // The same process can still write elsewhere.
    let dir = tempfile::tempdir()?;
    let ok_path = dir.path().join("after.jsonl");
    let pipeline = Pipeline::builder()
        .jsonl(Some(small_batches(&ok_path, 8)))
        .build()?;
    pipeline.tracer("after").start("kept").end();
    pipeline.shutdown(SHUTDOWN);
    assert_eq!(common::span_names(&ok_path)?, vec!["kept".to_owned()]);
    Ok(())
}
