//! One lifecycle (`llmtap_core::lifecycle`): the `multi-agent` example recorded directly (the SDK
//! records the model calls) and through the proxy gives model spans with the same attribute keys,
//! with `LLMTAP_COMPAT` on, and the same gen_ai metric set — both modes export over OTLP to a
//! collector that keeps what it receives.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context as _;
use example_multi_agent::{Mode, Options, run, start_mock};
use llmtap_core::semconv::{self, compat_keys};
use llmtap_sdk::Builder;
use llmtap_tests::otlp::FakeCollector;
use llmtap_tests::spans::RecordedSpan;
use llmtap_tests::stack::{Stack, StackOptions};

/// Keys only the proxy writes. None today: the SDK records the route, server, transport end and
/// capture errors from the same lifecycle, so the key sets must be equal.
const PROXY_ONLY: &[&str] = &[];

const COMPAT: &str = "langfuse,openinference";

fn options(base_url: String, mode: Mode) -> Options {
    Options::keyless(base_url, mode, "same-record")
}

fn otlp_env(collector: &FakeCollector) -> Vec<(String, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            collector.http_endpoint(),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL".into(), "100".into()),
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "50".into()),
        ("LLMTAP_COMPAT".into(), COMPAT.into()),
    ]
}

fn model_span_keys(spans: &[RecordedSpan]) -> BTreeSet<String> {
    spans
        .iter()
        .filter(|s| s.attr_str(semconv::GEN_AI_OPERATION_NAME).as_deref() == Some("chat"))
        .flat_map(|s| s.attr_keys().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

async fn metric_names(collector: &FakeCollector) -> anyhow::Result<BTreeSet<String>> {
    let exports = collector
        .wait_for_metric(semconv::GEN_AI_CLIENT_TOKEN_USAGE, Duration::from_secs(10))
        .await?;
    Ok(exports
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_and_proxy_model_spans_carry_the_same_keys_and_metrics() -> anyhow::Result<()> {
    // Direct: the SDK records every model call.
    let collector = FakeCollector::start().await;
    let env: HashMap<String, String> = otlp_env(&collector).into_iter().collect();
    let dir = tempfile::tempdir()?;
    let guard = Builder::new()
        .from_env(&env)?
        .jsonl(Some(dir.path().join("direct.jsonl")))
        .build()?;
    let (mock, base) = start_mock().await?;
    let direct_calls = run(&guard, options(base, Mode::Direct)).await?.calls;
    guard.shutdown().await;
    mock.shutdown().await;
    let direct = collector
        .wait_for_spans(direct_calls, Duration::from_secs(10))
        .await?;
    let direct_metrics = metric_names(&collector).await?;

    // Through the proxy: the proxy records every model call, the SDK only the agents and tools.
    let mut stack = Stack::start_with(StackOptions {
        collector: true,
        env: vec![
            ("OTEL_METRIC_EXPORT_INTERVAL".into(), "100".into()),
            ("LLMTAP_COMPAT".into(), COMPAT.into()),
        ],
        ..StackOptions::default()
    })
    .await?;
    let sdk_dir = tempfile::tempdir()?;
    let guard = Builder::new()
        .jsonl(Some(sdk_dir.path().join("sdk.jsonl")))
        .build()?;
    let proxy_calls = run(&guard, options(stack.url("/v1"), Mode::Proxy))
        .await?
        .calls;
    guard.shutdown().await;
    let proxy_collector = stack.collector.take().context("collector")?;
    let (_report, proxied) = stack.stop().await?;
    let proxy_metrics = metric_names(&proxy_collector).await?;
    assert_eq!(direct_calls, proxy_calls);

    let direct_keys = model_span_keys(&direct);
    let proxy_keys: BTreeSet<String> = model_span_keys(&proxied)
        .into_iter()
        .filter(|k| !PROXY_ONLY.contains(&k.as_str()))
        .collect();
    for key in [
        compat_keys::LANGFUSE_COMPLETION_START_TIME,
        compat_keys::OPENINFERENCE_SPAN_KIND,
        compat_keys::INPUT_VALUE,
        compat_keys::OUTPUT_VALUE,
        semconv::GEN_AI_AGENT_NAME,
    ] {
        assert!(
            direct_keys.contains(key),
            "direct lacks {key}: {direct_keys:?}"
        );
    }
    assert_eq!(
        direct_keys
            .symmetric_difference(&proxy_keys)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "direct {direct_keys:?}\nproxy {proxy_keys:?}"
    );
    assert!(direct_metrics.contains(semconv::GEN_AI_CLIENT_OPERATION_DURATION));
    assert_eq!(direct_metrics, proxy_metrics);
    Ok(())
}
