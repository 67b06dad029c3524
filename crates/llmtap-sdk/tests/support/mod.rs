//! Shared helpers: telemetry into a temp JSONL file, the spans read back as a parent map.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llmtap_sdk::{Builder, Guard};
use llmtap_tests::spans::RecordedSpan;

/// Telemetry writing to `<dir>/spans.jsonl`, content on, nothing global.
pub fn telemetry(dir: &Path) -> anyhow::Result<(Guard, PathBuf)> {
    let path = dir.join("spans.jsonl");
    let guard = Builder::new()
        .jsonl(Some(&path))
        .service_name("llmtap-sdk-tests")
        .build()?;
    Ok((guard, path))
}

/// Shuts the guard down (off the runtime's workers) and reads every span back.
pub async fn finish(guard: Guard, path: &Path) -> anyhow::Result<Vec<RecordedSpan>> {
    let stats = guard.shutdown().await;
    let jsonl = stats
        .jsonl
        .ok_or_else(|| anyhow::anyhow!("no jsonl sink"))?;
    anyhow::ensure!(
        jsonl.dropped == 0 && jsonl.failed == 0,
        "spans lost: {jsonl:?}"
    );
    llmtap_tests::jsonl::read_spans(path)
}

/// Spans by id, and children by parent id.
pub struct Tree {
    pub spans: Vec<RecordedSpan>,
    pub by_id: HashMap<String, usize>,
    pub children: HashMap<String, Vec<usize>>,
}

impl Tree {
    pub fn new(spans: Vec<RecordedSpan>) -> Self {
        let by_id = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id(), i))
            .collect();
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            if let Some(p) = s.parent_span_id() {
                children.entry(p).or_default().push(i);
            }
        }
        Self {
            spans,
            by_id,
            children,
        }
    }

    pub fn named(&self, name: &str) -> Vec<&RecordedSpan> {
        self.spans.iter().filter(|s| s.name() == name).collect()
    }

    pub fn one(&self, name: &str) -> &RecordedSpan {
        let found = self.named(name);
        assert_eq!(found.len(), 1, "exactly one span named {name:?}");
        found[0]
    }

    pub fn parent(&self, span: &RecordedSpan) -> Option<&RecordedSpan> {
        let p = span.parent_span_id()?;
        self.by_id.get(&p).map(|&i| &self.spans[i])
    }

    pub fn children(&self, span: &RecordedSpan) -> Vec<&RecordedSpan> {
        self.children
            .get(&span.span_id())
            .map(|v| v.iter().map(|&i| &self.spans[i]).collect())
            .unwrap_or_default()
    }

    /// Sum of `key` over the model (CLIENT) spans in `span`'s subtree.
    pub fn subtree_sum(&self, span: &RecordedSpan, key: &str) -> i64 {
        let mut sum = 0;
        let mut stack = vec![span];
        while let Some(s) = stack.pop() {
            if s.attr_str("gen_ai.operation.name").as_deref() == Some("chat") {
                sum += s.attr_i64(key).unwrap_or(0);
            }
            stack.extend(self.children(s));
        }
        sum
    }
}
