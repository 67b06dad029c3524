//! The guard: dropping it flushes and stops the sinks even on a current-thread runtime's only
//! thread (where a blocking OpenTelemetry shutdown could deadlock), and `init` installs the
//! telemetry that the ambient helpers use until the guard goes.

use llmtap_sdk::{Builder, Telemetry};

#[tokio::test] // current-thread runtime: the drop below happens on its only thread
async fn dropping_the_guard_on_the_runtime_thread_flushes_everything() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("spans.jsonl");
    let guard = Builder::new().jsonl(Some(&path)).build()?;
    for i in 0..50 {
        guard.agent(format!("a{i}")).root().start().end();
    }
    drop(guard);
    let spans = llmtap_tests::jsonl::read_spans(&path)?;
    assert_eq!(
        spans.len(),
        50,
        "every span ended before the drop is in the file"
    );
    Ok(())
}

#[tokio::test]
async fn init_installs_the_global_telemetry_until_the_guard_goes() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("spans.jsonl");
    let guard = Builder::new()
        .jsonl(Some(&path))
        .service_name("guard-test")
        .init()?;
    // No telemetry passed: the free function finds the global one.
    let agent = llmtap_sdk::agent("global").start();
    let mut tool = llmtap_sdk::tool("t").parent(&*agent).start();
    tool.set_result(&serde_json::json!({"ok": true}));
    tool.end();
    agent.end();
    let stats = guard.shutdown().await;
    assert_eq!(stats.jsonl.map(|s| s.written), Some(2));
    assert!(
        Telemetry::global().stats().jsonl.is_none(),
        "global cleared"
    );
    let spans = llmtap_tests::jsonl::read_spans(&path)?;
    let names: Vec<&str> = spans.iter().map(|s| s.name()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"invoke_agent global") && names.contains(&"execute_tool t"));
    assert_eq!(
        spans[0].resource_attr("service.name"),
        Some(serde_json::json!("guard-test"))
    );
    Ok(())
}
