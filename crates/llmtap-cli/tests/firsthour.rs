//! The first hour of a new user, with the real binary: the README's three-terminal tour
//! (`llmtap mock`, `llmtap proxy`, curl), a banner and a stop line that say what really happens,
//! settings and exit codes that match the README, and no URL credential in any output.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

fn llmtap() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmtap"));
    // The user's shell may point at a collector or turn the SDK off; these runs must not
    // depend on it.
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_SAMPLER",
        "LLMTAP_JSONL",
        "LLMTAP_LISTEN",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `curl`, or the SKIP-outside-CI / FAIL-in-CI rule the e2e tests follow.
fn curl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("curl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        assert!(!ci, "curl not found on PATH, and CI=true");
        eprintln!("SKIP: curl not found on PATH (run scripts/test.sh)");
    }
    found
}

/// A Python with the `openai` package: `LLMTAP_PYTHON`, else `<repo>/.venv/bin/python` (what
/// `scripts/test.sh` installs), else the SKIP/FAIL rule.
fn python_with_openai() -> Option<PathBuf> {
    let candidate = std::env::var_os("LLMTAP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        assert!(
            !ci,
            "no python with openai at {}, and CI=true",
            candidate.display()
        );
        eprintln!(
            "SKIP: python with openai not found at {} (run scripts/test.sh)",
            candidate.display()
        );
        return None;
    }
    Some(candidate)
}

/// The Python program of the README's tour, exactly as printed there.
fn readme_python_snippet() -> Result<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let start = readme
        .find("python3 -c '")
        .context("README's tour has no python3 -c step")?
        + "python3 -c '".len();
    let len = readme[start..]
        .find("'\n")
        .context("unterminated python3 -c step")?;
    Ok(readme[start..start + len].to_owned())
}

/// A long-running `llmtap` command (mock or proxy) started the way a user would.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` from its "listening on" line.
    url: String,
    /// Every stderr line so far, the banner included.
    stderr: Vec<String>,
    rest: mpsc::Receiver<String>,
}

impl Server {
    fn start(mut cmd: Command, dir: &Path) -> Result<Self> {
        let mut child = cmd
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run llmtap")?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    bail!("no listening line; stderr so far: {lines:#?}");
                }
            };
            if let Some(at) = line.find("listening on http://") {
                let url = line[at + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                lines.push(line);
                // The banner's other lines follow at once.
                while let Ok(more) = rx.recv_timeout(Duration::from_millis(300)) {
                    lines.push(more);
                }
                return Ok(Self {
                    child,
                    url,
                    stderr: lines,
                    rest: rx,
                });
            }
            lines.push(line);
        }
    }

    fn banner(&self) -> String {
        self.stderr.join("\n")
    }

    /// SIGTERM, then everything it printed; the exit code must be 0.
    fn stop(mut self) -> Result<(String, String)> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill failed");
        let exit = self.child.wait()?;
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout)?;
        }
        while let Ok(line) = self.rest.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push(line);
        }
        let stderr = self.stderr.join("\n");
        ensure!(exit.code() == Some(0), "exit {exit:?}: {stderr}");
        Ok((stdout, stderr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl_call(curl: &Path, url: &str, body: &str) -> Result<String> {
    let out = Command::new(curl)
        .args(["-sS", "--max-time", "20", url])
        .args(["-H", "content-type: application/json"])
        .args([
            "-H",
            "authorization: Bearer sk-tour-000000000000000000000000",
        ])
        .args(["-d", body])
        .output()?;
    ensure!(out.status.success(), "curl: {out:?}");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every span of an OTLP/JSON lines file, flattened to `(name, attributes)`.
fn spans(path: &Path) -> Result<Vec<(String, serde_json::Map<String, Value>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let data: Value = serde_json::from_str(line)?;
        for rs in data["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let mut attrs = serde_json::Map::new();
                    for kv in span["attributes"].as_array().into_iter().flatten() {
                        let value = kv["value"]
                            .as_object()
                            .and_then(|v| v.values().next())
                            .cloned()
                            .unwrap_or(Value::Null);
                        attrs.insert(kv["key"].as_str().unwrap_or_default().to_owned(), value);
                    }
                    out.push((span["name"].as_str().unwrap_or_default().to_owned(), attrs));
                }
            }
        }
    }
    Ok(out)
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count to three"}]}"#;

/// The README's tour as typed: `llmtap mock`, `llmtap proxy --upstream-openai …` (both on
/// `localhost`), then curl and the README's Python client; the calls are in the JSONL and the
/// stop line counts them.
#[test]
fn tour_mock_proxy_curl_and_python_record_the_calls() -> Result<()> {
    let Some(curl) = curl() else { return Ok(()) };
    let Some(python) = python_with_openai() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut cmd = llmtap();
    cmd.args(["mock", "--listen", "localhost:0", "--latency-ms", "5"])
        .args(["--chunk-delay-ms", "1", "--chunks", "3"]);
    let mock = Server::start(cmd, dir.path())?;
    assert!(mock.url.starts_with("http://127.0.0.1:"), "{}", mock.url);
    assert!(
        mock.banner().contains("llmtap proxy --upstream-openai"),
        "the mock says what to run next: {}",
        mock.banner()
    );

    let mut cmd = llmtap();
    cmd.args([
        "proxy",
        "--listen",
        "localhost:0",
        "--upstream-openai",
        &mock.url,
    ]);
    let proxy = Server::start(cmd, dir.path())?;
    let banner = proxy.banner();
    assert!(
        banner.contains("jsonl      .llmtap/traces.jsonl (rotates at 100 MiB, keeps 5 old files)"),
        "{banner}"
    );
    assert!(banner.contains("otlp       off"), "{banner}");
    assert!(
        banner.contains("sampler    parentbased_always_on"),
        "{banner}"
    );
    assert!(banner.contains("content    captured"), "{banner}");

    let answer = curl_call(&curl, &format!("{}/v1/chat/completions", proxy.url), CHAT)?;
    let answer: Value = serde_json::from_str(&answer)?;
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    let stream = curl_call(
        &curl,
        &format!("{}/v1/chat/completions", proxy.url),
        CHAT_STREAM,
    )?;
    assert!(stream.trim_end().ends_with("data: [DONE]"), "{stream}");
    let py = Command::new(&python)
        .args(["-c", &readme_python_snippet()?])
        .env("OPENAI_BASE_URL", format!("{}/v1", proxy.url))
        .env("OPENAI_API_KEY", "sk-none")
        .output()?;
    ensure!(
        py.status.success(),
        "README's python step: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(
        String::from_utf8_lossy(&py.stdout).contains("Count to three"),
        "the mock echoes the prompt: {py:?}"
    );
    let (_, stderr) = proxy.stop()?;
    assert!(
        stderr.contains(
            "stopped: 3 calls (0 failed), 0 unrecorded requests; \
             jsonl: 3 spans written, 0 dropped, 0 failed; otlp: off"
        ),
        "{stderr}"
    );
    mock.stop()?;

    let file = dir.path().join(".llmtap/traces.jsonl");
    let spans = spans(&file)?;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for (name, attrs) in &spans {
        assert_eq!(name, "chat gpt-4o-mini");
        assert_eq!(attrs["gen_ai.request.model"], "gpt-4o-mini");
        assert_eq!(attrs["gen_ai.provider.name"], "openai");
        assert!(
            attrs["gen_ai.response.model"]
                .as_str()
                .is_some_and(|m| m.starts_with("gpt-4o-mini")),
            "{attrs:?}"
        );
        assert!(
            attrs.contains_key("gen_ai.usage.output_tokens"),
            "{attrs:?}"
        );
        assert!(!attrs.contains_key("error.type"), "{attrs:?}");
    }
    let streamed: Vec<_> = spans
        .iter()
        .filter(|(_, a)| a.get("gen_ai.request.stream") == Some(&Value::Bool(true)))
        .collect();
    assert_eq!(streamed.len(), 1, "one streamed call");
    assert!(
        streamed[0]
            .1
            .contains_key("gen_ai.response.time_to_first_chunk"),
        "{:?}",
        streamed[0].1
    );
    let text = std::fs::read_to_string(&file)?;
    assert!(!text.contains("sk-tour"), "the API key reached the file");

    // The tour's last steps, as typed: the reading commands find the proxy's file by default.
    let tree = llmtap()
        .args(["tree", "--json"])
        .current_dir(dir.path())
        .output()?;
    ensure!(tree.status.success(), "llmtap tree: {tree:?}");
    let trees: Value = serde_json::from_slice(&tree.stdout)?;
    let calls: u64 = trees
        .as_array()
        .context("tree --json is an array")?
        .iter()
        .filter_map(|t| t["span_count"].as_u64())
        .sum();
    assert_eq!(calls, 3, "{trees}");
    let stats = llmtap()
        .args(["stats", "--json"])
        .current_dir(dir.path())
        .output()?;
    ensure!(stats.status.success(), "llmtap stats: {stats:?}");
    let stats: Value = serde_json::from_slice(&stats.stdout)?;
    assert_eq!(stats["total"]["calls"], 3, "{stats}");
    Ok(())
}

/// `OTEL_SDK_DISABLED=true`: nothing claims a file, nothing is written, and the stop line says so.
#[test]
fn sdk_disabled_banner_and_stop_line_claim_no_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cmd = llmtap();
    cmd.args(["proxy", "--listen", "127.0.0.1:0"])
        .env("OTEL_SDK_DISABLED", "true");
    let proxy = Server::start(cmd, dir.path())?;
    let banner = proxy.banner();
    assert!(!banner.contains("traces.jsonl"), "{banner}");
    assert!(banner.contains("OTEL_SDK_DISABLED=true"), "{banner}");
    assert!(banner.contains("nothing is recorded"), "{banner}");
    let (_, stderr) = proxy.stop()?;
    assert!(
        stderr.contains("no sink was on: no span recorded"),
        "{stderr}"
    );
    assert!(!stderr.contains("spans written"), "{stderr}");
    assert!(!dir.path().join(".llmtap").exists(), "a file was created");
    Ok(())
}

/// `LLMTAP_JSONL=OFF` (any case) turns the file off, as in the SDK; OTLP and rotation settings
/// show in the banner.
#[test]
fn jsonl_off_in_any_case_and_otlp_in_the_banner() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cmd = llmtap();
    cmd.args(["proxy", "--listen", "127.0.0.1:0"])
        .env("LLMTAP_JSONL", "OFF")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
        .env("OTEL_TRACES_SAMPLER", "traceidratio")
        .env("OTEL_TRACES_SAMPLER_ARG", "0.5")
        .env("LLMTAP_NO_CONTENT", "true");
    let proxy = Server::start(cmd, dir.path())?;
    let banner = proxy.banner();
    assert!(banner.contains("jsonl      off"), "{banner}");
    assert!(
        banner.contains("otlp       http://127.0.0.1:9/v1/traces (http/json)"),
        "{banner}"
    );
    assert!(
        banner.contains("metrics    http://127.0.0.1:9/v1/metrics"),
        "{banner}"
    );
    assert!(banner.contains("sampler    traceidratio 0.5"), "{banner}");
    assert!(banner.contains("content    off"), "{banner}");
    let (_, stderr) = proxy.stop()?;
    assert!(
        stderr.contains("jsonl: off; otlp: 0 spans written"),
        "{stderr}"
    );
    assert!(!dir.path().join("OFF").exists(), "a file named OFF");
    assert!(!dir.path().join(".llmtap").exists());
    Ok(())
}

/// `LLMTAP_JSONL_MAX_BYTES` / `LLMTAP_JSONL_KEEP` rotate the proxy's file.
#[test]
fn rotation_size_and_count_are_settings() -> Result<()> {
    let Some(curl) = curl() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let mut cmd = llmtap();
    cmd.args(["mock", "--listen", "127.0.0.1:0"]);
    let mock = Server::start(cmd, dir.path())?;
    let mut cmd = llmtap();
    cmd.args(["proxy", "--listen", "127.0.0.1:0", "--jsonl", "t.jsonl"])
        .args(["--upstream-openai", &mock.url])
        .env("LLMTAP_JSONL_MAX_BYTES", "1KiB")
        .env("LLMTAP_JSONL_KEEP", "1");
    let proxy = Server::start(cmd, dir.path())?;
    assert!(
        proxy
            .banner()
            .contains("t.jsonl (rotates at 1 KiB, keeps 1 old file)"),
        "{}",
        proxy.banner()
    );
    for _ in 0..3 {
        curl_call(&curl, &format!("{}/v1/chat/completions", proxy.url), CHAT)?;
        // Past the JSONL batch delay, so each span is its own write.
        std::thread::sleep(Duration::from_millis(1200));
    }
    proxy.stop()?;
    mock.stop()?;
    assert!(dir.path().join("t.jsonl").is_file());
    assert!(
        dir.path().join("t.jsonl.1").is_file(),
        "rotated once at least"
    );
    assert!(!dir.path().join("t.jsonl.2").exists(), "keeps one old file");
    Ok(())
}

/// No `user:password@` from an upstream or collector URL in the banner, errors, logs or
/// `/healthz` (issue 15).
#[test]
fn url_credentials_appear_in_no_output() -> Result<()> {
    let Some(curl) = curl() else { return Ok(()) };
    let dir = tempfile::tempdir()?;
    let secrets = ["hunter2", "s3cret"];
    let mut cmd = llmtap();
    cmd.args(["mock", "--listen", "127.0.0.1:0"]);
    let mock = Server::start(cmd, dir.path())?;
    let upstream = mock.url.replace("http://", "http://bob:hunter2@");
    let mut cmd = llmtap();
    cmd.args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream-openai",
        &upstream,
    ])
    .env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://alice:s3cret@127.0.0.1:9",
    )
    .env("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
    .env("RUST_LOG", "debug");
    let proxy = Server::start(cmd, dir.path())?;
    assert!(
        proxy.banner().contains("http://***@127.0.0.1:"),
        "{}",
        proxy.banner()
    );
    curl_call(&curl, &format!("{}/v1/chat/completions", proxy.url), CHAT)?;
    let health = Command::new(&curl)
        .args(["-sS", &format!("{}/healthz", proxy.url)])
        .output()?;
    let health = String::from_utf8_lossy(&health.stdout).into_owned();
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let (stdout, stderr) = proxy.stop()?;
    mock.stop()?;
    for secret in secrets {
        for (what, text) in [
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("healthz", &health),
        ] {
            assert!(!text.contains(secret), "{secret} in {what}: {text}");
        }
    }

    // Configuration errors show the value with the credentials masked.
    for (var, value) in [
        (
            "LLMTAP_UPSTREAM_OPENAI",
            "http://bob:hunter2@127.0.0.1:1/?q=1",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://alice:s3cret@127.0.0.1:9",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://alice:s3cret@127.0.0.1:9/ x",
        ),
    ] {
        let out = llmtap()
            .args(["proxy", "--listen", "127.0.0.1:0"])
            .env(var, value)
            .current_dir(dir.path())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "names {var}: {stderr}");
        for secret in secrets {
            assert!(!stderr.contains(secret), "{secret} in: {stderr}");
        }
    }
    Ok(())
}

/// An uncreatable JSONL path is EX_CANTCREAT (73) naming the variable, in one line.
#[test]
fn uncreatable_jsonl_exits_73_naming_the_setting() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("a-file"), "")?;
    let out = llmtap()
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .env("LLMTAP_JSONL", "a-file/sub/traces.jsonl")
        .current_dir(dir.path())
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(73), "{stderr}");
    assert!(stderr.contains("LLMTAP_JSONL"), "{stderr}");
    assert!(stderr.contains("a-file/sub"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    Ok(())
}

/// clap's usage errors exit 64 like every other usage error; help is not an error.
#[test]
fn usage_errors_exit_64_and_help_exits_0() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let run = |args: &[&str]| -> Result<Output> {
        Ok(llmtap().args(args).current_dir(dir.path()).output()?)
    };
    assert_eq!(run(&["proxy", "--bogus"])?.status.code(), Some(64));
    assert_eq!(run(&["no-such-command"])?.status.code(), Some(64));
    assert_eq!(run(&["mock", "--chunks", "0"])?.status.code(), Some(64));
    let help = run(&["proxy", "--help"])?;
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--jsonl-keep"));
    let mock = run(&["mock", "--listen", "nowhere"])?;
    assert_eq!(mock.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&mock.stderr).contains("--listen"));
    Ok(())
}

/// Every `LLMTAP_*` / `OTEL_*` name in `text`.
fn setting_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for prefix in ["LLMTAP_", "OTEL_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..len].trim_end_matches('_').to_owned());
            rest = &tail[len..];
        }
    }
    names
}

/// The lines of the README section titled `heading`.
fn readme_section(heading: &str) -> Result<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .with_context(|| format!("README has no `## {heading}` section"))?;
    let body = &readme[start + heading.len() + 5..];
    let end = body.find("\n## ").unwrap_or(body.len());
    Ok(body[..end].to_owned())
}

/// The README's environment table and `llmtap proxy --help` name the same settings.
#[test]
fn readme_environment_table_matches_proxy_help() -> Result<()> {
    let table: String = readme_section("Environment")?
        .lines()
        .filter(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    let readme = setting_names(&table);
    let help = llmtap().args(["proxy", "--help"]).output()?;
    let help = setting_names(&String::from_utf8_lossy(&help.stdout));
    assert!(readme.len() > 20, "parsed the table: {readme:?}");
    let only_readme: Vec<_> = readme.difference(&help).collect();
    let only_help: Vec<_> = help.difference(&readme).collect();
    assert!(
        only_readme.is_empty() && only_help.is_empty(),
        "README only: {only_readme:?}; --help only: {only_help:?}"
    );
    Ok(())
}

/// One README table holds every exit code the commands use.
#[test]
fn readme_documents_every_exit_code() -> Result<()> {
    let table = readme_section("Exit codes")?;
    for code in [
        0,
        1,
        llmtap_cli::EXIT_USAGE,
        llmtap_cli::EXIT_DATA_ERR,
        llmtap_cli::EXIT_NO_INPUT,
        llmtap_cli::EXIT_UNAVAILABLE,
        llmtap_cli::EXIT_CANT_CREATE,
    ] {
        assert!(
            table.contains(&format!("| `{code}` |")),
            "exit code {code} missing from:\n{table}"
        );
    }
    Ok(())
}

/// Logs written to a pipe carry no ANSI escape codes, with or without `NO_COLOR`; `demo --jsonl
/// off` leaves no file behind.
#[test]
fn demo_jsonl_off_writes_nothing_and_piped_logs_are_plain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = llmtap()
        .args(["demo", "--jsonl", "off"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .current_dir(dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "demo failed: {stdout}\n{stderr}");
    assert!(stdout.contains("[orchestrator]"), "{stdout}");
    assert!(stdout.contains("--jsonl off"), "{stdout}");
    assert!(stderr.contains("DEBUG"), "logs were written: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI codes in piped logs");
    assert!(!stdout.contains('\u{1b}'), "ANSI codes in piped output");
    assert!(!dir.path().join(".llmtap").exists(), "--jsonl off wrote");
    assert!(!dir.path().join("off").exists(), "--jsonl off wrote `off`");
    Ok(())
}
