//! Optional extra keys for backends that read their own conventions instead of (or besides)
//! gen_ai: OpenInference (Arize Phoenix) and Langfuse. Off by default; when on, they are added
//! next to the gen_ai attributes, which stay canonical and complete.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;

use crate::call::LlmCall;
use crate::semconv::{compat_keys, operation};

/// Which compatibility key sets to emit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compat {
    /// `openinference.span.kind`, `llm.model_name`, `llm.token_count.*`, `input.value`/`output.value`.
    pub openinference: bool,
    /// `langfuse.observation.completion_start_time`.
    pub langfuse: bool,
}

/// A compatibility list that names an unknown backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility set {name:?}: expected openinference, langfuse or none")]
pub struct CompatError {
    /// The unknown name.
    pub name: String,
}

impl Compat {
    /// Parses a comma list: `openinference`, `langfuse`, `none` (or empty).
    pub fn parse(raw: &str) -> Result<Self, CompatError> {
        let mut compat = Compat::default();
        for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "openinference" | "phoenix" => compat.openinference = true,
                "langfuse" => compat.langfuse = true,
                "none" => {}
                _ => {
                    return Err(CompatError {
                        name: name.to_owned(),
                    });
                }
            }
        }
        Ok(compat)
    }

    /// True when nothing extra is emitted.
    pub fn is_off(&self) -> bool {
        !self.openinference && !self.langfuse
    }

    /// The extra attributes for a finished model call that started at `started` (wall clock).
    pub fn attributes(&self, call: &LlmCall, started: SystemTime) -> Vec<KeyValue> {
        let mut out = Vec::new();
        if self.openinference {
            let kind = match call.operation {
                operation::EMBEDDINGS => "EMBEDDING",
                operation::INVOKE_AGENT => "AGENT",
                operation::EXECUTE_TOOL => "TOOL",
                _ => "LLM",
            };
            out.push(KeyValue::new(compat_keys::OPENINFERENCE_SPAN_KIND, kind));
            if let Some(model) = call.response.model.as_ref().or(call.request.model.as_ref()) {
                out.push(KeyValue::new(compat_keys::LLM_MODEL_NAME, model.clone()));
            }
            out.push(KeyValue::new(
                compat_keys::LLM_PROVIDER,
                call.provider.clone(),
            ));
            let (input, output) = (call.usage.input_tokens, call.usage.output_tokens);
            if let Some(n) = input {
                out.push(KeyValue::new(
                    compat_keys::LLM_TOKEN_COUNT_PROMPT,
                    to_i64(n),
                ));
            }
            if let Some(n) = output {
                out.push(KeyValue::new(
                    compat_keys::LLM_TOKEN_COUNT_COMPLETION,
                    to_i64(n),
                ));
            }
            if let (Some(i), Some(o)) = (input, output) {
                out.push(KeyValue::new(
                    compat_keys::LLM_TOKEN_COUNT_TOTAL,
                    to_i64(i.saturating_add(o)),
                ));
            }
            // Content only when it was captured (and so already redacted and budgeted).
            if let Some(text) = &call.content.input_messages {
                out.push(KeyValue::new(compat_keys::INPUT_VALUE, text.clone()));
                out.push(KeyValue::new(compat_keys::INPUT_MIME_TYPE, JSON_MIME));
            }
            if let Some(text) = &call.content.output_messages {
                out.push(KeyValue::new(compat_keys::OUTPUT_VALUE, text.clone()));
                out.push(KeyValue::new(compat_keys::OUTPUT_MIME_TYPE, JSON_MIME));
            }
        }
        if self.langfuse
            && let Some(ttft) = call.timings.time_to_first_chunk
        {
            out.push(KeyValue::new(
                compat_keys::LANGFUSE_COMPLETION_START_TIME,
                rfc3339(started + ttft),
            ));
        }
        out
    }
}

const JSON_MIME: &str = "application/json";

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds), what Langfuse parses.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:06}Z",
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semconv::provider;

    #[test]
    fn parse_lists() {
        assert_eq!(Compat::parse("").ok(), Some(Compat::default()));
        assert_eq!(
            Compat::parse("langfuse, OpenInference").ok(),
            Some(Compat {
                openinference: true,
                langfuse: true
            })
        );
        assert!(Compat::parse("datadog").is_err());
    }

    #[test]
    fn rfc3339_is_exact() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn off_by_default_and_keys_when_on() {
        let mut call = LlmCall::new(operation::CHAT, provider::OPENAI);
        call.request.model = Some("gpt-4o".into());
        call.usage.input_tokens = Some(10);
        call.usage.output_tokens = Some(5);
        call.timings.time_to_first_chunk = Some(Duration::from_millis(250));
        call.content.input_messages = Some("[]".into());
        assert!(Compat::default().attributes(&call, UNIX_EPOCH).is_empty());
        let attrs = Compat {
            openinference: true,
            langfuse: true,
        }
        .attributes(&call, UNIX_EPOCH);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(
            get(compat_keys::OPENINFERENCE_SPAN_KIND).as_deref(),
            Some("LLM")
        );
        assert_eq!(
            get(compat_keys::LLM_TOKEN_COUNT_TOTAL).as_deref(),
            Some("15")
        );
        assert_eq!(get(compat_keys::INPUT_VALUE).as_deref(), Some("[]"));
        assert_eq!(get(compat_keys::OUTPUT_VALUE), None);
        assert_eq!(
            get(compat_keys::LANGFUSE_COMPLETION_START_TIME).as_deref(),
            Some("1970-01-01T00:00:00.250000Z")
        );
    }
}
