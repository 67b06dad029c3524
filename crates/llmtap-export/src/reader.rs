//! Streaming reader for OTLP/JSON lines files: ours, or an OpenTelemetry Collector `file`
//! exporter's (`format: json`, no compression). Memory stays bounded whatever the file size:
//! one line at a time, and lines over `max_line_bytes` are skipped without being buffered.
//! Bad lines never stop reading; they are counted in [`ReadStats`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};

use crate::error::ReadError;

/// Default bound on one line: 64 MiB (the OTLP default max request size).
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// What a read saw so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadStats {
    /// Non-blank lines seen (good, invalid and torn).
    pub lines: u64,
    /// Lines decoded as `TracesData`.
    pub traces: u64,
    /// Spans in those lines.
    pub spans: u64,
    /// The file ended in a line with no `\n` that does not decode: a write cut short by a crash.
    pub torn_last_line: bool,
    /// Complete lines that do not decode, or exceed the line bound.
    pub invalid_lines: u64,
}

/// Lenient top level: a line with no `resourceSpans` is an empty batch, not an error
/// (the crate's `TracesData` requires the field). Unknown fields are ignored, 64-bit ints
/// are accepted as strings or numbers (proto `with-serde` readers do both).
#[derive(serde::Deserialize)]
struct Line {
    #[serde(default, rename = "resourceSpans")]
    resource_spans: Option<Vec<ResourceSpans>>,
}

/// Decodes one line (without its `\n`) as `TracesData`, with the reader's leniency. `None`
/// when it is not JSON or not OTLP/JSON; the flag says whether `resourceSpans` was present
/// (a JSON object without it decodes as an empty batch but is likely a foreign line).
pub fn parse_line(line: &[u8]) -> Option<(TracesData, bool)> {
    let line = serde_json::from_slice::<Line>(line).ok()?;
    let present = line.resource_spans.is_some();
    Some((
        TracesData {
            resource_spans: line.resource_spans.unwrap_or_default(),
        },
        present,
    ))
}

/// Iterator over the `TracesData` of a JSONL file; yields `Err` only for I/O failures.
#[derive(Debug)]
pub struct JsonlReader<R> {
    reader: R,
    path: PathBuf,
    max_line_bytes: usize,
    buf: Vec<u8>,
    stats: ReadStats,
    finished: bool,
    bytes_read: u64,
    foreign_lines: u64,
}

impl JsonlReader<BufReader<File>> {
    /// Opens `path` for streaming.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| ReadError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(ReadError::Open {
                path: path.to_path_buf(),
                source: std::io::Error::other("is a directory"),
            });
        }
        Ok(Self::new(BufReader::with_capacity(64 * 1024, file), path))
    }
}

impl<R: BufRead> JsonlReader<R> {
    /// Reads from any buffered source; `name` is used in error messages.
    pub fn new(reader: R, name: impl Into<PathBuf>) -> Self {
        Self {
            reader,
            path: name.into(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            buf: Vec::new(),
            stats: ReadStats::default(),
            finished: false,
            bytes_read: 0,
            foreign_lines: 0,
        }
    }

    /// Lines longer than this are skipped (counted invalid) without being held in memory.
    pub fn with_max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max.max(1);
        self
    }

    /// Counts so far (complete once the iterator returned `None`).
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Bytes consumed from the source so far, newlines included (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Lines that are JSON objects but carry no `resourceSpans` key: counted as (empty)
    /// batches in [`ReadStats::traces`], yet most likely not written by an OTLP exporter.
    pub fn foreign_lines(&self) -> u64 {
        self.foreign_lines
    }

    /// Reads one raw line into `self.buf`. Returns `(found_anything, had_newline, oversized)`.
    fn read_raw_line(&mut self) -> std::io::Result<(bool, bool, bool)> {
        self.buf.clear();
        let mut found = false;
        let mut oversized = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok((found, false, oversized));
            }
            found = true;
            let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (available.get(..i).unwrap_or_default(), true),
                None => (available, false),
            };
            if !oversized {
                if self.buf.len() + chunk.len() > self.max_line_bytes {
                    oversized = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(newline);
            self.reader.consume(used);
            self.bytes_read += used as u64;
            if newline {
                return Ok((found, true, oversized));
            }
        }
    }
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Result<TracesData, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let (found, had_newline, oversized) = match self.read_raw_line() {
                Ok(r) => r,
                Err(source) => {
                    self.finished = true;
                    return Some(Err(ReadError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            };
            if !found {
                self.finished = true;
                break;
            }
            if !had_newline {
                // End of file follows whatever this line is.
                self.finished = true;
            }
            if !oversized && self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.stats.lines += 1;
            let parsed = if oversized {
                None
            } else {
                parse_line(&self.buf)
            };
            match parsed {
                Some((data, has_resource_spans)) => {
                    let spans: usize = data
                        .resource_spans
                        .iter()
                        .flat_map(|rs| rs.scope_spans.iter())
                        .map(|ss| ss.spans.len())
                        .sum();
                    self.stats.traces += 1;
                    self.stats.spans += spans as u64;
                    if !has_resource_spans {
                        self.foreign_lines += 1;
                    }
                    return Some(Ok(data));
                }
                None if !had_newline => self.stats.torn_last_line = true,
                None => self.stats.invalid_lines += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_foreign_lines() {
        let text =
            "{\"resourceSpans\":[]}\n{\"level\":\"info\"}\n\nnot json\n{\"resourceSpans\":[]}";
        let mut reader = JsonlReader::new(text.as_bytes(), "mem");
        let batches = reader.by_ref().filter(Result::is_ok).count();
        assert_eq!(batches, 3);
        assert_eq!(reader.bytes_read(), text.len() as u64);
        assert_eq!(reader.foreign_lines(), 1);
        assert_eq!(reader.stats().invalid_lines, 1);
        assert_eq!(reader.stats().traces, 3);
    }

    #[test]
    fn parse_line_reports_whether_resource_spans_was_there() {
        assert!(matches!(
            parse_line(b"{\"resourceSpans\":[]}"),
            Some((_, true))
        ));
        assert!(matches!(parse_line(b"{}"), Some((_, false))));
        assert!(parse_line(b"{\"resourceSpans\":[garbage").is_none());
        assert!(parse_line(b"[1,2]").is_none());
    }
}
