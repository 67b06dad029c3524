//! Every `LLMTAP_*` and `OTEL_*` setting, declared once: variable, flag, default, kind (which
//! parser reads it) and help. The proxy's configuration, the SDK, the exporter and the CLI read
//! the names, defaults and parsers from here; `llmtap proxy --help` and the README's environment
//! table are rendered from [`ALL`] (a test keeps the README equal to [`markdown_table`];
//! `cargo run --locked -p llmtap-cli --example readme_env_table` rewrites it with
//! [`replace_markdown_table`]).
//!
//! Precedence for a setting with a flag: flag, then variable, then [`Setting::default`]. An empty
//! variable counts as unset. Two rules for bad values (ADR 0011, ADR 0012):
//! - `LLMTAP_*` settings are llmtap's alone and strict: a value that cannot be used is a
//!   [`SettingError`] naming the flag and the variable (the proxy exits 64);
//! - `OTEL_*` settings are read by `llmtap-export` the OpenTelemetry way: a value that cannot be
//!   used is logged once and replaced by the spec default ([`Kind::Otel`]). The exceptions
//!   (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, an endpoint that is not a URL) are
//!   strict for the reasons their readers give.
//!
//! Pure: this module reads an [`EnvSource`] and strings, never the process or the disk.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use crate::env::{EnvSource, is_off, parse_bool, parse_bytes};
use crate::userinfo::mask_userinfo;

/// Default JSONL file, relative to the working directory: every writer (proxy, SDK, demo) and
/// every reader (`llmtap tree`, `tail`, `stats`, …) agrees on it.
pub const DEFAULT_JSONL_PATH: &str = ".llmtap/traces.jsonl";
/// [`MAX_CAPTURE_BYTES`]'s default as a number (a test checks it equals the table's text).
pub const DEFAULT_MAX_CAPTURE_BYTES: u64 = 8 * 1024 * 1024;
/// [`MAX_CONTENT_BYTES`]'s default as a number (a test checks it equals the table's text).
pub const DEFAULT_MAX_CONTENT_BYTES: u64 = 64 * 1024;
/// [`JSONL_MAX_BYTES`]'s default as a number (a test checks it equals the table's text).
pub const DEFAULT_JSONL_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// [`JSONL_KEEP`]'s default as a number (a test checks it equals the table's text).
pub const DEFAULT_JSONL_KEEP: u64 = 5;
/// Most rotated files [`JSONL_KEEP`] accepts: each rotation renames every kept file.
pub const MAX_JSONL_KEEP: u64 = 1000;
/// Smallest [`MAX_CONTENT_BYTES`]: smaller budgets could not hold even a truncation marker.
pub const MIN_CONTENT_BYTES: u64 = 64;

/// How a setting's value is read: the parser, and what an error message says was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `HOST:PORT`; the host may be a name, resolved by the proxy (which owns the I/O).
    Listen,
    /// A file path, or `off`/`none`/`false` in any case for no file ([`is_off`]).
    PathOrOff,
    /// A byte size ([`parse_bytes`]) of at least 1, or `off`.
    SizeOrOff,
    /// A byte size ([`parse_bytes`]) of at least `min`.
    Size {
        /// Smallest accepted value.
        min: u64,
    },
    /// A whole number from `min` to `max`.
    Count {
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A positive number of seconds (fractions allowed).
    Secs,
    /// An `http://` or `https://` base URL, checked by the proxy.
    Url,
    /// Yes or no ([`parse_bool`]); with a flag, the flag is a switch that means yes.
    Bool,
    /// Free text (a name).
    Name,
    /// `openinference`, `langfuse`, `none`, comma-separated ([`crate::compat::Compat::parse`]).
    CompatList,
    /// Regexes separated by `;` ([`crate::capture::CapturePolicy::from_env`]).
    Patterns,
    /// A prices file path (`llmtap stats`/`export` cost column).
    Path,
    /// Set or unset, the value does not matter.
    Present,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`'s values (strict: see
    /// [`crate::capture`]).
    CaptureMode,
    /// An OpenTelemetry variable, read by `llmtap-export` as the specification says.
    Otel,
}

impl Kind {
    /// The placeholder `--help` shows after a flag of this kind; `None` for a switch.
    pub fn value_name(self) -> Option<&'static str> {
        Some(match self {
            Kind::Listen => "HOST:PORT",
            Kind::PathOrOff => "PATH|off",
            Kind::SizeOrOff => "SIZE|off",
            Kind::Size { .. } => "SIZE",
            Kind::Count { .. } => "N",
            Kind::Secs => "SECS",
            Kind::Url => "URL",
            Kind::Bool | Kind::Present => return None,
            Kind::Name => "NAME",
            Kind::CompatList => "LIST",
            Kind::Patterns => "REGEXES",
            Kind::Path => "PATH",
            Kind::CaptureMode | Kind::Otel => "VALUE",
        })
    }

    /// What a value of this kind looks like, for error messages.
    pub fn expected(self) -> String {
        match self {
            Kind::Listen => "expected HOST:PORT, e.g. 127.0.0.1:8421 or localhost:8421".to_owned(),
            Kind::PathOrOff => "expected a file path or `off`".to_owned(),
            Kind::SizeOrOff => {
                "expected a size such as 104857600, 100MiB or 500MB, or `off`".to_owned()
            }
            Kind::Size { min } if min > 1 => {
                format!("expected a size of at least {min} bytes, such as 65536 or 64KiB")
            }
            Kind::Size { .. } => "expected a size such as 8388608, 8MiB or 10MB".to_owned(),
            Kind::Count { min: 0, max } => format!("expected a number from 0 to {max}"),
            Kind::Count { .. } => "expected a positive whole number".to_owned(),
            Kind::Secs => "expected a positive number of seconds".to_owned(),
            Kind::Url => "expected an http:// or https:// URL".to_owned(),
            Kind::Bool | Kind::Present => "expected true or false".to_owned(),
            Kind::Name | Kind::Patterns | Kind::Path | Kind::Otel => "expected a value".to_owned(),
            Kind::CompatList => "expected openinference, langfuse or none".to_owned(),
            Kind::CaptureMode => {
                "expected one of true, false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT"
                    .to_owned()
            }
        }
    }
}

/// Which programs read a setting (and so which help lists it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The proxy only (addresses, upstreams, timeouts, connection limits).
    Proxy,
    /// The proxy and the SDK alike (the record, capture, export).
    Telemetry,
    /// Other `llmtap` commands (`stats`, `export`, readers' progress).
    Cli,
}

/// One setting.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub env: &'static str,
    /// The `llmtap proxy` flag without its dashes (`listen` for `--listen`): the variable's
    /// name without `LLMTAP_`, lower case, `_` → `-` (a test checks).
    pub flag: Option<&'static str>,
    /// The value used when neither flag nor variable is set, read by the same parser as a
    /// given value; `None` when unset means "not set" (or, for `OTEL_*`, the spec's default).
    pub default: Option<&'static str>,
    /// What help shows as the default when it is not a value (`derived from host`); else
    /// [`Setting::default`] is shown.
    pub default_doc: Option<&'static str>,
    /// The parser.
    pub kind: Kind,
    /// Who reads it.
    pub scope: Scope,
    /// The meaning, one line (backticks mark literal values). Empty: documented in the row of
    /// the setting above it in [`ALL`] (the per-signal twins of an `OTEL_*` variable).
    pub help: &'static str,
}

/// A value that cannot be used: names the flag and the variable, shows the value with any URL
/// credentials masked. One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The setting.
    pub setting: &'static Setting,
    /// The value as given.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?} for {}: {}",
            mask_userinfo(&self.value),
            self.setting.names(),
            mask_userinfo(&self.reason)
        )
    }
}

impl std::error::Error for SettingError {}

impl Setting {
    /// `--flag / VARIABLE`, or `VARIABLE` when there is no flag: how messages name it.
    pub fn names(&self) -> String {
        match self.flag {
            Some(flag) => format!("--{flag} / {}", self.env),
            None => self.env.to_owned(),
        }
    }

    /// The default as help shows it, if any.
    pub fn default_shown(&self) -> Option<&'static str> {
        self.default_doc.or(self.default)
    }

    /// The raw value: `flag` if given, else the variable (trimmed, empty = unset), else the
    /// default. `None` when none of the three is there.
    pub fn raw(&self, flag: Option<&str>, env: &(impl EnvSource + ?Sized)) -> Option<String> {
        flag.map(|v| v.trim().to_owned())
            .or_else(|| env.non_empty(self.env))
            .or_else(|| self.default.map(str::to_owned))
    }

    /// An error for `value`, naming this setting.
    pub fn error(&'static self, value: &str, reason: impl Into<String>) -> SettingError {
        SettingError {
            setting: self,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }

    /// An error for `value` saying what this setting's kind expects.
    pub fn invalid(&'static self, value: &str) -> SettingError {
        self.error(value, self.kind.expected())
    }

    /// A [`Kind::CompatList`] setting ([`COMPAT`]): the flag's value if given, else the variable;
    /// an unknown name is an error naming the setting.
    pub fn read_compat(
        &'static self,
        flag: Option<&str>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<crate::compat::Compat, SettingError> {
        let raw = self.raw(flag, env).unwrap_or_default();
        crate::compat::Compat::parse(&raw).map_err(|e| self.error(&raw, e.to_string()))
    }

    /// A [`Kind::Bool`] setting; `switch` is its flag given (it means yes). Unset and no
    /// default: `false`.
    pub fn read_bool(
        &'static self,
        switch: bool,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<bool, SettingError> {
        if switch {
            return Ok(true);
        }
        match self.raw(None, env) {
            None => Ok(false),
            Some(raw) => parse_bool(&raw).ok_or_else(|| self.invalid(&raw)),
        }
    }

    /// A [`Kind::PathOrOff`] setting: `None` when off.
    pub fn read_path_or_off(
        &'static self,
        flag: Option<&str>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<Option<PathBuf>, SettingError> {
        let raw = self.raw(flag, env).unwrap_or_default();
        if raw.is_empty() {
            return Err(self.invalid(&raw));
        }
        Ok(parse_path_or_off(&raw))
    }

    /// A [`Kind::SizeOrOff`] setting: `None` when off.
    pub fn read_size_or_off(
        &'static self,
        flag: Option<&str>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<Option<u64>, SettingError> {
        let raw = self.raw(flag, env).unwrap_or_default();
        parse_size_or_off(&raw).ok_or_else(|| self.invalid(&raw))
    }

    /// A [`Kind::Size`] setting, as `usize` (sizes of memory).
    pub fn read_size(
        &'static self,
        flag: Option<&str>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<usize, SettingError> {
        let min = match self.kind {
            Kind::Size { min } => min,
            _ => 0,
        };
        let raw = self.raw(flag, env).unwrap_or_default();
        parse_bytes(&raw)
            .filter(|n| *n >= min)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.invalid(&raw))
    }

    /// A [`Kind::Count`] setting.
    pub fn read_count(
        &'static self,
        flag: Option<&str>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<usize, SettingError> {
        let (min, max) = match self.kind {
            Kind::Count { min, max } => (min, max),
            _ => (0, u64::MAX),
        };
        let raw = self.raw(flag, env).unwrap_or_default();
        raw.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.invalid(&raw))
    }

    /// A [`Kind::Secs`] setting.
    pub fn read_secs(
        &'static self,
        flag: Option<&str>,
        env: &(impl EnvSource + ?Sized),
    ) -> Result<Duration, SettingError> {
        let raw = self.raw(flag, env).unwrap_or_default();
        parse_secs(&raw).ok_or_else(|| self.invalid(&raw))
    }
}

/// A path-or-off value ([`Kind::PathOrOff`]): `off`, `none` or `false` in any case mean no file
/// ([`is_off`]); anything else is the path. Every reader of `LLMTAP_JSONL` and `--jsonl` asks
/// here, so `OFF` never becomes a file.
pub fn parse_path_or_off(raw: &str) -> Option<PathBuf> {
    if is_off(raw) {
        None
    } else {
        Some(PathBuf::from(raw.trim()))
    }
}

/// A size-or-off value ([`Kind::SizeOrOff`]): `Some(None)` for off, `Some(Some(n))` for a size
/// of at least 1 byte, `None` when unusable.
pub fn parse_size_or_off(raw: &str) -> Option<Option<u64>> {
    if is_off(raw) {
        return Some(None);
    }
    parse_bytes(raw).filter(|n| *n > 0).map(Some)
}

/// A number of seconds ([`Kind::Secs`]): positive, finite, under a billion.
pub fn parse_secs(raw: &str) -> Option<Duration> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 1e9)
        .map(Duration::from_secs_f64)
}

const fn flagged(
    env: &'static str,
    flag: &'static str,
    default: Option<&'static str>,
    kind: Kind,
    scope: Scope,
    help: &'static str,
) -> Setting {
    Setting {
        env,
        flag: Some(flag),
        default,
        default_doc: None,
        kind,
        scope,
        help,
    }
}

const fn var(env: &'static str, kind: Kind, scope: Scope, help: &'static str) -> Setting {
    Setting {
        env,
        flag: None,
        default: None,
        default_doc: None,
        kind,
        scope,
        help,
    }
}

const fn otel(env: &'static str, default_doc: Option<&'static str>, help: &'static str) -> Setting {
    Setting {
        env,
        flag: None,
        default: None,
        default_doc,
        kind: Kind::Otel,
        scope: Scope::Telemetry,
        help,
    }
}

/// A per-signal twin, documented in the row above it.
const fn otel_twin(env: &'static str) -> Setting {
    otel(env, None, "")
}

// --- llmtap's own settings, with a `llmtap proxy` flag each -----------------------------------

/// Proxy address.
pub const LISTEN: Setting = flagged(
    "LLMTAP_LISTEN",
    "listen",
    Some("127.0.0.1:8421"),
    Kind::Listen,
    Scope::Proxy,
    "proxy address, `HOST:PORT`; the host may be a name (`localhost`)",
);
/// JSONL file or off.
pub const JSONL: Setting = flagged(
    "LLMTAP_JSONL",
    "jsonl",
    Some(DEFAULT_JSONL_PATH),
    Kind::PathOrOff,
    Scope::Telemetry,
    "JSONL file, or `off` (any case; `none`, `false` too); it keeps every call whatever \
     `OTEL_TRACES_SAMPLER` says",
);
/// JSONL rotation size.
pub const JSONL_MAX_BYTES: Setting = flagged(
    "LLMTAP_JSONL_MAX_BYTES",
    "jsonl-max-bytes",
    Some("100MiB"),
    Kind::SizeOrOff,
    Scope::Telemetry,
    "rotate the file before it passes this size (`traces.jsonl` → `traces.jsonl.1` → …), or `off`",
);
/// Rotated JSONL files kept.
pub const JSONL_KEEP: Setting = flagged(
    "LLMTAP_JSONL_KEEP",
    "jsonl-keep",
    Some("5"),
    Kind::Count {
        min: 0,
        max: MAX_JSONL_KEEP,
    },
    Scope::Telemetry,
    "rotated files kept; the oldest is deleted (`0`: no old file kept)",
);
/// OpenAI-compatible upstream.
pub const UPSTREAM_OPENAI: Setting = flagged(
    "LLMTAP_UPSTREAM_OPENAI",
    "upstream-openai",
    Some("https://api.openai.com"),
    Kind::Url,
    Scope::Proxy,
    "OpenAI-compatible upstream (may carry a path prefix, e.g. `https://openrouter.ai/api`)",
);
/// Anthropic upstream.
pub const UPSTREAM_ANTHROPIC: Setting = flagged(
    "LLMTAP_UPSTREAM_ANTHROPIC",
    "upstream-anthropic",
    Some("https://api.anthropic.com"),
    Kind::Url,
    Scope::Proxy,
    "Anthropic upstream",
);
/// Gemini upstream.
pub const UPSTREAM_GEMINI: Setting = flagged(
    "LLMTAP_UPSTREAM_GEMINI",
    "upstream-gemini",
    Some("https://generativelanguage.googleapis.com"),
    Kind::Url,
    Scope::Proxy,
    "Gemini upstream",
);
/// `gen_ai.provider.name` override.
pub const PROVIDER_OPENAI: Setting = Setting {
    default_doc: Some("derived from host"),
    ..flagged(
        "LLMTAP_PROVIDER_OPENAI",
        "provider-openai",
        None,
        Kind::Name,
        Scope::Proxy,
        "`gen_ai.provider.name` for the OpenAI-compatible upstream, instead of the one derived \
         from its host",
    )
};
/// Compatibility key sets.
pub const COMPAT: Setting = flagged(
    "LLMTAP_COMPAT",
    "compat",
    Some("none"),
    Kind::CompatList,
    Scope::Proxy,
    "extra keys for backends with their own conventions: `openinference` (Arize Phoenix), \
     `langfuse`, comma-separated; gen_ai keys are always written",
);
/// Content capture off.
pub const NO_CONTENT: Setting = flagged(
    "LLMTAP_NO_CONTENT",
    "no-content",
    Some("false"),
    Kind::Bool,
    Scope::Telemetry,
    "capture no message content, whatever `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` \
     says",
);
/// Body bytes kept for parsing.
pub const MAX_CAPTURE_BYTES: Setting = flagged(
    "LLMTAP_MAX_CAPTURE_BYTES",
    "max-capture-bytes",
    Some("8MiB"),
    Kind::Size { min: 0 },
    Scope::Telemetry,
    "bytes of one request or response body kept for parsing; past it the call is recorded \
     without its body's details (traffic is never limited; not `LLMTAP_MAX_CONTENT_BYTES`)",
);
/// Upstream header timeout.
pub const UPSTREAM_TIMEOUT_SECS: Setting = flagged(
    "LLMTAP_UPSTREAM_TIMEOUT_SECS",
    "upstream-timeout-secs",
    Some("600"),
    Kind::Secs,
    Scope::Proxy,
    "seconds to wait for an upstream's response headers (then 504)",
);
/// Upstream mid-body silence.
pub const STREAM_IDLE_TIMEOUT_SECS: Setting = flagged(
    "LLMTAP_STREAM_IDLE_TIMEOUT_SECS",
    "stream-idle-timeout-secs",
    Some("300"),
    Kind::Secs,
    Scope::Proxy,
    "seconds of upstream silence mid-body before the call ends as `upstream_timeout`",
);
/// Drain time on SIGTERM/SIGINT.
pub const SHUTDOWN_GRACE_SECS: Setting = flagged(
    "LLMTAP_SHUTDOWN_GRACE_SECS",
    "shutdown-grace-secs",
    Some("30"),
    Kind::Secs,
    Scope::Proxy,
    "drain time on SIGTERM/SIGINT; calls still open then end as `shutdown_grace_exceeded` and \
     the process exits",
);
/// Model calls in flight before new ones are refused.
pub const MAX_IN_FLIGHT: Setting = flagged(
    "LLMTAP_MAX_IN_FLIGHT",
    "max-in-flight",
    Some("2048"),
    Kind::Count {
        min: 1,
        max: 1 << 40,
    },
    Scope::Proxy,
    "model calls in flight at once; past it, a new call gets a fast 503 with `retry-after: 1` \
     instead of queueing",
);
/// Upstream connects in progress at once, per upstream host.
pub const UPSTREAM_MAX_CONNECTING: Setting = flagged(
    "LLMTAP_UPSTREAM_MAX_CONNECTING",
    "upstream-max-connecting",
    Some("32"),
    Kind::Count {
        min: 1,
        max: 1 << 20,
    },
    Scope::Proxy,
    "upstream connects (TCP and TLS) in progress at once per upstream host; a call that finds \
     no idle connection waits for one another call frees or a connect that finishes, so a \
     burst reuses connections instead of storming",
);
/// Quiet period after which an idle agent invocation's span ends.
pub const AGENT_QUIET_SECS: Setting = flagged(
    "LLMTAP_AGENT_QUIET_SECS",
    "agent-quiet-secs",
    Some("10"),
    Kind::Secs,
    Scope::Proxy,
    "an agent invocation's `invoke_agent` span ends once the agent has had no call in flight \
     for this long (at shutdown at the latest)",
);
/// Client request-head timeout.
pub const HEADER_TIMEOUT_SECS: Setting = flagged(
    "LLMTAP_HEADER_TIMEOUT_SECS",
    "header-timeout-secs",
    Some("30"),
    Kind::Secs,
    Scope::Proxy,
    "seconds a client has to send a whole request head, counted from when the connection waits \
     for one (so it also closes idle keep-alive connections)",
);
/// Client request-body pause.
pub const BODY_TIMEOUT_SECS: Setting = flagged(
    "LLMTAP_BODY_TIMEOUT_SECS",
    "body-timeout-secs",
    Some("30"),
    Kind::Secs,
    Scope::Proxy,
    "longest pause in seconds between two reads of a request body (then 408, \
     `client_body_timeout`)",
);
/// Open client connections.
pub const MAX_CONNECTIONS: Setting = flagged(
    "LLMTAP_MAX_CONNECTIONS",
    "max-connections",
    Some("4096"),
    Kind::Count {
        min: 1,
        max: 1 << 40,
    },
    Scope::Proxy,
    "open client connections; past it, accepting waits",
);
/// Request-body bytes held across connections.
pub const MAX_BUFFERED_BYTES: Setting = flagged(
    "LLMTAP_MAX_BUFFERED_BYTES",
    "max-buffered-bytes",
    Some("64MiB"),
    Kind::Size { min: 1 },
    Scope::Proxy,
    "request-body bytes held for capture across all connections; past it, bodies pass \
     uncaptured (`capture_buffer_full`)",
);

// --- llmtap's own settings, variables only ------------------------------------------------------

/// Extra redaction regexes.
pub const REDACT_PATTERNS: Setting = Setting {
    default_doc: Some("built-in only"),
    ..var(
        "LLMTAP_REDACT_PATTERNS",
        Kind::Patterns,
        Scope::Telemetry,
        "extra redaction regexes, `;`-separated (a literal `;` is `\\x3B`)",
    )
};
/// Byte budget per content attribute.
pub const MAX_CONTENT_BYTES: Setting = Setting {
    default: Some("64KiB"),
    ..var(
        "LLMTAP_MAX_CONTENT_BYTES",
        Kind::Size {
            min: MIN_CONTENT_BYTES,
        },
        Scope::Telemetry,
        "byte budget of each captured content attribute (input messages, output messages, system \
         instructions, tool definitions), cut at a JSON value boundary; at least 64 (not \
         `LLMTAP_MAX_CAPTURE_BYTES`)",
    )
};
/// The JSONL file follows the sampler.
pub const JSONL_SAMPLED: Setting = Setting {
    default: Some("false"),
    ..var(
        "LLMTAP_JSONL_SAMPLED",
        Kind::Bool,
        Scope::Telemetry,
        "`true`: the JSONL file follows `OTEL_TRACES_SAMPLER` like OTLP; default: the file keeps \
         every call",
    )
};
/// Prices file for the cost column.
pub const PRICES: Setting = var(
    "LLMTAP_PRICES",
    Kind::Path,
    Scope::Cli,
    "a prices file replacing the bundled table (`llmtap stats`, `export`; `--prices`)",
);
/// No progress line on a terminal.
pub const NO_PROGRESS: Setting = var(
    "LLMTAP_NO_PROGRESS",
    Kind::Present,
    Scope::Cli,
    "set: readers print no progress line, even on a terminal",
);

// --- OpenTelemetry settings -------------------------------------------------------------------

/// Content capture mode, the instrumentations' variable.
pub const OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: Setting = Setting {
    default_doc: Some("on, deliberately (ADR 0010)"),
    kind: Kind::CaptureMode,
    ..otel(
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        None,
        "`NO_CONTENT`/`false` off; `SPAN_ONLY`/`SPAN_AND_EVENT`/`true` on the span; `EVENT_ONLY` \
         none on the span (llmtap emits no content events)",
    )
};
/// GenAI convention opt-in.
pub const OTEL_SEMCONV_STABILITY_OPT_IN: Setting = otel(
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    Some("v1.41"),
    "containing `gen_ai_latest_experimental`: the GenAI repository's newer names and schema URL \
     instead of v1.41's",
);
/// Generic OTLP base endpoint.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: Setting = otel(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    None,
    "forwarding on when set",
);
/// Traces endpoint, used as-is.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
/// Which trace exporters.
pub const OTEL_TRACES_EXPORTER: Setting = otel(
    "OTEL_TRACES_EXPORTER",
    Some("on when an endpoint is set"),
    "`otlp` turns forwarding on (to `http://localhost:4318`, or `:4317` for gRPC, when no \
     endpoint is set); `none` (or only exporters llmtap lacks: `console`, `zipkin`, \
     `prometheus`, …) off",
);
/// Generic protocol.
pub const OTEL_EXPORTER_OTLP_PROTOCOL: Setting = otel(
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    Some("`http/protobuf`"),
    "`grpc`, `http/protobuf`, `http/json`",
);
/// Traces protocol.
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
/// Generic headers.
pub const OTEL_EXPORTER_OTLP_HEADERS: Setting = otel(
    "OTEL_EXPORTER_OTLP_HEADERS",
    None,
    "request headers / gRPC metadata",
);
/// Traces headers.
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
/// Generic timeout (ms).
pub const OTEL_EXPORTER_OTLP_TIMEOUT: Setting = otel(
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    Some("`10000`"),
    "per-batch deadline, ms (`0`: no limit)",
);
/// Traces timeout (ms).
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT");
/// Generic compression.
pub const OTEL_EXPORTER_OTLP_COMPRESSION: Setting = otel(
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    Some("`none`"),
    "`gzip` or `none`",
);
/// Traces compression.
pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION");
/// Generic gRPC "insecure".
pub const OTEL_EXPORTER_OTLP_INSECURE: Setting = otel(
    "OTEL_EXPORTER_OTLP_INSECURE",
    Some("`false`"),
    "plain-text gRPC for an endpoint with no scheme",
);
/// Traces gRPC "insecure".
pub const OTEL_EXPORTER_OTLP_TRACES_INSECURE: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_TRACES_INSECURE");
/// Batch processor schedule delay (ms).
pub const OTEL_BSP_SCHEDULE_DELAY: Setting = otel(
    "OTEL_BSP_SCHEDULE_DELAY",
    Some("spec defaults"),
    "OTLP batching, as the OTel spec says",
);
/// Batch processor queue size.
pub const OTEL_BSP_MAX_QUEUE_SIZE: Setting = otel_twin("OTEL_BSP_MAX_QUEUE_SIZE");
/// Batch processor max batch size.
pub const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: Setting = otel_twin("OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
/// `service.name`.
pub const OTEL_SERVICE_NAME: Setting = otel(
    "OTEL_SERVICE_NAME",
    Some("`llmtap-proxy` (the SDK: `llmtap-sdk`)"),
    "resource",
);
/// `k=v,k2=v2` resource attributes.
pub const OTEL_RESOURCE_ATTRIBUTES: Setting = otel_twin("OTEL_RESOURCE_ATTRIBUTES");
/// Every sink off.
pub const OTEL_SDK_DISABLED: Setting = otel(
    "OTEL_SDK_DISABLED",
    Some("`false`"),
    "`true` turns every sink off, the JSONL file too: calls are forwarded, nothing is recorded \
     (only `true`, any case, is true)",
);
/// Which sampler.
pub const OTEL_TRACES_SAMPLER: Setting = otel(
    "OTEL_TRACES_SAMPLER",
    Some("`parentbased_always_on`"),
    "what is **forwarded** over OTLP: `always_on`, `always_off`, `traceidratio`, \
     `parentbased_*`; parent-based keeps agent trees whole",
);
/// The sampler's ratio.
pub const OTEL_TRACES_SAMPLER_ARG: Setting = otel_twin("OTEL_TRACES_SAMPLER_ARG");
/// Metrics exporter.
pub const OTEL_METRICS_EXPORTER: Setting = otel(
    "OTEL_METRICS_EXPORTER",
    Some("on with OTLP forwarding"),
    "`none` turns the gen_ai metrics off (`gen_ai.client.operation.duration`, \
     `gen_ai.client.token.usage`, `gen_ai.client.operation.time_to_first_chunk`, \
     `gen_ai.client.operation.time_per_output_chunk`); `otlp` turns them on at the spec default \
     when no endpoint is set",
);
/// Metrics endpoint, used as-is.
pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: Setting = otel(
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    Some("`…/v1/metrics` of the base endpoint, 60000 ms"),
    "the metrics' own settings, falling back to the generic exporter variables — never to \
     `_TRACES_*` (a traces-only auth header stays with traces)",
);
/// Metrics protocol.
pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL");
/// Metrics headers.
pub const OTEL_EXPORTER_OTLP_METRICS_HEADERS: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_METRICS_HEADERS");
/// Metrics timeout (ms).
pub const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT");
/// Metrics compression.
pub const OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION");
/// Metrics gRPC "insecure".
pub const OTEL_EXPORTER_OTLP_METRICS_INSECURE: Setting =
    otel_twin("OTEL_EXPORTER_OTLP_METRICS_INSECURE");
/// Metrics export interval (ms).
pub const OTEL_METRIC_EXPORT_INTERVAL: Setting = otel_twin("OTEL_METRIC_EXPORT_INTERVAL");

/// Every setting, in the order help and the README list them.
pub const ALL: &[&Setting] = &[
    &LISTEN,
    &JSONL,
    &JSONL_MAX_BYTES,
    &JSONL_KEEP,
    &UPSTREAM_OPENAI,
    &UPSTREAM_ANTHROPIC,
    &UPSTREAM_GEMINI,
    &PROVIDER_OPENAI,
    &COMPAT,
    &NO_CONTENT,
    &MAX_CAPTURE_BYTES,
    &UPSTREAM_TIMEOUT_SECS,
    &STREAM_IDLE_TIMEOUT_SECS,
    &SHUTDOWN_GRACE_SECS,
    &AGENT_QUIET_SECS,
    &MAX_IN_FLIGHT,
    &UPSTREAM_MAX_CONNECTING,
    &HEADER_TIMEOUT_SECS,
    &BODY_TIMEOUT_SECS,
    &MAX_CONNECTIONS,
    &MAX_BUFFERED_BYTES,
    &REDACT_PATTERNS,
    &MAX_CONTENT_BYTES,
    &JSONL_SAMPLED,
    &OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
    &OTEL_SEMCONV_STABILITY_OPT_IN,
    &OTEL_EXPORTER_OTLP_ENDPOINT,
    &OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    &OTEL_TRACES_EXPORTER,
    &OTEL_EXPORTER_OTLP_PROTOCOL,
    &OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    &OTEL_EXPORTER_OTLP_HEADERS,
    &OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    &OTEL_EXPORTER_OTLP_TIMEOUT,
    &OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
    &OTEL_EXPORTER_OTLP_COMPRESSION,
    &OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
    &OTEL_EXPORTER_OTLP_INSECURE,
    &OTEL_EXPORTER_OTLP_TRACES_INSECURE,
    &OTEL_BSP_SCHEDULE_DELAY,
    &OTEL_BSP_MAX_QUEUE_SIZE,
    &OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    &OTEL_SERVICE_NAME,
    &OTEL_RESOURCE_ATTRIBUTES,
    &OTEL_SDK_DISABLED,
    &OTEL_TRACES_SAMPLER,
    &OTEL_TRACES_SAMPLER_ARG,
    &OTEL_METRICS_EXPORTER,
    &OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    &OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    &OTEL_EXPORTER_OTLP_METRICS_HEADERS,
    &OTEL_EXPORTER_OTLP_METRICS_TIMEOUT,
    &OTEL_EXPORTER_OTLP_METRICS_COMPRESSION,
    &OTEL_EXPORTER_OTLP_METRICS_INSECURE,
    &OTEL_METRIC_EXPORT_INTERVAL,
    &PRICES,
    &NO_PROGRESS,
];

/// The settings `llmtap proxy` reads (its flags and its environment), in table order.
pub fn proxy_settings() -> impl Iterator<Item = &'static Setting> {
    ALL.iter()
        .copied()
        .filter(|s| matches!(s.scope, Scope::Proxy | Scope::Telemetry))
}

/// The settings `llmtap proxy` has a flag for.
pub fn proxy_flags() -> impl Iterator<Item = &'static Setting> {
    proxy_settings().filter(|s| s.flag.is_some())
}

/// One documentation row: the settings it names (the first one and its twins) and the first
/// one's help and default.
struct Row {
    settings: Vec<&'static Setting>,
}

impl Row {
    fn head(&self) -> Option<&'static Setting> {
        self.settings.first().copied()
    }
}

fn rows(settings: impl Iterator<Item = &'static Setting>) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for s in settings {
        match rows.last_mut() {
            Some(row) if s.help.is_empty() => row.settings.push(s),
            _ => rows.push(Row { settings: vec![s] }),
        }
    }
    rows
}

/// The `--help` text of a flag: its help, variable and default.
pub fn flag_help(s: &Setting) -> String {
    let mut out = format!("{} [env: {}]", plain(s.help), s.env);
    if let Some(default) = s.default_shown() {
        out.push_str(&format!(" [default: {}]", plain_default(default)));
    }
    out
}

/// Help text without Markdown emphasis (`**`), which a terminal would print as is.
fn plain(text: &str) -> String {
    text.replace("**", "")
}

/// A default as `--help` shows it: no Markdown at all (`[default: 10000]`).
fn plain_default(text: &str) -> String {
    plain(text).replace('`', "")
}

/// Column where `--help`'s environment section starts each setting's help.
const HELP_COLUMN: usize = 41;
/// Widest line of variable names before the section wraps them.
const NAMES_WIDTH: usize = 96;

/// `llmtap proxy --help`'s section on the settings read only from the environment.
pub fn env_help() -> String {
    let mut out = String::from("Also read from the environment:\n");
    for row in rows(proxy_settings().filter(|s| s.flag.is_none())) {
        let Some(head) = row.head() else { continue };
        let mut lines: Vec<String> = vec![String::new()];
        for s in &row.settings {
            let last = lines.len() - 1;
            let line = &mut lines[last];
            if line.is_empty() {
                line.push_str(s.env);
            } else if line.len() + 2 + s.env.len() > NAMES_WIDTH {
                line.push(',');
                lines.push(s.env.to_owned());
            } else {
                line.push_str(", ");
                line.push_str(s.env);
            }
        }
        let mut help = plain(head.help);
        if let Some(default) = head.default_shown() {
            help.push_str(&format!(" [default: {}]", plain_default(default)));
        }
        let single = lines.len() == 1 && lines[0].len() + 2 < HELP_COLUMN - 2;
        for (i, names) in lines.iter().enumerate() {
            if single && i == 0 {
                out.push_str(&format!(
                    "  {names:<width$}{help}\n",
                    width = HELP_COLUMN - 2
                ));
            } else {
                out.push_str(&format!("  {names}\n"));
            }
        }
        if !single {
            out.push_str(&format!("{:HELP_COLUMN$}{help}\n", ""));
        }
    }
    out
}

/// The README's environment table (Markdown): every setting `llmtap proxy` reads, one row per
/// setting and its twins.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for row in rows(proxy_settings()) {
        let Some(head) = row.head() else { continue };
        let names = row
            .settings
            .iter()
            .map(|s| match s.flag {
                Some(flag) => format!("`{}` / `--{flag}`", s.env),
                None => format!("`{}`", s.env),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let default = match (head.default_doc, head.default) {
            (Some(doc), _) => doc.to_owned(),
            (None, Some(value)) => format!("`{value}`"),
            (None, None) => "—".to_owned(),
        };
        out.push_str(&format!("| {names} | {} | {default} |\n", head.help));
    }
    out
}

/// Where the environment table sits in a README: the byte range of the first Markdown table
/// under the `## Environment` heading, from its `| variable |` header row up to and including
/// the newline that ends its last row (or to the end of the text). `None` if the README has no
/// such heading or no such table after it.
pub fn readme_table_range(readme: &str) -> Option<Range<usize>> {
    let section = readme.find("\n## Environment\n")?;
    let start = section + readme[section..].find("\n| variable |")? + 1;
    let len = readme[start..]
        .find("\n\n")
        .map_or(readme.len() - start, |n| n + 1);
    Some(start..start + len)
}

/// `readme` with its environment table ([`readme_table_range`]) replaced by
/// [`markdown_table`]; `None` if it has none.
pub fn replace_markdown_table(readme: &str) -> Option<String> {
    let range = readme_table_range(readme)?;
    let mut out = readme.to_owned();
    out.replace_range(range, &markdown_table());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_flags_follow_the_variables() {
        let mut seen = std::collections::BTreeSet::new();
        for s in ALL {
            assert!(seen.insert(s.env), "{} twice", s.env);
            assert!(
                s.env.starts_with("LLMTAP_") || s.env.starts_with("OTEL_"),
                "{}",
                s.env
            );
            if let Some(flag) = s.flag {
                let expected = s.env["LLMTAP_".len()..]
                    .to_ascii_lowercase()
                    .replace('_', "-");
                assert_eq!(flag, expected, "{}", s.env);
            }
            assert_eq!(
                s.kind == Kind::Otel,
                s.env.starts_with("OTEL_") && s.kind != Kind::CaptureMode
            );
        }
        assert!(!ALL[0].help.is_empty(), "the first row has its own help");
    }

    #[test]
    fn every_default_parses_with_its_own_parser() {
        let empty = [("", ""); 0];
        for s in ALL {
            let Some(default) = s.default else { continue };
            let ok = match s.kind {
                Kind::PathOrOff => s.read_path_or_off(None, &empty).is_ok(),
                Kind::SizeOrOff => s.read_size_or_off(None, &empty).is_ok(),
                Kind::Size { .. } => s.read_size(None, &empty).is_ok(),
                Kind::Count { .. } => s.read_count(None, &empty).is_ok(),
                Kind::Secs => s.read_secs(None, &empty).is_ok(),
                Kind::Bool => s.read_bool(false, &empty).is_ok(),
                Kind::CompatList => crate::compat::Compat::parse(default).is_ok(),
                Kind::Listen | Kind::Url | Kind::Name => true,
                _ => false,
            };
            assert!(ok, "{}: default {default:?}", s.env);
        }
        let empty = [("", ""); 0];
        assert_eq!(
            MAX_CAPTURE_BYTES.read_size(None, &empty),
            Ok(DEFAULT_MAX_CAPTURE_BYTES as usize)
        );
        assert_eq!(
            MAX_CONTENT_BYTES.read_size(None, &empty),
            Ok(DEFAULT_MAX_CONTENT_BYTES as usize)
        );
        assert_eq!(
            JSONL_MAX_BYTES.read_size_or_off(None, &empty),
            Ok(Some(DEFAULT_JSONL_MAX_BYTES))
        );
        assert_eq!(
            JSONL_KEEP.read_count(None, &empty),
            Ok(DEFAULT_JSONL_KEEP as usize)
        );
    }

    #[test]
    fn flag_beats_variable_beats_default() {
        let env = [(JSONL.env, "from-env.jsonl")];
        assert_eq!(
            JSONL.read_path_or_off(Some("flag.jsonl"), &env),
            Ok(Some(PathBuf::from("flag.jsonl")))
        );
        assert_eq!(
            JSONL.read_path_or_off(None, &env),
            Ok(Some(PathBuf::from("from-env.jsonl")))
        );
        assert_eq!(
            JSONL.read_path_or_off(None, &[(JSONL.env, "  ")]),
            Ok(Some(PathBuf::from(DEFAULT_JSONL_PATH))),
            "empty is unset"
        );
    }

    #[test]
    fn off_in_any_case_is_no_file() {
        for off in ["off", "OFF", "Off", "none", "NONE", "false", " False "] {
            assert_eq!(
                JSONL.read_path_or_off(None, &[(JSONL.env, off)]),
                Ok(None),
                "{off}"
            );
            assert_eq!(JSONL.read_path_or_off(Some(off), &[("", ""); 0]), Ok(None));
        }
        assert!(JSONL.read_path_or_off(Some(""), &[("", ""); 0]).is_err());
    }

    #[test]
    fn errors_are_one_line_naming_flag_and_variable() {
        let err = MAX_CAPTURE_BYTES
            .read_size(None, &[(MAX_CAPTURE_BYTES.env, "lots")])
            .expect_err("lots");
        assert_eq!(
            err.to_string(),
            "invalid value \"lots\" for --max-capture-bytes / LLMTAP_MAX_CAPTURE_BYTES: \
             expected a size such as 8388608, 8MiB or 10MB"
        );
        let err = MAX_CONTENT_BYTES
            .read_size(None, &[(MAX_CONTENT_BYTES.env, "63")])
            .expect_err("under the minimum");
        assert!(
            err.to_string().contains("for LLMTAP_MAX_CONTENT_BYTES:"),
            "{err}"
        );
        let err = UPSTREAM_OPENAI.error("http://bob:hunter2@h", "no");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn help_sections_render_every_row() {
        let help = env_help();
        for s in proxy_settings().filter(|s| s.flag.is_none()) {
            assert!(help.contains(s.env), "{}", s.env);
        }
        assert!(!help.contains("**"));
        let table = markdown_table();
        for s in proxy_settings() {
            assert!(table.contains(&format!("`{}`", s.env)), "{}", s.env);
        }
        assert!(
            !table.contains(PRICES.env),
            "other commands' settings are not the proxy's"
        );
        assert_eq!(
            flag_help(&LISTEN),
            "proxy address, `HOST:PORT`; the host may be a name (`localhost`) \
             [env: LLMTAP_LISTEN] [default: 127.0.0.1:8421]"
        );
    }

    #[test]
    fn the_readme_table_is_found_and_replaced_in_place() {
        let table = markdown_table();
        let stale =
            "| variable | meaning | default |\n|---|---|---|\n| `LLMTAP_OLD` | gone | — |\n";
        let readme = format!(
            "# x\n\n| variable | not this one |\n\n## Environment\n\nText.\n\n{stale}\nAfter.\n"
        );
        let range = readme_table_range(&readme).expect("found");
        assert_eq!(&readme[range.clone()], stale);
        let replaced = replace_markdown_table(&readme).expect("replaced");
        assert_eq!(replaced, readme.replace(stale, &table));
        assert_eq!(
            readme_table_range(&replaced),
            Some(range.start..range.start + table.len())
        );
        assert_eq!(
            replace_markdown_table(&replaced).as_deref(),
            Some(&*replaced)
        );
        // The table last in the file, with no blank line after it.
        let at_end = format!("\n## Environment\n\n{}", stale.trim_end());
        assert_eq!(
            replace_markdown_table(&at_end),
            Some(format!("\n## Environment\n\n{table}"))
        );
        // No section, or no table in it.
        assert_eq!(readme_table_range(&format!("\n## Other\n\n{stale}")), None);
        assert_eq!(
            replace_markdown_table("\n## Environment\n\nNone yet.\n"),
            None
        );
    }
}
