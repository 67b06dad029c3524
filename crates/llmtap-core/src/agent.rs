//! What an `invoke_agent` span says about its subtree, however it was recorded (the SDK's agent
//! handles, the proxy's agent spans): the usage totals and the one provider, if there is one.

use opentelemetry::KeyValue;

use crate::call::{Usage, count_value};
use crate::semconv;

/// Sums of the usage of every model call under an agent (its subtree), as written on its span.
/// A field is `None` until some call reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Sum of `gen_ai.usage.input_tokens`.
    pub input_tokens: Option<u64>,
    /// Sum of `gen_ai.usage.output_tokens`.
    pub output_tokens: Option<u64>,
    /// Sum of `gen_ai.usage.cache_read.input_tokens`.
    pub cache_read_input_tokens: Option<u64>,
    /// Sum of `gen_ai.usage.cache_creation.input_tokens` (`cache_write` in the GenAI repository).
    pub cache_write_input_tokens: Option<u64>,
    /// Sum of `gen_ai.usage.reasoning.output_tokens`.
    pub reasoning_output_tokens: Option<u64>,
}

impl UsageTotals {
    /// Adds one model call's usage.
    pub fn add(&mut self, usage: &Usage) {
        self.merge(&UsageTotals {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            cache_write_input_tokens: usage.cache_write_input_tokens,
            reasoning_output_tokens: usage.reasoning_output_tokens,
        });
    }

    /// Adds another subtree's totals (a finished child agent's).
    pub fn merge(&mut self, other: &UsageTotals) {
        let sum = |a: &mut Option<u64>, b: Option<u64>| {
            if let Some(b) = b {
                *a = Some(a.unwrap_or(0).saturating_add(b));
            }
        };
        sum(&mut self.input_tokens, other.input_tokens);
        sum(&mut self.output_tokens, other.output_tokens);
        sum(
            &mut self.cache_read_input_tokens,
            other.cache_read_input_tokens,
        );
        sum(
            &mut self.cache_write_input_tokens,
            other.cache_write_input_tokens,
        );
        sum(
            &mut self.reasoning_output_tokens,
            other.reasoning_output_tokens,
        );
    }

    /// The `llmtap.usage.total.*` attributes for the fields that are known.
    pub fn attributes(&self) -> Vec<KeyValue> {
        [
            (semconv::LLMTAP_USAGE_TOTAL_INPUT_TOKENS, self.input_tokens),
            (
                semconv::LLMTAP_USAGE_TOTAL_OUTPUT_TOKENS,
                self.output_tokens,
            ),
            (
                semconv::LLMTAP_USAGE_TOTAL_CACHE_READ_INPUT_TOKENS,
                self.cache_read_input_tokens,
            ),
            (
                semconv::LLMTAP_USAGE_TOTAL_CACHE_CREATION_INPUT_TOKENS,
                self.cache_write_input_tokens,
            ),
            (
                semconv::LLMTAP_USAGE_TOTAL_REASONING_OUTPUT_TOKENS,
                self.reasoning_output_tokens,
            ),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|n| KeyValue::new(key, count_value(n))))
        .collect()
    }
}

/// Which providers an agent's own model calls went to: semconv wants `gen_ai.provider.name` on
/// `invoke_agent` where known, and it is known only when there was exactly one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProvidersSeen {
    /// No model call yet.
    #[default]
    None,
    /// Every call so far went to this provider.
    One(String),
    /// More than one: no single `gen_ai.provider.name` describes the agent.
    Several,
}

impl ProvidersSeen {
    /// Notes one call's provider.
    pub fn note(&mut self, provider: &str) {
        *self = match std::mem::take(self) {
            ProvidersSeen::None => ProvidersSeen::One(provider.to_owned()),
            ProvidersSeen::One(p) if p == provider => ProvidersSeen::One(p),
            ProvidersSeen::One(_) | ProvidersSeen::Several => ProvidersSeen::Several,
        };
    }

    /// The one provider, if there was exactly one.
    pub fn single(&self) -> Option<&str> {
        match self {
            ProvidersSeen::One(p) => Some(p),
            ProvidersSeen::None | ProvidersSeen::Several => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_stay_unset_until_reported_and_merge_by_field() {
        let mut a = UsageTotals::default();
        a.add(&Usage {
            input_tokens: Some(10),
            output_tokens: Some(3),
            ..Usage::default()
        });
        let mut b = UsageTotals::default();
        b.add(&Usage {
            input_tokens: Some(1),
            reasoning_output_tokens: Some(2),
            ..Usage::default()
        });
        a.merge(&b);
        assert_eq!(a.input_tokens, Some(11));
        assert_eq!(a.output_tokens, Some(3));
        assert_eq!(a.reasoning_output_tokens, Some(2));
        assert_eq!(a.cache_read_input_tokens, None);
        assert_eq!(a.attributes().len(), 3);
    }

    #[test]
    fn one_provider_or_none() {
        let mut seen = ProvidersSeen::default();
        assert_eq!(seen.single(), None);
        seen.note("openai");
        seen.note("openai");
        assert_eq!(seen.single(), Some("openai"));
        seen.note("anthropic");
        assert_eq!(seen.single(), None);
        seen.note("openai");
        assert_eq!(seen.single(), None);
    }
}
