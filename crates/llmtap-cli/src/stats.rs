//! `llmtap stats`: calls, errors, tokens, latency and time-to-first-chunk percentiles and output
//! throughput of the model calls in JSONL files, grouped by model, provider, agent, session or
//! operation, over a time window.
//!
//! One pass, one line in memory at a time: per group a few counters and two bounded
//! [`Quantiles`] (exact up to 1,024 values, then within 1 % relative error), so memory depends
//! on the number of groups, not on the file size.
//!
//! Definitions: a *call* is a span with a `gen_ai.operation.name` other than `invoke_agent` and
//! `execute_tool`; it *failed* when its status is Error or it has an `error.type`; latency is
//! the span's wall time; output tokens/s is the sum of output tokens over the sum of latencies
//! of the successful calls that reported output tokens.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;

use llmtap_core::semconv;

use crate::cost::{CostSum, PriceArgs, PriceSource, PriceTable, format_usd};
use crate::hist::Quantiles;
use crate::input::{
    FileReport, FilterArgs, pretty_json, report_skipped, resolve_files, scan, write_stdout,
};
use crate::spans::{Content, SpanRecord, Tokens, for_each_span};
use crate::timefmt::format_rfc3339_millis;

/// Distinct `error.type` values kept per group; more are counted under `_OTHER`.
const MAX_ERROR_TYPES: usize = 32;

/// What to group calls by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// The requested model (`gen_ai.request.model`).
    #[default]
    Model,
    /// `gen_ai.provider.name`.
    Provider,
    /// `gen_ai.agent.name`.
    Agent,
    /// `gen_ai.conversation.id`.
    Session,
    /// `gen_ai.operation.name`.
    Operation,
    /// `service.name` of the emitting resource.
    Service,
    /// `gen_ai.response.finish_reasons`, comma-joined when a call has several choices.
    FinishReason,
    /// A user metadata key (`llmtap.meta.<key>`).
    Meta(String),
    /// No grouping: only the total.
    None,
}

/// The `--by` values besides `meta.KEY`.
const GROUP_NAMES: &str =
    "model, provider, agent, session, operation, service, finish_reason, meta.KEY, none";

impl std::str::FromStr for GroupBy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "model" => GroupBy::Model,
            "provider" => GroupBy::Provider,
            "agent" => GroupBy::Agent,
            "session" => GroupBy::Session,
            "operation" => GroupBy::Operation,
            "service" => GroupBy::Service,
            "finish_reason" => GroupBy::FinishReason,
            "none" => GroupBy::None,
            _ => match text.strip_prefix("meta.") {
                Some(key) if !key.is_empty() => GroupBy::Meta(key.to_owned()),
                _ => return Err(format!("`{text}`: expected one of {GROUP_NAMES}")),
            },
        })
    }
}

impl GroupBy {
    fn name(&self) -> String {
        match self {
            GroupBy::Model => "model".to_owned(),
            GroupBy::Provider => "provider".to_owned(),
            GroupBy::Agent => "agent".to_owned(),
            GroupBy::Session => "session".to_owned(),
            GroupBy::Operation => "operation".to_owned(),
            GroupBy::Service => "service".to_owned(),
            GroupBy::FinishReason => "finish_reason".to_owned(),
            GroupBy::Meta(key) => format!("meta.{key}"),
            GroupBy::None => "none".to_owned(),
        }
    }

    fn key(&self, span: &SpanRecord) -> Option<String> {
        let attr = |k: &str| span.str_attr(k).map(str::to_owned);
        match self {
            GroupBy::Model => span.request_model().map(str::to_owned),
            GroupBy::Provider => attr(semconv::GEN_AI_PROVIDER_NAME),
            GroupBy::Agent => attr(semconv::GEN_AI_AGENT_NAME),
            GroupBy::Session => attr(semconv::GEN_AI_CONVERSATION_ID),
            GroupBy::Operation => attr(semconv::GEN_AI_OPERATION_NAME),
            GroupBy::Service => span.service.clone(),
            GroupBy::FinishReason => {
                let reasons = span.list_attr(semconv::GEN_AI_RESPONSE_FINISH_REASONS);
                (!reasons.is_empty()).then(|| reasons.join(","))
            }
            GroupBy::Meta(key) => span
                .attributes
                .get(&semconv::meta_key(key))
                .map(ToString::to_string),
            GroupBy::None => None,
        }
    }
}

/// Flags of `llmtap stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// JSONL trace files (OTLP/JSON lines) [default: .llmtap/traces.jsonl]
    pub files: Vec<PathBuf>,
    /// Group calls by this: model, provider, agent, session, operation, service,
    /// finish_reason, meta.KEY (user metadata) or none.
    #[arg(long, value_name = "WHAT", default_value = "model")]
    pub by: GroupBy,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub prices: PriceArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Running totals of one group.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    calls: u64,
    errors: u64,
    error_types: BTreeMap<String, u64>,
    tokens: Tokens,
    latency_ms: Quantiles,
    ttft_ms: Quantiles,
    throughput_tokens: u64,
    throughput_nanos: u64,
    first_start: Option<u64>,
    last_end: Option<u64>,
    cost: CostSum,
    /// Calls answered HTTP 429.
    rate_limited: u64,
    min_remaining_requests: Option<u64>,
    min_remaining_tokens: Option<u64>,
}

impl Accumulator {
    /// Adds one model call and its cost in picodollars (`None`: no price).
    pub fn add(&mut self, span: &SpanRecord, cost: Option<u128>) {
        self.calls += 1;
        self.cost.add(cost);
        if span.u64_attr(semconv::HTTP_RESPONSE_STATUS_CODE) == Some(429) {
            self.rate_limited += 1;
        }
        let lowest = |seen: Option<u64>, key: &str| match (seen, span.u64_attr(key)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.min_remaining_requests = lowest(
            self.min_remaining_requests,
            semconv::LLMTAP_RATELIMIT_REQUESTS_REMAINING,
        );
        self.min_remaining_tokens = lowest(
            self.min_remaining_tokens,
            semconv::LLMTAP_RATELIMIT_TOKENS_REMAINING,
        );
        let tokens = span.tokens();
        self.tokens += tokens;
        self.latency_ms.record(span.duration_nanos() as f64 / 1e6);
        if let Some(ttft) = span.f64_attr(semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) {
            self.ttft_ms.record(ttft * 1000.0);
        }
        if span.is_error() {
            self.errors += 1;
            let kind = span
                .str_attr(semconv::ERROR_TYPE)
                .unwrap_or(semconv::error_type::OTHER);
            let key = if self.error_types.contains_key(kind)
                || self.error_types.len() < MAX_ERROR_TYPES
            {
                kind
            } else {
                semconv::error_type::OTHER
            };
            *self.error_types.entry(key.to_owned()).or_insert(0) += 1;
        } else if tokens.output > 0 && span.duration_nanos() > 0 {
            self.throughput_tokens += tokens.output;
            self.throughput_nanos += span.duration_nanos();
        }
        self.first_start = Some(
            self.first_start
                .map_or(span.start_unix_nanos, |t| t.min(span.start_unix_nanos)),
        );
        self.last_end = Some(
            self.last_end
                .map_or(span.end_unix_nanos, |t| t.max(span.end_unix_nanos)),
        );
    }

    /// The summary of what was added, under `key`.
    pub fn summary(&self, key: Option<String>) -> GroupSummary {
        GroupSummary {
            key,
            calls: self.calls,
            errors: self.errors,
            error_types: self.error_types.clone(),
            tokens: self.tokens,
            latency_ms: Percentiles::of(&self.latency_ms),
            ttft_ms: Percentiles::of(&self.ttft_ms),
            output_tokens_per_second: (self.throughput_nanos > 0).then(|| {
                round2(self.throughput_tokens as f64 / (self.throughput_nanos as f64 / 1e9))
            }),
            first_call: self.first_start.map(format_rfc3339_millis),
            last_call_end: self.last_end.map(format_rfc3339_millis),
            cost_usd: self.cost.usd(),
            unpriced_calls: self.cost.unpriced_calls,
            rate_limited: self.rate_limited,
            rate_limited_share: (self.calls > 0)
                .then(|| round4(self.rate_limited as f64 / self.calls as f64)),
            min_remaining_requests: self.min_remaining_requests,
            min_remaining_tokens: self.min_remaining_tokens,
        }
    }
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Latency-style percentiles, milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Values behind the percentiles.
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub mean: Option<f64>,
    pub max: Option<f64>,
    /// False once past 1,024 values: then within 1 % of the exact value.
    pub exact: bool,
}

impl Percentiles {
    fn of(q: &Quantiles) -> Self {
        Self {
            count: q.count(),
            p50: q.quantile(0.50).map(round3),
            p95: q.quantile(0.95).map(round3),
            p99: q.quantile(0.99).map(round3),
            mean: q.mean().map(round3),
            max: q.max().map(round3),
            exact: q.is_exact(),
        }
    }
}

/// The figures of one group (or of all calls).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupSummary {
    /// The group's value; `null` for calls without it (and for the total).
    pub key: Option<String>,
    pub calls: u64,
    pub errors: u64,
    /// Failed calls by `error.type` (`_OTHER` when unset).
    pub error_types: BTreeMap<String, u64>,
    /// input includes cache_read, output includes reasoning (semconv).
    pub tokens: Tokens,
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    pub output_tokens_per_second: Option<f64>,
    pub first_call: Option<String>,
    pub last_call_end: Option<String>,
    /// USD of the calls whose model the price table has; `null` when it has none of them.
    pub cost_usd: Option<f64>,
    /// Calls left out of `cost_usd`: model not in the price table, or no usage reported.
    pub unpriced_calls: u64,
    /// Calls answered HTTP 429.
    pub rate_limited: u64,
    /// `rate_limited` / `calls`.
    pub rate_limited_share: Option<f64>,
    /// Lowest `llmtap.ratelimit.requests.remaining` seen.
    pub min_remaining_requests: Option<u64>,
    /// Lowest `llmtap.ratelimit.tokens.remaining` seen.
    pub min_remaining_tokens: Option<u64>,
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsReport {
    pub group_by: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub total: GroupSummary,
    /// Most calls first, ties by key, calls without the key last.
    pub groups: Vec<GroupSummary>,
    /// Spans in the window that are not model calls (agents, tools, non-GenAI spans).
    pub other_spans: u64,
    /// The price table behind `cost_usd`.
    pub prices: PriceSource,
    pub files: Vec<FileReport>,
}

/// Accumulates model calls into groups.
#[derive(Debug)]
pub struct StatsBuilder {
    by: GroupBy,
    filter: FilterArgs,
    prices: PriceTable,
    total: Accumulator,
    groups: HashMap<Option<String>, Accumulator>,
    other_spans: u64,
}

impl StatsBuilder {
    pub fn new(by: GroupBy, filter: FilterArgs, prices: PriceTable) -> Self {
        Self {
            by,
            filter,
            prices,
            total: Accumulator::default(),
            groups: HashMap::new(),
            other_spans: 0,
        }
    }

    /// Adds one span if it passes the filter.
    pub fn add(&mut self, span: &SpanRecord) {
        if !self.filter.matches(span) {
            return;
        }
        if !span.is_model_call() {
            self.other_spans += 1;
            return;
        }
        let cost = self.prices.cost_of(span);
        self.total.add(span, cost);
        if self.by != GroupBy::None {
            self.groups
                .entry(self.by.key(span))
                .or_default()
                .add(span, cost);
        }
    }

    /// The report.
    pub fn finish(self, files: Vec<FileReport>) -> StatsReport {
        let mut groups: Vec<GroupSummary> = self
            .groups
            .iter()
            .map(|(key, acc)| acc.summary(key.clone()))
            .collect();
        // Most calls first; the group without a key last among equals.
        groups.sort_by(|a, b| {
            b.calls
                .cmp(&a.calls)
                .then_with(|| a.key.is_none().cmp(&b.key.is_none()))
                .then_with(|| a.key.cmp(&b.key))
        });
        let (since, until) = self.filter.window();
        StatsReport {
            group_by: self.by.name(),
            since,
            until,
            total: self.total.summary(None),
            groups,
            other_spans: self.other_spans,
            prices: self.prices.source().clone(),
            files,
        }
    }
}

/// Computes the report over `files`.
pub fn compute(
    files: &[PathBuf],
    by: GroupBy,
    filter: &FilterArgs,
    prices: PriceTable,
) -> Result<StatsReport, crate::input::InputError> {
    let mut builder = StatsBuilder::new(by, filter.clone(), prices);
    let reports = scan(files, "stats", |data| {
        for_each_span(&data, Content::Skip, |span| builder.add(&span));
        ControlFlow::Continue(())
    })?;
    Ok(builder.finish(reports))
}

/// Runs `llmtap stats`.
pub fn run(args: &StatsArgs) -> ExitCode {
    let files = resolve_files(&args.files);
    let prices = match args.prices.load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("llmtap stats: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    let report = match compute(&files, args.by.clone(), &args.filter, prices) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("llmtap stats: {e}");
            return e.exit_code();
        }
    };
    report_skipped("stats", &report.files);
    if args.json {
        write_stdout("stats", &pretty_json(&report))
    } else {
        write_stdout("stats", render(&report).as_bytes())
    }
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) if v >= 10.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
    }
}

fn row(label: &str, g: &GroupSummary) -> Vec<String> {
    vec![
        label.to_owned(),
        g.calls.to_string(),
        g.errors.to_string(),
        g.tokens.input.to_string(),
        g.tokens.output.to_string(),
        g.tokens.cache_read.to_string(),
        g.tokens.reasoning.to_string(),
        ms(g.latency_ms.p50),
        ms(g.latency_ms.p95),
        ms(g.latency_ms.p99),
        ms(g.ttft_ms.p50),
        ms(g.ttft_ms.p95),
        ms(g.ttft_ms.p99),
        g.output_tokens_per_second
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
        cost_cell(g),
    ]
}

/// `$0.0060`; `≥ $0.0060` when some calls had no price; `-` when none had.
fn cost_cell(g: &GroupSummary) -> String {
    match g.cost_usd {
        None => "-".to_owned(),
        Some(usd) => {
            let text = format_usd(usd);
            if g.unpriced_calls > 0 {
                format!("≥ {text}")
            } else {
                text
            }
        }
    }
}

/// The report as a table for people.
pub fn render(report: &StatsReport) -> String {
    let mut out = String::new();
    let window = match (&report.since, &report.until) {
        (None, None) => String::new(),
        (Some(s), None) => format!(" since {s}"),
        (None, Some(u)) => format!(" until {u}"),
        (Some(s), Some(u)) => format!(" from {s} until {u}"),
    };
    let total = &report.total;
    if total.calls == 0 {
        out.push_str(&format!("no model calls{window}\n"));
        return out;
    }
    out.push_str(&format!(
        "{} model calls{window}, {} failed",
        total.calls, total.errors
    ));
    if let (Some(first), Some(last)) = (&total.first_call, &total.last_call_end) {
        out.push_str(&format!(" ({first} → {last})"));
    }
    out.push_str("\n\n");
    let header: Vec<String> = [
        report.group_by.as_str(),
        "calls",
        "errors",
        "in tok",
        "out tok",
        "cached",
        "reasoning",
        "p50",
        "p95",
        "p99",
        "ttft p50",
        "ttft p95",
        "ttft p99",
        "out tok/s",
        "cost",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut rows = vec![header];
    for g in &report.groups {
        rows.push(row(g.key.as_deref().unwrap_or("(none)"), g));
    }
    if report.groups.len() != 1 {
        rows.push(row("all", total));
    }
    out.push_str(&table(&rows));
    if !total.error_types.is_empty() {
        out.push_str("\nfailures by error.type:\n");
        let mut kinds: Vec<(&String, &u64)> = total.error_types.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (kind, n) in kinds {
            out.push_str(&format!("  {kind}  {n}\n"));
        }
    }
    if total.rate_limited > 0
        || total.min_remaining_requests.is_some()
        || total.min_remaining_tokens.is_some()
    {
        let share = total.rate_limited_share.unwrap_or(0.0) * 100.0;
        out.push_str(&format!(
            "\nrate limits: {} of {} call(s) answered 429 ({share:.1} %)",
            total.rate_limited, total.calls
        ));
        if let Some(n) = total.min_remaining_requests {
            out.push_str(&format!("; lowest remaining requests {n}"));
        }
        if let Some(n) = total.min_remaining_tokens {
            out.push_str(&format!("; lowest remaining tokens {n}"));
        }
        out.push('\n');
    }
    let prices = &report.prices;
    out.push_str(&format!(
        "\ncost: {} price table{}",
        prices.table,
        prices
            .date
            .as_ref()
            .map(|d| format!(" of {d}"))
            .unwrap_or_default()
    ));
    if total.unpriced_calls > 0 {
        out.push_str(&format!(
            "; {} call(s) without a price (model not in the table, or no usage) are not counted",
            total.unpriced_calls
        ));
    }
    out.push('\n');
    if report.other_spans > 0 {
        out.push_str(&format!(
            "\n{} other span(s) (agents, tools, non-GenAI) not counted as calls\n",
            report.other_spans
        ));
    }
    out
}

/// Left-aligned first column, right-aligned numbers, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            if c == 0 {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!("  {cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{AttrValue, SpanStatus};

    const MS: u64 = 1_000_000;

    fn no_prices() -> PriceTable {
        PriceTable::empty()
    }

    fn call(
        start_ms: u64,
        dur_ms: u64,
        model: &str,
        agent: &str,
        tokens: (i64, i64),
        error: Option<&str>,
    ) -> SpanRecord {
        let mut attrs = vec![
            (
                semconv::GEN_AI_OPERATION_NAME,
                AttrValue::Str("chat".into()),
            ),
            (semconv::GEN_AI_REQUEST_MODEL, AttrValue::Str(model.into())),
            (semconv::GEN_AI_AGENT_NAME, AttrValue::Str(agent.into())),
            (semconv::GEN_AI_USAGE_INPUT_TOKENS, AttrValue::Int(tokens.0)),
            (
                semconv::GEN_AI_USAGE_OUTPUT_TOKENS,
                AttrValue::Int(tokens.1),
            ),
        ];
        if let Some(kind) = error {
            attrs.push((semconv::ERROR_TYPE, AttrValue::Str(kind.into())));
        }
        SpanRecord {
            trace_id: "t".into(),
            span_id: format!("{start_ms}"),
            parent_span_id: String::new(),
            name: format!("chat {model}"),
            start_unix_nanos: start_ms * MS,
            end_unix_nanos: (start_ms + dur_ms) * MS,
            status: if error.is_some() {
                SpanStatus::Error
            } else {
                SpanStatus::Unset
            },
            service: None,
            attributes: attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            content: None,
        }
    }

    #[test]
    fn groups_sum_and_rank_exactly() {
        let mut b = StatsBuilder::new(GroupBy::Model, FilterArgs::default(), no_prices());
        for (i, dur) in [100u64, 200, 300, 400].iter().enumerate() {
            b.add(&call(i as u64 * 1000, *dur, "a", "x", (10, 20), None));
        }
        b.add(&call(
            5000,
            50,
            "b",
            "y",
            (5, 0),
            Some("rate_limit_exceeded"),
        ));
        b.add(&call(
            6000,
            60,
            "b",
            "y",
            (5, 0),
            Some("rate_limit_exceeded"),
        ));
        b.add(&call(7000, 70, "b", "y", (5, 0), None));
        let r = b.finish(Vec::new());
        assert_eq!(r.total.calls, 7);
        assert_eq!(r.total.errors, 2);
        assert_eq!(r.total.tokens.input, 55);
        assert_eq!(r.total.tokens.output, 80);
        assert_eq!(r.groups.len(), 2);
        let a = &r.groups[0];
        assert_eq!(a.key.as_deref(), Some("a"));
        assert_eq!(a.latency_ms.p50, Some(200.0));
        assert_eq!(a.latency_ms.p95, Some(400.0));
        assert_eq!(a.latency_ms.mean, Some(250.0));
        // 80 output tokens over 1 s of successful calls.
        assert_eq!(a.output_tokens_per_second, Some(80.0));
        let bg = &r.groups[1];
        assert_eq!(bg.errors, 2);
        assert_eq!(bg.error_types.get("rate_limit_exceeded"), Some(&2));
        assert_eq!(bg.output_tokens_per_second, None, "no output tokens");
        assert_eq!(
            r.total.first_call.as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(
            r.total.last_call_end.as_deref(),
            Some("1970-01-01T00:00:07.070Z")
        );
        let text = render(&r);
        assert!(text.starts_with("7 model calls, 2 failed"), "{text}");
        assert!(text.contains("rate_limit_exceeded  2"), "{text}");
    }

    #[test]
    fn window_and_filters_apply_before_grouping() {
        let filter = FilterArgs {
            since: Some(1000 * MS),
            until: Some(3000 * MS),
            ..FilterArgs::default()
        };
        let mut b = StatsBuilder::new(GroupBy::Agent, filter, no_prices());
        for i in 0..5u64 {
            b.add(&call(
                i * 1000,
                10,
                "m",
                if i % 2 == 0 { "x" } else { "y" },
                (1, 1),
                None,
            ));
        }
        let r = b.finish(Vec::new());
        assert_eq!(r.total.calls, 2);
        let keys: Vec<_> = r.groups.iter().map(|g| g.key.clone()).collect();
        assert_eq!(keys, [Some("x".to_owned()), Some("y".to_owned())]);
        assert_eq!(r.since.as_deref(), Some("1970-01-01T00:00:01.000Z"));
    }

    #[test]
    fn error_types_are_bounded() {
        let mut acc = Accumulator::default();
        for i in 0..(MAX_ERROR_TYPES + 10) {
            acc.add(&call(0, 1, "m", "a", (0, 0), Some(&format!("e{i}"))), None);
        }
        let s = acc.summary(None);
        assert_eq!(s.error_types.len(), MAX_ERROR_TYPES + 1);
        assert_eq!(s.error_types.get(semconv::error_type::OTHER), Some(&10));
        assert_eq!(s.errors, (MAX_ERROR_TYPES + 10) as u64);
    }
}
