//! External tools for end-to-end tests, and the one rule for when one is missing: outside CI a
//! test prints a visible `SKIP: ...` line and returns; inside CI (`CI=true`) it fails, because a
//! CI run that silently skipped its e2e tests proved nothing.
//!
//! `scripts/test.sh` installs everything and exports `LLMTAP_PYTHON`, `LLMTAP_NODE_MODULES` and
//! `LLMTAP_ROTEL_BIN`; without them the helpers look in the places that script installs to.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use llmtap_core::env::{EnvSource, ProcessEnv};

/// Python modules the e2e tests import; `python()` only returns an interpreter that has them.
pub const PYTHON_MODULES: &[&str] = &["openai", "anthropic"];

/// The workspace root (parent of this package), whatever the test's working directory is.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The `fixtures/` directory of this package.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// True when running under CI (`CI=true` or `CI=1`, as GitHub Actions and most runners set).
pub fn in_ci() -> bool {
    in_ci_from(&ProcessEnv)
}

/// [`in_ci`] against any environment, for testing the rule itself.
pub fn in_ci_from(env: &impl EnvSource) -> bool {
    env.non_empty("CI")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Applies the SKIP/FAIL rule for a missing prerequisite and returns `None` (outside CI).
///
/// The SKIP line goes straight to the process's stderr, not through `eprintln!`, so libtest's
/// output capture can't hide it in a passing run.
///
/// # Panics
/// Inside CI, always: a missing tool there is a broken CI setup.
pub fn skip_or_fail<T>(what: &str) -> Option<T> {
    skip_or_fail_in(in_ci(), what)
}

fn skip_or_fail_in<T>(ci: bool, what: &str) -> Option<T> {
    assert!(
        !ci,
        "{what}, and CI=true: e2e prerequisites must be installed in CI (run scripts/test.sh)"
    );
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIP: {what} (run scripts/test.sh)"
    );
    None
}

/// `name` on `PATH` (e.g. `curl`, `node`), or SKIP/FAIL per the rule.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    match find_on_path(name) {
        Some(p) => Some(p),
        None => skip_or_fail(&format!("{name} not found on PATH")),
    }
}

/// A Python interpreter that can import [`PYTHON_MODULES`]: `LLMTAP_PYTHON`, else
/// `<repo>/.venv/bin/python`. SKIP/FAIL when neither works. Checked once per test binary.
pub fn python() -> Option<PathBuf> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find_python) {
        Ok(p) => Some(p.clone()),
        Err(why) => skip_or_fail(why),
    }
}

fn find_python() -> Result<PathBuf, String> {
    let candidate = ProcessEnv
        .non_empty("LLMTAP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    if !candidate.exists() {
        return Err(format!(
            "python with {} not installed ({} missing)",
            PYTHON_MODULES.join(", "),
            candidate.display()
        ));
    }
    let import = format!("import {}", PYTHON_MODULES.join(", "));
    let ok = Command::new(&candidate)
        .args(["-c", &import])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(candidate)
    } else {
        Err(format!(
            "{} cannot `{import}`: python clients not installed",
            candidate.display()
        ))
    }
}

/// Whether the e2e interpreter ([`python`]) can import `module` (e.g. `google.genai`, which is
/// optional: it is pinned in requirements.txt but may fail to install on some platforms).
pub fn python_can_import(python: &Path, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `node_modules` directory holding the Node `openai` client: `LLMTAP_NODE_MODULES`, else
/// `<repo>/scripts/e2e/node_modules`. SKIP/FAIL when missing. Tests also need `node` itself:
/// call [`require_tool`]`("node")`.
pub fn node_modules() -> Option<PathBuf> {
    let dir = ProcessEnv
        .non_empty("LLMTAP_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("scripts/e2e/node_modules"));
    if dir.join("openai/package.json").is_file() {
        Some(dir)
    } else {
        skip_or_fail(&format!(
            "node openai client not installed ({} has no openai/package.json)",
            dir.display()
        ))
    }
}

/// Runs a client program (a Python or Node script) off the async runtime that serves the
/// proxy it talks to, and parses the one JSON object it prints.
pub async fn run_client(mut command: Command) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let output = tokio::task::spawn_blocking(move || {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
    })
    .await??;
    anyhow::ensure!(
        output.status.success(),
        "client failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).with_context(|| format!("client printed: {stdout}"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = ProcessEnv.var("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_detection_accepts_true_and_1_only() {
        assert!(in_ci_from(&[("CI", "true")]));
        assert!(in_ci_from(&[("CI", "TRUE")]));
        assert!(in_ci_from(&[("CI", "1")]));
        assert!(!in_ci_from(&[("CI", "false")]));
        assert!(!in_ci_from(&[("CI", "")]));
        assert!(!in_ci_from(&[("OTHER", "true")]));
    }

    #[test]
    fn missing_tool_skips_outside_ci() {
        assert_eq!(
            skip_or_fail_in::<()>(false, "(self-test of the SKIP rule; nothing is skipped)"),
            None
        );
    }

    #[test]
    #[should_panic(expected = "CI=true")]
    fn missing_tool_fails_in_ci() {
        let _: Option<()> = skip_or_fail_in(true, "thing missing");
    }

    #[test]
    fn finds_sh_on_path() {
        let sh = find_on_path("sh").expect("every unix has sh on PATH");
        assert!(sh.ends_with("sh"));
        assert!(find_on_path("definitely-not-a-tool-llmtap").is_none());
    }
}
