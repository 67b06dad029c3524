//! The reading commands (`stats`, `export`, `tail`, `tree`) run as the binary, on two sources:
//! JSONL written by `llmtap demo` (through the real proxy), and a hand-made file in the
//! OpenTelemetry Collector file-exporter form holding spans of another instrumentation
//! (opentelemetry-instrumentation-openai-v2's attribute set, plus an agent framework's trace
//! with structured content, a tool call and a failure). Every figure is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

/// Runs the binary with the test price table (`tests/fixtures/prices.json`), so figures do not
/// move when the bundled table is refreshed.
fn llmtap(dir: &Path, args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(args)
        .current_dir(dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("NO_COLOR", "1")
        .env("LLMTAP_PRICES", test_prices())
        .output()
        .context("cannot run llmtap")
}

fn test_prices() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prices.json")
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
    assert_eq!(bad.status.code(), Some(64), "clap usage error is EX_USAGE");
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
        .filter(|s| {
            attr(s, "gen_ai.operation.name").is_some_and(|v| v["stringValue"] != "invoke_agent")
        })
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

// ---- export ---------------------------------------------------------------------------------

fn lines_json(bytes: &[u8]) -> Result<Vec<Value>> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).context("line is not JSON"))
        .collect()
}

#[test]
fn export_jsonl_rows_of_peer_spans_are_exact() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = ok(llmtap(dir.path(), &["export", &fixture_arg()])?)?;
    let rows = lines_json(&out.stdout)?;
    assert_eq!(rows.len(), 4, "model calls only");
    assert_eq!(
        rows[0],
        json!({
            "time": "2026-05-01T12:00:00.100Z",
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "b1b1b1b1b1b1b1b1",
            "parent_span_id": "a1a1a1a1a1a1a1a1",
            "session_id": null,
            "agent": null,
            "service": "chat-app",
            "operation": "chat",
            "provider": "openai",
            "request_model": "gpt-4o-mini",
            "model": "gpt-4o-mini-2024-07-18",
            "response_id": "chatcmpl-mock123",
            "finish_reason": "stop",
            "status": "ok",
            "error_type": null,
            "http_status": null,
            "input_tokens": 9,
            "output_tokens": 4,
            "cached_input_tokens": null,
            "reasoning_tokens": null,
            "total_tokens": 13,
            "latency_ms": 400.0,
            "ttft_ms": null,
            "output_tokens_per_second": 10.0,
            "streamed": false,
            "system_fingerprint": "fp_mock",
            "request_id": null,
            "server_address": "127.0.0.1",
            "span_name": "chat gpt-4o-mini",
            // 9 × $0.15/M + 4 × $0.60/M.
            "cost_usd": 3.75e-6
        })
    );
    // The streamed peer span has no finish reasons (peer quirk) and int values as numbers.
    assert_eq!(rows[1]["finish_reason"], Value::Null);
    assert_eq!(rows[1]["total_tokens"], 13);
    let plan = &rows[2];
    assert_eq!(plan["session_id"], "conv-42");
    assert_eq!(plan["agent"], "planner");
    assert_eq!(plan["finish_reason"], "tool_call");
    assert_eq!(plan["cached_input_tokens"], 1000);
    assert_eq!(plan["reasoning_tokens"], 120);
    assert_eq!(plan["total_tokens"], 1500);
    assert_eq!(plan["ttft_ms"], 250.0);
    assert_eq!(plan["streamed"], true);
    assert_eq!(plan["output_tokens_per_second"], 150.0);
    // 200 × $2.50/M + 1,000 cached × $1.25/M + 300 × $10/M.
    assert_eq!(plan["cost_usd"], 0.00475);
    let failed = &rows[3];
    assert_eq!(failed["cost_usd"], Value::Null, "no usage, no cost");
    assert_eq!(failed["status"], "error");
    assert_eq!(failed["error_type"], "RateLimitError");
    assert_eq!(failed["input_tokens"], Value::Null, "never guessed");
    assert_eq!(failed["total_tokens"], Value::Null);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "exported 4 call(s) as jsonl"
    );

    // Filters: a session and a status.
    let out = ok(llmtap(
        dir.path(),
        &[
            "export",
            &fixture_arg(),
            "--session",
            "conv-42",
            "--status",
            "ok",
        ],
    )?)?;
    let rows = lines_json(&out.stdout)?;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["span_id"], "c2c2c2c2c2c2c2c2");
    Ok(())
}

#[test]
fn export_csv_is_rfc4180_with_the_same_columns() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = ok(llmtap(
        dir.path(),
        &["export", &fixture_arg(), "-f", "csv", "-o", "calls.csv"],
    )?)?;
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "exported 4 call(s) as csv to calls.csv\n"
    );
    let csv = std::fs::read_to_string(dir.path().join("calls.csv"))?;
    let records: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(records.len(), 5, "header + 4 calls");
    assert_eq!(
        records[0],
        "time,trace_id,span_id,parent_span_id,session_id,agent,service,operation,provider,\
         request_model,model,response_id,finish_reason,status,error_type,http_status,\
         input_tokens,output_tokens,cached_input_tokens,reasoning_tokens,total_tokens,\
         latency_ms,ttft_ms,output_tokens_per_second,streamed,system_fingerprint,request_id,\
         server_address,span_name,cost_usd"
    );
    assert_eq!(
        records[1],
        "2026-05-01T12:00:00.100Z,5b8efff798038103d269b633813fc60c,b1b1b1b1b1b1b1b1,\
         a1a1a1a1a1a1a1a1,,,chat-app,chat,openai,gpt-4o-mini,gpt-4o-mini-2024-07-18,\
         chatcmpl-mock123,stop,ok,,,9,4,,,13,400,,10,false,fp_mock,,127.0.0.1,chat gpt-4o-mini,\
         0.00000375"
    );
    assert_eq!(
        records[4],
        "2026-05-01T12:05:02.500Z,0af7651916cd43dd8448eb211c80319c,c4c4c4c4c4c4c4c4,\
         c1c1c1c1c1c1c1c1,conv-42,planner,trip-planner,chat,openai,gpt-4o,gpt-4o,,,error,\
         RateLimitError,,,,,,,100,,,false,,,,chat gpt-4o,"
    );
    Ok(())
}

#[test]
fn export_openai_fine_tuning_takes_successful_calls_with_content() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = ok(llmtap(
        dir.path(),
        &["export", &fixture_arg(), "--format", "openai", "--json"],
    )?)?;
    let examples = lines_json(&out.stdout)?;
    let hello = json!({"messages": [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": "Hello from mock!"}
    ]});
    assert_eq!(examples.len(), 3);
    assert_eq!(examples[0], hello);
    assert_eq!(examples[1], hello);
    // Structured (kvlist) content, system instructions, a tool call and tool definitions.
    assert_eq!(
        examples[2],
        json!({
            "messages": [
                {"role": "system", "content": "You plan trips."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
                }]}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}
            }}]
        })
    );
    let summary: Value = serde_json::from_slice(&out.stderr)?;
    assert_eq!(summary["written"], 3);
    assert_eq!(summary["matched_calls"], 4);
    assert_eq!(
        summary["skipped_failed"], 1,
        "the rate-limited call has input only"
    );
    assert_eq!(summary["skipped_no_content"], 0);
    Ok(())
}

#[test]
fn export_otlp_keeps_only_matching_spans_and_stays_otlp() -> Result<()> {
    let dir = tempfile::tempdir()?;
    ok(llmtap(
        dir.path(),
        &[
            "export",
            &fixture_arg(),
            "-f",
            "otlp",
            "--since",
            "2026-05-01T12:05:02Z",
            "-o",
            "late.jsonl",
        ],
    )?)?;
    let spans = raw_calls(&dir.path().join("late.jsonl"))?;
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["execute_tool get_weather", "chat gpt-4o"]);
    // Resource and scope survive; the result reads back as OTLP/JSON lines.
    let text = std::fs::read_to_string(dir.path().join("late.jsonl"))?;
    assert_eq!(
        text.lines().count(),
        1,
        "the first line had no match and is dropped"
    );
    let line: Value = serde_json::from_str(text.trim())?;
    assert_eq!(
        line["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
        "trip-planner"
    );
    assert_eq!(
        line["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"],
        "agent-framework"
    );
    let r = json_out(&ok(llmtap(
        dir.path(),
        &["stats", "late.jsonl", "--json"],
    )?)?)?;
    assert_eq!(r["total"]["calls"], 1);
    assert_eq!(r["total"]["errors"], 1);
    assert_eq!(r["other_spans"], 1);
    Ok(())
}

#[test]
fn export_on_demo_jsonl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    demo_file(dir.path())?;
    let out = ok(llmtap(dir.path(), &["export", "demo.jsonl"])?)?;
    let rows = lines_json(&out.stdout)?;
    assert_eq!(rows.len(), 7);
    let failed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "error").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["agent"], "fact-checker");
    assert_eq!(failed[0]["error_type"], "rate_limit_exceeded");
    assert_eq!(failed[0]["http_status"], 429);
    let total_in: u64 = rows.iter().filter_map(|r| r["input_tokens"].as_u64()).sum();
    assert_eq!(total_in, 265);
    for row in rows.iter().filter(|r| r["status"] == "ok") {
        assert_eq!(row["provider"], "openai");
        assert_eq!(row["request_model"], "gpt-4o-mini");
        assert_eq!(row["model"], "gpt-4o-mini-2024-07-18");
        assert!(
            row["request_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("req_"))
        );
        assert!(
            row["response_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("chatcmpl-"))
        );
        assert_eq!(
            row["total_tokens"].as_u64(),
            Some(
                row["input_tokens"].as_u64().unwrap_or(0)
                    + row["output_tokens"].as_u64().unwrap_or(0)
            )
        );
        assert!(
            row["session_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("demo-"))
        );
    }
    // Every call has a parent: its agent's invoke_agent span (ADR 0014), which is not a call.
    let call_ids: Vec<&Value> = rows.iter().map(|r| &r["span_id"]).collect();
    for row in &rows {
        assert!(!row["parent_span_id"].is_null(), "{row}");
    }
    let orchestrator: Vec<&Value> = rows
        .iter()
        .filter(|r| r["agent"] == "orchestrator")
        .collect();
    assert_eq!(orchestrator.len(), 1);
    assert!(!call_ids.contains(&&orchestrator[0]["parent_span_id"]));

    // The demo captures content: every successful call is a fine-tuning example whose last
    // message is the assistant's answer.
    let out = ok(llmtap(
        dir.path(),
        &["export", "demo.jsonl", "-f", "openai"],
    )?)?;
    let examples = lines_json(&out.stdout)?;
    assert_eq!(examples.len(), 6);
    for ex in &examples {
        let messages = ex["messages"].as_array().context("messages")?;
        let last = messages.last().context("answer")?;
        assert_eq!(last["role"], "assistant");
        assert!(
            last["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("Mock answer"))
                || last.get("tool_calls").is_some(),
            "{last}"
        );
        assert!(messages.iter().any(|m| m["role"] == "user"), "{ex}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("left out 1 of 7 call(s): 1 failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unreadable input: nothing is created.
    let out = llmtap(dir.path(), &["export", "nope.jsonl", "-o", "out.csv"])?;
    assert_eq!(out.status.code(), Some(66));
    assert!(!dir.path().join("out.csv").exists());
    Ok(())
}

// ---- tail -----------------------------------------------------------------------------------

/// Kills the child on drop, so a failed assertion never leaves `tail -f` running.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tail_prints_last_calls_with_filters() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let f = fixture_arg();
    let out = ok(llmtap(dir.path(), &["tail", &f, "-n", "2"])?)?;
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "2026-05-01T12:05:00.100Z  [planner]  chat gpt-4o  ✓ tool_call  \
         2.00 s (ttft 250 ms) stream  in 1200 / out 300 (cached 1000) (reasoning 120) tok  \
         $0.0047  session conv-42  trace 0af76519\n\
         2026-05-01T12:05:02.500Z  [planner]  chat gpt-4o  ✗ RateLimitError  100 ms  \
         session conv-42  trace 0af76519\n"
    );
    let out = ok(llmtap(
        dir.path(),
        &["tail", &f, "--json", "--model", "gpt-4o-mini"],
    )?)?;
    let rows = lines_json(&out.stdout)?;
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["span_id"].as_str()).collect();
    assert_eq!(ids, ["b1b1b1b1b1b1b1b1", "b2b2b2b2b2b2b2b2"]);
    let out = llmtap(dir.path(), &["tail", "missing.jsonl"])?;
    assert_eq!(out.status.code(), Some(66));
    Ok(())
}

#[test]
fn tail_follow_prints_calls_as_the_proxy_writes_them_and_across_rotation() -> Result<()> {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("live.jsonl");
    std::fs::write(&live, "")?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(["tail", "-f", "live.jsonl", "--json", "--poll-ms", "20"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let _running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let take = |n: usize| -> Result<Vec<Value>> {
        let mut got = Vec::new();
        while got.len() < n {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .with_context(|| format!("only {} of {n} lines arrived", got.len()))?;
            got.push(serde_json::from_str(&line)?);
        }
        Ok(got)
    };

    // The demo's proxy appends to the followed file.
    ok(llmtap(dir.path(), &["demo", "--jsonl", "live.jsonl"])?)?;
    let calls = take(7)?;
    let agents: std::collections::BTreeSet<&str> =
        calls.iter().filter_map(|c| c["agent"].as_str()).collect();
    assert_eq!(
        agents.into_iter().collect::<Vec<_>>(),
        [
            "fact-checker",
            "orchestrator",
            "researcher-papers",
            "researcher-web",
            "writer"
        ]
    );
    assert_eq!(calls.iter().filter(|c| c["status"] == "error").count(), 1);

    // Rotation as the JSONL writer does it: rename to .1, start a new file.
    std::fs::rename(&live, dir.path().join("live.jsonl.1"))?;
    std::fs::copy(fixture(), &live)?;
    let calls = take(4)?;
    let ids: Vec<&str> = calls.iter().filter_map(|c| c["span_id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "b1b1b1b1b1b1b1b1",
            "b2b2b2b2b2b2b2b2",
            "c2c2c2c2c2c2c2c2",
            "c4c4c4c4c4c4c4c4"
        ]
    );
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "nothing printed twice"
    );
    Ok(())
}

// ---- push -----------------------------------------------------------------------------------

/// A minimal OTLP/HTTP collector for `http/json`: records the span names of every request.
fn fake_collector() -> Result<(String, std::sync::mpsc::Receiver<Vec<String>>)> {
    use std::io::{BufRead as _, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let tx = tx.clone();
            std::thread::spawn(move || -> Result<()> {
                let mut reader = std::io::BufReader::new(conn.try_clone()?);
                let mut writer = conn;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse()?;
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body)?;
                    let v: Value = serde_json::from_slice(&body)?;
                    let mut names = Vec::new();
                    for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                            for s in ss["spans"].as_array().into_iter().flatten() {
                                names.push(s["name"].as_str().unwrap_or("").to_owned());
                            }
                        }
                    }
                    let _ = tx.send(names);
                    writer.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                          content-length: 2\r\n\r\n{}",
                    )?;
                }
            });
        }
    });
    Ok((format!("http://{addr}"), rx))
}

#[test]
fn push_sends_only_the_filtered_spans() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (endpoint, requests) = fake_collector()?;
    let out = ok(llmtap(
        dir.path(),
        &[
            "push",
            &fixture_arg(),
            "--endpoint",
            &endpoint,
            "--protocol",
            "http/json",
            "--session",
            "conv-42",
            "--json",
        ],
    )?)?;
    let report = json_out(&out)?;
    assert_eq!(report["spans_sent"], 4);
    assert_eq!(report["spans_failed"], 0);
    assert_eq!(report["spans_filtered_out"], 3);
    assert_eq!(report["requests"], 1);
    assert_eq!(report["read"]["spans"], 7);
    let names: Vec<String> = requests.try_iter().flatten().collect();
    assert_eq!(
        names,
        [
            "invoke_agent planner",
            "chat gpt-4o",
            "execute_tool get_weather",
            "chat gpt-4o"
        ]
    );

    // Without filters, every span, in requests of at most --batch-spans (lines never split).
    let out = ok(llmtap(
        dir.path(),
        &[
            "push",
            &fixture_arg(),
            "--endpoint",
            &endpoint,
            "--protocol",
            "http/json",
            "--batch-spans",
            "1",
        ],
    )?)?;
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.starts_with(&format!(
            "pushed 7 spans in 2 requests to {endpoint}/v1/traces; failed 0"
        )),
        "{text}"
    );
    let sizes: Vec<usize> = requests.try_iter().map(|r| r.len()).collect();
    assert_eq!(sizes, [3, 4]);

    // Nothing listening: exit 69, spans counted as failed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead = format!("http://{}", closed.local_addr()?);
    drop(closed);
    let out = llmtap(
        dir.path(),
        &["push", &fixture_arg(), "--endpoint", &dead, "--json"],
    )?;
    assert_eq!(out.status.code(), Some(69));
    let report = json_out(&out)?;
    assert_eq!(report["spans_sent"], 0);
    assert_eq!(report["spans_failed"], 7);
    Ok(())
}

// ---- tree on another instrumentation's spans ------------------------------------------------

fn shape(node: &Value) -> Value {
    json!({
        "name": node["name"],
        "input": node["tokens"]["input"],
        "subtree_input": node["subtree_tokens"]["input"],
        "error": node["error"],
        "children": node["children"].as_array().into_iter().flatten().map(shape).collect::<Vec<_>>(),
    })
}

#[test]
fn tree_of_collector_file_is_exact_and_filters_pick_traces() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let f = fixture_arg();
    let trees = json_out(&ok(llmtap(dir.path(), &["tree", &f, "--json"])?)?)?;
    let trees = trees.as_array().context("array")?;
    assert_eq!(trees.len(), 2);
    assert_eq!(trees[0]["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(trees[0]["span_count"], 3);
    assert_eq!(trees[0]["duration_ms"], 1500.0);
    assert_eq!(
        shape(&trees[0]["roots"][0]),
        json!({"name": "POST /ask", "input": 0, "subtree_input": 18, "error": false, "children": [
            {"name": "chat gpt-4o-mini", "input": 9, "subtree_input": 9, "error": false, "children": []},
            {"name": "chat gpt-4o-mini", "input": 9, "subtree_input": 9, "error": false, "children": []},
        ]})
    );
    assert_eq!(trees[1]["errors"], 1);
    assert_eq!(
        trees[1]["tokens"],
        json!({"input": 1200, "output": 300, "cache_read": 1000, "reasoning": 120})
    );
    assert_eq!(
        shape(&trees[1]["roots"][0]),
        json!({"name": "invoke_agent planner", "input": 0, "subtree_input": 1200, "error": false, "children": [
            {"name": "chat gpt-4o", "input": 1200, "subtree_input": 1200, "error": false, "children": []},
            {"name": "execute_tool get_weather", "input": 0, "subtree_input": 0, "error": false, "children": []},
            {"name": "chat gpt-4o", "input": 0, "subtree_input": 0, "error": true, "children": []},
        ]})
    );
    assert_eq!(
        trees[1]["roots"][0]["children"][2]["error_type"],
        "RateLimitError"
    );

    let ids = |args: &[&str]| -> Result<Vec<String>> {
        let mut all = vec!["tree", f.as_str(), "--json"];
        all.extend_from_slice(args);
        let v = json_out(&ok(llmtap(dir.path(), &all)?)?)?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["trace_id"].as_str().map(str::to_owned))
            .collect())
    };
    assert_eq!(ids(&["--last", "1"])?, ["0af7651916cd43dd8448eb211c80319c"]);
    assert_eq!(
        ids(&["--session", "conv-42"])?,
        ["0af7651916cd43dd8448eb211c80319c"]
    );
    assert_eq!(
        ids(&["--trace", "5B8E"])?,
        ["5b8efff798038103d269b633813fc60c"]
    );
    assert_eq!(ids(&["--session", "nope"])?, Vec::<String>::new());
    Ok(())
}
