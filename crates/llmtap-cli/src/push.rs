//! `llmtap push FILE`: re-send a JSONL trace file (ours or a Collector `file` exporter's) to
//! an OTLP endpoint. Endpoint and protocol come from the flags, else `OTEL_EXPORTER_OTLP_*`,
//! else the spec defaults (`http://localhost:4318`, `http://localhost:4317` for gRPC).
//!
//! Exit codes: 0 all spans sent; 1 some requests failed; 64 bad flag or env value;
//! 66 the file cannot be read; 69 the collector cannot be reached.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use llmtap_core::env::ProcessEnv;
use llmtap_export::resend::{PushError, PushOptions, PushReport, push_file};
use llmtap_export::{OtlpConfig, OtlpOverrides, OtlpProtocol};

use crate::{EXIT_NO_INPUT, EXIT_USAGE};

const EXIT_PARTIAL: u8 = 1;
const EXIT_UNAVAILABLE: u8 = 69;

/// Flags of `llmtap push`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSONL file with one OTLP/JSON TracesData per line.
    file: PathBuf,
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
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_protocol(s: &str) -> Result<OtlpProtocol, String> {
    s.parse().map_err(|e| format!("{e}"))
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
    let show_progress = !args.json && std::io::stderr().is_terminal();
    let options = PushOptions {
        spans_per_request: args.batch_spans,
    };
    let result = runtime.block_on(push_file(&args.file, &config, options, |r| {
        if show_progress {
            eprint!("\rsent {} spans, {} failed", r.spans_sent, r.spans_failed);
        }
    }));
    if show_progress {
        eprintln!();
    }
    match result {
        Ok(report) => {
            print_report(&report, &config.endpoint, args.json);
            if report.spans_failed > 0 {
                ExitCode::from(EXIT_PARTIAL)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(PushError::Unreachable { report, .. }) if args.json => {
            print_report(&report, &config.endpoint, true);
            fail(
                EXIT_UNAVAILABLE,
                &format!("cannot reach OTLP collector at {}", config.endpoint),
            )
        }
        Err(e @ PushError::Unreachable { .. }) => fail(EXIT_UNAVAILABLE, &e.to_string()),
        Err(e @ PushError::Read(_)) => fail(EXIT_NO_INPUT, &e.to_string()),
        Err(e @ PushError::Config(_)) => fail(EXIT_USAGE, &e.to_string()),
    }
}

fn print_report(report: &PushReport, endpoint: &str, json: bool) {
    if json {
        match serde_json::to_string(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("llmtap push: cannot encode report: {e}"),
        }
        return;
    }
    let read = &report.read;
    println!(
        "pushed {} spans in {} requests to {endpoint}; failed {}; rejected by collector {}",
        report.spans_sent, report.requests, report.spans_failed, report.spans_rejected
    );
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

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("llmtap push: {message}");
    ExitCode::from(code)
}
