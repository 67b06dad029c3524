//! `llmtap tree`: each trace of a JSONL file as an indented agent tree — agents, tools and model
//! calls with model, tokens, latency, time to first chunk and status per node, and subtree token
//! totals on every node that has children. Spans whose parent is not in the file (orphans) are
//! shown under their trace, marked, never dropped.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use llmtap_core::semconv;

use crate::EXIT_USAGE;
use crate::cost::{CostSum, PriceArgs, PriceTable, format_usd};
use crate::input::{resolve_files, scan};
use crate::spans::{Content, SpanRecord, SpanStatus, Tokens, for_each_span};

/// Flags of `llmtap tree`.
#[derive(Debug, clap::Args)]
pub struct TreeArgs {
    /// JSONL trace files (OTLP/JSON lines) [default: .llmtap/traces.jsonl and its rotations]
    pub files: Vec<PathBuf>,
    /// Only the trace whose id starts with this hex prefix.
    #[arg(long, value_name = "ID")]
    pub trace: Option<String>,
    /// Only traces with a span of this `gen_ai.conversation.id`.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Only the N most recent traces.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Print the trees as JSON.
    #[arg(long)]
    pub json: bool,
    /// Never colour the output (also when `NO_COLOR` is set or stdout is not a terminal).
    #[arg(long)]
    pub no_color: bool,
    #[command(flatten)]
    pub prices: PriceArgs,
}

/// Which traces to show.
#[derive(Debug, Clone, Default)]
pub struct TreeFilter {
    pub trace_prefix: Option<String>,
    pub session: Option<String>,
    pub last: Option<usize>,
}

/// One node of a rendered tree.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeNode {
    pub span_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The span's own tokens (model calls).
    pub tokens: Tokens,
    /// Tokens of this node and everything under it.
    pub subtree_tokens: Tokens,
    /// Whether the span reported input / output counts (an embedding has no output count).
    #[serde(skip)]
    pub reported: (bool, bool),
    /// USD of this call by the price table; `null` when unpriced or not a call.
    pub cost_usd: Option<f64>,
    /// USD of the priced calls in this subtree; `null` when none is priced.
    pub subtree_cost_usd: Option<f64>,
    #[serde(skip)]
    subtree_cost: CostSum,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_first_chunk_ms: Option<f64>,
    pub streamed: bool,
    pub error: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The parent named by the span is not in the file.
    pub orphan: bool,
    pub children: Vec<TreeNode>,
}

/// One trace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TraceTree {
    pub trace_id: String,
    pub start_unix_nanos: u64,
    pub span_count: usize,
    pub duration_ms: f64,
    pub tokens: Tokens,
    /// USD of the priced calls of the trace; `null` when none is priced.
    pub cost_usd: Option<f64>,
    pub errors: usize,
    pub roots: Vec<TreeNode>,
}

/// Builds the trees of `spans`, oldest trace first, after `filter`, without cost.
pub fn build_trees(spans: Vec<SpanRecord>, filter: &TreeFilter) -> Vec<TraceTree> {
    build_priced_trees(spans, filter, &PriceTable::empty())
}

/// Builds the trees of `spans`, oldest trace first, after `filter`, with each call's cost.
pub fn build_priced_trees(
    spans: Vec<SpanRecord>,
    filter: &TreeFilter,
    prices: &PriceTable,
) -> Vec<TraceTree> {
    let mut by_trace: HashMap<String, Vec<SpanRecord>> = HashMap::new();
    for span in spans {
        by_trace
            .entry(span.trace_id.clone())
            .or_default()
            .push(span);
    }
    let mut traces: Vec<TraceTree> = by_trace
        .into_iter()
        .filter(|(id, spans)| {
            filter
                .trace_prefix
                .as_ref()
                .is_none_or(|p| id.starts_with(&p.to_ascii_lowercase()))
                && filter.session.as_ref().is_none_or(|session| {
                    spans.iter().any(|s| {
                        s.str_attr(semconv::GEN_AI_CONVERSATION_ID) == Some(session.as_str())
                    })
                })
        })
        .map(|(id, spans)| build_trace(id, spans, prices))
        .collect();
    traces
        .sort_by(|a, b| (a.start_unix_nanos, &a.trace_id).cmp(&(b.start_unix_nanos, &b.trace_id)));
    if let Some(n) = filter.last {
        let skip = traces.len().saturating_sub(n);
        traces.drain(..skip);
    }
    traces
}

fn build_trace(trace_id: String, mut spans: Vec<SpanRecord>, prices: &PriceTable) -> TraceTree {
    spans.sort_by(|a, b| (a.start_unix_nanos, &a.span_id).cmp(&(b.start_unix_nanos, &b.span_id)));
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let parent = span.parent_span_id.as_str();
        // A span naming itself as parent would loop; treat it as a root.
        if !parent.is_empty() && parent != span.span_id && ids.contains(parent) {
            children.entry(parent).or_default().push(i);
        } else {
            roots.push(i);
        }
    }
    let start = spans.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_unix_nanos).max().unwrap_or(0);
    let mut visited = vec![false; spans.len()];
    let mut root_nodes: Vec<TreeNode> = roots
        .iter()
        .map(|&i| build_node(&spans, i, &children, &mut visited, prices))
        .collect();
    // Spans whose parent chain loops never hang under a root: draw them anyway, never lose one.
    for i in 0..spans.len() {
        if !visited.get(i).copied().unwrap_or(true) {
            root_nodes.push(build_node(&spans, i, &children, &mut visited, prices));
        }
    }
    let mut tokens = Tokens::default();
    let mut cost = CostSum::default();
    for node in &root_nodes {
        tokens += node.subtree_tokens;
        cost.merge(node.subtree_cost);
    }
    TraceTree {
        trace_id,
        start_unix_nanos: start,
        span_count: spans.len(),
        duration_ms: nanos_to_ms(end.saturating_sub(start)),
        tokens,
        cost_usd: cost.usd(),
        errors: spans
            .iter()
            .filter(|s| s.status == SpanStatus::Error)
            .count(),
        roots: root_nodes,
    }
}

fn build_node(
    spans: &[SpanRecord],
    index: usize,
    children: &HashMap<&str, Vec<usize>>,
    visited: &mut [bool],
    prices: &PriceTable,
) -> TreeNode {
    if let Some(seen) = visited.get_mut(index) {
        *seen = true;
    }
    let Some(span) = spans.get(index) else {
        return empty_node();
    };
    let kids: Vec<TreeNode> = children
        .get(span.span_id.as_str())
        .into_iter()
        .flatten()
        .filter(|&&c| !visited.get(c).copied().unwrap_or(true))
        .copied()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| build_node(spans, c, children, visited, prices))
        .collect();
    let tokens = if span.is_model_call() {
        span.tokens()
    } else {
        Tokens::default()
    };
    let mut subtree_tokens = tokens;
    let cost = span.is_model_call().then(|| prices.cost_of(span)).flatten();
    let mut subtree_cost = CostSum::default();
    if span.is_model_call() {
        subtree_cost.add(cost);
    }
    for kid in &kids {
        subtree_tokens += kid.subtree_tokens;
        subtree_cost.merge(kid.subtree_cost);
    }
    TreeNode {
        span_id: span.span_id.clone(),
        name: span.name.clone(),
        operation: span.operation().map(str::to_owned),
        agent: span.str_attr(semconv::GEN_AI_AGENT_NAME).map(str::to_owned),
        model: span
            .is_model_call()
            .then(|| span.model().map(str::to_owned))
            .flatten(),
        tokens,
        subtree_tokens,
        reported: (
            span.u64_attr(semconv::GEN_AI_USAGE_INPUT_TOKENS).is_some(),
            span.u64_attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS).is_some(),
        ),
        cost_usd: cost.map(crate::cost::usd),
        subtree_cost_usd: subtree_cost.usd(),
        subtree_cost,
        duration_ms: nanos_to_ms(span.duration_nanos()),
        time_to_first_chunk_ms: span
            .f64_attr(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
            .map(|s| s * 1000.0),
        streamed: span.streamed(),
        error: span.status == SpanStatus::Error,
        error_type: span.str_attr(semconv::ERROR_TYPE).map(str::to_owned),
        orphan: !span.parent_span_id.is_empty()
            && !spans.iter().any(|s| s.span_id == span.parent_span_id),
        children: kids,
    }
}

fn empty_node() -> TreeNode {
    TreeNode {
        span_id: String::new(),
        name: String::new(),
        operation: None,
        agent: None,
        model: None,
        tokens: Tokens::default(),
        subtree_tokens: Tokens::default(),
        reported: (false, false),
        cost_usd: None,
        subtree_cost_usd: None,
        subtree_cost: CostSum::default(),
        duration_ms: 0.0,
        time_to_first_chunk_ms: None,
        streamed: false,
        error: false,
        error_type: None,
        orphan: false,
        children: Vec::new(),
    }
}

fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1_000_000.0
}

/// ANSI styling, on only for terminals.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub(crate) fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub(crate) fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    pub(crate) fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    pub(crate) fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// Renders trees as text.
pub fn render(traces: &[TraceTree], style: Style) -> String {
    let mut out = String::new();
    for trace in traces {
        out.push_str(&format!(
            "{} {}  {} spans, {}, {}{}{}\n",
            style.bold("trace"),
            style.dim(&trace.trace_id),
            trace.span_count,
            format_ms(trace.duration_ms),
            format_tokens(trace.tokens),
            trace
                .cost_usd
                .map(|c| format!(", {}", format_usd(c)))
                .unwrap_or_default(),
            if trace.errors > 0 {
                style.red(&format!(", {} error(s)", trace.errors))
            } else {
                String::new()
            },
        ));
        let count = trace.roots.len();
        for (i, root) in trace.roots.iter().enumerate() {
            render_node(root, "", i + 1 == count, style, &mut out);
        }
        out.push('\n');
    }
    out
}

fn render_node(node: &TreeNode, prefix: &str, last: bool, style: Style, out: &mut String) {
    let branch = if last { "└─ " } else { "├─ " };
    let mut line = format!("{prefix}{branch}{}", style.bold(&node.name));
    if let Some(agent) = &node.agent {
        line.push_str(&format!(" {}", style.cyan(&format!("[{agent}]"))));
    }
    // The answering model, unless it is just the dated snapshot of the one in the span name.
    let asked = node.name.rsplit(' ').next().unwrap_or_default();
    if let Some(model) = &node.model
        && !model.starts_with(asked)
    {
        line.push_str(&format!(" → {model}"));
    }
    let status = match (&node.error, &node.error_type) {
        (true, Some(kind)) => style.red(&format!("✗ {kind}")),
        (true, None) => style.red("✗ error"),
        (false, _) => style.green("✓"),
    };
    line.push_str(&format!(
        "  {status}  {}",
        format_timing(node.duration_ms, node.time_to_first_chunk_ms, node.streamed)
    ));
    if node.reported.0 || node.reported.1 {
        line.push_str(&format!(
            "  {}",
            format_call_tokens(node.tokens, node.reported)
        ));
    }
    if let Some(cost) = node.cost_usd {
        line.push_str(&format!("  {}", format_usd(cost)));
    }
    if !node.children.is_empty() && node.subtree_tokens != Tokens::default() {
        let mut sum = format!("  Σ {}", format_tokens(node.subtree_tokens));
        if let Some(cost) = node.subtree_cost_usd {
            sum.push_str(&format!(" {}", format_usd(cost)));
        }
        line.push_str(&style.dim(&sum));
    }
    if node.orphan {
        line.push_str(&style.dim("  (parent not in file)"));
    }
    out.push_str(&line);
    out.push('\n');
    let child_prefix = format!("{prefix}{}", if last { "   " } else { "│  " });
    let count = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        render_node(child, &child_prefix, i + 1 == count, style, out);
    }
}

/// `173 ms (ttft 39 ms) stream`: a call's duration, its time to first chunk when known, and
/// whether it streamed — the same words in `tree`, `tail` and `show`.
pub(crate) fn format_timing(duration_ms: f64, ttft_ms: Option<f64>, streamed: bool) -> String {
    let mut text = format_ms(duration_ms);
    if let Some(ttft) = ttft_ms {
        text.push_str(&format!(" (ttft {})", format_ms(ttft)));
    }
    if streamed {
        text.push_str(" stream");
    }
    text
}

pub(crate) fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// One call's tokens; a count the span does not report is `—`, not 0 (an embedding has no
/// output count).
pub(crate) fn format_call_tokens(t: Tokens, (input, output): (bool, bool)) -> String {
    let count = |reported: bool, n: u64| {
        if reported {
            n.to_string()
        } else {
            "—".to_owned()
        }
    };
    let mut text = format!(
        "in {} / out {}",
        count(input, t.input),
        count(output, t.output)
    );
    if t.cache_read > 0 {
        text.push_str(&format!(" (cached {})", t.cache_read));
    }
    if t.reasoning > 0 {
        text.push_str(&format!(" (reasoning {})", t.reasoning));
    }
    text.push_str(" tok");
    text
}

pub(crate) fn format_tokens(t: Tokens) -> String {
    let mut text = format!("in {} / out {}", t.input, t.output);
    if t.cache_read > 0 {
        text.push_str(&format!(" (cached {})", t.cache_read));
    }
    if t.reasoning > 0 {
        text.push_str(&format!(" (reasoning {})", t.reasoning));
    }
    text.push_str(" tok");
    text
}

/// Whether stdout should get colour.
pub fn stdout_style(no_color: bool) -> Style {
    Style {
        color: !no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal(),
    }
}

/// Calls `f` with every span of `files`, one line in memory at a time, through the shared
/// reader: 66 for a file that cannot be read, 65 for one with no OTLP/JSON line.
fn for_each_file_span(
    files: &[PathBuf],
    mut f: impl FnMut(SpanRecord),
) -> Result<Vec<crate::input::FileReport>, crate::input::InputError> {
    scan(files, "tree", |data| {
        for_each_span(&data, Content::Skip, &mut f);
        std::ops::ControlFlow::Continue(())
    })
}

/// The trace ids `filter` selects, from each trace's earliest start and whether any of its
/// spans is in the wanted session: the same choice [`build_trees`] makes.
pub fn select_traces(index: HashMap<String, (u64, bool)>, filter: &TreeFilter) -> HashSet<String> {
    let prefix = filter.trace_prefix.as_ref().map(|p| p.to_ascii_lowercase());
    let mut traces: Vec<(u64, String)> = index
        .into_iter()
        .filter(|(id, (_, in_session))| {
            prefix.as_ref().is_none_or(|p| id.starts_with(p.as_str()))
                && (filter.session.is_none() || *in_session)
        })
        .map(|(id, (start, _))| (start, id))
        .collect();
    traces.sort();
    if let Some(n) = filter.last {
        let skip = traces.len().saturating_sub(n);
        traces.drain(..skip);
    }
    traces.into_iter().map(|(_, id)| id).collect()
}

/// Runs `llmtap tree`.
pub fn run(args: &TreeArgs) -> ExitCode {
    if args.last == Some(0) {
        eprintln!("llmtap tree: --last must be at least 1");
        return ExitCode::from(EXIT_USAGE);
    }
    let prices = match args.prices.load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("llmtap tree: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let files = resolve_files(&args.files);
    let filter = TreeFilter {
        trace_prefix: args.trace.clone(),
        session: args.session.clone(),
        last: args.last,
    };
    // With a filter, a first pass keeps one small entry per trace to pick the traces, and the
    // second loads only their spans: memory follows what is shown, not the file size.
    let selected =
        if filter.trace_prefix.is_some() || filter.session.is_some() || filter.last.is_some() {
            let mut index: HashMap<String, (u64, bool)> = HashMap::new();
            let pass = for_each_file_span(&files, |span| {
                let in_session = filter.session.as_deref().is_some_and(|session| {
                    span.str_attr(semconv::GEN_AI_CONVERSATION_ID) == Some(session)
                });
                let entry = index
                    .entry(span.trace_id.clone())
                    .or_insert((span.start_unix_nanos, false));
                entry.0 = entry.0.min(span.start_unix_nanos);
                entry.1 |= in_session;
            });
            if let Err(err) = pass {
                eprintln!("llmtap tree: {err}");
                return err.exit_code();
            }
            Some(select_traces(index, &filter))
        } else {
            None
        };
    let mut spans = Vec::new();
    let read = for_each_file_span(&files, |span| {
        if selected
            .as_ref()
            .is_none_or(|ids| ids.contains(&span.trace_id))
        {
            spans.push(span);
        }
    });
    match read {
        Ok(reports) => crate::input::report_skipped("tree", &reports),
        Err(err) => {
            eprintln!("llmtap tree: {err}");
            return err.exit_code();
        }
    }
    let trees = build_priced_trees(spans, &filter, &prices);
    let text = if args.json {
        crate::input::pretty_json(&trees)
    } else if trees.is_empty() {
        b"no traces found\n".to_vec()
    } else {
        render(&trees, stdout_style(args.no_color)).into_bytes()
    };
    crate::input::write_stdout("tree", &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::AttrValue;

    fn span(
        trace: &str,
        id: &str,
        parent: &str,
        start: u64,
        attrs: &[(&str, AttrValue)],
    ) -> SpanRecord {
        SpanRecord {
            trace_id: trace.to_owned(),
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            name: format!("span {id}"),
            start_unix_nanos: start,
            end_unix_nanos: start + 2_000_000,
            status: SpanStatus::Unset,
            service: None,
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            content: None,
        }
    }

    fn call(input: i64, output: i64) -> Vec<(&'static str, AttrValue)> {
        vec![
            (
                semconv::GEN_AI_OPERATION_NAME,
                AttrValue::Str("chat".into()),
            ),
            (semconv::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(input)),
            (semconv::GEN_AI_USAGE_OUTPUT_TOKENS, AttrValue::Int(output)),
        ]
    }

    #[test]
    fn subtree_totals_count_model_calls_only_once() {
        let agent = vec![
            (
                semconv::GEN_AI_OPERATION_NAME,
                AttrValue::Str("invoke_agent".into()),
            ),
            // An agent span's own usage attributes must not be added again.
            (semconv::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(1000)),
        ];
        let spans = vec![
            span("t1", "a", "", 1, &agent),
            span("t1", "b", "a", 2, &call(10, 5)),
            span("t1", "c", "b", 3, &call(7, 3)),
            span("t1", "d", "a", 4, &call(1, 1)),
        ];
        let trees = build_trees(spans, &TreeFilter::default());
        assert_eq!(trees.len(), 1);
        let root = &trees[0].roots[0];
        assert_eq!(root.tokens, Tokens::default());
        assert_eq!(root.subtree_tokens.input, 18);
        assert_eq!(root.subtree_tokens.output, 9);
        assert_eq!(root.children[0].subtree_tokens.input, 17);
        assert_eq!(trees[0].tokens.input, 18);
    }

    #[test]
    fn orphans_are_kept_and_marked() {
        let spans = vec![
            span("t1", "a", "", 1, &call(1, 1)),
            span("t1", "x", "missing", 2, &call(2, 2)),
        ];
        let trees = build_trees(spans, &TreeFilter::default());
        let roots = &trees[0].roots;
        assert_eq!(roots.len(), 2);
        assert!(!roots[0].orphan);
        assert!(roots[1].orphan);
        let text = render(&trees, Style { color: false });
        assert!(text.contains("(parent not in file)"), "{text}");
    }

    #[test]
    fn self_parent_and_cycles_do_not_loop_or_vanish() {
        let spans = vec![
            span("t1", "a", "a", 1, &call(1, 1)),
            span("t1", "b", "c", 2, &call(1, 1)),
            span("t1", "c", "b", 3, &call(1, 1)),
        ];
        let trees = build_trees(spans, &TreeFilter::default());
        // `a` is a root; b and c form a cycle reachable only from each other: each is drawn
        // exactly once all the same.
        fn count(nodes: &[TreeNode]) -> usize {
            nodes.iter().map(|n| 1 + count(&n.children)).sum()
        }
        assert_eq!(trees[0].span_count, 3);
        assert_eq!(count(&trees[0].roots), 3);
    }

    #[test]
    fn select_traces_agrees_with_build_trees() {
        let index: HashMap<String, (u64, bool)> = [
            ("aaaa".to_owned(), (10, true)),
            ("bbbb".to_owned(), (20, false)),
            ("cccc".to_owned(), (30, true)),
        ]
        .into_iter()
        .collect();
        let pick = |filter: TreeFilter| {
            let mut ids: Vec<String> = select_traces(index.clone(), &filter).into_iter().collect();
            ids.sort();
            ids
        };
        let session = TreeFilter {
            session: Some("s1".into()),
            last: Some(1),
            ..TreeFilter::default()
        };
        assert_eq!(pick(session), ["cccc"]);
        let last = TreeFilter {
            last: Some(2),
            ..TreeFilter::default()
        };
        assert_eq!(pick(last), ["bbbb", "cccc"]);
        let prefix = TreeFilter {
            trace_prefix: Some("AA".into()),
            ..TreeFilter::default()
        };
        assert_eq!(pick(prefix), ["aaaa"]);
    }

    #[test]
    fn filters_select_trace_session_and_last() {
        let session = |s: &str| {
            let mut attrs = call(1, 1);
            attrs.push((semconv::GEN_AI_CONVERSATION_ID, AttrValue::Str(s.into())));
            attrs
        };
        let spans = || {
            vec![
                span("aaaa", "1", "", 10, &session("s1")),
                span("bbbb", "2", "", 20, &session("s2")),
                span("cccc", "3", "", 30, &session("s1")),
            ]
        };
        let ids = |trees: Vec<TraceTree>| trees.into_iter().map(|t| t.trace_id).collect::<Vec<_>>();
        assert_eq!(
            ids(build_trees(spans(), &TreeFilter::default())),
            ["aaaa", "bbbb", "cccc"]
        );
        let by_session = TreeFilter {
            session: Some("s1".into()),
            ..TreeFilter::default()
        };
        assert_eq!(ids(build_trees(spans(), &by_session)), ["aaaa", "cccc"]);
        let by_trace = TreeFilter {
            trace_prefix: Some("BB".into()),
            ..TreeFilter::default()
        };
        assert_eq!(ids(build_trees(spans(), &by_trace)), ["bbbb"]);
        let last = TreeFilter {
            last: Some(2),
            ..TreeFilter::default()
        };
        assert_eq!(ids(build_trees(spans(), &last)), ["bbbb", "cccc"]);
    }
}
