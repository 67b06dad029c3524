//! `llmtap show ID`: one call in full — found by span id, response id (`gen_ai.response.id`) or
//! upstream request id (`llmtap.upstream.request_id`) — with its request parameters, system
//! instructions, input messages, output, tool calls, usage, cost, timing, outcome, agent,
//! session, and its parent and children in the trace.
//!
//! Two passes in bounded memory: the first finds the call (only its content is decoded), the
//! second collects the spans of its trace that are its parent or children. An id that matches
//! nothing exits 1 naming it; several matches show the latest and list the others.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use llmtap_core::semconv;
use serde_json::{Map, Value, json};

use crate::cost::{PriceArgs, PriceTable, format_usd};
use crate::input::{pretty_json, report_skipped, resolve_files, scan, write_stdout};
use crate::spans::{AttrValue, Content, SpanRecord, service_name};
use crate::timefmt::format_rfc3339_millis;
use crate::tree::{Style, format_ms, format_timing, stdout_style};
use crate::{EXIT_USAGE, content};

/// Exit code when no span has the id.
const EXIT_NOT_FOUND: u8 = 1;

/// Flags of `llmtap show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Span id, response id (chatcmpl-…, msg_…, resp_…) or upstream request id (req_…).
    pub id: String,
    /// JSONL trace files [default: .llmtap/traces.jsonl and its rotations]
    pub files: Vec<PathBuf>,
    /// Print the call as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Never colour the output.
    #[arg(long)]
    pub no_color: bool,
    #[command(flatten)]
    pub prices: PriceArgs,
}

/// Whether `span` is the one `id` names.
fn is_match(span: &SpanRecord, id: &str) -> bool {
    span.span_id.eq_ignore_ascii_case(id)
        || span.str_attr(semconv::GEN_AI_RESPONSE_ID) == Some(id)
        || span.str_attr(semconv::LLMTAP_UPSTREAM_REQUEST_ID) == Some(id)
}

/// A neighbour of the call in its trace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Neighbour {
    pub span_id: String,
    pub name: String,
    pub agent: Option<String>,
    pub status: &'static str,
    pub duration_ms: f64,
}

impl Neighbour {
    fn of(span: &SpanRecord) -> Self {
        Self {
            span_id: span.span_id.clone(),
            name: span.name.clone(),
            agent: span.str_attr(semconv::GEN_AI_AGENT_NAME).map(str::to_owned),
            status: if span.is_error() { "error" } else { "ok" },
            duration_ms: crate::row::round3(span.duration_nanos() as f64 / 1e6),
        }
    }
}

/// What `show` found.
#[derive(Debug)]
pub struct Found {
    pub call: SpanRecord,
    /// Span ids of the other spans the id matched.
    pub other_matches: Vec<String>,
    pub parent: Option<Neighbour>,
    pub children: Vec<Neighbour>,
}

/// Finds the call `id` names in `files` (the latest when several match).
pub fn find(
    files: &[PathBuf],
    id: &str,
) -> Result<(Option<Found>, Vec<crate::input::FileReport>), crate::input::InputError> {
    let mut matches: Vec<SpanRecord> = Vec::new();
    let reports = scan(files, "show", |data| {
        for rs in &data.resource_spans {
            let service = service_name(rs);
            for span in rs.scope_spans.iter().flat_map(|ss| ss.spans.iter()) {
                let light = SpanRecord::from_proto(span, service, Content::Skip);
                if is_match(&light, id) {
                    matches.push(SpanRecord::from_proto(span, service, Content::Keep));
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    // The latest call wins; ties keep file order.
    let Some(latest) = matches
        .iter()
        .enumerate()
        .max_by_key(|(i, s)| (s.start_unix_nanos, *i))
        .map(|(i, _)| i)
    else {
        return Ok((None, reports));
    };
    let call = matches.swap_remove(latest);
    let other_matches = matches.into_iter().map(|s| s.span_id).collect();
    let mut parent = None;
    let mut children: Vec<(u64, Neighbour)> = Vec::new();
    scan(files, "show", |data| {
        crate::spans::for_each_span(&data, Content::Skip, |span| {
            if span.trace_id != call.trace_id {
                return;
            }
            if !call.parent_span_id.is_empty() && span.span_id == call.parent_span_id {
                parent = Some(Neighbour::of(&span));
            } else if span.parent_span_id == call.span_id && span.span_id != call.span_id {
                children.push((span.start_unix_nanos, Neighbour::of(&span)));
            }
        });
        ControlFlow::Continue(())
    })?;
    children.sort_by_key(|c| c.0);
    Ok((
        Some(Found {
            call,
            other_matches,
            parent,
            children: children.into_iter().map(|(_, n)| n).collect(),
        }),
        reports,
    ))
}

/// An attribute value as JSON.
fn attr_json(value: &AttrValue) -> Value {
    match value {
        AttrValue::Str(s) | AttrValue::Other(s) => json!(s),
        AttrValue::Int(i) => json!(i),
        AttrValue::Double(d) => json!(d),
        AttrValue::Bool(b) => json!(b),
        AttrValue::List(items) => json!(items),
    }
}

/// Request parameters: every `gen_ai.request.*` attribute but the model (shown on its own).
fn request_parameters(span: &SpanRecord) -> BTreeMap<&str, &AttrValue> {
    span.attributes
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("gen_ai.request.")?;
            (key != semconv::GEN_AI_REQUEST_MODEL).then_some((name, value))
        })
        .collect()
}

/// User metadata: `llmtap.meta.<key>` without the prefix.
fn metadata(span: &SpanRecord) -> BTreeMap<&str, String> {
    span.attributes
        .iter()
        .filter_map(|(key, value)| {
            Some((
                key.strip_prefix(semconv::LLMTAP_META_PREFIX)?,
                value.to_string(),
            ))
        })
        .collect()
}

/// Rate-limit attributes without their common prefix.
fn rate_limits(span: &SpanRecord) -> BTreeMap<&str, &AttrValue> {
    span.attributes
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("llmtap.ratelimit.")?, value)))
        .collect()
}

/// The call as one JSON object.
pub fn to_json(found: &Found, prices: &PriceTable) -> Value {
    let span = &found.call;
    let s = |key: &str| span.str_attr(key).map(str::to_owned);
    let n = |key: &str| span.u64_attr(key);
    let content = span.content.as_deref();
    let part = |get: fn(&crate::spans::SpanContent) -> Option<&Value>| {
        content.and_then(get).cloned().unwrap_or(Value::Null)
    };
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    put("span_id", json!(span.span_id));
    put("trace_id", json!(span.trace_id));
    put(
        "parent_span_id",
        json!((!span.parent_span_id.is_empty()).then_some(&span.parent_span_id)),
    );
    put("name", json!(span.name));
    put("operation", json!(span.operation()));
    put("provider", json!(s(semconv::GEN_AI_PROVIDER_NAME)));
    put("request_model", json!(s(semconv::GEN_AI_REQUEST_MODEL)));
    put("response_model", json!(s(semconv::GEN_AI_RESPONSE_MODEL)));
    put("response_id", json!(s(semconv::GEN_AI_RESPONSE_ID)));
    put("request_id", json!(s(semconv::LLMTAP_UPSTREAM_REQUEST_ID)));
    put("agent", json!(s(semconv::GEN_AI_AGENT_NAME)));
    put("session", json!(s(semconv::GEN_AI_CONVERSATION_ID)));
    put("service", json!(span.service));
    put("meta", json!(metadata(span)));
    put(
        "status",
        json!(if span.is_error() { "error" } else { "ok" }),
    );
    put("error_type", json!(s(semconv::ERROR_TYPE)));
    put("http_status", json!(n(semconv::HTTP_RESPONSE_STATUS_CODE)));
    put(
        "finish_reasons",
        json!(span.list_attr(semconv::GEN_AI_RESPONSE_FINISH_REASONS)),
    );
    put("start", json!(format_rfc3339_millis(span.start_unix_nanos)));
    put("end", json!(format_rfc3339_millis(span.end_unix_nanos)));
    put(
        "duration_ms",
        json!(crate::row::round3(span.duration_nanos() as f64 / 1e6)),
    );
    put(
        "ttft_ms",
        json!(
            span.f64_attr(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
                .map(|secs| crate::row::round3(secs * 1000.0))
        ),
    );
    put("streamed", json!(span.streamed()));
    put(
        "request",
        Value::Object(
            request_parameters(span)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), attr_json(v)))
                .collect(),
        ),
    );
    put(
        "usage",
        json!({
            "input_tokens": n(semconv::GEN_AI_USAGE_INPUT_TOKENS),
            "output_tokens": n(semconv::GEN_AI_USAGE_OUTPUT_TOKENS),
            "cache_read_input_tokens": n(semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            "cache_write_input_tokens": n(semconv::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
            "reasoning_output_tokens": n(semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
        }),
    );
    put(
        "cost_usd",
        json!(prices.cost_of(span).map(crate::cost::usd)),
    );
    put(
        "rate_limit",
        Value::Object(
            rate_limits(span)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), attr_json(v)))
                .collect(),
        ),
    );
    put(
        "system_instructions",
        part(|c| c.system_instructions.as_ref()),
    );
    put("input_messages", part(|c| c.input_messages.as_ref()));
    put("output_messages", part(|c| c.output_messages.as_ref()));
    put("tool_definitions", part(|c| c.tool_definitions.as_ref()));
    put("input_text", json!(content.map(content::input_text)));
    put("output_text", json!(content.map(content::output_text)));
    put("parent", json!(found.parent));
    put("children", json!(found.children));
    put("other_matches", json!(found.other_matches));
    put(
        "attributes",
        Value::Object(
            span.attributes
                .iter()
                .map(|(k, v)| (k.clone(), attr_json(v)))
                .collect(),
        ),
    );
    Value::Object(out)
}

/// The call for people.
pub fn render(found: &Found, prices: &PriceTable, style: Style) -> String {
    let span = &found.call;
    let mut out = String::new();
    let status = if span.is_error() {
        let mut text = format!(
            "✗ {}",
            span.str_attr(semconv::ERROR_TYPE).unwrap_or("error")
        );
        if let Some(code) = span.u64_attr(semconv::HTTP_RESPONSE_STATUS_CODE) {
            text.push_str(&format!(" ({code})"));
        }
        style.red(&text)
    } else {
        let reasons = span.list_attr(semconv::GEN_AI_RESPONSE_FINISH_REASONS);
        style.green(format!("✓ {}", reasons.join(",")).trim_end())
    };
    let mut head = format!("{}  {status}", style.bold(&span.name));
    if let Some(agent) = span.str_attr(semconv::GEN_AI_AGENT_NAME) {
        head.push_str(&format!("  {}", style.cyan(&format!("[{agent}]"))));
    }
    out.push_str(&head);
    out.push('\n');
    let mut field = |label: &str, value: String| {
        out.push_str(&format!(
            "{}  {value}\n",
            style.dim(&format!("{label:<10}"))
        ));
    };
    let mut ids = format!("{}  trace {}", span.span_id, span.trace_id);
    if let Some(id) = span.str_attr(semconv::GEN_AI_RESPONSE_ID) {
        ids.push_str(&format!("  response {id}"));
    }
    if let Some(id) = span.str_attr(semconv::LLMTAP_UPSTREAM_REQUEST_ID) {
        ids.push_str(&format!("  request {id}"));
    }
    field("span", ids);
    let mut model = span
        .str_attr(semconv::GEN_AI_PROVIDER_NAME)
        .unwrap_or("?")
        .to_owned();
    if let Some(asked) = span.str_attr(semconv::GEN_AI_REQUEST_MODEL) {
        model.push_str(&format!(" {asked}"));
    }
    if let Some(answered) = span.str_attr(semconv::GEN_AI_RESPONSE_MODEL) {
        model.push_str(&format!(" → {answered}"));
    }
    if let Some(server) = span.str_attr(semconv::SERVER_ADDRESS) {
        model.push_str(&format!("  at {server}"));
    }
    field("model", model);
    let mut who = Vec::new();
    if let Some(session) = span.str_attr(semconv::GEN_AI_CONVERSATION_ID) {
        who.push(format!("session {session}"));
    }
    if let Some(service) = &span.service {
        who.push(format!("service {service}"));
    }
    for (key, value) in metadata(span) {
        who.push(format!("{key}={value}"));
    }
    if !who.is_empty() {
        field("who", who.join("  "));
    }
    let timing = format!(
        "{}  {}",
        format_rfc3339_millis(span.start_unix_nanos),
        format_timing(
            span.duration_nanos() as f64 / 1e6,
            span.f64_attr(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
                .map(|secs| secs * 1000.0),
            span.streamed(),
        )
    );
    field("time", timing);
    let count = |key: &str| {
        span.u64_attr(key)
            .map_or_else(|| "—".to_owned(), |n| n.to_string())
    };
    let mut usage = format!(
        "in {} / out {} tok",
        count(semconv::GEN_AI_USAGE_INPUT_TOKENS),
        count(semconv::GEN_AI_USAGE_OUTPUT_TOKENS)
    );
    for (key, label) in [
        (semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cached"),
        (
            semconv::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
            "cache write",
        ),
        (semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "reasoning"),
    ] {
        if let Some(n) = span.u64_attr(key) {
            usage.push_str(&format!("  {label} {n}"));
        }
    }
    field("usage", usage);
    field(
        "cost",
        prices.cost_of(span).map_or_else(
            || "— (model not in the price table, or no usage)".to_owned(),
            |p| format_usd(crate::cost::usd(p)),
        ),
    );
    let params = request_parameters(span);
    if !params.is_empty() {
        field(
            "request",
            params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("  "),
        );
    }
    let limits = rate_limits(span);
    if !limits.is_empty() {
        field(
            "ratelimit",
            limits
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("  "),
        );
    }
    match &found.parent {
        Some(p) => field("parent", neighbour_line(p)),
        None if !span.parent_span_id.is_empty() => {
            field(
                "parent",
                format!("{} (not in the file)", span.parent_span_id),
            );
        }
        None => field("parent", "— (a root)".to_owned()),
    }
    for child in &found.children {
        field("child", neighbour_line(child));
    }
    match span.content.as_deref() {
        Some(c) => {
            let input = content::input_text(c);
            let output = content::output_text(c);
            out.push_str(&format!("\n{}\n{}\n", style.bold("prompt"), indent(&input)));
            out.push_str(&format!(
                "\n{}\n{}\n",
                style.bold("answer"),
                indent(&output)
            ));
            if let Some(Value::Array(tools)) = &c.tool_definitions {
                let names: Vec<&str> = tools
                    .iter()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .collect();
                out.push_str(&format!("\ntools offered: {}\n", names.join(", ")));
            }
        }
        None => out.push_str("\nno content captured (capture off, or not a model call)\n"),
    }
    if matches!(
        span.attributes.get(semconv::LLMTAP_CAPTURE_TRUNCATED),
        Some(AttrValue::Bool(true))
    ) {
        out.push_str("(captured content was cut to its byte budget)\n");
    }
    if !found.other_matches.is_empty() {
        out.push_str(&format!(
            "\nalso matched (older): {}\n",
            found.other_matches.join(", ")
        ));
    }
    out
}

fn neighbour_line(n: &Neighbour) -> String {
    let mut line = format!("{}  {}", n.span_id, n.name);
    if let Some(agent) = &n.agent {
        line.push_str(&format!(" [{agent}]"));
    }
    line.push_str(&format!("  {}  {}", n.status, format_ms(n.duration_ms)));
    line
}

fn indent(text: &str) -> String {
    if text.is_empty() {
        return "  (empty)".to_owned();
    }
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `llmtap show`.
pub fn run(args: &ShowArgs) -> ExitCode {
    let prices = match args.prices.load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("llmtap show: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let id = args.id.trim();
    let files = resolve_files(&args.files);
    let (found, reports) = match find(&files, id) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("llmtap show: {e}");
            return e.exit_code();
        }
    };
    report_skipped("show", &reports);
    let Some(found) = found else {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        eprintln!(
            "llmtap show: no span id, response id or upstream request id `{id}` in {}",
            names.join(", ")
        );
        return ExitCode::from(EXIT_NOT_FOUND);
    };
    if args.json {
        write_stdout("show", &pretty_json(&to_json(&found, &prices)))
    } else {
        write_stdout(
            "show",
            render(&found, &prices, stdout_style(args.no_color)).as_bytes(),
        )
    }
}
