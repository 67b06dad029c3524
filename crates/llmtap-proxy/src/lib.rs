//! llmtap-proxy: point any client's `base_url` here and every LLM call becomes a gen_ai span.
//!
//! `Config::load` → [`App::build`] → [`App::serve`]`(listener, shutdown)`. Each call goes through
//! explicit phases over a per-request context (see `recorder`): `on_request` (span start, before
//! forwarding), `on_request_body`, `on_response_head`, `on_chunk`, `finish` — and `finish` is the
//! only place its span ends. Request and response bytes are forwarded unchanged; parsing and
//! decoding happen on refcounted copies in a per-call task, after the bytes are on their way.

mod agents;
mod app;
mod body;
pub mod config;
mod error;
pub mod headers;
pub mod listen;
mod pool;
mod recorder;
mod stats;

pub use app::{App, BuildError, SCOPE_NAME, ServeError, ShutdownReport};
pub use config::{Config, ConfigError, Overrides, Upstream};
pub use error::ProxyError;
/// The settings table [`Overrides`] and [`Config::load`] read (names, flags, defaults, parsers).
pub use llmtap_core::settings;
pub use stats::{ProxyStats, StatsSnapshot};
