//! Where the commands read and write by default.

/// Default file read when none is given: where the proxy writes.
pub const DEFAULT_TRACES_FILE: &str = ".llmtap/traces.jsonl";
/// Where the demo writes unless told otherwise (next to the proxy's default file).
pub const DEFAULT_DEMO_FILE: &str = ".llmtap/demo.jsonl";
