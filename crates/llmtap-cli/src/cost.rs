//! What a call cost, from a price table in LiteLLM's `model_prices_and_context_window.json`
//! format (the community-maintained one: per model `input_cost_per_token`,
//! `output_cost_per_token`, `cache_read_input_token_cost`, `cache_creation_input_token_cost`,
//! `output_cost_per_reasoning_token`, in USD per token).
//!
//! A bundled subset (OpenAI, Anthropic, Gemini) is used unless `--prices FILE` or
//! `LLMTAP_PRICES` names another file. A model the table lacks has no cost: never a guess from
//! a similar name (docs/adr/0007-cost-from-a-price-table.md).
//!
//! Money is counted in integer picodollars (10⁻¹² USD), so sums are exact and the $2/M input,
//! $8/M output, 1,000 in + 500 out call costs exactly 0.006, not 0.006000000000000001.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llmtap_core::semconv;
use serde_json::Value;

use crate::spans::SpanRecord;

/// The bundled table: a subset of LiteLLM's, its source and date in `sample_spec`.
const BUNDLED_PRICES: &str = include_str!("../prices/litellm-prices.json");
/// The environment variable naming a price table file.
pub const PRICES_ENV: &str = llmtap_core::settings::PRICES.env;
/// LiteLLM's documentation entry, not a model.
const SAMPLE_SPEC: &str = "sample_spec";
/// Picodollars per dollar.
const PICO: f64 = 1e12;
/// Largest price table file read (LiteLLM's full table is a few MiB).
const MAX_PRICES_BYTES: u64 = 64 * 1024 * 1024;

/// `--prices`, shared by every command that shows cost.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PriceArgs {
    /// Price table in LiteLLM's model_prices_and_context_window.json format
    /// [default: the bundled table]
    #[arg(long, value_name = "FILE", env = PRICES_ENV)]
    pub prices: Option<PathBuf>,
}

impl PriceArgs {
    /// The table these flags name.
    pub fn load(&self) -> Result<PriceTable, PriceError> {
        match &self.prices {
            Some(path) => PriceTable::load(path),
            None => PriceTable::bundled(),
        }
    }
}

/// Why a price table cannot be used.
#[derive(Debug)]
pub enum PriceError {
    Read { path: PathBuf, message: String },
    Invalid { source: String, message: String },
}

impl std::fmt::Display for PriceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PriceError::Read { path, message } => write!(
                f,
                "cannot read price table {} (--prices / {PRICES_ENV}): {message}",
                path.display()
            ),
            PriceError::Invalid { source, message } => write!(
                f,
                "{source} is not a LiteLLM-format price table (--prices / {PRICES_ENV}): {message}"
            ),
        }
    }
}

/// One model's rates, picodollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Cached input tokens read; the input rate when the table has none.
    pub cache_read: Option<u64>,
    /// Input tokens written to the cache; the input rate when the table has none.
    pub cache_write: Option<u64>,
    /// Reasoning output tokens; the output rate when the table has none.
    pub reasoning: Option<u64>,
}

/// Where the prices come from, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PriceSource {
    /// `bundled` or the file's path.
    pub table: String,
    /// The table's date when it says (the bundled one does).
    pub date: Option<String>,
    pub models: usize,
}

/// Model name → rates.
#[derive(Debug, Clone)]
pub struct PriceTable {
    prices: HashMap<String, Price>,
    source: PriceSource,
}

impl PriceTable {
    /// The table shipped in the binary.
    pub fn bundled() -> Result<Self, PriceError> {
        Self::parse(BUNDLED_PRICES, "bundled")
    }

    /// A table that prices nothing.
    pub fn empty() -> Self {
        Self {
            prices: HashMap::new(),
            source: PriceSource {
                table: "none".to_owned(),
                date: None,
                models: 0,
            },
        }
    }

    /// A table from a file.
    pub fn load(path: &Path) -> Result<Self, PriceError> {
        use std::io::Read as _;
        let read_error = |message: String| PriceError::Read {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
        let mut text = String::new();
        file.take(MAX_PRICES_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| read_error(e.to_string()))?;
        if text.len() as u64 > MAX_PRICES_BYTES {
            return Err(read_error(format!("larger than {MAX_PRICES_BYTES} bytes")));
        }
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses LiteLLM's format. Entries without both `input_cost_per_token` and
    /// `output_cost_per_token` (image, audio, per-second models) price nothing.
    pub fn parse(text: &str, table: &str) -> Result<Self, PriceError> {
        let invalid = |message: String| PriceError::Invalid {
            source: table.to_owned(),
            message,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(entries) = root else {
            return Err(invalid("the top level is not a JSON object".to_owned()));
        };
        let date = entries
            .get(SAMPLE_SPEC)
            .and_then(|s| s.get("llmtap_date"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut prices = HashMap::new();
        for (model, entry) in &entries {
            if model == SAMPLE_SPEC {
                continue;
            }
            let rate = |key: &str| entry.get(key).and_then(Value::as_f64).and_then(to_pico);
            let (Some(input), Some(output)) =
                (rate("input_cost_per_token"), rate("output_cost_per_token"))
            else {
                continue;
            };
            prices.insert(
                model.clone(),
                Price {
                    input,
                    output,
                    cache_read: rate("cache_read_input_token_cost"),
                    cache_write: rate("cache_creation_input_token_cost"),
                    reasoning: rate("output_cost_per_reasoning_token"),
                },
            );
        }
        let source = PriceSource {
            table: table.to_owned(),
            date,
            models: prices.len(),
        };
        Ok(Self { prices, source })
    }

    /// Where these prices come from.
    pub fn source(&self) -> &PriceSource {
        &self.source
    }

    /// The rates of the model that answered `span`, else of the one asked for: by exact name,
    /// or with LiteLLM's provider prefix for Gemini (`gemini/<model>`). Nothing else.
    pub fn price_of(&self, span: &SpanRecord) -> Option<&Price> {
        let provider = span.str_attr(semconv::GEN_AI_PROVIDER_NAME);
        let gemini = provider.is_some_and(|p| p == "gcp.gemini" || p == "gemini");
        [
            span.str_attr(semconv::GEN_AI_RESPONSE_MODEL),
            span.str_attr(semconv::GEN_AI_REQUEST_MODEL),
        ]
        .into_iter()
        .flatten()
        .find_map(|model| {
            self.prices.get(model).or_else(|| {
                gemini
                    .then(|| self.prices.get(&format!("gemini/{model}")))
                    .flatten()
            })
        })
    }

    /// The cost of one model call in picodollars: `None` when its model is not in the table or
    /// it reported no token count at all.
    pub fn cost_of(&self, span: &SpanRecord) -> Option<u128> {
        if !span.is_model_call() {
            return None;
        }
        let price = self.price_of(span)?;
        let input = span.u64_attr(semconv::GEN_AI_USAGE_INPUT_TOKENS);
        let output = span.u64_attr(semconv::GEN_AI_USAGE_OUTPUT_TOKENS);
        if input.is_none() && output.is_none() {
            return None;
        }
        Some(
            price.cost(Usage {
                input: input.unwrap_or(0),
                output: output.unwrap_or(0),
                cache_read: span
                    .u64_attr(semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
                    .unwrap_or(0),
                cache_write: span
                    .u64_attr(semconv::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)
                    .unwrap_or(0),
                reasoning: span
                    .u64_attr(semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)
                    .unwrap_or(0),
            }),
        )
    }
}

/// Token counts as the conventions define them: input includes cached reads and writes, output
/// includes reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl Price {
    /// Picodollars for `usage`: each subset at its own rate (else the input or output rate),
    /// the rest of input and output at theirs. Subsets larger than their total are capped.
    pub fn cost(&self, usage: Usage) -> u128 {
        let cache_read = usage.cache_read.min(usage.input);
        let cache_write = usage.cache_write.min(usage.input - cache_read);
        let plain_input = usage.input - cache_read - cache_write;
        let (reasoning, plain_output) = match self.reasoning {
            Some(_) => {
                let r = usage.reasoning.min(usage.output);
                (r, usage.output - r)
            }
            None => (0, usage.output),
        };
        let at = |tokens: u64, rate: u64| u128::from(tokens) * u128::from(rate);
        at(plain_input, self.input)
            + at(cache_read, self.cache_read.unwrap_or(self.input))
            + at(cache_write, self.cache_write.unwrap_or(self.input))
            + at(plain_output, self.output)
            + at(reasoning, self.reasoning.unwrap_or(self.output))
    }
}

/// USD per token → picodollars per token, rounded; negative, non-finite or absurd rates
/// (over $1M per token) are not prices.
fn to_pico(usd_per_token: f64) -> Option<u64> {
    if !usd_per_token.is_finite() || !(0.0..=1e6).contains(&usd_per_token) {
        return None;
    }
    Some((usd_per_token * PICO).round() as u64)
}

/// Picodollars as USD (the nearest `f64`, so 6,000,000,000 prints as 0.006).
pub fn usd(picodollars: u128) -> f64 {
    picodollars as f64 / PICO
}

/// `$0.0060` for people: cents from a dollar up, four decimals from a cent, else two
/// significant digits.
pub fn format_usd(dollars: f64) -> String {
    if dollars == 0.0 {
        "$0".to_owned()
    } else if dollars >= 1.0 {
        format!("${dollars:.2}")
    } else if dollars >= 0.01 {
        format!("${dollars:.4}")
    } else {
        // Enough decimals for two significant digits.
        let decimals = (-dollars.log10()).ceil() as usize + 1;
        format!("${dollars:.decimals$}")
    }
}

/// Running cost of a set of calls: what the priced ones cost, and how many had no price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostSum {
    pub picodollars: u128,
    pub priced_calls: u64,
    pub unpriced_calls: u64,
}

impl CostSum {
    /// Adds one call's cost (`None`: no price).
    pub fn add(&mut self, cost: Option<u128>) {
        match cost {
            Some(p) => {
                self.picodollars += p;
                self.priced_calls += 1;
            }
            None => self.unpriced_calls += 1,
        }
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: CostSum) {
        self.picodollars += other.picodollars;
        self.priced_calls += other.priced_calls;
        self.unpriced_calls += other.unpriced_calls;
    }

    /// USD, or `None` when no call was priced.
    pub fn usd(&self) -> Option<f64> {
        (self.priced_calls > 0).then(|| usd(self.picodollars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::{AttrValue, SpanStatus};

    fn span(model: &str, attrs: &[(&str, i64)]) -> SpanRecord {
        let mut attributes: std::collections::BTreeMap<String, AttrValue> = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), AttrValue::Int(*v)))
            .collect();
        attributes.insert(
            semconv::GEN_AI_OPERATION_NAME.to_owned(),
            AttrValue::Str("chat".into()),
        );
        attributes.insert(
            semconv::GEN_AI_REQUEST_MODEL.to_owned(),
            AttrValue::Str(model.into()),
        );
        SpanRecord {
            trace_id: "t".into(),
            span_id: "s".into(),
            parent_span_id: String::new(),
            name: format!("chat {model}"),
            start_unix_nanos: 0,
            end_unix_nanos: 1,
            status: SpanStatus::Unset,
            service: None,
            attributes,
            content: None,
        }
    }

    const TABLE: &str = r#"{
        "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "m": {"input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06},
        "cached": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                   "cache_read_input_token_cost": 3e-07, "cache_creation_input_token_cost": 3.75e-06},
        "gemini/g": {"input_cost_per_token": 3e-07, "output_cost_per_token": 2.5e-06},
        "image-only": {"output_cost_per_image": 0.04}
    }"#;

    #[test]
    fn the_issue_example_is_exact() -> Result<(), PriceError> {
        let table = PriceTable::parse(TABLE, "t")?;
        assert_eq!(
            table.source().models,
            3,
            "sample_spec and image-only skipped"
        );
        let call = span(
            "m",
            &[
                (semconv::GEN_AI_USAGE_INPUT_TOKENS, 1000),
                (semconv::GEN_AI_USAGE_OUTPUT_TOKENS, 500),
            ],
        );
        let cost = table.cost_of(&call);
        assert_eq!(cost, Some(6_000_000_000));
        assert_eq!(cost.map(usd), Some(0.006));
        assert_eq!(format_usd(0.006), "$0.0060");
        assert_eq!(format_usd(12.345), "$12.35");
        assert_eq!(format_usd(0.000_013), "$0.000013");
        Ok(())
    }

    #[test]
    fn cached_tokens_have_their_own_rates_else_the_input_rate() -> Result<(), PriceError> {
        let table = PriceTable::parse(TABLE, "t")?;
        let usage = [
            (semconv::GEN_AI_USAGE_INPUT_TOKENS, 1000),
            (semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 600),
            (semconv::GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, 100),
            (semconv::GEN_AI_USAGE_OUTPUT_TOKENS, 10),
        ];
        // 300 × 3 µ$ + 600 × 0.3 µ$ + 100 × 3.75 µ$ + 10 × 15 µ$ = 900 + 180 + 375 + 150 µ$.
        assert_eq!(table.cost_of(&span("cached", &usage)), Some(1_605_000_000));
        // No cache rates: every input token at the input rate, 1000 × 2 µ$ + 10 × 8 µ$.
        assert_eq!(table.cost_of(&span("m", &usage)), Some(2_080_000_000));
        Ok(())
    }

    #[test]
    fn unknown_models_and_calls_without_usage_have_no_cost() -> Result<(), PriceError> {
        let table = PriceTable::parse(TABLE, "t")?;
        let usage = [(semconv::GEN_AI_USAGE_INPUT_TOKENS, 10)];
        assert_eq!(table.cost_of(&span("m-2025", &usage)), None, "no guessing");
        assert_eq!(table.cost_of(&span("image-only", &usage)), None);
        assert_eq!(table.cost_of(&span("m", &[])), None, "no usage reported");
        // Gemini models are found under LiteLLM's `gemini/` prefix, for Gemini spans only.
        let mut g = span("g", &usage);
        assert_eq!(table.cost_of(&g), None);
        g.attributes.insert(
            semconv::GEN_AI_PROVIDER_NAME.to_owned(),
            AttrValue::Str("gcp.gemini".into()),
        );
        assert_eq!(table.cost_of(&g), Some(3_000_000));
        Ok(())
    }

    #[test]
    fn bundled_table_prices_the_major_models_and_has_a_date() -> Result<(), PriceError> {
        let table = PriceTable::bundled()?;
        assert!(table.source().date.is_some());
        let one_million = [
            (semconv::GEN_AI_USAGE_INPUT_TOKENS, 1_000_000),
            (semconv::GEN_AI_USAGE_OUTPUT_TOKENS, 0),
        ];
        for model in ["gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5", "o3"] {
            assert!(
                table.cost_of(&span(model, &one_million)).is_some(),
                "{model} unpriced"
            );
        }
        assert!(PriceTable::parse("[1]", "x").is_err());
        assert!(PriceTable::parse("{", "x").is_err());
        Ok(())
    }
}
