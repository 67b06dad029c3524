//! Settings read the same way everywhere (`llmtap_core::settings`, ADR 0012): `LLMTAP_JSONL=OFF`
//! in any case turns the proxy's file off as it turns the SDK's off (the SDK's own tests) — no
//! file named `OFF`.

use std::path::Path;

use anyhow::Result;
use llmtap_core::settings;
use llmtap_tests::stack::{Stack, StackOptions};

const CHAT_BODY: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn jsonl_off_in_any_case_writes_no_file() -> Result<()> {
    for off in ["OFF", "Off", "off", "none", "NONE", "False"] {
        let env = vec![(settings::JSONL.env.to_owned(), off.to_owned())];
        let mut stack = Stack::start_with(StackOptions {
            env,
            ..StackOptions::default()
        })
        .await?;
        let reply = stack.post("/v1/chat/completions", CHAT_BODY, &[]).await?;
        assert!(reply.status.is_success(), "{off}: {}", reply.text());
        let (report, spans) = stack.stop().await?;
        assert_eq!(report.proxy.calls_finished, 1, "{off}");
        assert!(
            report.telemetry.jsonl.is_none(),
            "{off}: the proxy's file is off"
        );
        assert!(
            spans.is_empty(),
            "{off}: nothing in the tempdir file either"
        );
        assert!(
            !Path::new(off).exists(),
            "the proxy wrote a file named {off}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_bad_llmtap_value_is_the_settings_table_error() -> Result<()> {
    for (setting, bad) in [
        (&settings::JSONL_MAX_BYTES, "lots"),
        (&settings::JSONL_KEEP, "-1"),
        (&settings::NO_CONTENT, "maybe"),
        (&settings::MAX_CAPTURE_BYTES, "8 parsecs"),
        (&settings::MAX_CONTENT_BYTES, "12"),
    ] {
        let env = [(setting.env, bad)];
        let proxy = match llmtap_proxy::Config::load(&llmtap_proxy::Overrides::new(), &env) {
            Err(e) => e.to_string(),
            Ok(config) => match llmtap_proxy::App::build_with_env(config, &env).await {
                Err(e) => e.to_string(),
                Ok(_) => String::new(),
            },
        };
        assert_eq!(proxy, setting.invalid(bad).to_string());
    }
    Ok(())
}
