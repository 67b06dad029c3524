//! What content gets captured, how big it may get, and what is scrubbed from it.
//!
//! Environment variables:
//! - `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (case-insensitive): unset or empty → on
//!   (llmtap's deliberate default, unlike the instrumentations' `NO_CONTENT`: a recorder is
//!   pointed at traffic to see the prompts; ADR 0010). The other values keep their
//!   opentelemetry-util-genai meaning for where content goes: `SPAN_ONLY` / `SPAN_AND_EVENT` /
//!   `true` → on the span; `EVENT_ONLY` → not on the span (llmtap emits no content events, so
//!   none is recorded); `NO_CONTENT` / `false` → none. Anything else is a start-up error, the one
//!   `OTEL_*` value llmtap does not replace by a default: a mistyped "off" must not record
//!   prompts someone meant to keep out.
//! - `LLMTAP_REDACT_PATTERNS`: extra regexes (Rust `regex` syntax) separated by `;`, each match
//!   replaced by `[REDACTED:custom]`. `;` was chosen because it is rare in secrets' regexes and
//!   needs no shell quoting gymnastics; write a literal semicolon inside a pattern as `\x3B`.
//! - `LLMTAP_MAX_CONTENT_BYTES`: byte budget per content attribute (each of input messages,
//!   output messages, system instructions, tool definitions), a size like every other
//!   (`65536`, `64KiB`), default [`DEFAULT_MAX_CONTENT_BYTES`], minimum [`MIN_CONTENT_BYTES`].
//!
//! Names, defaults and parsers come from [`crate::settings`].

use crate::env::EnvSource;
use crate::redact::Redactor;
use crate::settings::{self, SettingError};

/// [`settings::OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`]'s variable.
pub const ENV_CAPTURE_CONTENT: &str =
    settings::OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.env;
/// [`settings::REDACT_PATTERNS`]'s variable.
pub const ENV_REDACT_PATTERNS: &str = settings::REDACT_PATTERNS.env;
/// [`settings::MAX_CONTENT_BYTES`]'s variable.
pub const ENV_MAX_CONTENT_BYTES: &str = settings::MAX_CONTENT_BYTES.env;

/// 64 KiB per attribute: four attributes stay well under the 1 MiB line limit of the collector's
/// `otlpjsonfile` receiver, while typical conversations fit whole.
pub const DEFAULT_MAX_CONTENT_BYTES: usize = settings::DEFAULT_MAX_CONTENT_BYTES as usize;
/// Smaller budgets could not hold even a truncation marker.
pub const MIN_CONTENT_BYTES: usize = settings::MIN_CONTENT_BYTES as usize;

/// A configuration value that can't be used. The message names the variable and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value its setting's parser refuses (names the variable, shows the value).
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error("{var} contains an invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        var: &'static str,
        pattern: String,
        reason: String,
    },
    /// This build's `regex` cannot compile a built-in pattern: recording would leak what it
    /// should redact, so nothing starts.
    #[error("built-in redaction pattern does not compile in this build ({pattern}): {reason}")]
    BuiltinPattern { pattern: String, reason: String },
}

/// Content capture settings, shared by every codec call.
#[derive(Debug, Clone)]
pub struct CapturePolicy {
    /// Record `gen_ai.{input,output}.messages`, `system_instructions`, `tool.definitions`.
    pub content: bool,
    /// Byte budget per content attribute (serialized JSON).
    pub max_content_bytes: usize,
    pub redactor: Redactor,
}

impl Default for CapturePolicy {
    /// Content on, default budget, built-in redaction.
    fn default() -> Self {
        Self {
            content: true,
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
            redactor: Redactor::new(),
        }
    }
}

impl CapturePolicy {
    /// `value` redacted and cut to `max_content_bytes`, as JSON text, and whether it was cut.
    /// The redaction skips what the cut drops, so the two only ever run together, here.
    pub fn budgeted_json(&self, mut value: serde_json::Value) -> (String, bool) {
        self.redactor
            .redact_json_within(&mut value, self.max_content_bytes);
        crate::budget::truncate_json(&value, self.max_content_bytes)
    }

    /// Content off (metadata, usage and timings are still recorded).
    pub fn no_content() -> Self {
        Self {
            content: false,
            ..Self::default()
        }
    }

    /// The start-up check of the built-in redaction patterns ([`Redactor::check_builtin`]), for
    /// every program that records content, whatever built its policy.
    pub fn check_redaction() -> Result<(), ConfigError> {
        Redactor::check_builtin().map_err(|e| ConfigError::BuiltinPattern {
            pattern: e.pattern,
            reason: e.reason,
        })
    }

    /// Reads the three variables described in the module docs. Also the start-up check of the
    /// built-in redaction patterns ([`Redactor::check_builtin`]).
    pub fn from_env(env: &impl EnvSource) -> Result<Self, ConfigError> {
        Self::check_redaction()?;
        let content = match env.non_empty(ENV_CAPTURE_CONTENT) {
            None => true,
            Some(value) => parse_capture_mode(&value).ok_or_else(|| {
                settings::OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT.invalid(&value)
            })?,
        };

        let max_content_bytes = settings::MAX_CONTENT_BYTES.read_size(None, env)?;

        let mut redactor = Redactor::new();
        if let Some(patterns) = env.non_empty(ENV_REDACT_PATTERNS) {
            redactor = redactor
                .with_extra(patterns.split(';').map(str::trim))
                .map_err(|e| ConfigError::InvalidPattern {
                    var: ENV_REDACT_PATTERNS,
                    pattern: e.pattern,
                    reason: e.reason,
                })?;
        }

        Ok(Self {
            content,
            max_content_bytes,
            redactor,
        })
    }
}

fn parse_capture_mode(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "false" | "no_content" | "event_only" => Some(false),
        "true" | "span_only" | "span_and_event" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_when_unset() {
        let env: HashMap<&str, &str> = HashMap::new();
        let p = CapturePolicy::from_env(&env).unwrap();
        assert!(p.content);
        assert_eq!(p.max_content_bytes, DEFAULT_MAX_CONTENT_BYTES);
        assert_eq!(p.redactor.extra_count(), 0);
        assert_eq!(p.redactor.redact("bob@example.com"), "[REDACTED:email]");
    }

    #[test]
    fn capture_modes() {
        for (value, on) in [
            ("", true),
            ("true", true),
            ("TRUE", true),
            ("span_only", true),
            ("SPAN_AND_EVENT", true),
            ("Event_Only", false),
            ("EVENT_ONLY", false),
            ("false", false),
            ("NO_CONTENT", false),
            (" no_content ", false),
        ] {
            let p = CapturePolicy::from_env(&[(ENV_CAPTURE_CONTENT, value)]).unwrap();
            assert_eq!(p.content, on, "{value:?}");
        }
    }

    #[test]
    fn bad_capture_mode_names_variable_and_value() {
        let err = CapturePolicy::from_env(&[(ENV_CAPTURE_CONTENT, "maybe")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(ENV_CAPTURE_CONTENT) && msg.contains("maybe"),
            "{msg}"
        );
    }

    #[test]
    fn max_bytes() {
        let p = CapturePolicy::from_env(&[(ENV_MAX_CONTENT_BYTES, "4096")]).unwrap();
        assert_eq!(p.max_content_bytes, 4096);
        let p = CapturePolicy::from_env(&[(ENV_MAX_CONTENT_BYTES, "8KiB")]).unwrap();
        assert_eq!(p.max_content_bytes, 8192, "a size like every other");
        for bad in ["12", "-1", "lots", "1.5"] {
            let err = CapturePolicy::from_env(&[(ENV_MAX_CONTENT_BYTES, bad)]).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(ENV_MAX_CONTENT_BYTES) && msg.contains(bad),
                "{msg}"
            );
        }
    }

    #[test]
    fn redact_patterns() {
        let p = CapturePolicy::from_env(&[(
            ENV_REDACT_PATTERNS,
            r"ACME-\d{4}; internal-[a-z]+ ;x\x3By",
        )])
        .unwrap();
        assert_eq!(p.redactor.extra_count(), 3);
        assert_eq!(
            p.redactor.redact("ACME-1234 internal-host x;y ok"),
            "[REDACTED:custom] [REDACTED:custom] [REDACTED:custom] ok"
        );
        let err = CapturePolicy::from_env(&[(ENV_REDACT_PATTERNS, "ok;[bad")]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(ENV_REDACT_PATTERNS) && msg.contains("[bad"),
            "{msg}"
        );
    }
}
