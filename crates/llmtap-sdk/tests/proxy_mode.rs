//! Proxy mode: the SDK only adds `traceparent` and `x-llmtap-*` headers, the proxy records the one
//! model span where the SDK would have put it; and a direct-mode client pointed at the proxy
//! notices the proxy's `traceresponse` and records nothing itself.

mod support;

use anyhow::Context as _;
use llmtap_sdk::TracedClient;
use llmtap_sdk::proxy::{self, RequestBuilderExt as _};
use llmtap_tests::spans::RecordedSpan;
use llmtap_tests::stack::Stack;
use serde_json::{Value, json};
use support::Tree;

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plan the trip"}]})
}

fn model_spans(spans: &[RecordedSpan]) -> Vec<&RecordedSpan> {
    spans
        .iter()
        .filter(|s| s.attr_str("gen_ai.operation.name").as_deref() == Some("chat"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_put_the_proxy_span_under_the_agent_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mut stack = Stack::start().await?;
    let http = reqwest::Client::new();
    let usage = llmtap_mock::chat_usage(&chat()).context("usage")?;

    let planner = guard
        .agent("planner")
        .root()
        .conversation_id("trip-7")
        .meta("team", "travel")
        .start();
    let response = http
        .post(stack.url("/v1/chat/completions"))
        .llmtap(&*planner)
        .json(&chat())
        .send()
        .await?;
    let handoff = proxy::traceresponse_parent(response.headers()).context("traceresponse")?;
    let body = response.bytes().await?;
    planner.add_usage(
        &proxy::usage_from_body("/v1/chat/completions", &body).context("usage in body")?,
    );
    // An agent spawned because of that answer nests under the call that produced it.
    let booker = guard.agent("booker").parent(handoff).start();
    booker.end();
    planner.end();

    let sdk_spans = support::finish(guard, &path).await?;
    let (_report, proxy_spans) = stack.stop().await?;
    assert!(
        model_spans(&sdk_spans).is_empty(),
        "the SDK records no model span in proxy mode"
    );
    let proxy_model = model_spans(&proxy_spans);
    assert_eq!(proxy_model.len(), 1, "exactly one model span per call");
    let call = proxy_model[0];

    let mut all = sdk_spans.clone();
    all.extend(proxy_spans.iter().cloned());
    let tree = Tree::new(all);
    assert_eq!(
        tree.parent(call).map(RecordedSpan::name),
        Some("invoke_agent planner")
    );
    assert_eq!(
        call.attr_str("gen_ai.agent.name").as_deref(),
        Some("planner")
    );
    assert_eq!(
        call.attr_str("gen_ai.conversation.id").as_deref(),
        Some("trip-7")
    );
    assert_eq!(call.attr_str("llmtap.meta.team").as_deref(), Some("travel"));
    let booker = tree.one("invoke_agent booker");
    assert_eq!(
        tree.parent(booker).map(RecordedSpan::span_id),
        Some(call.span_id())
    );
    let planner = tree.one("invoke_agent planner");
    assert_eq!(
        planner.attr_i64("llmtap.usage.total.input_tokens"),
        Some(i64::try_from(usage.prompt_tokens)?)
    );
    assert_eq!(
        planner.attr_i64("llmtap.usage.total.input_tokens"),
        call.attr_i64("gen_ai.usage.input_tokens")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_client_through_the_proxy_never_double_records() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mut stack = Stack::start().await?;
    let client = TracedClient::new(reqwest::Client::new());

    let agent = guard.agent("double").root().start();
    for stream in [false, true] {
        let mut body = chat();
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        let request = client
            .post(stack.url("/v1/chat/completions"))
            .json(&body)
            .build()?;
        let response = client.execute_in(&*agent, request).await?;
        assert!(
            !response.is_recorded(),
            "the proxy answered: it records the call"
        );
        let _ = response.bytes().await?;
    }
    let totals = agent.totals();
    agent.end();

    let sdk_spans = support::finish(guard, &path).await?;
    let (_report, proxy_spans) = stack.stop().await?;
    assert!(model_spans(&sdk_spans).is_empty());
    let calls = model_spans(&proxy_spans);
    assert_eq!(calls.len(), 2, "one model span per call, from the proxy");
    let agent_span_id = sdk_spans[0].span_id();
    let expected_input: i64 = calls
        .iter()
        .map(|c| c.attr_i64("gen_ai.usage.input_tokens").unwrap_or(0))
        .sum();
    for c in &calls {
        assert_eq!(c.parent_span_id(), Some(agent_span_id.clone()));
    }
    assert_eq!(
        totals.input_tokens.map(i64::try_from).transpose()?,
        Some(expected_input)
    );
    assert_eq!(
        sdk_spans[0].attr_i64("llmtap.usage.total.input_tokens"),
        Some(expected_input)
    );
    Ok(())
}
