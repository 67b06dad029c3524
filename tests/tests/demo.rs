//! `llmtap demo` in-process: with `OTEL_EXPORTER_OTLP_ENDPOINT` set the same spans it writes to
//! JSONL reach the collector, with the same parent links; and its agents are `invoke_agent` nodes
//! of the tree (ADR 0014).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use llmtap_core::semconv as sc;
use llmtap_tests::spans::{
    agent_spans, by_agent, check_calls_under_their_agents, is_model_call, one_agent_span,
};
use llmtap_tests::{FakeCollector, RecordedSpan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_spans_reach_the_collector_too() -> Result<()> {
    let collector = FakeCollector::start().await;
    let dir = tempfile::tempdir()?;
    let jsonl = dir.path().join("demo.jsonl");
    let env: HashMap<String, String> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let outcome = llmtap_cli::demo::run_demo(&jsonl, &env).await?;
    assert_eq!(outcome.calls, 7);
    let otlp = outcome.report.telemetry.otlp.expect("OTLP sink configured");
    // 7 model calls and the 5 agents' invocations.
    assert_eq!(otlp.written, SPANS);
    assert_eq!(otlp.failed + otlp.dropped, 0);

    let from_file = llmtap_tests::jsonl::read_spans(&jsonl)?;
    let received = collector
        .wait_for_spans(SPANS as usize, Duration::from_secs(10))
        .await?;
    let links = |spans: &[RecordedSpan]| {
        let mut v: Vec<(String, Option<String>)> = spans
            .iter()
            .map(|s| (s.span_id(), s.parent_span_id()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(links(&from_file), links(&received));
    assert_eq!(outcome.trees.len(), 1);
    assert_eq!(outcome.trees[0].span_count, SPANS as usize);
    Ok(())
}

/// 7 model calls by 5 agents.
const SPANS: u64 = 12;

/// The demo's JSONL through the proxy alone: agents are nodes. One root `invoke_agent` span;
/// every model call's parent is an `invoke_agent` span of its own agent; each agent's totals are
/// the sums of its subtree; no agent span ends before its last descendant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_agents_are_nodes_with_their_subtree_totals() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let jsonl = dir.path().join("demo.jsonl");
    let env: HashMap<String, String> = HashMap::new();
    llmtap_cli::demo::run_demo(&jsonl, &env).await?;
    let spans = llmtap_tests::jsonl::read_spans(&jsonl)?;
    assert_eq!(spans.len(), SPANS as usize);
    let agents = agent_spans(&spans);
    assert_eq!(agents.len(), 5, "one invocation per agent");
    let roots: Vec<&RecordedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id().is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one root");
    assert_eq!(roots[0].name(), "invoke_agent orchestrator");
    assert_eq!(check_calls_under_their_agents(&spans)?, 7);

    let children = |id: &str| -> Vec<&RecordedSpan> {
        spans
            .iter()
            .filter(|s| s.parent_span_id().as_deref() == Some(id))
            .collect()
    };
    // Sums of the model calls' usage and the latest end in each subtree.
    fn walk<'a>(
        span: &'a RecordedSpan,
        children: &dyn Fn(&str) -> Vec<&'a RecordedSpan>,
    ) -> (i64, i64, u64) {
        let mut input = 0;
        let mut output = 0;
        let mut last_end = 0;
        for child in children(&span.span_id()) {
            if is_model_call(child) {
                input += child.attr_i64(sc::GEN_AI_USAGE_INPUT_TOKENS).unwrap_or(0);
                output += child.attr_i64(sc::GEN_AI_USAGE_OUTPUT_TOKENS).unwrap_or(0);
            }
            last_end = last_end.max(child.span.end_time_unix_nano);
            let (i, o, e) = walk(child, children);
            input += i;
            output += o;
            last_end = last_end.max(e);
        }
        (input, output, last_end)
    }
    for agent in &agents {
        let (input, output, last_end) = walk(agent, &children);
        let name = agent.name();
        assert!(input > 0, "{name}");
        assert_eq!(
            agent.attr_i64(sc::LLMTAP_USAGE_TOTAL_INPUT_TOKENS),
            Some(input),
            "{name}"
        );
        assert_eq!(
            agent.attr_i64(sc::LLMTAP_USAGE_TOTAL_OUTPUT_TOKENS),
            Some(output),
            "{name}"
        );
        assert!(
            agent.span.end_time_unix_nano >= last_end,
            "{name} ends before its last descendant"
        );
        assert_eq!(
            agent.attr_str(sc::GEN_AI_PROVIDER_NAME).as_deref(),
            Some("openai"),
            "{name}"
        );
    }
    // The fact-checker was handed the researcher-papers call: its agent span nests there.
    let papers_call = by_agent(&spans, "researcher-papers")[0];
    let checker = one_agent_span(&spans, "fact-checker")?;
    assert_eq!(checker.parent_span_id(), Some(papers_call.span_id()));
    Ok(())
}
