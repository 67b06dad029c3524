//! Rewrites the README's environment table (the first `| variable |` table under
//! `## Environment`) from the settings table, `llmtap_core::settings::markdown_table`.
//! Run after changing a setting's help or default:
//!
//! ```text
//! cargo run --locked -p llmtap-cli --example readme_env_table
//! ```
//!
//! The `settings` test (`crates/llmtap-cli/tests/settings.rs`) fails while the two differ.

use std::path::Path;

use anyhow::{Context as _, Result};
use llmtap_core::settings;

fn main() -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .context("the crate sits in <repo>/crates/llmtap-cli")?
        .join("README.md");
    let readme =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let rewritten = settings::replace_markdown_table(&readme).with_context(|| {
        format!(
            "{} has no `| variable |` table under `## Environment`",
            path.display()
        )
    })?;
    if rewritten == readme {
        println!("{}: environment table already up to date", path.display());
    } else {
        std::fs::write(&path, rewritten).with_context(|| format!("writing {}", path.display()))?;
        println!("{}: environment table rewritten", path.display());
    }
    Ok(())
}
