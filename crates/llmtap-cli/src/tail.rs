//! `llmtap tail [-f]`: one readable line per finished model call, the last N of the file, then
//! (with `-f`) each new one as the proxy writes it, across size-based rotation (the live file
//! renamed to `.1` and a new one created) and truncation.
//!
//! Memory stays bounded: the last N calls are found by reading backwards from the end in
//! growing windows, never the whole file; following reads only new bytes, and a line longer
//! than the reader's 64 MiB bound is skipped without being held.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use llmtap_core::semconv;
use llmtap_export::{DEFAULT_MAX_LINE_BYTES, parse_line};
use llmtap_export::{JsonlReader, ReadError};

use crate::cost::{PriceArgs, PriceTable, format_usd};
use crate::input::FilterArgs;
use crate::input::with_rotations;
use crate::paths::DEFAULT_TRACES_FILE;
use crate::row::CallRow;
use crate::spans::{Content, SpanRecord, for_each_span};
use crate::tree::{Style, format_call_tokens, format_timing, stdout_style};
use crate::{EXIT_DATA_ERR, EXIT_NO_INPUT, EXIT_USAGE};

/// Flags of `llmtap tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// JSONL trace file [default: .llmtap/traces.jsonl, after its rotations]
    pub file: Option<PathBuf>,
    /// Keep printing calls as they are written (Ctrl-C to stop); follows rotation, and waits
    /// for a file that does not exist yet.
    #[arg(long, short)]
    pub follow: bool,
    /// How many of the last calls to print first (oldest to newest).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10)]
    pub lines: usize,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// One flat JSON object per call (the `export --format jsonl` row).
    #[arg(long)]
    pub json: bool,
    /// Never colour the output.
    #[arg(long)]
    pub no_color: bool,
    #[command(flatten)]
    pub prices: PriceArgs,
    /// How often to look for new lines when following, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 250, hide = true)]
    pub poll_ms: u64,
}

/// How to print one call.
#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    pub style: Style,
    pub prices: PriceTable,
}

impl Printer {
    /// The line for `span` (with its newline).
    pub fn line(&self, span: &SpanRecord) -> String {
        let cost = self.prices.cost_of(span);
        if self.json {
            let row = CallRow::from_span(span).with_cost(cost);
            let mut line = serde_json::to_string(&row).unwrap_or_default();
            line.push('\n');
            return line;
        }
        format_call(span, self.style, cost)
    }
}

/// `2026-05-01T12:05:00.100Z  [planner]  chat gpt-4o → gpt-4o-2024-08-06  ✓ tool_call  2.00 s
/// (ttft 250 ms) stream  in 1200 / out 300 tok  $0.0047  session conv-42  trace 0af76519`.
pub fn format_call(span: &SpanRecord, style: Style, cost: Option<u128>) -> String {
    let mut line = style.dim(&crate::timefmt::format_rfc3339_millis(
        span.start_unix_nanos,
    ));
    if let Some(agent) = span.str_attr(semconv::GEN_AI_AGENT_NAME) {
        line.push_str(&format!("  {}", style.cyan(&format!("[{agent}]"))));
    } else if let Some(service) = &span.service {
        line.push_str(&format!("  {}", style.dim(&format!("({service})"))));
    }
    line.push_str(&format!("  {}", style.bold(&span.name)));
    let asked = span.name.rsplit(' ').next().unwrap_or_default();
    if let Some(answered) = span.str_attr(semconv::GEN_AI_RESPONSE_MODEL)
        && !answered.starts_with(asked)
    {
        line.push_str(&format!(" → {answered}"));
    }
    if span.is_error() {
        let kind = span.str_attr(semconv::ERROR_TYPE).unwrap_or("error");
        let mut text = format!("✗ {kind}");
        if let Some(code) = span.u64_attr(semconv::HTTP_RESPONSE_STATUS_CODE) {
            text.push_str(&format!(" ({code})"));
        }
        line.push_str(&format!("  {}", style.red(&text)));
    } else {
        let reasons = span.list_attr(semconv::GEN_AI_RESPONSE_FINISH_REASONS);
        let mut text = "✓".to_owned();
        if !reasons.is_empty() {
            text.push(' ');
            text.push_str(&reasons.join(","));
        }
        line.push_str(&format!("  {}", style.green(&text)));
    }
    line.push_str(&format!(
        "  {}",
        format_timing(
            span.duration_nanos() as f64 / 1e6,
            span.f64_attr(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
                .map(|secs| secs * 1000.0),
            span.streamed(),
        )
    ));
    let reported = (
        span.u64_attr(semconv::GEN_AI_USAGE_INPUT_TOKENS).is_some(),
        span.u64_attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS).is_some(),
    );
    if reported.0 || reported.1 {
        line.push_str(&format!(
            "  {}",
            format_call_tokens(span.tokens(), reported)
        ));
    }
    if let Some(cost) = cost {
        line.push_str(&format!("  {}", format_usd(crate::cost::usd(cost))));
    }
    if let Some(session) = span.str_attr(semconv::GEN_AI_CONVERSATION_ID) {
        line.push_str(&format!("  session {session}"));
    }
    line.push_str(&style.dim(&format!(
        "  trace {}",
        span.trace_id.get(..8).unwrap_or(&span.trace_id)
    )));
    line.push('\n');
    line
}

/// The model calls of one OTLP/JSON line that pass `filter`.
fn calls_of_line(line: &[u8], filter: &FilterArgs, out: &mut impl FnMut(SpanRecord)) -> bool {
    match parse_line(line) {
        Some((data, _)) => {
            for_each_span(&data, Content::Skip, |span| {
                if span.is_model_call() && filter.matches(&span) {
                    out(span);
                }
            });
            true
        }
        None => false,
    }
}

/// The last `n` matching calls among the complete lines of `file` before byte `end`, reading
/// backwards in windows that double from 1 MiB, so a huge file is not read whole. Also returns
/// how many lines were skipped as not OTLP/JSON.
pub fn last_calls(
    path: &Path,
    end: u64,
    n: usize,
    filter: &FilterArgs,
) -> Result<(Vec<SpanRecord>, u64), ReadError> {
    let found = last_calls_report(path, end, n, filter)?;
    Ok((found.calls, found.invalid_lines))
}

/// What [`last_calls_report`] found in one file.
#[derive(Debug, Default)]
pub struct LastCalls {
    /// Oldest first.
    pub calls: Vec<SpanRecord>,
    /// Lines that are not OTLP/JSON, in what was read.
    pub invalid_lines: u64,
    /// JSON lines without `resourceSpans`, in what was read.
    pub foreign_lines: u64,
    /// OTLP/JSON lines, in what was read.
    pub otlp_lines: u64,
    /// The whole file (up to `end`) was read.
    pub whole_file: bool,
}

impl LastCalls {
    /// Read whole and not one OTLP/JSON line among its lines: not a trace file.
    pub fn not_otlp(&self) -> bool {
        self.whole_file && self.otlp_lines == 0 && self.invalid_lines + self.foreign_lines > 0
    }
}

/// [`last_calls`] with the counts that tell a trace file from another file.
pub fn last_calls_report(
    path: &Path,
    end: u64,
    n: usize,
    filter: &FilterArgs,
) -> Result<LastCalls, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    if n == 0 {
        return Ok(LastCalls::default());
    }
    let mut window: u64 = 1024 * 1024;
    loop {
        let start = end.saturating_sub(window);
        let mut file = File::open(path).map_err(|source| ReadError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut reader = BufReader::with_capacity(64 * 1024, file.take(end - start));
        if start > 0 {
            // Mid-line: the first (partial) line belongs to the previous window.
            reader.skip_until(b'\n').map_err(io)?;
        }
        let mut found: VecDeque<SpanRecord> = VecDeque::with_capacity(n.min(4096) + 1);
        let mut lines = JsonlReader::new(reader, path);
        for data in lines.by_ref() {
            for_each_span(&data?, Content::Skip, |span| {
                if span.is_model_call() && filter.matches(&span) {
                    found.push_back(span);
                    if found.len() > n {
                        found.pop_front();
                    }
                }
            });
        }
        if found.len() >= n || start == 0 {
            let stats = lines.stats();
            let foreign = lines.foreign_lines();
            return Ok(LastCalls {
                calls: found.into(),
                invalid_lines: stats.invalid_lines,
                foreign_lines: foreign,
                otlp_lines: stats.traces.saturating_sub(foreign),
                whole_file: start == 0,
            });
        }
        window = window.saturating_mul(2);
    }
}

/// Byte offset just past the last `\n` in the first `len` bytes of `path` (0 if none): where a
/// follower starts so that a line still being written is read once it is whole.
fn end_of_last_line(path: &Path, len: u64) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let size = usize::try_from(end - start).unwrap_or(0);
        let chunk = block.get_mut(..size).unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Identity of a file, to notice that the path now names another one (rotation).
#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Reads the complete lines appended to a file, across rotation and truncation.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    id: (u64, u64),
    pos: u64,
    pending: Vec<u8>,
    /// Inside a line over the bound: drop bytes until its end.
    skipping: bool,
    /// Lines that were not OTLP/JSON, or too long.
    pub invalid_lines: u64,
    /// Rotations and truncations seen.
    pub reopened: u64,
}

impl Follower {
    /// Follows `path` from byte `pos` (a line start).
    pub fn new(path: &Path, pos: u64) -> Self {
        let (file, id) = match File::open(path) {
            Ok(f) => {
                let id = f.metadata().map(|m| file_id(&m)).unwrap_or_default();
                (Some(f), id)
            }
            Err(_) => (None, (0, 0)),
        };
        Self {
            path: path.to_path_buf(),
            file,
            id,
            pos,
            pending: Vec::new(),
            skipping: false,
            invalid_lines: 0,
            reopened: 0,
        }
    }

    /// Calls `on_line` for each complete line written since the last poll. After a rotation the
    /// rest of the old file is read first, then the new file from its start.
    pub fn poll(&mut self, on_line: &mut impl FnMut(&[u8])) -> std::io::Result<()> {
        self.drain(on_line)?;
        let current = std::fs::metadata(&self.path).ok();
        let rotated = match &current {
            Some(meta) => self.file.is_none() || file_id(meta) != self.id,
            None => false,
        };
        let truncated = !rotated && current.as_ref().is_some_and(|m| m.len() < self.pos);
        if rotated || truncated {
            // A half line left in the old file will never be completed.
            if !self.pending.is_empty() {
                self.invalid_lines += 1;
            }
            self.pending.clear();
            self.skipping = false;
            *self = Self {
                invalid_lines: self.invalid_lines,
                reopened: self.reopened + 1,
                ..Self::new(&self.path, 0)
            };
            self.drain(on_line)?;
        }
        Ok(())
    }

    fn drain(&mut self, on_line: &mut impl FnMut(&[u8])) -> std::io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.pos))?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.pos += n as u64;
            let mut rest = chunk.get(..n).unwrap_or_default();
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                let (head, tail) = rest.split_at(i);
                if self.skipping {
                    self.skipping = false;
                } else {
                    self.pending.extend_from_slice(head);
                    if !self.pending.iter().all(u8::is_ascii_whitespace) {
                        on_line(&self.pending);
                    }
                    self.pending.clear();
                }
                rest = tail.get(1..).unwrap_or_default();
            }
            if !self.skipping {
                if self.pending.len() + rest.len() > DEFAULT_MAX_LINE_BYTES {
                    self.pending.clear();
                    self.skipping = true;
                    self.invalid_lines += 1;
                } else {
                    self.pending.extend_from_slice(rest);
                }
            }
        }
    }
}

/// Runs `llmtap tail`.
pub fn run(args: &TailArgs) -> ExitCode {
    if args.poll_ms == 0 {
        eprintln!("llmtap tail: --poll-ms must be at least 1");
        return ExitCode::from(EXIT_USAGE);
    }
    let prices = match args.prices.load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("llmtap tail: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // The live file, and the files to take the last calls from (oldest first): with no file
    // given, the default file's rotations too.
    let (path, history) = match &args.file {
        Some(file) => (file.clone(), vec![file.clone()]),
        None => {
            let live = PathBuf::from(DEFAULT_TRACES_FILE);
            let history = with_rotations(&live);
            (live, history)
        }
    };
    // Following a file that is not there yet: wait for it (the proxy creates it on start).
    let waiting = args.follow && !path.exists();
    if waiting {
        eprintln!(
            "llmtap tail: waiting for {} to be created (Ctrl-C to stop)…",
            path.display()
        );
    }
    // Open each up front for a clear error (missing file, directory).
    for file in history.iter().filter(|f| !(waiting && **f == path)) {
        if let Err(e) = JsonlReader::open(file) {
            eprintln!("llmtap tail: {}", crate::input::InputError::Read(e));
            return ExitCode::from(EXIT_NO_INPUT);
        }
    }
    let end = if waiting {
        0
    } else {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if args.follow {
            match end_of_last_line(&path, len) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("llmtap tail: cannot read {}: {e}", path.display());
                    return ExitCode::from(EXIT_NO_INPUT);
                }
            }
        } else {
            len
        }
    };
    let printer = Printer {
        json: args.json,
        style: stdout_style(args.no_color),
        prices,
    };
    let mut stdout = std::io::stdout().lock();
    // Newest file first until N calls are found; printed oldest first.
    let mut chunks: Vec<Vec<SpanRecord>> = Vec::new();
    let mut wanted = args.lines;
    for file in history.iter().rev() {
        if wanted == 0 {
            break;
        }
        if waiting && *file == path {
            continue;
        }
        let file_end = if *file == path {
            end
        } else {
            std::fs::metadata(file).map_or(0, |m| m.len())
        };
        let found = match last_calls_report(file, file_end, wanted, &args.filter) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("llmtap tail: {e}");
                return ExitCode::from(EXIT_NO_INPUT);
            }
        };
        if found.not_otlp() {
            eprintln!(
                "llmtap tail: {}",
                crate::input::InputError::NotOtlpJsonl {
                    file: file.display().to_string(),
                    bad_lines: found.invalid_lines + found.foreign_lines,
                }
            );
            return ExitCode::from(EXIT_DATA_ERR);
        }
        if found.invalid_lines > 0 {
            eprintln!(
                "llmtap tail: {}: skipped {} line(s) that are not OTLP/JSON",
                file.display(),
                found.invalid_lines
            );
        }
        wanted -= found.calls.len().min(wanted);
        chunks.push(found.calls);
    }
    for span in chunks.iter().rev().flatten() {
        if write_line(&mut stdout, &printer.line(span)).is_err() {
            return ExitCode::SUCCESS;
        }
    }
    if !args.follow {
        return ExitCode::SUCCESS;
    }
    let mut follower = Follower::new(&path, end);
    let mut reported_invalid = 0;
    loop {
        let mut closed = false;
        let result = follower.poll(&mut |line| {
            let mut printed = Vec::new();
            if !calls_of_line(line, &args.filter, &mut |span| printed.push(span)) {
                follower_invalid_note(&path);
            }
            for span in printed {
                if write_line(&mut stdout, &printer.line(&span)).is_err() {
                    closed = true;
                }
            }
        });
        if closed {
            return ExitCode::SUCCESS;
        }
        if let Err(e) = result {
            eprintln!("llmtap tail: cannot read {}: {e}", path.display());
            return ExitCode::from(EXIT_NO_INPUT);
        }
        if follower.invalid_lines > reported_invalid {
            reported_invalid = follower.invalid_lines;
            eprintln!(
                "llmtap tail: {}: skipped a torn or over-long line",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(args.poll_ms));
    }
}

fn follower_invalid_note(path: &Path) {
    eprintln!(
        "llmtap tail: {}: skipped a line that is not OTLP/JSON",
        path.display()
    );
}

fn write_line(out: &mut impl Write, line: &str) -> std::io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u64, agent: &str) -> String {
        let span = serde_json::json!({
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": format!("{i:016x}"),
            "name": "chat m",
            "kind": 3,
            "startTimeUnixNano": (i * 1_000_000_000).to_string(),
            "endTimeUnixNano": (i * 1_000_000_000 + 5_000_000).to_string(),
            "attributes": [
                {"key": semconv::GEN_AI_OPERATION_NAME, "value": {"stringValue": "chat"}},
                {"key": semconv::GEN_AI_AGENT_NAME, "value": {"stringValue": agent}},
            ],
        });
        format!(
            "{}\n",
            serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
        )
    }

    fn ids(spans: &[SpanRecord]) -> Vec<u64> {
        spans
            .iter()
            .map(|s| u64::from_str_radix(&s.span_id, 16).unwrap_or(u64::MAX))
            .collect()
    }

    #[test]
    fn last_calls_reads_backwards_across_windows() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.jsonl");
        // ~3 MiB of padding lines, so the answer needs more than one window.
        let mut text = String::new();
        for i in 1..=5 {
            text.push_str(&line(i, "early"));
        }
        let pad = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1000));
        for _ in 0..3000 {
            text.push_str(&pad);
        }
        for i in 6..=8 {
            text.push_str(&line(i, "late"));
        }
        std::fs::write(&path, &text)?;
        let end = text.len() as u64;
        let all = FilterArgs::default();
        let (calls, _) = last_calls(&path, end, 2, &all).map_err(std::io::Error::other)?;
        assert_eq!(ids(&calls), [7, 8]);
        let (calls, _) = last_calls(&path, end, 4, &all).map_err(std::io::Error::other)?;
        assert_eq!(ids(&calls), [5, 6, 7, 8]);
        let early = FilterArgs {
            agent: Some("early".into()),
            ..FilterArgs::default()
        };
        let (calls, _) = last_calls(&path, end, 3, &early).map_err(std::io::Error::other)?;
        assert_eq!(ids(&calls), [3, 4, 5]);
        let (calls, _) = last_calls(&path, end, 100, &all).map_err(std::io::Error::other)?;
        assert_eq!(calls.len(), 8);
        Ok(())
    }

    #[test]
    fn follower_reads_whole_lines_across_rotation_and_truncation() -> std::io::Result<()> {
        use std::io::Write as _;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, line(1, "a"))?;
        let start = end_of_last_line(&path, std::fs::metadata(&path)?.len())?;
        let mut f = Follower::new(&path, start);
        let mut seen: Vec<String> = Vec::new();
        let mut collect = |l: &[u8]| seen.push(String::from_utf8_lossy(l).into_owned());
        f.poll(&mut collect)?;
        // A half-written line is held until its newline arrives.
        let two = line(2, "a");
        let (head, tail) = two.split_at(20);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path)?;
        file.write_all(head.as_bytes())?;
        f.poll(&mut collect)?;
        file.write_all(tail.as_bytes())?;
        f.poll(&mut collect)?;
        // Rotation: the old file gets one more line, then is renamed; a new file appears.
        file.write_all(line(3, "a").as_bytes())?;
        drop(file);
        std::fs::rename(&path, dir.path().join("t.jsonl.1"))?;
        std::fs::write(&path, line(4, "a"))?;
        f.poll(&mut collect)?;
        // Truncation in place (to something shorter than what was read).
        std::fs::write(&path, line(5, ""))?;
        f.poll(&mut collect)?;
        assert_eq!(f.reopened, 2);
        let got: Vec<String> = seen.iter().map(|l| l.trim_end().to_owned()).collect();
        let want: Vec<String> = [line(2, "a"), line(3, "a"), line(4, "a"), line(5, "")]
            .iter()
            .map(|l| l.trim_end().to_owned())
            .collect();
        assert_eq!(got, want);
        assert_eq!(f.invalid_lines, 0);
        Ok(())
    }
}
