//! llmtap-proxy: point any client's `base_url` here and every LLM call becomes a gen_ai span.
//!
//! `Config::load` → [`App::build`] → [`App::serve`]`(listener, shutdown)`. Each call goes through
//! explicit phases over a per-request context (see `recorder`): `on_request`, `on_response_head`,
//! `on_chunk`, `finish` — and `finish` is the only place its span ends. Response bytes are
//! forwarded unchanged as they arrive; decoding happens on refcounted copies in a per-call task.

mod app;
mod body;
pub mod config;
mod error;
pub mod headers;
mod recorder;
mod stats;

pub use app::{App, BuildError, SCOPE_NAME, ServeError, ShutdownReport};
pub use config::{Config, ConfigError, Overrides, Upstream};
pub use error::ProxyError;
pub use stats::{ProxyStats, StatsSnapshot};
