//! Test support for llmtap: an in-process fake OTLP collector ([`otlp::FakeCollector`]), a span
//! tree comparator with goldens ([`tree::assert_span_forest`]), a real collector harness
//! ([`rotel::Rotel`]), a strict OTLP/JSON Lines reader ([`jsonl`]) and the helpers that find
//! real clients for end-to-end tests ([`clients`]), with the one SKIP-outside-CI / FAIL-in-CI
//! rule for missing tools.

pub mod clients;
pub mod jsonl;
pub mod otlp;
pub mod rotel;
pub mod spans;
pub mod stack;
pub mod tree;

pub use otlp::{ClosedPort, FakeCollector, RecordedRequest, closed_port};
pub use spans::{OtlpProtocol, RecordedSpan, SpanSource};
pub use tree::{ExpectedForest, ForestMismatch, SpanForest, assert_span_forest, check_span_forest};
