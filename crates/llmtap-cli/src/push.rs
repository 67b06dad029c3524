//! `llmtap push [FILE…]`: re-send JSONL trace files (ours or a Collector `file` exporter's) to
//! an OTLP endpoint, optionally only the spans matching `--since`, `--agent`, `--session`, …
//! Endpoint and protocol come from the flags, else `OTEL_EXPORTER_OTLP_*`, else the spec
//! defaults (`http://localhost:4318`, `http://localhost:4317` for gRPC).
//!
//! Lines are read one at a time (bounded memory), filtered, grouped into requests of about
//! `--batch-spans` spans and sent with `llmtap_export`'s OTLP client (retries included). A
//! progress bar on a terminal shows bytes read.
//!
//! Exit codes: 0 all spans sent; 1 some requests failed; 64 bad flag or env value;
//! 65 a file is not OTLP/JSON lines; 66 a file cannot be read; 69 the collector cannot be
//! reached.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use llmtap_core::env::ProcessEnv;
use llmtap_export::proto::ResourceSpans;
use llmtap_export::{OtlpConfig, OtlpOverrides, OtlpProtocol, ReadStats};
use llmtap_export::{OtlpSender, PushReport, SendErrorKind};

use crate::EXIT_USAGE;
use crate::export::retain_matching;
use crate::input::{FileReport, FilterArgs, report_skipped, resolve_files, scan};

const EXIT_PARTIAL: u8 = 1;
const EXIT_UNAVAILABLE: u8 = 69;

/// Flags of `llmtap push`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSONL files with one OTLP/JSON TracesData per line [default: .llmtap/traces.jsonl]
    files: Vec<PathBuf>,
    /// Collector base URL; for HTTP `/v1/traces` is appended unless already there
    /// [default: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else localhost:4318 / :4317]
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// grpc, http/protobuf or http/json [default: OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, else http/protobuf]
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    protocol: Option<OtlpProtocol>,
    /// Spans per request (lines are never split).
    #[arg(long, value_name = "N", default_value_t = 512)]
    batch_spans: usize,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_protocol(s: &str) -> Result<OtlpProtocol, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// The push report plus what the filters left out.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Report {
    #[serde(flatten)]
    push: PushReport,
    /// Spans not sent because they did not match the filters.
    spans_filtered_out: u64,
    files: Vec<FileReport>,
}

/// Where a push stands while lines stream by.
struct State {
    sender: OtlpSender,
    target: usize,
    pending: Vec<ResourceSpans>,
    pending_spans: u64,
    report: Report,
    /// Set when the collector cannot be reached: the rest is counted, not sent.
    unreachable: Option<String>,
}

impl State {
    fn flush(&mut self, runtime: &tokio::runtime::Runtime) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let n = std::mem::take(&mut self.pending_spans);
        if self.unreachable.is_some() {
            self.report.push.spans_failed += n;
            return;
        }
        match runtime.block_on(self.sender.send(batch)) {
            Ok(outcome) => {
                self.report.push.requests += 1;
                self.report.push.spans_sent += n;
                self.report.push.spans_rejected += outcome.rejected_spans;
            }
            Err(e) if e.kind == SendErrorKind::Unreachable => {
                self.report.push.spans_failed += n;
                self.unreachable = Some(e.message);
            }
            Err(e) => {
                tracing::warn!(error = %e, spans = n, "OTLP request failed");
                self.report.push.spans_failed += n;
            }
        }
    }
}

pub(crate) fn run(args: Args) -> ExitCode {
    let overrides = OtlpOverrides {
        endpoint: args.endpoint.clone(),
        protocol: args.protocol,
    };
    let config = match OtlpConfig::resolve(&ProcessEnv, &overrides) {
        Ok(c) => c,
        Err(e) => return fail(EXIT_USAGE, &e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start runtime: {e}")),
    };
    // The gRPC client is built lazily inside the runtime.
    let sender = {
        let _guard = runtime.enter();
        match OtlpSender::new(&config) {
            Ok(s) => s,
            Err(e) => return fail(EXIT_USAGE, &e.to_string()),
        }
    };
    let files = resolve_files(&args.files);
    let mut state = State {
        sender,
        target: args.batch_spans.max(1),
        pending: Vec::new(),
        pending_spans: 0,
        report: Report::default(),
        unreachable: None,
    };
    let filtering = !args.filter.is_empty();
    let scanned = scan(&files, "push", |mut data| {
        let kept = if filtering {
            let (kept, _, dropped) = retain_matching(&mut data, &args.filter);
            state.report.spans_filtered_out += dropped;
            kept
        } else {
            count_spans(&data.resource_spans)
        };
        state.pending_spans += kept;
        state.pending.extend(data.resource_spans);
        if state.pending_spans >= state.target as u64 {
            state.flush(&runtime);
        }
        ControlFlow::Continue(())
    });
    let files = match scanned {
        Ok(f) => f,
        Err(e) => {
            eprintln!("llmtap push: {e}");
            return e.exit_code();
        }
    };
    state.flush(&runtime);
    report_skipped("push", &files);
    let mut report = state.report;
    report.push.read = sum_reads(&files);
    report.files = files;
    // The endpoint may carry `user:password@`: never printed.
    let endpoint = llmtap_export::redact_userinfo(&config.endpoint);
    print_report(&report, &endpoint, args.json);
    if let Some(reason) = state.unreachable {
        return fail(
            EXIT_UNAVAILABLE,
            &format!(
                "cannot reach OTLP collector at {endpoint}: {}",
                llmtap_export::redact_secrets(&reason)
            ),
        );
    }
    if report.push.spans_failed > 0 {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    }
}

fn count_spans(resource_spans: &[ResourceSpans]) -> u64 {
    resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

/// The reads of all files as one `ReadStats` (the push report's `read`).
fn sum_reads(files: &[FileReport]) -> ReadStats {
    let mut read = ReadStats::default();
    for f in files {
        read.lines += f.lines;
        read.traces += f.batches + f.foreign_lines;
        read.spans += f.spans;
        read.invalid_lines += f.invalid_lines;
        read.torn_last_line |= f.torn_last_line;
    }
    read
}

fn print_report(report: &Report, endpoint: &str, json: bool) {
    if json {
        match serde_json::to_string(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("llmtap push: cannot encode report: {e}"),
        }
        return;
    }
    let push = &report.push;
    let read = &push.read;
    println!(
        "pushed {} spans in {} requests to {}; failed {}; rejected by collector {}",
        push.spans_sent,
        push.requests,
        llmtap_core::userinfo::mask_userinfo(endpoint),
        push.spans_failed,
        push.spans_rejected
    );
    if report.spans_filtered_out > 0 {
        println!(
            "left out {} span(s) that do not match the filters",
            report.spans_filtered_out
        );
    }
    println!(
        "read {} lines: {} valid, {} invalid skipped, torn last line: {}",
        read.lines,
        read.traces,
        read.invalid_lines,
        if read.torn_last_line {
            "yes (skipped)"
        } else {
            "no"
        }
    );
}

/// Prints `message` (URL credentials masked) and exits with `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!(
        "llmtap push: {}",
        llmtap_core::userinfo::mask_userinfo(message)
    );
    ExitCode::from(code)
}
