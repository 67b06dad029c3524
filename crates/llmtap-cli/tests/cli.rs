//! The `llmtap` binary as a new user runs it: `demo` from an empty directory with no API key and
//! no network, `tree` on what it wrote, and clear errors for bad input.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

fn llmtap(dir: &Path, args: &[&str]) -> Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(args)
        .current_dir(dir)
        // The user's shell may point at a collector; this run must not depend on one.
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("NO_COLOR", "1")
        .output()
        .context("cannot run llmtap")
}

#[test]
fn demo_prints_the_agent_tree_and_writes_jsonl() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = llmtap(dir.path(), &["demo"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join(".llmtap/demo.jsonl");
    assert!(file.is_file(), "demo wrote no JSONL");
    for agent in [
        "[orchestrator]",
        "[researcher-web]",
        "[researcher-papers]",
        "[fact-checker]",
        "[writer]",
    ] {
        assert!(stdout.contains(agent), "{agent} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("rate_limit_exceeded"),
        "the 429 shows:\n{stdout}"
    );
    assert!(
        stdout.contains(".llmtap/demo.jsonl"),
        "says where the file is"
    );
    assert!(
        stdout.contains("llmtap push"),
        "says how to send it to a collector"
    );
    let text = std::fs::read_to_string(&file)?;
    assert!(
        !text.contains("sk-demo"),
        "the demo's API key leaked into JSONL"
    );

    // The same tree, read back by `llmtap tree --json`.
    let tree = llmtap(dir.path(), &["tree", ".llmtap/demo.jsonl", "--json"])?;
    ensure!(tree.status.success(), "tree failed: {tree:?}");
    let trees: Value = serde_json::from_slice(&tree.stdout)?;
    let traces = trees.as_array().context("array")?;
    assert_eq!(traces.len(), 1, "one trace for the whole run");
    assert_eq!(
        traces[0]["span_count"], 12,
        "7 model calls under 5 agent spans"
    );
    assert_eq!(traces[0]["errors"], 1);
    let roots = traces[0]["roots"].as_array().context("roots")?;
    assert_eq!(roots.len(), 1);
    let root = &roots[0];
    assert_eq!(root["agent"], "orchestrator");
    assert_eq!(root["operation"], "invoke_agent");
    let kids =
        |node: &Value| -> Vec<Value> { node["children"].as_array().cloned().unwrap_or_default() };
    // Agent → its calls → the agents each call handed off to.
    let root_calls = kids(root);
    assert_eq!(root_calls.len(), 1, "the orchestrator made one call");
    assert_eq!(root_calls[0]["operation"], "chat");
    let spawned = kids(&root_calls[0]);
    let agent_named = |name: &str| -> Result<Value> {
        spawned
            .iter()
            .find(|c| c["agent"] == name && c["operation"] == "invoke_agent")
            .cloned()
            .with_context(|| format!("no agent node {name}"))
    };
    assert_eq!(spawned.len(), 3, "{spawned:?}");
    assert_eq!(
        kids(&agent_named("researcher-web")?).len(),
        2,
        "two calls, one invocation"
    );
    assert_eq!(kids(&agent_named("writer")?).len(), 1);
    let papers = agent_named("researcher-papers")?;
    let papers_call = &kids(&papers)[0];
    let checker = &kids(papers_call)[0];
    assert_eq!(checker["agent"], "fact-checker");
    assert_eq!(checker["operation"], "invoke_agent");
    let checks = kids(checker);
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c["agent"] == "fact-checker"));
    let limited: Vec<&Value> = checks.iter().filter(|c| c["error"] == true).collect();
    assert_eq!(limited.len(), 1, "one rate-limited attempt");
    assert_eq!(limited[0]["error_type"], "rate_limit_exceeded");
    assert!(
        limited[0].get("time_to_first_chunk_ms").is_none(),
        "an error body is not a first chunk: {}",
        limited[0]
    );
    // Subtree totals add up: the root's total is the sum over every model call.
    let mut sum = 0;
    fn walk(node: &Value, sum: &mut u64) {
        *sum += node["tokens"]["input"].as_u64().unwrap_or(0);
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, sum);
        }
    }
    walk(root, &mut sum);
    assert!(sum > 0);
    assert_eq!(root["subtree_tokens"]["input"].as_u64(), Some(sum));
    Ok(())
}

#[test]
fn tree_reports_unreadable_and_foreign_files_clearly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = llmtap(dir.path(), &["tree", "nope.jsonl"])?;
    assert_eq!(missing.status.code(), Some(66));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.jsonl"));

    std::fs::write(
        dir.path().join("junk.jsonl"),
        "not json\n{\"also\": \"not otlp\"\n",
    )?;
    // A file with no OTLP/JSON line is not a trace file: 65, as every reading command says.
    let junk = llmtap(dir.path(), &["tree", "junk.jsonl"])?;
    assert_eq!(junk.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&junk.stderr);
    assert!(
        stderr.contains("junk.jsonl is not an OTLP/JSON lines file"),
        "{stderr}"
    );
    assert!(junk.stdout.is_empty());
    Ok(())
}

#[test]
fn proxy_rejects_bad_config_with_exit_64_and_one_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(["proxy", "--listen", "not-an-address"])
        .current_dir(dir.path())
        .output()?;
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");

    // llmtap's own settings and an endpoint no default can replace stay errors.
    for (var, value) in [
        ("LLMTAP_JSONL_SAMPLED", "sometimes"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://127.0.0.1:4318"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_llmtap"))
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .env(var, value)
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .output()?;
        assert_eq!(out.status.code(), Some(64), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
    Ok(())
}

/// The values a shared environment sets for other services: the proxy starts, and each gets
/// exactly one warning naming its variable.
#[test]
fn proxy_starts_with_otel_values_it_cannot_use_and_warns_once_each() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let vars = [
        ("OTEL_TRACES_SAMPLER", "xray"),
        ("OTEL_TRACES_SAMPLER_ARG", "fifty"),
        ("OTEL_SDK_DISABLED", "1"),
        ("OTEL_TRACES_EXPORTER", "otlp,prometheus,otlpp"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "bogus"),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--jsonl", "t.jsonl"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .envs(vars)
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut reader = std::io::BufReader::new(stderr);
    let mut before_listening = Vec::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line)? == 0 {
            let _ = child.kill();
            anyhow::bail!("proxy exited before listening: {before_listening:?}");
        }
        if line.contains("listening on http://127.0.0.1:") {
            break;
        }
        before_listening.push(line);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    ensure!(status.success());
    assert_eq!(child.wait()?.code(), Some(0));
    for (var, value) in vars {
        if var == "OTEL_TRACES_SAMPLER_ARG" {
            // Only read for the ratio samplers; `xray` falls back to parentbased_always_on.
            continue;
        }
        let naming: Vec<_> = before_listening
            .iter()
            .filter(|l| l.contains(&format!("{var}=")))
            .collect();
        assert_eq!(naming.len(), 1, "{var}: {before_listening:#?}");
        assert!(naming[0].contains("WARN"), "{naming:?}");
        let shown = value.trim_start_matches("otlp,");
        assert!(naming[0].contains(shown), "{naming:?}");
    }
    Ok(())
}

/// SIGTERM drains and exits 0 with the spans flushed.
#[test]
fn proxy_exits_cleanly_on_sigterm() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--jsonl", "t.jsonl"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Wait for the "listening" line.
    let stderr = child.stderr.take().context("stderr")?;
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line)?;
    assert!(line.contains("listening on http://127.0.0.1:"), "{line}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(status.success());
    let exit = child.wait()?;
    assert_eq!(exit.code(), Some(0));
    Ok(())
}
