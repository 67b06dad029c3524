//! Reading JSONL back: recovery after a SIGKILL mid-write, torn and garbage lines, and
//! oversized lines skipped in bounded memory.

mod common;

use std::fs;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use llmtap_export::proto::{ResourceSpans, ScopeSpans, Span, TracesData};
use llmtap_export::{BatchSettings, JsonlConfig, JsonlReader, Pipeline, ReadStats};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _};

/// Set (to a file path) only in the child process of [`sigkill_mid_write_loses_only_the_last_line`].
const WRITER_ENV: &str = "LLMTAP_WRITER_CHILD";
/// Set only in the child process of `reader_memory_stays_bounded_on_a_huge_line`.
#[cfg(target_os = "linux")]
const HUGE_LINE_ENV: &str = "LLMTAP_HUGE_LINE_CHILD";
/// Prefix of the line in which that child reports its peak RSS growth in bytes.
#[cfg(target_os = "linux")]
const HUGE_LINE_GROWTH: &str = "peak-rss-growth-bytes=";

/// One OTLP/JSON line holding `spans` spans, as our writer would produce it.
fn line_with_spans(spans: usize, tag: &str) -> Result<String> {
    let data = TracesData {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![i as u8 + 1; 8],
                        name: format!("{tag}-{i}"),
                        kind: 3,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_500_000_000,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Ok(serde_json::to_string(&data)?)
}

fn read_all(path: &Path, max_line_bytes: Option<usize>) -> Result<(Vec<TracesData>, ReadStats)> {
    let mut reader = JsonlReader::open(path)?;
    if let Some(max) = max_line_bytes {
        reader = reader.with_max_line_bytes(max);
    }
    let mut out = Vec::new();
    for item in reader.by_ref() {
        out.push(item?);
    }
    Ok((out, reader.stats()))
}

fn names(data: &[TracesData]) -> Vec<String> {
    data.iter()
        .flat_map(|d| d.resource_spans.iter())
        .flat_map(|rs| rs.scope_spans.iter())
        .flat_map(|ss| ss.spans.iter())
        .map(|s| s.name.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 10. SIGKILL mid-write

/// Not a test on its own: the writer half of `sigkill_mid_write_loses_only_the_last_line`.
/// Without `LLMTAP_WRITER_CHILD` it returns at once; with it, it writes spans with a large
/// attribute (so a kill often lands inside a write) until killed, for at most 60 s.
#[test]
fn writer_child() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let mut cfg = JsonlConfig::new(path);
    cfg.max_bytes = None;
    cfg.batch = BatchSettings {
        max_queue_size: 4_096,
        max_export_batch_size: 16,
        scheduled_delay: Duration::from_millis(2),
    };
    let pipeline = Pipeline::builder()
        .jsonl(Some(cfg))
        .build()
        .expect("child pipeline");
    let tracer = pipeline.tracer("writer-child");
    let payload = "p".repeat(16 * 1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        let mut span = tracer.start(format!("child-{i}"));
        span.set_attribute(KeyValue::new("payload", payload.clone()));
        span.end();
        i += 1;
        if i.is_multiple_of(16) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    pipeline.shutdown(Duration::from_secs(5));
}

#[cfg(unix)]
#[test]
fn sigkill_mid_write_loses_only_the_last_line() -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("killed.jsonl");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;

    // Wait until the child has written a good number of lines, then kill it mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_lines = 0;
    while Instant::now() < deadline {
        seen_lines = fs::read(&path)
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0);
        if seen_lines >= 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?; // SIGKILL on Unix
    let status = child.wait()?;
    ensure!(
        seen_lines >= 40,
        "the writer child produced only {seen_lines} lines in 30 s ({status:?})"
    );
    assert_eq!(
        status.signal(),
        Some(9),
        "child was killed by SIGKILL: {status:?}"
    );

    let bytes = fs::read(&path)?;
    let complete = bytes.iter().filter(|&&c| c == b'\n').count() as u64;
    let tail_start = bytes.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    let tail = bytes.get(tail_start..).unwrap_or_default();
    // A tail is torn unless the kill landed exactly between the JSON and its '\n'.
    let tail_is_whole = !tail.is_empty() && serde_json::from_slice::<TracesData>(tail).is_ok();

    let (data, stats) = read_all(&path, None)?;
    assert_eq!(stats.invalid_lines, 0, "{stats:?}");
    assert_eq!(
        stats.traces,
        complete + u64::from(tail_is_whole),
        "every complete line is recovered: {stats:?}"
    );
    assert_eq!(stats.torn_last_line, !tail.is_empty() && !tail_is_whole);
    assert_eq!(
        stats.lines,
        complete + u64::from(!tail.is_empty()),
        "{stats:?}"
    );
    // Span count matches an independent count over the complete lines.
    let mut spans = 0u64;
    for line in bytes
        .get(..tail_start)
        .unwrap_or_default()
        .split(|&c| c == b'\n')
    {
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(line)?;
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                spans += ss["spans"].as_array().map_or(0, |s| s.len() as u64);
            }
        }
    }
    if tail_is_whole {
        spans += data
            .last()
            .map_or(0, |d| names(std::slice::from_ref(d)).len() as u64);
    }
    assert_eq!(stats.spans, spans);
    assert_eq!(names(&data).len() as u64, spans);
    Ok(())
}

#[test]
fn torn_last_line_and_garbage_middle_line_are_counted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("damaged.jsonl");
    let first = line_with_spans(2, "first")?;
    let second = line_with_spans(3, "second")?;
    let torn = &line_with_spans(4, "torn")?[..60];
    let content = format!("{first}\n{{\"resourceSpans\": [garbage\n\n   \n{second}\n{{}}\n{torn}");
    fs::write(&path, content)?;

    let (data, stats) = read_all(&path, None)?;
    assert_eq!(
        names(&data),
        ["first-0", "first-1", "second-0", "second-1", "second-2"]
    );
    assert_eq!(
        stats,
        ReadStats {
            // first, garbage, second, `{}`, torn (blank lines are not counted)
            lines: 5,
            // `{}` is an empty batch, not an error
            traces: 3,
            spans: 5,
            torn_last_line: true,
            invalid_lines: 1,
        }
    );

    // The same garbage as the last line but newline-terminated is invalid, not torn.
    fs::write(&path, format!("{first}\n{torn}\n"))?;
    let (data, stats) = read_all(&path, None)?;
    assert_eq!(names(&data), ["first-0", "first-1"]);
    assert!(!stats.torn_last_line);
    assert_eq!((stats.invalid_lines, stats.traces, stats.lines), (1, 1, 2));

    // A last line without '\n' that is complete JSON is a good line.
    fs::write(&path, format!("{first}\n{second}"))?;
    let (data, stats) = read_all(&path, None)?;
    assert_eq!(names(&data).len(), 5);
    assert!(!stats.torn_last_line);
    assert_eq!(stats.invalid_lines, 0);

    // A missing file is an open error naming it.
    let missing = dir.path().join("missing.jsonl");
    let err = JsonlReader::open(&missing).expect_err("missing file");
    assert_eq!(err.kind(), "read_open");
    assert!(err.to_string().contains(&missing.display().to_string()));
    Ok(())
}

/// Reads `bytes` from memory: (span names, stats). I/O cannot fail on a slice.
fn read_bytes(bytes: &[u8], max_line_bytes: usize) -> (Vec<String>, ReadStats) {
    let mut reader =
        JsonlReader::new(std::io::Cursor::new(bytes), "memory").with_max_line_bytes(max_line_bytes);
    let data: Vec<TracesData> = reader.by_ref().filter_map(Result::ok).collect();
    (names(&data), reader.stats())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Arbitrary bytes never panic and every counted line is accounted for.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        max in 1usize..4096,
    ) {
        let (_, stats) = read_bytes(&bytes, max);
        proptest::prop_assert!(stats.traces + stats.invalid_lines + u64::from(stats.torn_last_line) <= stats.lines);
    }

    /// Every complete valid line is recovered, in order, whatever garbage lines sit between
    /// them and whatever torn tail follows; each garbage line is counted invalid.
    #[test]
    fn every_complete_valid_line_is_recovered(
        layout in proptest::collection::vec((proptest::prelude::any::<bool>(), "[ -~]{1,40}"), 0..12),
        torn_at in proptest::option::of(0usize..200),
    ) {
        let mut text = String::new();
        let mut want = Vec::new();
        let mut garbage = 0u64;
        for (i, (valid, noise)) in layout.iter().enumerate() {
            if *valid {
                let tag = format!("line{i}");
                let line = line_with_spans(1 + i % 3, &tag).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                want.extend((0..1 + i % 3).map(|n| format!("{tag}-{n}")));
                text.push_str(&line);
            } else {
                // Never valid JSON: starts with a bare word.
                text.push_str("garbage ");
                text.push_str(noise);
                garbage += 1;
            }
            text.push('\n');
        }
        let mut torn = false;
        if let Some(at) = torn_at {
            let line = line_with_spans(2, "torn").map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let cut = at.min(line.len() - 1).max(1);
            text.push_str(&line[..cut]);
            torn = true;
        }
        let (got, stats) = read_bytes(text.as_bytes(), 1 << 20);
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert_eq!(stats.invalid_lines, garbage);
        proptest::prop_assert_eq!(stats.torn_last_line, torn);
    }
}

// ---------------------------------------------------------------------------------------------
// 11. Oversized lines, bounded memory

#[test]
fn oversized_line_is_skipped_and_counted_invalid() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.jsonl");
    let small = line_with_spans(1, "small")?;
    // A perfectly valid line, just too long for the configured bound.
    let mut huge_data: TracesData = serde_json::from_str(&line_with_spans(1, "huge")?)?;
    if let Some(span) = huge_data
        .resource_spans
        .first_mut()
        .and_then(|rs| rs.scope_spans.first_mut())
        .and_then(|ss| ss.spans.first_mut())
    {
        span.name = "h".repeat(2 * 1024 * 1024);
    }
    let huge = serde_json::to_string(&huge_data)?;
    let after = line_with_spans(2, "after")?;
    fs::write(&path, format!("{small}\n{huge}\n{after}\n"))?;

    let (data, stats) = read_all(&path, Some(64 * 1024))?;
    assert_eq!(names(&data), ["small-0", "after-0", "after-1"]);
    assert_eq!(
        stats,
        ReadStats {
            lines: 3,
            traces: 2,
            spans: 3,
            torn_last_line: false,
            invalid_lines: 1,
        }
    );
    // With the default bound the same line is read.
    let (data, stats) = read_all(&path, None)?;
    assert_eq!(names(&data).len(), 4);
    assert_eq!(stats.invalid_lines, 0);
    Ok(())
}

/// A source producing `line_bytes` of one JSON string, then a newline and a good line,
/// without ever holding more than the caller's buffer.
struct Synthetic {
    prefix: Vec<u8>,
    body_left: usize,
    suffix: Vec<u8>,
    pos: usize,
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        if self.body_left > 0 {
            let n = self.body_left.min(buf.len());
            buf[..n].fill(b'a');
            self.body_left -= n;
            return Ok(n);
        }
        let done = self.pos - self.prefix.len();
        let n = (self.suffix.len() - done).min(buf.len());
        buf[..n].copy_from_slice(&self.suffix[done..done + n]);
        self.pos += n;
        Ok(n)
    }
}

/// (VmRSS, VmHWM) of this process in bytes.
#[cfg(target_os = "linux")]
fn rss_and_peak() -> Result<(u64, u64)> {
    let status = fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} in /proc/self/status"))?;
        let kb: u64 = line.split_whitespace().nth(1).context("value")?.parse()?;
        Ok(kb * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Not a test on its own: the measuring half of `reader_memory_stays_bounded_on_a_huge_line`.
/// Without `LLMTAP_HUGE_LINE_CHILD` it returns at once; with it, it reads a 384 MiB line and
/// prints how far the peak RSS rose. It runs alone in its own process because the other tests
/// of this binary (the SIGKILL one reads a file of many 16 KiB spans) raise the same peak.
#[cfg(target_os = "linux")]
#[test]
fn huge_line_child() -> Result<()> {
    if std::env::var_os(HUGE_LINE_ENV).is_none() {
        return Ok(());
    }
    const LINE: usize = 384 * 1024 * 1024;
    const MAX_LINE: usize = 1024 * 1024;
    let good = line_with_spans(2, "tail")?;
    let source = Synthetic {
        prefix: br#"{"resourceSpans":[],"pad":""#.to_vec(),
        body_left: LINE,
        suffix: format!("\"}}\n{good}\n").into_bytes(),
        pos: 0,
    };
    let (rss_before, _) = rss_and_peak()?;
    let mut reader = JsonlReader::new(BufReader::with_capacity(64 * 1024, source), "synthetic")
        .with_max_line_bytes(MAX_LINE);
    let mut data = Vec::new();
    for item in reader.by_ref() {
        data.push(item?);
    }
    let (_, peak_after) = rss_and_peak()?;
    let stats = reader.stats();
    assert_eq!(names(&data), ["tail-0", "tail-1"]);
    assert_eq!((stats.lines, stats.invalid_lines, stats.traces), (2, 1, 1));
    println!(
        "{HUGE_LINE_GROWTH}{}",
        peak_after.saturating_sub(rss_before)
    );
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn reader_memory_stays_bounded_on_a_huge_line() -> Result<()> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "huge_line_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HUGE_LINE_ENV, "1")
        .stdin(std::process::Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "huge-line child failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let growth: u64 = stdout
        .lines()
        .find_map(|l| l.split_once(HUGE_LINE_GROWTH))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .with_context(|| format!("no growth line in the child's output:\n{stdout}"))?
        .parse()?;
    // Buffering the line would raise the peak by ~384 MiB; the reader needs its 64 KiB
    // buffer and at most one 1 MiB line (about 2 MiB were seen here).
    assert!(
        growth < 32 * 1024 * 1024,
        "peak RSS grew by {} MiB while reading",
        growth / (1024 * 1024)
    );
    Ok(())
}
