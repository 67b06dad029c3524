//! `llmtap`: a thin shell over [`llmtap_cli::main`].

fn main() -> std::process::ExitCode {
    llmtap_cli::main()
}
