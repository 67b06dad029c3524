//! Strict reader for OTLP/JSON Lines files (one `TracesData` per line), for tests.
//!
//! Strict on purpose: a torn or malformed line is an error here, because a test reading a file it
//! just had written wants to know. (The product reader in `llmtap-export` skips and counts them.)

use std::path::Path;

use anyhow::{Context as _, Result};
use opentelemetry_proto::tonic::trace::v1::TracesData;

use crate::spans::{RecordedSpan, SpanSource as _};

/// Every line of `path` as a `TracesData`; blank lines are ignored.
pub fn read_traces_data(path: impl AsRef<Path>) -> Result<Vec<TracesData>> {
    let path = path.as_ref();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_traces_data(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Parses OTLP/JSON Lines text. 64-bit ints may be strings or numbers, as the spec allows.
pub fn parse_traces_data(text: &str) -> Result<Vec<TracesData>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str::<TracesData>(line)
                .with_context(|| format!("line {} is not an OTLP/JSON TracesData", i + 1))
        })
        .collect()
}

/// Every span in the file, flattened with its resource and scope, in the order the spans
/// started. The file is in the order they ended, and each call's span ends in its own recorder
/// task (on any runtime worker), so two calls made one after the other may end in either order.
pub fn read_spans(path: impl AsRef<Path>) -> Result<Vec<RecordedSpan>> {
    let mut spans = read_traces_data(path)?.recorded_spans();
    crate::spans::sort_by_start(&mut spans);
    Ok(spans)
}
