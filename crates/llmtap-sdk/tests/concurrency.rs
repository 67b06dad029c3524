//! 200 agents started concurrently across tokio tasks, OS threads and a channel, each making a
//! real model call against the mock upstream: every span must have the right parent, and every
//! agent's `llmtap.usage.total.*` must equal the sum of the model spans in its subtree, exactly.

mod support;

use std::sync::mpsc;

use anyhow::Context as _;
use llmtap_mock::{MockConfig, MockUpstream};
use llmtap_sdk::{AgentHandle, TracedClient};
use serde_json::{Value, json};
use support::Tree;

const TASKS: usize = 80;
const THREADS: usize = 20;

fn request_body(who: &str) -> Value {
    // Prompt length varies with the agent so every call has different usage.
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": format!("research {} {}", who, "x".repeat(who.len() * 3))}],
    })
}

/// One chat call as `agent`; returns the usage the mock documents for it.
async fn call(
    client: &TracedClient,
    base: &str,
    agent: &AgentHandle,
) -> anyhow::Result<(u64, u64)> {
    let body = request_body(agent.name());
    let expected = llmtap_mock::chat_usage(&body).context("mock usage")?;
    let request = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .build()?;
    let answer: Value = client.execute_in(agent, request).await?.json().await?;
    anyhow::ensure!(answer["usage"]["prompt_tokens"] == expected.prompt_tokens);
    Ok((expected.prompt_tokens, expected.completion_tokens))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_agents_keep_parents_and_exact_totals() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (guard, path) = support::telemetry(dir.path())?;
    let mock = MockUpstream::bind_local(MockConfig::default()).await?;
    let base = mock.base_url();
    let client = TracedClient::new(reqwest::Client::new());

    let root = guard.agent("root").root().conversation_id("conc-1").start();
    let mut expected_input = 0u64;
    let mut expected_output = 0u64;

    // 80 tokio tasks, each an agent with one call and a tool, which starts a sub-agent in a
    // nested task — half by explicit handle, half by the ambient context carried by
    // `llmtap_sdk::spawn` (the helper for code that does not pass handles).
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let parent = root.handle();
        let client = client.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let agent = parent
                .agent(format!("task-{i}"))
                .id(format!("t{i}"))
                .start();
            let mut sums = call(&client, &base, &agent).await?;
            let mut tool = agent.tool("lookup").call_id(format!("call_{i}")).start();
            tool.set_result(&json!({"i": i}));
            tool.end();
            let sub = if i % 2 == 0 {
                let h = agent.handle();
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    let sub = h.agent(format!("task-{i}-sub")).start();
                    call(&client, &base, &sub).await
                })
            } else {
                let (client, base) = (client.clone(), base.clone());
                // Ambient: the spawned task inherits the context current at spawn time.
                let _in_agent = agent.enter();
                llmtap_sdk::spawn(async move {
                    let sub = llmtap_sdk::agent(format!("task-{i}-sub")).start();
                    call(&client, &base, &sub).await
                })
            };
            let (i2, o2) = sub.await??;
            sums.0 += i2;
            sums.1 += o2;
            agent.end();
            anyhow::Ok(sums)
        }));
    }

    // 20 OS threads, each an agent with one call, which hands its handle through a channel to
    // a task that starts the thread agent's sub-agent.
    let (tx, rx) = mpsc::channel::<(
        AgentHandle,
        tokio::sync::oneshot::Sender<anyhow::Result<(u64, u64)>>,
    )>();
    let runtime = tokio::runtime::Handle::current();
    let relay = {
        let client = client.clone();
        let base = base.clone();
        let runtime = runtime.clone();
        std::thread::spawn(move || {
            for (handle, reply) in rx {
                let client = client.clone();
                let base = base.clone();
                runtime.spawn(async move {
                    let sub = handle
                        .agent(format!("{}-via-channel", handle.name()))
                        .start();
                    let _ = reply.send(call(&client, &base, &sub).await);
                });
            }
        })
    };
    let mut threads = Vec::new();
    for i in 0..THREADS {
        let parent = root.handle();
        let client = client.clone();
        let base = base.clone();
        let runtime = runtime.clone();
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            runtime.block_on(async move {
                let agent = parent.agent(format!("thread-{i}")).start();
                let mut sums = call(&client, &base, &agent).await?;
                let (reply, answer) = tokio::sync::oneshot::channel();
                tx.send((agent.handle(), reply))
                    .map_err(|_| anyhow::anyhow!("relay gone"))?;
                let (i2, o2) = answer.await??;
                sums.0 += i2;
                sums.1 += o2;
                agent.end();
                anyhow::Ok(sums)
            })
        }));
    }
    drop(tx);

    for t in tasks {
        let (i, o) = t.await??;
        expected_input += i;
        expected_output += o;
    }
    let thread_results = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow::anyhow!("thread panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;
    for (i, o) in thread_results {
        expected_input += i;
        expected_output += o;
    }
    tokio::task::spawn_blocking(move || relay.join())
        .await?
        .map_err(|_| anyhow::anyhow!("relay panicked"))?;
    let root_totals = root.totals();
    root.end();
    let spans = support::finish(guard, &path).await?;
    mock.shutdown().await;

    let tree = Tree::new(spans);
    let agents: Vec<_> = tree
        .spans
        .iter()
        .filter(|s| s.name().starts_with("invoke_agent "))
        .collect();
    assert_eq!(agents.len(), 1 + 2 * TASKS + 2 * THREADS, "agent spans");
    let model_spans: Vec<_> = tree.named("chat gpt-4o-mini");
    assert_eq!(
        model_spans.len(),
        2 * TASKS + 2 * THREADS,
        "one model span per call"
    );
    assert_eq!(tree.named("execute_tool lookup").len(), TASKS);
    assert_eq!(tree.spans.len(), agents.len() + model_spans.len() + TASKS);

    let root_span = tree.one("invoke_agent root");
    assert!(root_span.parent_span_id().is_none());
    let trace = root_span.trace_id();
    assert!(
        tree.spans.iter().all(|s| s.trace_id() == trace),
        "one trace"
    );

    // Parents, by name.
    for s in &tree.spans {
        let parent = tree.parent(s).map(|p| p.name().to_owned());
        let name = s.name();
        let expected_parent = if name == "invoke_agent root" {
            None
        } else if let Some(agent) = name.strip_prefix("invoke_agent ") {
            Some(match agent.rsplit_once('-') {
                Some((owner, "sub")) => format!("invoke_agent {owner}"),
                _ => match agent.strip_suffix("-via-channel") {
                    Some(owner) => format!("invoke_agent {owner}"),
                    None => "invoke_agent root".to_owned(),
                },
            })
        } else {
            // Model and tool spans sit under the agent that made them.
            let agent = s
                .attr_str("gen_ai.agent.name")
                .or_else(|| tree.parent(s).and_then(|p| p.attr_str("gen_ai.agent.name")))
                .context("span without agent")?;
            Some(format!("invoke_agent {agent}"))
        };
        assert_eq!(parent, expected_parent, "parent of {name}");
        assert_eq!(
            s.attr_str("gen_ai.conversation.id").as_deref(),
            Some("conc-1"),
            "conversation id on {name}"
        );
    }

    // Totals: every agent's equals the sum over its subtree, exactly, and only under llmtap.*.
    for a in &agents {
        for (total, leaf) in [
            (
                "llmtap.usage.total.input_tokens",
                "gen_ai.usage.input_tokens",
            ),
            (
                "llmtap.usage.total.output_tokens",
                "gen_ai.usage.output_tokens",
            ),
        ] {
            assert_eq!(
                a.attr_i64(total),
                Some(tree.subtree_sum(a, leaf)),
                "{total} on {}",
                a.name()
            );
        }
        assert!(a.attr("gen_ai.usage.input_tokens").is_none());
    }
    assert_eq!(
        root_span.attr_i64("llmtap.usage.total.input_tokens"),
        Some(i64::try_from(expected_input)?)
    );
    assert_eq!(
        root_span.attr_i64("llmtap.usage.total.output_tokens"),
        Some(i64::try_from(expected_output)?)
    );
    assert_eq!(root_totals.input_tokens, Some(expected_input));
    Ok(())
}
