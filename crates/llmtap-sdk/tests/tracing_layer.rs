//! The `tracing` integration: the application's own `tracing` spans join the agent tree, and SDK
//! spans started inside them nest under them while still counting in the agent's totals.

mod support;

use anyhow::Context as _;
use llmtap_mock::{MockConfig, MockUpstream};
use llmtap_sdk::TracedClient;
use llmtap_tests::spans::RecordedSpan;
use serde_json::json;
use support::Tree;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test]
async fn tracing_spans_join_the_agent_tree() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let subscriber = tracing_subscriber::registry().with(llmtap_sdk::tracing_layer(&guard));
    let _default = tracing::subscriber::set_default(subscriber);
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let client = TracedClient::new(reqwest::Client::new());
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let usage = llmtap_mock::chat_usage(&body).context("usage")?;

    let agent = guard.agent("planner").root().start();
    // The tracing span is created inside the agent's scope, which makes it the agent's child.
    agent
        .scope(async {
            async {
                // No handle passed: everything below finds its parent through `tracing`.
                let mut tool = llmtap_sdk::tool("search").call_id("call_1").start();
                tool.set_result(&json!({"hits": 3}));
                tool.end();
                let request = client
                    .post(format!("{}/v1/chat/completions", mock.base_url()))
                    .json(&body)
                    .build()?;
                client.execute(request).await?.bytes().await?;
                tracing::info_span!("rank_results").in_scope(|| ());
                anyhow::Ok(())
            }
            .instrument(tracing::info_span!("load_documents"))
            .await
        })
        .await?;
    agent.end();
    drop(_default);
    let tree = Tree::new(support::finish(guard, &path).await?);
    mock.shutdown().await;

    let step = tree.one("load_documents");
    assert_eq!(
        tree.parent(step).map(RecordedSpan::name),
        Some("invoke_agent planner")
    );
    let mut children: Vec<&str> = tree.children(step).iter().map(|s| s.name()).collect();
    children.sort_unstable();
    assert_eq!(
        children,
        ["chat gpt-4o-mini", "execute_tool search", "rank_results"]
    );
    assert_eq!(tree.spans.len(), 5);
    let call = tree.one("chat gpt-4o-mini");
    assert_eq!(
        call.attr_str("gen_ai.agent.name").as_deref(),
        Some("planner")
    );
    assert_eq!(
        tree.one("invoke_agent planner")
            .attr_i64("llmtap.usage.total.input_tokens"),
        Some(i64::try_from(usage.prompt_tokens)?)
    );
    Ok(())
}
