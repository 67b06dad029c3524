//! The `multi-agent` example's span tree against a golden (ids and times ignored), in direct mode
//! and through the proxy (same golden: same tree shape, one model span per call), and a
//! deliberately wrong twin golden that must fail.

use example_multi_agent::{Mode, Options, run, start_mock};
use llmtap_sdk::Builder;
use llmtap_tests::spans::RecordedSpan;
use llmtap_tests::stack::Stack;
use llmtap_tests::tree::{assert_span_forest, check_span_forest};

const GOLDEN: &str = "multi_agent.json";
/// Same tree, but the writer's `save_report` call sits under a researcher.
const WRONG_TWIN: &str = "multi_agent_wrong_parent.json";

fn options(base_url: String, mode: Mode) -> Options {
    Options::keyless(base_url, mode, "golden-session")
}

/// Runs the example in direct mode against the mock; returns its spans and the calls made.
async fn direct_spans() -> anyhow::Result<(Vec<RecordedSpan>, usize)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sdk.jsonl");
    let guard = Builder::new().jsonl(Some(&path)).build()?;
    let (mock, base) = start_mock().await?;
    let summary = run(&guard, options(base, Mode::Direct)).await?;
    guard.shutdown().await;
    mock.shutdown().await;
    Ok((llmtap_tests::jsonl::read_spans(&path)?, summary.calls))
}

/// Runs the example through the proxy; returns the SDK's and the proxy's spans and the calls.
async fn proxy_spans() -> anyhow::Result<(Vec<RecordedSpan>, Vec<RecordedSpan>, usize)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sdk.jsonl");
    let guard = Builder::new().jsonl(Some(&path)).build()?;
    let mut stack = Stack::start().await?;
    let summary = run(&guard, options(stack.url("/v1"), Mode::Proxy)).await?;
    guard.shutdown().await;
    let (_report, proxy) = stack.stop().await?;
    Ok((
        llmtap_tests::jsonl::read_spans(&path)?,
        proxy,
        summary.calls,
    ))
}

fn model_spans(spans: &[RecordedSpan]) -> usize {
    spans
        .iter()
        .filter(|s| s.attr_str("gen_ai.operation.name").as_deref() == Some("chat"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_tree_matches_the_golden() -> anyhow::Result<()> {
    let (spans, calls) = direct_spans().await?;
    assert_eq!(calls, 9);
    assert_eq!(model_spans(&spans), calls, "one model span per call");
    assert_span_forest(&spans, GOLDEN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mode_tree_is_the_same_with_one_model_span_per_call() -> anyhow::Result<()> {
    let (sdk, proxy, calls) = proxy_spans().await?;
    assert_eq!(
        model_spans(&sdk),
        0,
        "the SDK records no model span in proxy mode"
    );
    assert_eq!(
        model_spans(&proxy),
        calls,
        "the proxy records each call once"
    );
    assert_eq!(proxy.len(), calls, "and nothing else");
    let mut all = sdk;
    all.extend(proxy);
    assert_span_forest(&all, GOLDEN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_twin_golden_fails_for_the_misplaced_tool() -> anyhow::Result<()> {
    let (spans, _) = direct_spans().await?;
    let mismatch = check_span_forest(&spans, WRONG_TWIN)
        .expect_err("the twin puts execute_tool save_report under a researcher");
    assert!(
        mismatch.mentions("execute_tool save_report"),
        "fails for the misplaced span: {mismatch}"
    );
    Ok(())
}
