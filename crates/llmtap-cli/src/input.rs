//! What every reading command shares: which files, which calls (`--since`, `--agent`, …),
//! streaming the lines in bounded memory with a progress bar, and the same clear errors and
//! skipped-line report.
//!
//! Exit codes: 66 a file cannot be opened or read; 65 a file is not OTLP/JSON lines at all.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use llmtap_core::semconv;
use llmtap_export::proto::TracesData;
use llmtap_export::{JsonlReader, ReadError};

use crate::paths::{DEFAULT_DEMO_FILE, DEFAULT_TRACES_FILE};
use crate::spans::SpanRecord;
use crate::timefmt::{format_rfc3339_millis, now_nanos, parse_time};
use crate::{EXIT_DATA_ERR, EXIT_NO_INPUT};

/// The files to read: those given, else the proxy's default file and its rotations
/// (`traces.jsonl.N` … `.1`, then the live file: oldest first). With none on disk, the default
/// path alone, so opening it fails with its name.
pub fn resolve_files(files: &[PathBuf]) -> Vec<PathBuf> {
    if files.is_empty() {
        with_rotations(Path::new(DEFAULT_TRACES_FILE))
    } else {
        files.to_vec()
    }
}

/// Rotated files kept beside `live` (`live.1`, `live.2`, …, the exporter's naming), oldest
/// (highest number) first, then `live` when it exists; `live` alone when none exists.
pub fn with_rotations(live: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let n = file_name
                .strip_prefix(name.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(n) = n
                && entry.path().is_file()
            {
                rotated.push((n, live.with_file_name(file_name.as_ref())));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if live.exists() || files.is_empty() {
        files.push(live.to_path_buf());
    }
    files
}

/// A hint for a missing default file: the demo writes elsewhere.
fn missing_default_hint(path: &Path) -> Option<String> {
    let demo = Path::new(DEFAULT_DEMO_FILE);
    (path == Path::new(DEFAULT_TRACES_FILE) && demo.is_file()).then(|| {
        format!(
            " (the proxy writes there; `llmtap demo` wrote {}: name it, e.g. `llmtap tree {}`)",
            demo.display(),
            demo.display()
        )
    })
}

/// `ok` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Calls that did not fail.
    Ok,
    /// Calls with span status Error or an `error.type`.
    Error,
}

/// Which calls a command looks at. Every given filter must match; a span lacking the attribute
/// a filter names does not match it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only spans that started at or after TIME: RFC 3339 (2026-05-01T12:00:00Z) or an age
    /// (30m, 1h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub since: Option<u64>,
    /// Only spans that started before TIME (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub until: Option<u64>,
    /// Only spans of this agent (`gen_ai.agent.name`).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Only calls to this model (requested or answering model, exact name).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Only spans of this session (`gen_ai.conversation.id`).
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Only successful (ok) or failed (error) spans.
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// Only spans with this user metadata (`x-llmtap-meta-KEY` → `llmtap.meta.KEY`); repeat
    /// for several, all must match.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Only spans of this service (`service.name` of the emitting resource).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only spans that took at least this long: 500ms, 2s, 1.5s, 1m.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_arg)]
    pub min_latency: Option<u64>,
    /// Only calls with this finish reason on any choice (stop, length, tool_calls, …).
    #[arg(long, value_name = "REASON")]
    pub finish_reason: Option<String>,
    /// Only spans of the trace whose id starts with this hex prefix.
    #[arg(long, value_name = "ID")]
    pub trace: Option<String>,
    /// Only the call with this upstream request id (`llmtap.upstream.request_id`).
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
}

/// `KEY=VALUE` of `--meta`.
fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE (e.g. team=blue)")),
    }
}

fn parse_duration_arg(text: &str) -> Result<u64, String> {
    parse_duration(text).ok_or_else(|| {
        format!("`{text}` is not a duration: a number with a unit, e.g. 500ms, 2s, 1.5s, 1m")
    })
}

/// A duration in nanoseconds: a decimal number and a unit (`ns`, `us`, `ms`, `s`, `m`, `h`).
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit_at = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(unit_at);
    let nanos_per_unit: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let n: f64 = number.parse().ok()?;
    let nanos = n * nanos_per_unit;
    (nanos.is_finite() && nanos >= 0.0 && nanos < u64::MAX as f64).then_some(nanos.round() as u64)
}

fn parse_time_arg(text: &str) -> Result<u64, String> {
    parse_time(text, now_nanos())
}

impl FilterArgs {
    /// No filter given: everything passes.
    pub fn is_empty(&self) -> bool {
        self.since.is_none()
            && self.until.is_none()
            && self.agent.is_none()
            && self.model.is_none()
            && self.session.is_none()
            && self.status.is_none()
            && self.meta.is_empty()
            && self.service.is_none()
            && self.min_latency.is_none()
            && self.finish_reason.is_none()
            && self.trace.is_none()
            && self.request_id.is_none()
    }

    /// Whether `span` passes every filter.
    pub fn matches(&self, span: &SpanRecord) -> bool {
        let start = span.start();
        self.since.is_none_or(|t| start >= t)
            && self.until.is_none_or(|t| start < t)
            && self
                .agent
                .as_deref()
                .is_none_or(|a| span.str_attr(semconv::GEN_AI_AGENT_NAME) == Some(a))
            && self
                .session
                .as_deref()
                .is_none_or(|s| span.str_attr(semconv::GEN_AI_CONVERSATION_ID) == Some(s))
            && self.model.as_deref().is_none_or(|m| {
                span.str_attr(semconv::GEN_AI_REQUEST_MODEL) == Some(m)
                    || span.str_attr(semconv::GEN_AI_RESPONSE_MODEL) == Some(m)
            })
            && self.status.is_none_or(|s| match s {
                StatusFilter::Ok => !span.is_error(),
                StatusFilter::Error => span.is_error(),
            })
            && self.meta.iter().all(|(key, value)| {
                span.attributes
                    .get(&semconv::meta_key(key))
                    .is_some_and(|v| v.to_string() == *value)
            })
            && self
                .service
                .as_deref()
                .is_none_or(|s| span.service.as_deref() == Some(s))
            && self
                .min_latency
                .is_none_or(|min| span.duration_nanos() >= min)
            && self.finish_reason.as_deref().is_none_or(|r| {
                span.list_attr(semconv::GEN_AI_RESPONSE_FINISH_REASONS)
                    .iter()
                    .any(|have| have == r)
            })
            && self
                .trace
                .as_deref()
                .is_none_or(|t| span.trace_id.starts_with(&t.to_ascii_lowercase()))
            && self
                .request_id
                .as_deref()
                .is_none_or(|id| span.str_attr(semconv::LLMTAP_UPSTREAM_REQUEST_ID) == Some(id))
    }

    /// The time window as printable text, if any.
    pub fn window(&self) -> (Option<String>, Option<String>) {
        (
            self.since.map(format_rfc3339_millis),
            self.until.map(format_rfc3339_millis),
        )
    }
}

/// What reading one file saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    pub file: String,
    /// Non-blank lines.
    pub lines: u64,
    /// Lines that decoded as OTLP/JSON `TracesData` with a `resourceSpans` key.
    pub batches: u64,
    pub spans: u64,
    /// Lines that are not JSON, not OTLP/JSON, or over the line bound.
    pub invalid_lines: u64,
    /// JSON objects without `resourceSpans`: another program's lines.
    pub foreign_lines: u64,
    /// The file ends in a half-written line (a crash mid-write).
    pub torn_last_line: bool,
}

impl FileReport {
    /// A one-line stderr note when lines were skipped.
    pub fn skipped_note(&self) -> Option<String> {
        if self.invalid_lines == 0 && self.foreign_lines == 0 && !self.torn_last_line {
            return None;
        }
        let mut parts = Vec::new();
        if self.invalid_lines > 0 {
            parts.push(format!(
                "{} line(s) that are not OTLP/JSON",
                self.invalid_lines
            ));
        }
        if self.foreign_lines > 0 {
            parts.push(format!(
                "{} JSON line(s) without resourceSpans",
                self.foreign_lines
            ));
        }
        if self.torn_last_line {
            parts.push("a torn last line".to_owned());
        }
        Some(format!("{}: skipped {}", self.file, parts.join(", ")))
    }
}

/// A file that cannot be used at all.
#[derive(Debug)]
pub enum InputError {
    /// Cannot be opened or read.
    Read(ReadError),
    /// Readable, but no line is OTLP/JSON.
    NotOtlpJsonl { file: String, bad_lines: u64 },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Read(e) => {
                write!(f, "{e}")?;
                if let ReadError::Open { path, .. } = e
                    && let Some(hint) = missing_default_hint(path)
                {
                    f.write_str(&hint)?;
                }
                Ok(())
            }
            InputError::NotOtlpJsonl { file, bad_lines } => write!(
                f,
                "{file} is not an OTLP/JSON lines file: none of its first {bad_lines} line(s) is \
                 a TracesData object (a Collector file exporter must use `format: json` without \
                 compression)"
            ),
        }
    }
}

impl InputError {
    /// Exit code: 66 unreadable, 65 not OTLP/JSON lines.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            InputError::Read(_) => ExitCode::from(EXIT_NO_INPUT),
            InputError::NotOtlpJsonl { .. } => ExitCode::from(EXIT_DATA_ERR),
        }
    }
}

/// After this many bad lines and no good one, a file is declared not OTLP/JSON lines.
const FOREIGN_VERDICT_LINES: u64 = 100;

/// Streams every `TracesData` line of `files` to `on_line`, one line in memory at a time, with
/// a progress bar labelled `label` on a terminal. Every file is opened before the first is read,
/// so an unreadable file fails before any output. `on_line` may stop the scan early.
pub fn scan(
    files: &[PathBuf],
    label: &str,
    mut on_line: impl FnMut(TracesData) -> ControlFlow<()>,
) -> Result<Vec<FileReport>, InputError> {
    let mut readers = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for file in files {
        let reader = JsonlReader::open(file).map_err(InputError::Read)?;
        total += std::fs::metadata(file).map_or(0, |m| m.len());
        readers.push((file, reader));
    }
    let mut progress = Progress::new(label, total);
    let mut done_before = 0u64;
    let mut reports = Vec::with_capacity(readers.len());
    let mut stopped = false;
    for (file, mut reader) in readers {
        if !stopped {
            let mut n = 0u64;
            while let Some(item) = reader.next() {
                let data = item.map_err(InputError::Read)?;
                n += 1;
                if n.is_multiple_of(64) {
                    progress.update(done_before + reader.bytes_read());
                    check_foreign(file, &reader)?;
                }
                if on_line(data).is_break() {
                    stopped = true;
                    break;
                }
            }
        }
        done_before += reader.bytes_read();
        let report = file_report(file, &reader);
        if !stopped && report.batches == 0 && report.invalid_lines + report.foreign_lines > 0 {
            return Err(InputError::NotOtlpJsonl {
                file: report.file,
                bad_lines: report.invalid_lines + report.foreign_lines,
            });
        }
        reports.push(report);
    }
    progress.finish();
    Ok(reports)
}

fn check_foreign<R: std::io::BufRead>(
    file: &Path,
    reader: &JsonlReader<R>,
) -> Result<(), InputError> {
    let report = file_report(file, reader);
    let bad = report.invalid_lines + report.foreign_lines;
    if report.batches == 0 && bad >= FOREIGN_VERDICT_LINES {
        return Err(InputError::NotOtlpJsonl {
            file: report.file,
            bad_lines: bad,
        });
    }
    Ok(())
}

/// Counts of `reader` so far, for `file`.
pub fn file_report<R: std::io::BufRead>(file: &Path, reader: &JsonlReader<R>) -> FileReport {
    let stats = reader.stats();
    FileReport {
        file: file.display().to_string(),
        lines: stats.lines,
        batches: stats.traces.saturating_sub(reader.foreign_lines()),
        spans: stats.spans,
        invalid_lines: stats.invalid_lines,
        foreign_lines: reader.foreign_lines(),
        torn_last_line: stats.torn_last_line,
    }
}

/// Writes `text` to stdout; a closed pipe (`llmtap stats | head`) is not an error.
pub fn write_stdout(command: &str, text: &[u8]) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("llmtap {command}: cannot write output: {err}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// `value` as pretty JSON plus a newline.
pub fn pretty_json(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode report: {e}\"}}").into_bytes());
    out.push(b'\n');
    out
}

/// Prints the skipped-line notes of `reports` to stderr, prefixed by the command.
pub fn report_skipped(command: &str, reports: &[FileReport]) {
    for note in reports.iter().filter_map(FileReport::skipped_note) {
        eprintln!("llmtap {command}: {note}");
    }
}

/// A one-line progress bar on stderr: only on a terminal, only for work that lasts (nothing is
/// drawn in the first 300 ms), at most ten redraws a second, erased when done.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: u64,
    enabled: bool,
    started: Instant,
    last_draw: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// A bar for `total` bytes (0 = unknown size: a counter instead of a bar).
    pub fn new(label: &str, total: u64) -> Self {
        Self {
            label: label.to_owned(),
            total,
            enabled: std::io::stderr().is_terminal()
                && std::env::var_os(llmtap_core::settings::NO_PROGRESS.env).is_none(),
            started: Instant::now(),
            last_draw: None,
            drawn: false,
        }
    }

    /// Redraws with `done` bytes processed (rate-limited).
    pub fn update(&mut self, done: u64) {
        if !self.enabled || self.started.elapsed() < Duration::from_millis(300) {
            return;
        }
        if self
            .last_draw
            .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(Instant::now());
        self.drawn = true;
        eprint!("\r\x1b[2K{}", render_bar(&self.label, done, self.total));
    }

    /// Erases the bar.
    pub fn finish(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `label [#########-----------]  45%  450.0 MiB / 1.0 GiB`.
pub fn render_bar(label: &str, done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    if total == 0 {
        return format!("{label} {}", format_bytes(done));
    }
    let done = done.min(total);
    let filled = done * WIDTH / total;
    let mut bar = String::with_capacity(WIDTH as usize);
    for i in 0..WIDTH {
        bar.push(if i < filled { '#' } else { '-' });
    }
    let mut out = format!("{label} [{bar}] {:>3}%", done * 100 / total);
    let _ = write!(out, "  {} / {}", format_bytes(done), format_bytes(total));
    out
}

/// Bytes with a binary unit: `512 B`, `1.5 KiB`, `1.0 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = "KiB";
    for next in UNITS.iter().skip(1) {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{AttrValue, SpanStatus};

    fn span(start: u64, attrs: &[(&str, &str)], status: SpanStatus) -> SpanRecord {
        SpanRecord {
            trace_id: "t".into(),
            span_id: "s".into(),
            parent_span_id: String::new(),
            name: "chat m".into(),
            start_unix_nanos: start,
            end_unix_nanos: start + 1,
            status,
            service: None,
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), AttrValue::Str((*v).to_owned())))
                .collect(),
            content: None,
        }
    }

    #[test]
    fn filters_combine_and_missing_attributes_do_not_match() {
        let s = span(
            100,
            &[
                (semconv::GEN_AI_AGENT_NAME, "writer"),
                (semconv::GEN_AI_REQUEST_MODEL, "gpt-4o-mini"),
                (semconv::GEN_AI_RESPONSE_MODEL, "gpt-4o-mini-2024-07-18"),
                (semconv::GEN_AI_CONVERSATION_ID, "s1"),
            ],
            SpanStatus::Unset,
        );
        let none = FilterArgs::default();
        assert!(none.matches(&s));
        let f = |edit: fn(&mut FilterArgs)| {
            let mut f = FilterArgs::default();
            edit(&mut f);
            f.matches(&s)
        };
        assert!(f(|f| f.since = Some(100)));
        assert!(!f(|f| f.since = Some(101)));
        assert!(f(|f| f.until = Some(101)));
        assert!(!f(|f| f.until = Some(100)), "until is exclusive");
        assert!(f(|f| f.agent = Some("writer".into())));
        assert!(!f(|f| f.agent = Some("Writer".into())));
        assert!(f(|f| f.model = Some("gpt-4o-mini".into())));
        assert!(f(|f| f.model = Some("gpt-4o-mini-2024-07-18".into())));
        assert!(!f(|f| f.model = Some("gpt-4o".into())));
        assert!(f(|f| f.session = Some("s1".into())));
        assert!(!f(|f| f.session = Some("s2".into())));
        assert!(f(|f| f.status = Some(StatusFilter::Ok)));
        assert!(!f(|f| f.status = Some(StatusFilter::Error)));

        let bare = span(100, &[], SpanStatus::Unset);
        let by_agent = FilterArgs {
            agent: Some("writer".into()),
            ..FilterArgs::default()
        };
        assert!(!by_agent.matches(&bare));

        // error.type alone makes a call failed.
        let typed = span(1, &[(semconv::ERROR_TYPE, "timeout")], SpanStatus::Unset);
        let errors = FilterArgs {
            status: Some(StatusFilter::Error),
            ..FilterArgs::default()
        };
        assert!(errors.matches(&typed));
        assert!(errors.matches(&span(1, &[], SpanStatus::Error)));
    }

    #[test]
    fn bar_and_bytes_render() {
        assert_eq!(
            render_bar("stats", 512 * 1024 * 1024, 1024 * 1024 * 1024),
            "stats [###############---------------]  50%  512.0 MiB / 1.0 GiB"
        );
        assert_eq!(render_bar("x", 10, 0), "x 10 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert!(render_bar("x", 5, 4).contains("100%"));
    }

    #[test]
    fn new_filters_match_meta_service_latency_reason_trace_and_request_id() {
        let mut s = span(
            0,
            &[
                ("llmtap.meta.team", "blue"),
                (semconv::GEN_AI_RESPONSE_FINISH_REASONS, "length"),
                (semconv::LLMTAP_UPSTREAM_REQUEST_ID, "req_1"),
            ],
            SpanStatus::Unset,
        );
        s.trace_id = "0af7651916cd43dd".into();
        s.end_unix_nanos = 600_000_000;
        s.service = Some("api".into());
        let f = |edit: fn(&mut FilterArgs)| {
            let mut f = FilterArgs::default();
            edit(&mut f);
            assert!(!f.is_empty());
            f.matches(&s)
        };
        assert!(f(|f| f.meta = vec![("team".into(), "blue".into())]));
        assert!(!f(|f| f.meta = vec![("team".into(), "red".into())]));
        assert!(!f(|f| f.meta = vec![("user".into(), "blue".into())]));
        assert!(f(|f| f.service = Some("api".into())));
        assert!(!f(|f| f.service = Some("web".into())));
        assert!(f(|f| f.min_latency = Some(500_000_000)));
        assert!(f(|f| f.min_latency = Some(600_000_000)), "at least");
        assert!(!f(|f| f.min_latency = Some(600_000_001)));
        assert!(f(|f| f.finish_reason = Some("length".into())));
        assert!(!f(|f| f.finish_reason = Some("stop".into())));
        assert!(f(|f| f.trace = Some("0AF765".into())));
        assert!(!f(|f| f.trace = Some("1af7".into())));
        assert!(f(|f| f.request_id = Some("req_1".into())));
        assert!(!f(|f| f.request_id = Some("req".into())), "exact");
    }

    #[test]
    fn durations_and_meta_parse() {
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("500"), None, "a unit is required");
        assert_eq!(parse_duration("ms"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
        assert_eq!(parse_meta("team=blue"), Ok(("team".into(), "blue".into())));
        assert_eq!(parse_meta("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert!(parse_meta("=x").is_err());
        assert!(parse_meta("team").is_err());
    }

    #[test]
    fn rotations_are_read_oldest_first() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let live = dir.path().join("traces.jsonl");
        assert_eq!(with_rotations(&live), vec![live.clone()], "none on disk");
        for name in [
            "traces.jsonl.1",
            "traces.jsonl.10",
            "traces.jsonl.2",
            "traces.jsonl.x",
        ] {
            std::fs::write(dir.path().join(name), "")?;
        }
        let names = |files: Vec<PathBuf>| -> Vec<String> {
            files
                .iter()
                .filter_map(|f| f.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(with_rotations(&live)),
            ["traces.jsonl.10", "traces.jsonl.2", "traces.jsonl.1"],
            "rotations without the live file"
        );
        std::fs::write(&live, "")?;
        assert_eq!(
            names(with_rotations(&live)),
            [
                "traces.jsonl.10",
                "traces.jsonl.2",
                "traces.jsonl.1",
                "traces.jsonl"
            ]
        );
        Ok(())
    }
}
