//! `llmtap`: a thin shell over [`llmtap_cli::main`].

/// With `--features mimalloc`: trades a little peak memory for allocation speed on the proxy's
/// per-request path (see the feature's note in `Cargo.toml`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llmtap_cli::main()
}
