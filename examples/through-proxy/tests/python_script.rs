//! `examples/agent_tree_through_proxy.py` against the real proxy and the mock: the Python agents'
//! calls form one tree through `traceresponse` → `traceparent` hand-offs, each agent a node. Needs the e2e Python
//! venv (`scripts/test.sh`): SKIP outside CI when missing, FAIL in CI.

use std::process::Stdio;

use llmtap_tests::stack::Stack;
use llmtap_tests::tree::{ExpectedForest, SpanForest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_agents_build_one_tree_through_the_proxy() -> anyhow::Result<()> {
    let Some(python) = llmtap_tests::clients::python() else {
        return Ok(());
    };
    let mut stack = Stack::start().await?;
    let script = llmtap_tests::clients::repo_root().join("examples/agent_tree_through_proxy.py");
    let proxy_url = stack.url("/v1");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("LLMTAP_PROXY_URL", proxy_url)
            .env("OPENAI_API_KEY", "sk-mock-0000000000000000000000000000")
            .stdin(Stdio::null())
            .output()
    })
    .await??;
    anyhow::ensure!(
        output.status.success(),
        "script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_report, spans) = stack.stop().await?;
    // Each agent is a node (ADR 0014): its invocation span over its one model call.
    let agent = |name: &str| {
        serde_json::json!({
            "name": format!("invoke_agent {name}"),
            "kind": "internal",
            "attributes": {"gen_ai.agent.name": name},
            "children": [{"name": "chat gpt-4o-mini", "attributes": {"gen_ai.agent.name": name}}]
        })
    };
    let expected = ExpectedForest::from_json_str(
        &serde_json::json!({"roots": [{
            "name": "invoke_agent orchestrator",
            "kind": "internal",
            "external_parent": false,
            "attributes": {"gen_ai.agent.name": "orchestrator"},
            "children": [{
                "name": "chat gpt-4o-mini",
                "kind": "client",
                "attributes": {"gen_ai.agent.name": "orchestrator"},
                "children": [
                    agent("researcher:rust async runtimes"),
                    agent("researcher:opentelemetry genai"),
                    agent("researcher:agent swarms"),
                    agent("writer")
                ]
            }]
        }]})
        .to_string(),
    )?;
    if let Err(mismatch) = SpanForest::from_spans(spans).check(&expected) {
        panic!("{mismatch}");
    }
    Ok(())
}
