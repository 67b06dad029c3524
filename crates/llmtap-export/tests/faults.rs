//! The JSONL sink when the file is damaged or taken away: a torn last line left by a crash, a
//! file deleted or moved by someone else, and a SIGKILL that may only lose the last second.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use llmtap_export::{BatchSettings, JsonlConfig, JsonlReader, Pipeline};
use opentelemetry::trace::{Span as _, Tracer as _};

const SHUTDOWN: Duration = Duration::from_secs(10);

/// Written every 10 ms, so a test waits little for its spans.
fn quick(path: &Path) -> JsonlConfig {
    let mut cfg = JsonlConfig::new(path);
    cfg.batch = BatchSettings {
        max_queue_size: 1_024,
        max_export_batch_size: 64,
        scheduled_delay: Duration::from_millis(10),
    };
    cfg
}

/// Waits until `path` holds `n` span names (or 10 s pass) and returns them.
fn wait_for_spans(path: &Path, n: usize) -> Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names = common::span_names(path).unwrap_or_default();
        if names.len() >= n || Instant::now() > deadline {
            return Ok(names);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_torn_last_line_is_repaired_on_open() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    // A previous run: one good line, then a crash in the middle of the second.
    let pipeline = Pipeline::builder().jsonl(Some(quick(&path))).build()?;
    pipeline.tracer("t").start("before-crash").end();
    pipeline.shutdown(SHUTDOWN);
    let mut bytes = fs::read(&path)?;
    let good = bytes.clone();
    bytes.extend_from_slice(&good[..good.len() / 2]);
    fs::write(&path, &bytes)?;

    // The restart appends; its line must not be glued to the torn one.
    let pipeline = Pipeline::builder().jsonl(Some(quick(&path))).build()?;
    pipeline.tracer("t").start("after-restart").end();
    pipeline.shutdown(SHUTDOWN);

    let mut reader = JsonlReader::open(&path)?;
    let mut names = Vec::new();
    for data in reader.by_ref() {
        for rs in data?.resource_spans {
            for ss in rs.scope_spans {
                names.extend(ss.spans.into_iter().map(|s| s.name));
            }
        }
    }
    let stats = reader.stats();
    assert_eq!(names, ["before-crash", "after-restart"], "{stats:?}");
    assert_eq!(
        stats.invalid_lines, 1,
        "the torn line is skipped and counted"
    );
    assert!(!stats.torn_last_line, "{stats:?}");
    let text = fs::read(&path)?;
    assert_eq!(text.last(), Some(&b'\n'));
    Ok(())
}

#[test]
fn a_clean_file_gets_no_extra_blank_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    for run in ["first", "second"] {
        let pipeline = Pipeline::builder().jsonl(Some(quick(&path))).build()?;
        pipeline.tracer("t").start(run).end();
        pipeline.shutdown(SHUTDOWN);
    }
    let text = fs::read_to_string(&path)?;
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains("\n\n"), "{text}");
    Ok(())
}

#[test]
fn a_deleted_file_is_noticed_and_created_again() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let pipeline = Pipeline::builder().jsonl(Some(quick(&path))).build()?;
    let tracer = pipeline.tracer("t");
    tracer.start("one").end();
    ensure!(wait_for_spans(&path, 1)? == ["one"]);

    fs::remove_file(&path)?;
    tracer.start("two").end();
    let names = wait_for_spans(&path, 1)?;
    assert_eq!(
        names,
        ["two"],
        "the span after the deletion is in a new file"
    );

    let stats = pipeline.shutdown(SHUTDOWN);
    let jsonl = stats.jsonl.context("jsonl")?;
    assert_eq!((jsonl.written, jsonl.failed), (2, 0));
    Ok(())
}

#[test]
fn a_moved_file_keeps_what_it_had_and_new_spans_go_to_the_path() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("traces.jsonl");
    let moved = dir.path().join("archived.jsonl");
    let pipeline = Pipeline::builder().jsonl(Some(quick(&path))).build()?;
    let tracer = pipeline.tracer("t");
    tracer.start("before-move").end();
    ensure!(wait_for_spans(&path, 1)? == ["before-move"]);

    // A log shipper's move, then something else creating a file at the path.
    fs::rename(&path, &moved)?;
    tracer.start("after-move").end();
    ensure!(wait_for_spans(&path, 1)? == ["after-move"]);
    fs::rename(&path, dir.path().join("again.jsonl"))?;
    fs::write(&path, b"")?;
    tracer.start("after-replace").end();
    ensure!(wait_for_spans(&path, 1)? == ["after-replace"]);
    pipeline.shutdown(SHUTDOWN);

    assert_eq!(common::span_names(&moved)?, ["before-move"]);
    Ok(())
}

/// Set (to a file path) only in the child process of
/// [`sigkill_loses_at_most_the_last_second`].
const CHILD_ENV: &str = "LLMTAP_FLUSH_CHILD";
/// Spans the child ends before it reports and waits to be killed.
const CHILD_SPANS: usize = 300;

/// Not a test on its own: the child half of `sigkill_loses_at_most_the_last_second`. With the
/// default JSONL settings, it ends spans, says so on stdout, then waits to be killed.
#[test]
fn flush_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let pipeline = Pipeline::builder()
        .jsonl(Some(JsonlConfig::new(path)))
        .build()
        .expect("child pipeline");
    let tracer = pipeline.tracer("flush-child");
    for i in 0..CHILD_SPANS {
        let mut span = tracer.start(format!("span-{i}"));
        span.set_attribute(opentelemetry::KeyValue::new("i", i as i64));
        span.end();
    }
    println!("ended {CHILD_SPANS}");
    std::thread::sleep(Duration::from_secs(60));
}

/// The JSONL batch is written at least every second (README "Crash safety"): spans that ended
/// a second before a SIGKILL are on disk, with no flush and no shutdown.
#[cfg(unix)]
#[test]
fn sigkill_loses_at_most_the_last_second() -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    assert!(
        JsonlConfig::new("x").batch.scheduled_delay <= Duration::from_secs(1),
        "the default JSONL batch delay must stay within a second"
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("killed.jsonl");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "flush_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // libtest prints `test flush_child ... ` before the child's own words on the same line.
    let marker = format!("ended {CHILD_SPANS}");
    let ended = lines.find(|l| l.as_ref().is_ok_and(|l| l.contains(&marker)));
    ensure!(ended.is_some(), "the child never ended its spans");
    std::thread::sleep(Duration::from_secs(1));
    child.kill()?; // SIGKILL
    child.wait()?;

    let (_, spans) = common::count_file(&path)?;
    assert_eq!(spans, CHILD_SPANS as u64, "spans ended 1 s before the kill");
    Ok(())
}
