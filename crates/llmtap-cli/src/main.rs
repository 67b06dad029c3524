//! `llmtap`: a thin shell over [`llmtap_cli::main`].

/// mimalloc instead of glibc malloc: the proxy allocates per request and per chunk on one core,
/// where glibc's malloc/free showed up as ~12 % of the proxy's CPU (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    llmtap_cli::main()
}
