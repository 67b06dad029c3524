//! `llmtap export`: the calls of JSONL trace files in the shape another tool wants.
//!
//! - `jsonl`: one flat JSON object per model call ([`CallRow`]), with its cost and `meta.<key>`
//!   fields; `--content` adds the prompt and answer as text.
//! - `csv`: the same columns, RFC 4180, with a header row; one `meta.<key>` column for every
//!   metadata key seen (a first pass finds them).
//! - `openai`: OpenAI fine-tuning chat format, one `{"messages": [...], "tools": [...]}` per
//!   successful call whose content was captured in full (`gen_ai.input.messages` and
//!   `gen_ai.output.messages`, not truncated); the answer is the last, assistant, message.
//! - `otlp`: the input lines with only the matching spans, still OTLP/JSON `TracesData`, so
//!   the result can be pushed or re-read by a Collector.
//!
//! All stream: one input line in memory at a time. Filters (`--since`, `--agent`, …) apply to
//! every format; `jsonl`, `csv` and `openai` only contain model calls.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use llmtap_core::semconv;
use llmtap_export::proto::TracesData;
use serde_json::{Map, Value, json};

use crate::cost::{PriceArgs, PriceTable};
use crate::input::{FileReport, FilterArgs, report_skipped, resolve_files, scan};
use crate::row::{COLUMNS, CONTENT_COLUMNS, CallRow, META_COLUMN_PREFIX, csv_record};
use crate::spans::{AttrValue, Content, SpanContent, SpanRecord, for_each_span, service_name};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One flat JSON object per model call.
    Jsonl,
    /// One row per model call, with a header (RFC 4180).
    Csv,
    /// OpenAI fine-tuning chat format: successful calls with captured content only.
    Openai,
    /// OTLP/JSON lines with only the matching spans.
    Otlp,
}

/// Flags of `llmtap export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// JSONL trace files (OTLP/JSON lines) [default: .llmtap/traces.jsonl]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// jsonl/csv: add `input` and `output` text columns (prompt and answer, tool calls
    /// included) from the captured content.
    #[arg(long)]
    pub content: bool,
    #[command(flatten)]
    pub prices: PriceArgs,
    /// Print the closing summary as JSON (on stderr, or stdout with --output).
    #[arg(long)]
    pub json: bool,
}

/// How to export, besides the filters.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions<'a> {
    pub format: Format,
    /// `input`/`output` text columns (jsonl, csv).
    pub content: bool,
    pub prices: &'a PriceTable,
}

/// What an export wrote and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    pub format: &'static str,
    /// Records written (rows, examples, or spans for `otlp`).
    pub written: u64,
    /// Model calls that passed the filters.
    pub matched_calls: u64,
    /// `openai` only: matching calls left out, by reason.
    pub skipped_failed: u64,
    pub skipped_no_content: u64,
    pub skipped_truncated: u64,
    pub skipped_unsupported: u64,
    pub files: Vec<FileReport>,
}

/// The `meta.<key>` columns of a CSV export: every `llmtap.meta.*` key on a matching model call,
/// sorted. A first pass over the files, since the header comes before the rows.
fn meta_columns(files: &[PathBuf], filter: &FilterArgs) -> Result<Vec<String>, ExportError> {
    let mut keys = std::collections::BTreeSet::new();
    scan(files, "export", |data| {
        for_each_span(&data, Content::Skip, |span| {
            if span.is_model_call() && filter.matches(&span) {
                for key in span.attributes.keys() {
                    if let Some(name) = key.strip_prefix(semconv::LLMTAP_META_PREFIX)
                        && !keys.contains(name)
                    {
                        keys.insert(name.to_owned());
                    }
                }
            }
        });
        ControlFlow::Continue(())
    })
    .map_err(ExportError::Input)?;
    Ok(keys
        .into_iter()
        .map(|k| format!("{META_COLUMN_PREFIX}{k}"))
        .collect())
}

/// Streams the export of `files` into `out`.
pub fn export(
    files: &[PathBuf],
    options: ExportOptions<'_>,
    filter: &FilterArgs,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let format = options.format;
    let mut summary = ExportSummary {
        format: match format {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Openai => "openai",
            Format::Otlp => "otlp",
        },
        ..ExportSummary::default()
    };
    let mut meta = Vec::new();
    if format == Format::Csv {
        meta = meta_columns(files, filter)?;
        let mut header: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        if options.content {
            header.extend(CONTENT_COLUMNS.iter().map(|c| (*c).to_owned()));
        }
        header.extend(meta.iter().cloned());
        out.write_all(csv_record(&header).as_bytes())
            .map_err(ExportError::Write)?;
    }
    let content = if format == Format::Openai || options.content {
        Content::Keep
    } else {
        Content::Skip
    };
    let calls = CallOptions {
        format,
        content,
        with_text: options.content,
        prices: options.prices,
        meta_columns: &meta,
    };
    let mut write_error = None;
    let reports = scan(files, "export", |data| {
        let result = match format {
            Format::Otlp => write_otlp(data, filter, out, &mut summary),
            _ => write_calls(&data, &calls, filter, out, &mut summary),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    })
    .map_err(ExportError::Input)?;
    if let Some(e) = write_error {
        return Err(ExportError::Write(e));
    }
    out.flush().map_err(ExportError::Write)?;
    summary.files = reports;
    Ok(summary)
}

/// Why an export stopped.
#[derive(Debug)]
pub enum ExportError {
    Input(crate::input::InputError),
    Write(std::io::Error),
}

/// What `write_calls` needs besides the data.
struct CallOptions<'a> {
    format: Format,
    content: Content,
    with_text: bool,
    prices: &'a PriceTable,
    meta_columns: &'a [String],
}

impl CallOptions<'_> {
    fn row(&self, span: &SpanRecord) -> CallRow {
        let row = CallRow::from_span(span).with_cost(self.prices.cost_of(span));
        if self.with_text {
            row.with_content(span)
        } else {
            row
        }
    }
}

fn write_calls(
    data: &TracesData,
    options: &CallOptions<'_>,
    filter: &FilterArgs,
    out: &mut dyn Write,
    summary: &mut ExportSummary,
) -> std::io::Result<()> {
    let mut result = Ok(());
    for_each_span(data, options.content, |span| {
        if result.is_err() || !span.is_model_call() || !filter.matches(&span) {
            return;
        }
        summary.matched_calls += 1;
        let line = match options.format {
            Format::Csv => Some(
                csv_record(
                    &options
                        .row(&span)
                        .csv_values_with(options.with_text, options.meta_columns),
                )
                .into_bytes(),
            ),
            Format::Openai => match fine_tuning_example(&span) {
                Ok(example) => Some(json_line(&example)),
                Err(skip) => {
                    match skip {
                        Skip::Failed => summary.skipped_failed += 1,
                        Skip::NoContent => summary.skipped_no_content += 1,
                        Skip::Truncated => summary.skipped_truncated += 1,
                        Skip::Unsupported => summary.skipped_unsupported += 1,
                    }
                    None
                }
            },
            _ => Some(json_line(&options.row(&span))),
        };
        if let Some(line) = line {
            summary.written += 1;
            result = out.write_all(&line);
        }
    });
    result
}

fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Keeps only the spans of `data` that pass `filter`, dropping emptied scopes and resources.
/// Returns (spans kept, model calls among them, spans dropped).
pub fn retain_matching(data: &mut TracesData, filter: &FilterArgs) -> (u64, u64, u64) {
    let (mut kept, mut calls, mut dropped) = (0u64, 0u64, 0u64);
    for rs in &mut data.resource_spans {
        let service = service_name(rs).map(str::to_owned);
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len() as u64;
            ss.spans.retain(|span| {
                let record = SpanRecord::from_proto(span, service.as_deref(), Content::Skip);
                let keep = filter.matches(&record);
                if keep && record.is_model_call() {
                    calls += 1;
                }
                keep
            });
            kept += ss.spans.len() as u64;
            dropped += before - ss.spans.len() as u64;
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    data.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
    (kept, calls, dropped)
}

/// Writes the matching spans of `data` as one OTLP/JSON line (nothing when none match).
fn write_otlp(
    mut data: TracesData,
    filter: &FilterArgs,
    out: &mut dyn Write,
    summary: &mut ExportSummary,
) -> std::io::Result<()> {
    let (kept, calls, _) = retain_matching(&mut data, filter);
    summary.matched_calls += calls;
    if kept == 0 {
        return Ok(());
    }
    summary.written += kept;
    let line = llmtap_export::encode_line(&data).map_err(std::io::Error::other)?;
    out.write_all(&line)
}

/// Why a call is not a fine-tuning example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Failed,
    NoContent,
    Truncated,
    /// Content with parts the chat format cannot carry (images, files, audio).
    Unsupported,
}

/// One OpenAI fine-tuning chat example from a call's captured content (semconv message
/// schema: `{role, parts: [{type: text|tool_call|tool_call_response|reasoning|…}]}`).
pub fn fine_tuning_example(span: &SpanRecord) -> Result<Value, Skip> {
    if span.is_error() {
        return Err(Skip::Failed);
    }
    if matches!(
        span.attributes.get(semconv::LLMTAP_CAPTURE_TRUNCATED),
        Some(AttrValue::Bool(true))
    ) {
        return Err(Skip::Truncated);
    }
    let content: &SpanContent = span.content.as_deref().ok_or(Skip::NoContent)?;
    let input = content
        .input_messages
        .as_ref()
        .and_then(Value::as_array)
        .ok_or(Skip::NoContent)?;
    let answer = content
        .output_messages
        .as_ref()
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or(Skip::NoContent)?;
    let mut messages = Vec::new();
    if let Some(system) = content.system_instructions.as_ref() {
        let parts = match system {
            Value::Array(parts) => parts.clone(),
            Value::String(s) => vec![json!({"type": "text", "content": s})],
            _ => return Err(Skip::Unsupported),
        };
        messages.push(chat_message("system", &parts)?);
    }
    for message in input {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or(Skip::Unsupported)?;
        let parts = message
            .get("parts")
            .and_then(Value::as_array)
            .ok_or(Skip::Unsupported)?;
        messages.push(chat_message(role, parts)?);
    }
    let answer_parts = answer
        .get("parts")
        .and_then(Value::as_array)
        .ok_or(Skip::NoContent)?;
    messages.push(chat_message("assistant", answer_parts)?);
    let mut example = Map::new();
    example.insert("messages".to_owned(), Value::Array(messages));
    if let Some(Value::Array(defs)) = content.tool_definitions.as_ref() {
        let tools: Vec<Value> = defs.iter().filter_map(openai_tool).collect();
        if !tools.is_empty() {
            example.insert("tools".to_owned(), Value::Array(tools));
        }
    }
    Ok(Value::Object(example))
}

/// One chat message in OpenAI's shape: text parts become `content` (a string for one part),
/// tool calls `tool_calls`, a tool response a `tool` message; reasoning parts are dropped.
fn chat_message(role: &str, parts: &[Value]) -> Result<Value, Skip> {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut tool_response: Option<(Option<String>, String)> = None;
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(
                part.get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            Some("tool_call") => {
                let arguments = match part.get("arguments") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => "{}".to_owned(),
                    Some(other) => other.to_string(),
                };
                tool_calls.push(json!({
                    "id": part.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": part.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": arguments,
                    },
                }));
            }
            Some("tool_call_response") => {
                let id = part.get("id").and_then(Value::as_str).map(str::to_owned);
                let text = match part.get("response") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                tool_response = Some((id, text));
            }
            Some("reasoning") => {}
            _ => return Err(Skip::Unsupported),
        }
    }
    if let Some((id, text)) = tool_response {
        let mut m = Map::new();
        m.insert("role".to_owned(), json!("tool"));
        if let Some(id) = id {
            m.insert("tool_call_id".to_owned(), json!(id));
        }
        m.insert("content".to_owned(), json!(text));
        return Ok(Value::Object(m));
    }
    let mut m = Map::new();
    m.insert("role".to_owned(), json!(role));
    match texts.len() {
        0 if !tool_calls.is_empty() => {}
        0 => return Err(Skip::NoContent),
        1 => {
            m.insert("content".to_owned(), json!(texts.remove(0)));
        }
        _ => {
            let parts: Vec<Value> = texts
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect();
            m.insert("content".to_owned(), Value::Array(parts));
        }
    }
    if !tool_calls.is_empty() {
        m.insert("tool_calls".to_owned(), Value::Array(tool_calls));
    }
    Ok(Value::Object(m))
}

/// A semconv tool definition (`{type, name, description?, parameters?}`) in OpenAI's
/// `{type: function, function: {…}}` shape.
fn openai_tool(def: &Value) -> Option<Value> {
    let name = def.get("name")?.as_str()?;
    let mut function = Map::new();
    function.insert("name".to_owned(), json!(name));
    for key in ["description", "parameters"] {
        if let Some(v) = def.get(key) {
            function.insert(key.to_owned(), v.clone());
        }
    }
    Some(json!({"type": "function", "function": Value::Object(function)}))
}

/// Runs `llmtap export`.
pub fn run(args: &ExportArgs) -> ExitCode {
    let files = resolve_files(&args.files);
    let prices = match args.prices.load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("llmtap export: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    // Open every input before creating the output, so a typo never truncates a file.
    for file in &files {
        if let Err(e) = llmtap_export::JsonlReader::open(file) {
            eprintln!("llmtap export: {}", crate::input::InputError::Read(e));
            return ExitCode::from(crate::EXIT_NO_INPUT);
        }
    }
    let mut sink: Box<dyn Write> = match &args.output {
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                eprintln!("llmtap export: cannot create {}: {e}", path.display());
                return ExitCode::from(crate::EXIT_CANT_CREATE);
            }
        },
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let options = ExportOptions {
        format: args.format,
        content: args.content,
        prices: &prices,
    };
    let summary = match export(&files, options, &args.filter, &mut sink) {
        Ok(s) => s,
        Err(ExportError::Input(e)) => {
            eprintln!("llmtap export: {e}");
            return e.exit_code();
        }
        Err(ExportError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return ExitCode::SUCCESS;
        }
        Err(ExportError::Write(e)) => {
            eprintln!("llmtap export: cannot write output: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(sink);
    report_skipped("export", &summary.files);
    let text = if args.json {
        String::from_utf8_lossy(&json_line(&summary)).into_owned()
    } else {
        describe(&summary, args.output.as_ref())
    };
    // With --output the summary is the command's answer; otherwise stdout is the data.
    if args.output.is_some() {
        crate::input::write_stdout("export", text.as_bytes())
    } else {
        eprint!("{text}");
        ExitCode::SUCCESS
    }
}

fn describe(s: &ExportSummary, output: Option<&PathBuf>) -> String {
    let what = match s.format {
        "otlp" => "span(s)",
        "openai" => "example(s)",
        _ => "call(s)",
    };
    let mut text = format!("exported {} {what} as {}", s.written, s.format);
    if let Some(path) = output {
        text.push_str(&format!(" to {}", path.display()));
    }
    let skipped = [
        (s.skipped_failed, "failed"),
        (s.skipped_no_content, "without captured content"),
        (s.skipped_truncated, "with truncated content"),
        (s.skipped_unsupported, "with non-text content"),
    ];
    let notes: Vec<String> = skipped
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
    if !notes.is_empty() {
        text.push_str(&format!(
            "; left out {} of {} call(s): {}",
            s.skipped_failed + s.skipped_no_content + s.skipped_truncated + s.skipped_unsupported,
            s.matched_calls,
            notes.join(", ")
        ));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::SpanStatus;

    fn with_content(input: Value, output: Value) -> SpanRecord {
        SpanRecord {
            trace_id: "t".into(),
            span_id: "s".into(),
            parent_span_id: String::new(),
            name: "chat m".into(),
            start_unix_nanos: 0,
            end_unix_nanos: 1,
            status: SpanStatus::Unset,
            service: None,
            attributes: [(
                semconv::GEN_AI_OPERATION_NAME.to_owned(),
                AttrValue::Str("chat".into()),
            )]
            .into_iter()
            .collect(),
            content: Some(Box::new(SpanContent {
                input_messages: Some(input),
                output_messages: Some(output),
                ..SpanContent::default()
            })),
        }
    }

    #[test]
    fn tool_round_trip_becomes_openai_messages() {
        let span = with_content(
            json!([
                {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
                {"role": "assistant", "parts": [
                    {"type": "reasoning", "content": "need a tool"},
                    {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}
                ]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"temp": 21}}]},
            ]),
            json!([{"role": "assistant", "finish_reason": "stop", "parts": [
                {"type": "text", "content": "It is "}, {"type": "text", "content": "21°C."}
            ]}]),
        );
        assert_eq!(
            fine_tuning_example(&span),
            Ok(json!({"messages": [
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\":21}"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "It is "}, {"type": "text", "text": "21°C."}
                ]},
            ]}))
        );
    }

    #[test]
    fn unusable_calls_are_skipped_with_a_reason() {
        let text = |t: &str| json!([{"role": "user", "parts": [{"type": "text", "content": t}]}]);
        let mut failed = with_content(text("q"), json!([{"role": "assistant", "parts": []}]));
        failed.status = SpanStatus::Error;
        assert_eq!(fine_tuning_example(&failed), Err(Skip::Failed));

        let mut truncated = with_content(text("q"), text("a"));
        truncated.attributes.insert(
            semconv::LLMTAP_CAPTURE_TRUNCATED.to_owned(),
            AttrValue::Bool(true),
        );
        assert_eq!(fine_tuning_example(&truncated), Err(Skip::Truncated));

        let mut bare = with_content(text("q"), text("a"));
        bare.content = None;
        assert_eq!(fine_tuning_example(&bare), Err(Skip::NoContent));

        let image = with_content(
            json!([{"role": "user", "parts": [{"type": "uri", "modality": "image", "uri": "x"}]}]),
            text("a"),
        );
        assert_eq!(fine_tuning_example(&image), Err(Skip::Unsupported));

        let empty_answer = with_content(text("q"), json!([]));
        assert_eq!(fine_tuning_example(&empty_answer), Err(Skip::NoContent));
    }
}
