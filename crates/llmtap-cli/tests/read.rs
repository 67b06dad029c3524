//! The reading commands (`stats`, `export`, `tail`, `tree`) run as the binary, on two sources:
//! JSONL written by `llmtap demo` (through the real proxy), and a hand-made file in the
//! OpenTelemetry Collector file-exporter form holding spans of another instrumentation
//! (opentelemetry-instrumentation-openai-v2's attribute set, plus an agent framework's trace
//! with structured content, a tool call and a failure). Every figure is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

fn llmtap(dir: &Path, args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(args)
        .current_dir(dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("NO_COLOR", "1")
        .output()
        .context("cannot run llmtap")
}

fn ok(out: Output) -> Result<Output> {
    ensure!(
        out.status.success(),
        "llmtap failed ({:?}): {}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

fn json_out(out: &Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).context("stdout is not JSON")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/collector-openai-v2.jsonl")
}

fn fixture_arg() -> String {
    fixture().display().to_string()
}

/// Runs the demo once into `dir/demo.jsonl`.
fn demo_file(dir: &Path) -> Result<PathBuf> {
    ok(llmtap(dir, &["demo", "--jsonl", "demo.jsonl"])?)?;
    Ok(dir.join("demo.jsonl"))
}

/// (duration ms, ttft ms) of every model call in an OTLP/JSON lines file, computed here
/// independently of the CLI.
fn raw_calls(path: &Path) -> Result<Vec<Value>> {
    let mut spans = Vec::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let v: Value = serde_json::from_str(line)?;
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    spans.push(span.clone());
                }
            }
        }
    }
    Ok(spans)
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

fn nanos(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
        .unwrap_or(0)
}

/// Nearest-rank percentile, the definition `stats` documents.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---- stats ----------------------------------------------------------------------------------

#[test]
fn stats_on_collector_file_with_peer_spans_is_exact() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = ok(llmtap(dir.path(), &["stats", &fixture_arg(), "--json"])?)?;
    let r = json_out(&out)?;
    let total = &r["total"];
    assert_eq!(total["calls"], 4);
    assert_eq!(total["errors"], 1);
    assert_eq!(
        total["tokens"],
        json!({"input": 1218, "output": 308, "cache_read": 1000, "reasoning": 120})
    );
    assert_eq!(total["error_types"], json!({"RateLimitError": 1}));
    // Latencies 100, 400, 800, 2000 ms: nearest rank.
    assert_eq!(total["latency_ms"]["p50"], 400.0);
    assert_eq!(total["latency_ms"]["p95"], 2000.0);
    assert_eq!(total["latency_ms"]["p99"], 2000.0);
    assert_eq!(total["latency_ms"]["mean"], 825.0);
    assert_eq!(total["latency_ms"]["exact"], true);
    assert_eq!(total["ttft_ms"]["count"], 1);
    assert_eq!(total["ttft_ms"]["p50"], 250.0);
    // 308 output tokens over the 3.2 s of the three successful calls that reported them.
    assert_eq!(total["output_tokens_per_second"], 96.25);
    assert_eq!(total["first_call"], "2026-05-01T12:00:00.100Z");
    assert_eq!(total["last_call_end"], "2026-05-01T12:05:02.600Z");
    // The HTTP server span, the agent span and the tool span are not calls.
    assert_eq!(r["other_spans"], 3);
    assert_eq!(r["group_by"], "model");

    let groups = r["groups"].as_array().context("groups")?;
    assert_eq!(groups.len(), 2);
    let g4o = &groups[0];
    assert_eq!(g4o["key"], "gpt-4o", "ties sort by key");
    assert_eq!(g4o["calls"], 2);
    assert_eq!(g4o["errors"], 1);
    assert_eq!(g4o["latency_ms"]["p50"], 100.0);
    assert_eq!(g4o["latency_ms"]["p99"], 2000.0);
    assert_eq!(g4o["output_tokens_per_second"], 150.0);
    let mini = &groups[1];
    assert_eq!(mini["key"], "gpt-4o-mini");
    assert_eq!(
        mini["tokens"],
        json!({"input": 18, "output": 8, "cache_read": 0, "reasoning": 0})
    );
    assert_eq!(mini["latency_ms"]["p50"], 400.0);
    assert_eq!(mini["latency_ms"]["p95"], 800.0);
    assert_eq!(mini["ttft_ms"]["count"], 0);
    assert_eq!(mini["ttft_ms"]["p50"], Value::Null);
    assert_eq!(mini["output_tokens_per_second"], 6.67);

    let files = r["files"].as_array().context("files")?;
    assert_eq!(files[0]["lines"], 2);
    assert_eq!(files[0]["spans"], 7);
    assert_eq!(files[0]["invalid_lines"], 0);
    Ok(())
}

#[test]
fn stats_groups_by_session_agent_provider_and_filters_by_window() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let f = fixture_arg();
    let by = |what: &str, extra: &[&str]| -> Result<Value> {
        let mut args = vec!["stats", f.as_str(), "--json", "--by", what];
        args.extend_from_slice(extra);
        json_out(&ok(llmtap(dir.path(), &args)?)?)
    };
    let keys = |r: &Value| -> Vec<(Value, Value)> {
        r["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| (g["key"].clone(), g["calls"].clone()))
            .collect()
    };
    assert_eq!(
        keys(&by("session", &[])?),
        [(json!("conv-42"), json!(2)), (Value::Null, json!(2))]
    );
    assert_eq!(
        keys(&by("agent", &[])?),
        [(json!("planner"), json!(2)), (Value::Null, json!(2))]
    );
    assert_eq!(keys(&by("provider", &[])?), [(json!("openai"), json!(4))]);
    let none = by("none", &[])?;
    assert_eq!(none["groups"], json!([]));
    assert_eq!(none["total"]["calls"], 4);

    // Only the agent trace (12:05), given as an RFC 3339 window with an offset.
    let window = by(
        "model",
        &[
            "--since",
            "2026-05-01T14:01:00+02:00",
            "--until",
            "2026-05-01T12:10:00Z",
        ],
    )?;
    assert_eq!(window["total"]["calls"], 2);
    assert_eq!(window["since"], "2026-05-01T12:01:00.000Z");
    assert_eq!(keys(&window), [(json!("gpt-4o"), json!(2))]);
    // A relative window: the fixture is in the past, so `1h` leaves nothing.
    let recent = by("model", &["--since", "1h"])?;
    assert_eq!(recent["total"]["calls"], 0);
    // Attribute filters.
    let errors = by("model", &["--status", "error"])?;
    assert_eq!(errors["total"]["calls"], 1);
    let snapshot = by("model", &["--model", "gpt-4o-mini-2024-07-18"])?;
    assert_eq!(
        snapshot["total"]["calls"], 2,
        "the answering model matches too"
    );

    let text = ok(llmtap(dir.path(), &["stats", &f, "--by", "session"])?)?;
    let text = String::from_utf8(text.stdout)?;
    assert!(text.starts_with("4 model calls, 1 failed"), "{text}");
    assert!(text.contains("conv-42"), "{text}");
    assert!(text.contains("RateLimitError  1"), "{text}");

    let bad = llmtap(dir.path(), &["stats", &f, "--since", "yesterday"])?;
    assert_eq!(bad.status.code(), Some(2), "clap usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    Ok(())
}

#[test]
fn stats_on_demo_jsonl_matches_an_independent_computation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = demo_file(dir.path())?;
    let spans = raw_calls(&file)?;
    let calls: Vec<&Value> = spans
        .iter()
        .filter(|s| attr(s, "gen_ai.operation.name").is_some())
        .collect();
    let mut latencies: Vec<f64> = calls
        .iter()
        .map(|s| (nanos(&s["endTimeUnixNano"]) - nanos(&s["startTimeUnixNano"])) as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let sum = |key: &str| -> u64 {
        calls
            .iter()
            .filter_map(|s| attr(s, key))
            .map(|v| nanos(&v["intValue"]))
            .sum()
    };

    let r = json_out(&ok(llmtap(
        dir.path(),
        &["stats", "demo.jsonl", "--json", "--by", "agent"],
    )?)?)?;
    let total = &r["total"];
    assert_eq!(total["calls"], 7);
    assert_eq!(total["errors"], 1);
    assert_eq!(total["error_types"], json!({"rate_limit_exceeded": 1}));
    assert_eq!(total["tokens"]["input"], sum("gen_ai.usage.input_tokens"));
    assert_eq!(total["tokens"]["output"], sum("gen_ai.usage.output_tokens"));
    assert_eq!(total["tokens"]["input"], 265);
    assert_eq!(total["tokens"]["output"], 90);
    for (q, key) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")] {
        assert_eq!(
            total["latency_ms"][key].as_f64(),
            Some(round3(nearest_rank(&latencies, q))),
            "{key}"
        );
    }
    // Four streamed calls succeeded; the rate-limited one has no first chunk.
    assert_eq!(total["ttft_ms"]["count"], 4);
    let agents: Vec<(String, u64)> = r["groups"]
        .as_array()
        .context("groups")?
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap_or("").to_owned(),
                g["calls"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            ("fact-checker".to_owned(), 2),
            ("researcher-web".to_owned(), 2),
            ("orchestrator".to_owned(), 1),
            ("researcher-papers".to_owned(), 1),
            ("writer".to_owned(), 1),
        ]
    );
    Ok(())
}

#[test]
fn stats_reports_torn_and_foreign_lines_and_rejects_non_jsonl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = std::fs::read_to_string(fixture())?;
    let mut lines = good.lines();
    let first = lines.next().context("line 1")?;
    let second = lines.next().context("line 2")?;
    let damaged = format!(
        "{first}\nnot json at all\n{{\"level\":\"info\",\"msg\":\"hello\"}}\n{second}\n{}",
        &first[..first.len() / 2]
    );
    std::fs::write(dir.path().join("damaged.jsonl"), damaged)?;
    let out = ok(llmtap(dir.path(), &["stats", "damaged.jsonl", "--json"])?)?;
    let r = json_out(&out)?;
    assert_eq!(r["total"]["calls"], 4, "good lines are all read");
    assert_eq!(
        r["files"][0],
        json!({
            "file": "damaged.jsonl",
            "lines": 5,
            "batches": 2,
            "spans": 7,
            "invalid_lines": 1,
            "foreign_lines": 1,
            "torn_last_line": true
        })
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "damaged.jsonl: skipped 1 line(s) that are not OTLP/JSON, 1 JSON line(s) without \
             resourceSpans, a torn last line"
        ),
        "{stderr}"
    );

    std::fs::write(dir.path().join("app.log"), "INFO started\nWARN slow\n")?;
    let out = llmtap(dir.path(), &["stats", "app.log"])?;
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app.log is not an OTLP/JSON lines file"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // Binary data (a compressed Collector file) is not JSONL either.
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(dir.path().join("traces.zst"), bytes)?;
    let out = llmtap(dir.path(), &["stats", "traces.zst"])?;
    assert_eq!(out.status.code(), Some(65));

    let out = llmtap(dir.path(), &["stats", "missing.jsonl"])?;
    assert_eq!(out.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.jsonl"));
    let out = llmtap(dir.path(), &["stats", "."])?;
    assert_eq!(out.status.code(), Some(66), "a directory");

    // An empty file is fine: no calls.
    std::fs::write(dir.path().join("empty.jsonl"), "")?;
    let out = ok(llmtap(dir.path(), &["stats", "empty.jsonl"])?)?;
    assert_eq!(String::from_utf8(out.stdout)?, "no model calls\n");
    Ok(())
}
