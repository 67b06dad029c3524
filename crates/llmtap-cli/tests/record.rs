//! Reading the record (issue 19): `show` one call in full, `export --content` with metadata and
//! service columns, the shared filters and `stats --by meta.KEY|service|finish_reason`, cost
//! from a LiteLLM-format price table, rate-limit figures, and the same exit codes from every
//! reading command; plus the default inputs (rotations, `tail -f` on a file not yet there, the
//! demo's next steps as typed).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

fn llmtap_env(dir: &Path, args: &[&str], prices: Option<&Path>) -> Result<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmtap"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("LLMTAP_PRICES")
        .env("NO_COLOR", "1");
    if let Some(p) = prices {
        cmd.env("LLMTAP_PRICES", p);
    }
    cmd.output().context("cannot run llmtap")
}

fn llmtap(dir: &Path, args: &[&str]) -> Result<Output> {
    llmtap_env(dir, args, None)
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_out(out: &Output) -> Result<Value> {
    serde_json::from_slice(&out.stdout).context("stdout is not JSON")
}

const MS: u64 = 1_000_000;
/// 2026-05-01T12:00:00Z.
const T0: u64 = 1_777_636_800_000_000_000;

fn kv(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({"stringValue": s}),
        Value::Number(n) if n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Array(items) => json!({"arrayValue": {"values": items.into_iter()
            .map(|s| json!({"stringValue": s})).collect::<Vec<_>>()}}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": v})
}

/// One model call span: `start_ms`/`dur_ms` after T0, the attributes given.
fn call(id: u8, parent: Option<u8>, start_ms: u64, dur_ms: u64, attrs: &[(&str, Value)]) -> Value {
    let mut attributes = vec![kv("gen_ai.operation.name", json!("chat"))];
    attributes.extend(attrs.iter().map(|(k, v)| kv(k, v.clone())));
    let mut span = json!({
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": format!("{id:016x}"),
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": (T0 + start_ms * MS).to_string(),
        "endTimeUnixNano": (T0 + (start_ms + dur_ms) * MS).to_string(),
        "attributes": attributes,
        "status": {},
    });
    if let Some(p) = parent {
        span["parentSpanId"] = json!(format!("{p:016x}"));
    }
    span
}

/// One OTLP/JSON line with `spans` from `service`.
fn line(service: &str, spans: Vec<Value>) -> String {
    format!(
        "{}\n",
        json!({"resourceSpans": [{
            "resource": {"attributes": [kv("service.name", json!(service))]},
            "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
        }]})
    )
}

fn messages(role: &str, text: &str) -> Value {
    json!(json!([{"role": role, "parts": [{"type": "text", "content": text}]}]).to_string())
}

/// Four calls, two services, two teams, three models (one unpriced), content on two:
///
/// | id | service | team | model   | in   | out | ms  | finish | status | notes                        |
/// |----|---------|------|---------|------|-----|-----|--------|--------|------------------------------|
/// | 1  | api     | blue | m-2-8   | 1000 | 500 | 100 | stop   | ok     | req_one, resp_one, content   |
/// | 2  | api     | blue | m-2-8   | 2000 | 100 | 600 | length | ok     | child of 1, remaining 40/900 |
/// | 3  | batch   | red  | unknown | 10   | 10  | 900 | stop   | ok     | remaining 7 requests         |
/// | 4  | batch   | red  | m-2-8   | —    | —   | 50  | —      | 429    | retry-after 20               |
fn fixture(dir: &Path) -> Result<PathBuf> {
    let model = |m: &str| ("gen_ai.request.model", json!(m));
    let usage = |i: u64, o: u64| {
        [
            ("gen_ai.usage.input_tokens", json!(i)),
            ("gen_ai.usage.output_tokens", json!(o)),
        ]
    };
    let mut first = vec![
        model("m-2-8"),
        ("llmtap.meta.team", json!("blue")),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("gen_ai.response.id", json!("resp_one")),
        ("llmtap.upstream.request_id", json!("req_one")),
        ("gen_ai.request.temperature", json!(0.2)),
        (
            "gen_ai.system_instructions",
            json!(json!([{"type": "text", "content": "Be brief."}]).to_string()),
        ),
        (
            "gen_ai.input.messages",
            messages("user", "What is the capital of France?"),
        ),
        (
            "gen_ai.output.messages",
            json!(json!([{"role": "assistant", "finish_reason": "stop", "parts": [
            {"type": "text", "content": "Paris."},
            {"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"q": "France"}}
        ]}]).to_string()),
        ),
    ];
    first.extend(usage(1000, 500));
    let mut second = vec![
        model("m-2-8"),
        ("llmtap.meta.team", json!("blue")),
        ("gen_ai.response.finish_reasons", json!(["length"])),
        (
            "gen_ai.input.messages",
            messages("user", "Say \"more\", please"),
        ),
        (
            "gen_ai.output.messages",
            messages("assistant", "more, more,\nmore"),
        ),
        ("llmtap.ratelimit.requests.remaining", json!(40)),
        ("llmtap.ratelimit.tokens.remaining", json!(900)),
    ];
    second.extend(usage(2000, 100));
    let mut third = vec![
        model("unknown"),
        ("llmtap.meta.team", json!("red")),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("llmtap.ratelimit.requests.remaining", json!(7)),
    ];
    third.extend(usage(10, 10));
    let fourth = vec![
        model("m-2-8"),
        ("llmtap.meta.team", json!("red")),
        ("http.response.status_code", json!(429)),
        ("error.type", json!("rate_limit_exceeded")),
        ("llmtap.ratelimit.retry_after", json!("20")),
    ];
    let mut failed = call(4, None, 3000, 50, &fourth);
    failed["status"] = json!({"code": 2});
    let text = [
        line(
            "api",
            vec![
                call(1, None, 0, 100, &first),
                call(2, Some(1), 1000, 600, &second),
            ],
        ),
        line("batch", vec![call(3, None, 2000, 900, &third), failed]),
    ]
    .concat();
    let path = dir.join("calls.jsonl");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// $2 per million input tokens, $8 per million output tokens.
fn price_file(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("prices.json");
    std::fs::write(
        &path,
        json!({"m-2-8": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
                         "litellm_provider": "openai", "mode": "chat"}})
        .to_string(),
    )?;
    Ok(path)
}

// ---- show ------------------------------------------------------------------------------------

#[test]
fn show_finds_a_call_by_response_id_request_id_and_span_id() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = fixture(dir.path())?;
    let f = file.display().to_string();
    let prices = price_file(dir.path())?;
    for id in ["resp_one", "req_one", "0000000000000001"] {
        let out = ok(llmtap_env(dir.path(), &["show", id, &f], Some(&prices))?)?;
        let text = stdout(&out);
        assert!(text.contains("system: Be brief."), "{id}: {text}");
        assert!(
            text.contains("user: What is the capital of France?"),
            "{text}"
        );
        assert!(
            text.contains("assistant: Paris. [tool_call lookup({\"q\":\"France\"})]"),
            "{text}"
        );
        assert!(text.contains("$0.0060"), "cost: {text}");
        assert!(text.contains("temperature=0.2"), "parameters: {text}");
        assert!(text.contains("team=blue"), "{text}");
        assert!(
            text.contains("child") && text.contains("0000000000000002  chat"),
            "children: {text}"
        );
    }
    let out = ok(llmtap_env(
        dir.path(),
        &["show", "req_one", &f, "--json"],
        Some(&prices),
    )?)?;
    let call = json_out(&out)?;
    assert!(call.is_object(), "one object");
    assert_eq!(call["span_id"], "0000000000000001");
    assert_eq!(call["response_id"], "resp_one");
    assert_eq!(call["request_id"], "req_one");
    assert_eq!(call["service"], "api");
    assert_eq!(call["meta"], json!({"team": "blue"}));
    assert_eq!(call["request"], json!({"temperature": 0.2}));
    assert_eq!(call["usage"]["input_tokens"], 1000);
    assert_eq!(call["cost_usd"], 0.006);
    assert_eq!(call["duration_ms"], 100.0);
    assert_eq!(
        call["input_messages"][0]["parts"][0]["content"],
        "What is the capital of France?"
    );
    assert_eq!(call["output_messages"][0]["parts"][0]["content"], "Paris.");
    assert_eq!(
        call["output_text"],
        "assistant: Paris. [tool_call lookup({\"q\":\"France\"})]"
    );
    assert_eq!(call["parent"], Value::Null);
    assert_eq!(call["children"][0]["span_id"], "0000000000000002");
    // The child names its parent.
    let child = json_out(&ok(llmtap_env(
        dir.path(),
        &["show", "0000000000000002", &f, "--json"],
        Some(&prices),
    )?)?)?;
    assert_eq!(child["parent"]["span_id"], "0000000000000001");

    let missing = llmtap(dir.path(), &["show", "resp_nope", &f])?;
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("`resp_nope`"), "names the id: {stderr}");
    Ok(())
}

#[test]
fn show_on_demo_jsonl_prints_prompt_and_answer_by_response_and_request_id() -> Result<()> {
    let dir = tempfile::tempdir()?;
    ok(llmtap(dir.path(), &["demo", "--jsonl", "demo.jsonl"])?)?;
    let rows: Vec<Value> = stdout(&ok(llmtap(dir.path(), &["export", "demo.jsonl"])?)?)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let writer = rows
        .iter()
        .find(|r| r["agent"] == "writer")
        .context("writer call")?;
    for key in ["response_id", "request_id"] {
        let id = writer[key].as_str().context("id")?;
        let out = ok(llmtap(dir.path(), &["show", id, "demo.jsonl"])?)?;
        let text = stdout(&out);
        assert!(
            text.contains("user: Draft the brief from the research notes."),
            "{text}"
        );
        assert!(
            text.contains("assistant: Mock answer to: Draft the brief"),
            "{text}"
        );
        let call = json_out(&ok(llmtap(
            dir.path(),
            &["show", id, "demo.jsonl", "--json"],
        )?)?)?;
        assert_eq!(call["span_id"], writer["span_id"]);
        assert_eq!(call["agent"], "writer");
    }
    // The proxy recorded the 429's retry-after header of the mock upstream.
    let limited = rows
        .iter()
        .find(|r| r["http_status"] == 429)
        .context("the 429")?;
    let span_id = limited["span_id"].as_str().context("span id")?;
    let call = json_out(&ok(llmtap(
        dir.path(),
        &["show", span_id, "demo.jsonl", "--json"],
    )?)?)?;
    assert_eq!(call["attributes"]["llmtap.ratelimit.retry_after"], "1");
    assert_eq!(call["rate_limit"], json!({"retry_after": "1"}));
    Ok(())
}

// ---- export --content, meta and service columns ----------------------------------------------

#[test]
fn export_csv_content_has_prompt_answer_meta_and_service() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = fixture(dir.path())?;
    let f = file.display().to_string();
    let prices = price_file(dir.path())?;
    let out = ok(llmtap_env(
        dir.path(),
        &["export", &f, "-f", "csv", "--content"],
        Some(&prices),
    )?)?;
    let csv = stdout(&out);
    let records: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert_eq!(records.len(), 5, "header + 4 calls");
    assert!(
        records[0].ends_with(",span_name,cost_usd,input,output,meta.team"),
        "{}",
        records[0]
    );
    let header: Vec<&str> = records[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    assert_eq!(col("service"), Some(6));
    assert_eq!(
        records[1],
        format!(
            "2026-05-01T12:00:00.000Z,0af7651916cd43dd8448eb211c80319c,0000000000000001,,,,api,\
             chat,,m-2-8,m-2-8,resp_one,stop,ok,,,1000,500,,,1500,100,,5000,false,,req_one,,chat,\
             0.006,\"system: Be brief.\nuser: What is the capital of France?\",\
             \"assistant: Paris. [tool_call lookup({{\"\"q\"\":\"\"France\"\"}})]\",blue"
        )
    );
    // Quotes and newlines survive RFC 4180 quoting; the unpriced model has no cost.
    assert!(
        records[2]
            .ends_with(",\"user: Say \"\"more\"\", please\",\"assistant: more, more,\nmore\",blue"),
        "{}",
        records[2]
    );
    assert!(records[3].ends_with(",chat,,,,red"), "{}", records[3]);

    // Without --content: the meta and service columns are there all the same.
    let plain = stdout(&ok(llmtap_env(
        dir.path(),
        &["export", &f, "-f", "csv"],
        Some(&prices),
    )?)?);
    assert!(plain.starts_with("time,") && plain.contains(",cost_usd,meta.team\r\n"));
    // JSONL rows carry the same fields.
    let out = ok(llmtap_env(
        dir.path(),
        &["export", &f, "--content"],
        Some(&prices),
    )?)?;
    let first: Value = serde_json::from_str(stdout(&out).lines().next().context("row")?)?;
    assert_eq!(first["meta.team"], "blue");
    assert_eq!(first["service"], "api");
    assert_eq!(first["cost_usd"], 0.006);
    assert_eq!(
        first["input"],
        "system: Be brief.\nuser: What is the capital of France?"
    );
    Ok(())
}

// ---- filters and groups ----------------------------------------------------------------------

#[test]
fn stats_groups_by_meta_service_finish_reason_and_filters() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = fixture(dir.path())?;
    let f = file.display().to_string();
    let stats = |extra: &[&str]| -> Result<Value> {
        let mut args = vec!["stats", f.as_str(), "--json"];
        args.extend_from_slice(extra);
        json_out(&ok(llmtap(dir.path(), &args)?)?)
    };
    let groups = |r: &Value| -> Vec<(Value, Value)> {
        r["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| (g["key"].clone(), g["calls"].clone()))
            .collect()
    };
    let by_team = stats(&["--by", "meta.team"])?;
    assert_eq!(by_team["group_by"], "meta.team");
    assert_eq!(
        groups(&by_team),
        [(json!("blue"), json!(2)), (json!("red"), json!(2))]
    );
    assert_eq!(
        groups(&stats(&["--by", "service"])?),
        [(json!("api"), json!(2)), (json!("batch"), json!(2))]
    );
    assert_eq!(
        groups(&stats(&["--by", "finish_reason"])?),
        [
            (json!("stop"), json!(2)),
            (json!("length"), json!(1)),
            (Value::Null, json!(1))
        ]
    );
    let blue = stats(&["--meta", "team=blue"])?;
    assert_eq!(blue["total"]["calls"], 2);
    assert_eq!(blue["total"]["tokens"]["input"], 3000);
    assert_eq!(stats(&["--min-latency", "500ms"])?["total"]["calls"], 2);
    assert_eq!(stats(&["--min-latency", "0.9s"])?["total"]["calls"], 1);
    assert_eq!(stats(&["--service", "batch"])?["total"]["calls"], 2);
    assert_eq!(stats(&["--finish-reason", "length"])?["total"]["calls"], 1);
    assert_eq!(stats(&["--request-id", "req_one"])?["total"]["calls"], 1);
    assert_eq!(stats(&["--trace", "0AF76519"])?["total"]["calls"], 4);
    assert_eq!(stats(&["--trace", "ffff"])?["total"]["calls"], 0);
    let both = stats(&["--meta", "team=blue", "--min-latency", "500ms"])?;
    assert_eq!(both["total"]["calls"], 1);

    // The same filters on tail, export and push (the OTLP shape keeps only matching spans).
    let tail = stdout(&ok(llmtap(
        dir.path(),
        &["tail", &f, "--meta", "team=red", "--json"],
    )?)?);
    assert_eq!(tail.lines().count(), 2);
    let export = stdout(&ok(llmtap(
        dir.path(),
        &["export", &f, "--min-latency", "500ms", "--service", "api"],
    )?)?);
    let ids: Vec<String> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["span_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, ["0000000000000002"]);
    let bad = llmtap(dir.path(), &["stats", &f, "--meta", "team"])?;
    assert_eq!(bad.status.code(), Some(64), "clap usage error");
    let bad = llmtap(dir.path(), &["stats", &f, "--min-latency", "500"])?;
    assert_eq!(bad.status.code(), Some(64));
    let bad = llmtap(dir.path(), &["stats", &f, "--by", "colour"])?;
    assert_eq!(bad.status.code(), Some(64));
    Ok(())
}

// ---- cost ------------------------------------------------------------------------------------

#[test]
fn cost_is_exact_for_a_priced_model_and_absent_for_an_unpriced_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = fixture(dir.path())?;
    let f = file.display().to_string();
    let prices = price_file(dir.path())?;
    let p = prices.display().to_string();
    // The example: 1,000 input + 500 output tokens at $2/M and $8/M = $0.006 exactly.
    let one = json_out(&ok(llmtap(
        dir.path(),
        &[
            "stats",
            &f,
            "--json",
            "--prices",
            &p,
            "--request-id",
            "req_one",
        ],
    )?)?)?;
    assert_eq!(one["total"]["cost_usd"], json!(0.006));
    assert_eq!(one["total"]["unpriced_calls"], 0);
    assert_eq!(one["prices"]["table"], p.as_str());

    // By env var too; per group: call 2 costs 2000 × $2/M + 100 × $8/M = $0.0048.
    let all = json_out(&ok(llmtap_env(
        dir.path(),
        &["stats", &f, "--json", "--by", "model"],
        Some(&prices),
    )?)?)?;
    let group = |key: &str| {
        all["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["key"] == key)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(group("m-2-8")["cost_usd"], json!(0.0108));
    assert_eq!(
        group("m-2-8")["unpriced_calls"],
        1,
        "the 429 reported no usage"
    );
    assert_eq!(group("unknown")["cost_usd"], Value::Null, "never a guess");
    assert_eq!(group("unknown")["unpriced_calls"], 1);
    assert_eq!(all["total"]["cost_usd"], json!(0.0108));
    assert_eq!(all["total"]["unpriced_calls"], 2);

    // Tree: per node; export: a column.
    let tree = json_out(&ok(llmtap_env(
        dir.path(),
        &["tree", &f, "--json"],
        Some(&prices),
    )?)?)?;
    let root = &tree[0]["roots"][0];
    assert_eq!(root["cost_usd"], json!(0.006));
    assert_eq!(root["subtree_cost_usd"], json!(0.0108));
    assert_eq!(root["children"][0]["cost_usd"], json!(0.0048));
    let text = stdout(&ok(llmtap_env(dir.path(), &["tree", &f], Some(&prices))?)?);
    assert!(
        text.contains("$0.0060  Σ in 3000 / out 600 tok $0.0108"),
        "{text}"
    );

    // A price file that is not one is a usage error naming it.
    std::fs::write(dir.path().join("bad.json"), "[1, 2]")?;
    let bad = llmtap(dir.path(), &["stats", &f, "--prices", "bad.json"])?;
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad.json"));
    let missing = llmtap(dir.path(), &["stats", &f, "--prices", "nope.json"])?;
    assert_eq!(missing.status.code(), Some(64));
    Ok(())
}

#[test]
fn stats_shows_429_share_and_lowest_remaining_limits() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = fixture(dir.path())?;
    let f = file.display().to_string();
    let r = json_out(&ok(llmtap(dir.path(), &["stats", &f, "--json"])?)?)?;
    assert_eq!(r["total"]["rate_limited"], 1);
    assert_eq!(r["total"]["rate_limited_share"], 0.25);
    assert_eq!(r["total"]["min_remaining_requests"], 7);
    assert_eq!(r["total"]["min_remaining_tokens"], 900);
    let text = stdout(&ok(llmtap(dir.path(), &["stats", &f])?)?);
    assert!(
        text.contains(
            "rate limits: 1 of 4 call(s) answered 429 (25.0 %); lowest remaining requests 7; \
             lowest remaining tokens 900"
        ),
        "{text}"
    );
    Ok(())
}

// ---- exit codes ------------------------------------------------------------------------------

#[test]
fn every_reading_command_exits_65_on_a_foreign_file_and_66_on_a_missing_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("junk.jsonl"),
        "not json\n{\"also\": \"not otlp\"}\n",
    )?;
    let commands: [&[&str]; 6] = [
        &["tree"],
        &["tail"],
        &["stats"],
        &["export"],
        &["push", "--endpoint", "http://127.0.0.1:9"],
        &["show", "abc"],
    ];
    for command in commands {
        for (file, code) in [("junk.jsonl", 65), ("missing.jsonl", 66)] {
            let mut args = command.to_vec();
            args.insert(if command[0] == "show" { 2 } else { 1 }, file);
            let out = llmtap(dir.path(), &args)?;
            assert_eq!(
                out.status.code(),
                Some(code),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(file),
                "{args:?} names the file"
            );
        }
    }
    Ok(())
}

// ---- default inputs --------------------------------------------------------------------------

fn numbered_line(i: u64) -> String {
    line(
        "svc",
        vec![call(
            u8::try_from(i).unwrap_or(0),
            None,
            i * 1000,
            10,
            &[("gen_ai.usage.input_tokens", json!(i))],
        )],
    )
}

#[test]
fn reading_commands_without_a_file_read_the_rotations_oldest_first() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let base = dir.path().join(".llmtap");
    std::fs::create_dir_all(&base)?;
    // .2 is the oldest, then .1, then the live file.
    std::fs::write(base.join("traces.jsonl.2"), numbered_line(1))?;
    std::fs::write(
        base.join("traces.jsonl.1"),
        numbered_line(2) + &numbered_line(3),
    )?;
    std::fs::write(base.join("traces.jsonl"), numbered_line(4))?;
    let r = json_out(&ok(llmtap(dir.path(), &["stats", "--json"])?)?)?;
    assert_eq!(r["total"]["calls"], 4);
    let files: Vec<&str> = r["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["file"].as_str())
        .collect();
    assert_eq!(
        files,
        [
            ".llmtap/traces.jsonl.2",
            ".llmtap/traces.jsonl.1",
            ".llmtap/traces.jsonl"
        ]
    );
    let ids = |out: &Output| -> Vec<String> {
        stdout(out)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|r| r["span_id"].as_str().map(str::to_owned))
            .collect()
    };
    let tail = ok(llmtap(dir.path(), &["tail", "-n", "3", "--json"])?)?;
    assert_eq!(
        ids(&tail),
        ["0000000000000002", "0000000000000003", "0000000000000004"]
    );
    let export = ok(llmtap(dir.path(), &["export"])?)?;
    assert_eq!(ids(&export).len(), 4);
    let tree = json_out(&ok(llmtap(dir.path(), &["tree", "--json"])?)?)?;
    assert_eq!(tree[0]["span_count"], 4, "one trace across the files");
    Ok(())
}

#[test]
fn tail_follow_waits_for_a_file_that_does_not_exist_yet() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(["tail", "-f", "--poll-ms", "20", "--json", "later.jsonl"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut guard = Kill(child);
    let mut note = String::new();
    BufReader::new(stderr).read_line(&mut note)?;
    assert!(note.contains("waiting for later.jsonl"), "{note}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        guard.0.try_wait()?.is_none(),
        "tail -f exited instead of waiting"
    );
    std::fs::write(dir.path().join("later.jsonl"), numbered_line(5))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .context("no line within 10 s")?;
    let row: Value = serde_json::from_str(&first)?;
    assert_eq!(row["span_id"], "0000000000000005");
    Ok(())
}

#[test]
fn demo_next_steps_work_as_typed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = ok(llmtap(dir.path(), &["demo"])?)?;
    let text = stdout(&out);
    let steps: Vec<Vec<String>> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(_, rest)| rest.trim_start().strip_prefix("llmtap "))
        .map(|cmd| cmd.split_whitespace().map(str::to_owned).collect())
        .collect();
    let names: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.first().map(String::as_str))
        .collect();
    for want in ["tree", "show", "stats"] {
        assert!(names.contains(&want), "{want} missing from:\n{text}");
    }
    // The reading steps, run as printed (push needs a collector, proxy a terminal).
    let reading = ["tree", "show", "stats"];
    for step in steps
        .iter()
        .filter(|s| s.first().is_some_and(|c| reading.contains(&c.as_str())))
    {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        let out = ok(llmtap(dir.path(), &args)?)?;
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing");
    }
    // A bare `llmtap tree` right after the demo says where the demo's file is.
    let bare = llmtap(dir.path(), &["tree"])?;
    assert_eq!(bare.status.code(), Some(66));
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("llmtap tree .llmtap/demo.jsonl"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    Ok(())
}

// ---- counts a span lacks ---------------------------------------------------------------------

#[test]
fn tree_and_tail_show_a_dash_for_counts_a_span_lacks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut span = call(9, None, 0, 20, &[("gen_ai.usage.input_tokens", json!(8))]);
    span["attributes"][0] = kv("gen_ai.operation.name", json!("embeddings"));
    span["name"] = json!("embeddings text-embedding-3-small");
    std::fs::write(dir.path().join("e.jsonl"), line("svc", vec![span]))?;
    let tail = stdout(&ok(llmtap(dir.path(), &["tail", "e.jsonl"])?)?);
    assert!(tail.contains("in 8 / out — tok"), "{tail}");
    let tree = stdout(&ok(llmtap(dir.path(), &["tree", "e.jsonl"])?)?);
    assert!(tree.contains("in 8 / out — tok"), "{tree}");
    Ok(())
}

// ---- rate-limit headers through the proxy ----------------------------------------------------

/// Reads one HTTP/1.1 request (head and `content-length` body) from `stream`.
fn read_request(stream: &mut std::net::TcpStream) -> Result<String> {
    use std::io::Read as _;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        ensure!(n > 0, "connection closed mid-request");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Ok(text);
            }
        }
    }
}

#[test]
fn proxy_records_rate_limit_headers_and_stats_reports_the_lowest() -> Result<()> {
    use std::io::Write as _;
    let dir = tempfile::tempdir()?;
    // An upstream that answers one chat call with OpenAI's rate-limit headers.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")?;
    let upstream_url = format!("http://{}", upstream.local_addr()?);
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut stream, _) = upstream.accept()?;
        read_request(&mut stream)?;
        let body = json!({
            "id": "chatcmpl-rl", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        })
        .to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-request-id: req_rl\r\nx-ratelimit-limit-requests: 500\r\n\
             x-ratelimit-remaining-requests: 3\r\nx-ratelimit-reset-requests: 120ms\r\n\
             x-ratelimit-remaining-tokens: 1500\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
        Ok(())
    });
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--jsonl",
            "t.jsonl",
            "--upstream-openai",
            &upstream_url,
        ])
        .current_dir(dir.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = proxy.stderr.take().context("stderr")?;
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut proxy = Stop(proxy);
    let mut stderr = BufReader::new(stderr);
    let mut banner = String::new();
    stderr.read_line(&mut banner)?;
    // Keep reading, so the proxy's later lines never meet a closed pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
        rest
    });
    let address = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .context("no listen address in the banner")?
        .to_owned();
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let mut client = std::net::TcpStream::connect(&address)?;
    write!(
        client,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut client, &mut reply)?;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    server
        .join()
        .map_err(|_| anyhow::anyhow!("upstream panicked"))??;
    let status = Command::new("kill")
        .args(["-TERM", &proxy.0.id().to_string()])
        .status()?;
    ensure!(status.success(), "kill failed");
    let exit = proxy.0.wait()?;
    let log = drain.join().unwrap_or_default();
    assert_eq!(exit.code(), Some(0), "{log}");

    let call = json_out(&ok(llmtap(
        dir.path(),
        &["show", "req_rl", "t.jsonl", "--json"],
    )?)?)?;
    assert_eq!(
        call["rate_limit"],
        json!({
            "requests.limit": 500,
            "requests.remaining": 3,
            "requests.reset": "120ms",
            "tokens.remaining": 1500
        })
    );
    assert_eq!(call["attributes"]["llmtap.ratelimit.requests.remaining"], 3);
    let r = json_out(&ok(llmtap(dir.path(), &["stats", "t.jsonl", "--json"])?)?)?;
    assert_eq!(r["total"]["min_remaining_requests"], 3);
    assert_eq!(r["total"]["min_remaining_tokens"], 1500);
    assert_eq!(r["total"]["rate_limited"], 0);
    Ok(())
}
