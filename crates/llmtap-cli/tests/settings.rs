//! The settings table (`llmtap_core::settings`) is the only place a setting is declared: the
//! README's environment table is rendered from it, `llmtap proxy --help` is built from it, and
//! no other source file spells an `LLMTAP_*` or `OTEL_*` name in a string literal.
//!
//! After changing a setting's help or default, rewrite the README's table with
//! `cargo run --locked -p llmtap-cli --example readme_env_table`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use llmtap_core::settings;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The README, and the byte range of its environment table (the first table under
/// `## Environment`, found by `settings::readme_table_range` as the example that rewrites it
/// finds it).
fn readme_table() -> Result<(String, std::ops::Range<usize>)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let range = settings::readme_table_range(&readme)
        .context("README has no `| variable |` table under `## Environment`")?;
    Ok((readme, range))
}

#[test]
fn readme_environment_table_is_the_settings_table() -> Result<()> {
    let (readme, range) = readme_table()?;
    let expected = settings::markdown_table();
    let actual = &readme[range];
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines().chain(std::iter::repeat("<missing>")))
            .filter(|(e, a)| e != a)
            .take(3)
            .map(|(e, a)| format!("README:   {a}\nexpected: {e}"))
            .collect();
        panic!(
            "the README's environment table differs from llmtap_core::settings (rewrite it with \
             `cargo run --locked -p llmtap-cli --example readme_env_table`):\n{}",
            diff.join("\n")
        );
    }
    Ok(())
}

#[test]
fn proxy_help_lists_every_proxy_setting_with_its_default() -> Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmtap"))
        .args(["proxy", "--help"])
        .output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    for s in settings::proxy_settings() {
        assert!(help.contains(s.env), "{} missing from --help", s.env);
        if let Some(flag) = s.flag {
            let line = help
                .lines()
                .find(|l| l.contains(&format!("--{flag}")))
                .with_context(|| format!("--{flag} missing"))?;
            if let Some(value) = s.kind.value_name() {
                assert!(line.contains(&format!("--{flag} <{value}>")), "{line}");
            }
        }
    }
    assert!(
        help.contains("[env: LLMTAP_JSONL] [default: .llmtap/traces.jsonl]"),
        "{help}"
    );
    Ok(())
}

/// The string literals of a Rust source file (contents only; escapes left as written), up to
/// its first `#[cfg(test)]` (tests may spell names to check the table).
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let source = source
        .find("\n#[cfg(test)]")
        .map_or(source, |at| &source[..at]);
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    line += usize::from(bytes[i] == b'\n');
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A char literal ('"', '\'', 'x'), else a lifetime.
                if bytes.get(i + 1) == Some(&b'\\') {
                    i += 3;
                    while i < bytes.len() && bytes[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if bytes.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while bytes.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if bytes.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                let end = source[start..]
                    .find(&close)
                    .map_or(source.len(), |n| start + n);
                out.push((line, source[start..end].to_owned()));
                line += source[start..end].matches('\n').count();
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(bytes.len());
                out.push((line, source[start..end].to_owned()));
                line += source[start..end].matches('\n').count();
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn names_in(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for prefix in ["LLMTAP_", "OTEL_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let preceded_by_word = at > 0
                && rest.as_bytes()[at - 1].is_ascii_alphanumeric()
                && rest.as_bytes()[at - 1] != b'_';
            if len > prefix.len() && !preceded_by_word {
                names.push(&tail[..len]);
            }
            rest = &tail[len..];
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[test]
fn setting_names_are_spelled_only_in_the_settings_table() -> Result<()> {
    let table = repo_root().join("crates/llmtap-core/src/settings.rs");
    let mut files = Vec::new();
    for krate in std::fs::read_dir(repo_root().join("crates"))? {
        let src = krate?.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files)?;
        }
    }
    assert!(files.len() > 20, "found the sources: {files:?}");
    // Another product's variables, not settings of ours: LiteLLM's OpenTelemetry callback reads
    // these two (the benchmark configures LiteLLM as a peer).
    const FOREIGN: [&str; 2] = ["OTEL_EXPORTER", "OTEL_ENDPOINT"];
    let mut strays = Vec::new();
    for file in files.iter().filter(|f| **f != table) {
        let source = std::fs::read_to_string(file)?;
        for (line, literal) in string_literals(&source) {
            for name in names_in(&literal)
                .into_iter()
                .filter(|n| !FOREIGN.contains(n))
            {
                strays.push(format!("{}:{line}: {name}", file.display()));
            }
        }
    }
    assert!(
        strays.is_empty(),
        "setting names outside llmtap_core::settings (use its constants):\n{}",
        strays.join("\n")
    );
    // The scanner itself finds what it must.
    let probe = "let a = \"x LLMTAP_JSONL\"; // \"OTEL_NOT\"\nlet b = r#\"OTEL_SDK_DISABLED\"#;";
    let found: Vec<String> = string_literals(probe)
        .iter()
        .flat_map(|(_, l)| {
            names_in(l)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found, ["LLMTAP_JSONL", "OTEL_SDK_DISABLED"]);
    Ok(())
}
