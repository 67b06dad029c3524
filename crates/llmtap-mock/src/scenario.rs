//! Scripted faults, chosen per request so one mock serves every test case at once.
//!
//! A scenario comes from the `x-mock-scenario` request header (the proxy forwards it unchanged) or,
//! for curl and SDK users who cannot add headers easily, from the request's `model` field. Several
//! steps combine with commas: `slow:20,hangup-after:3`.

use std::time::Duration;

/// Request header that selects a [`Scenario`].
pub const SCENARIO_HEADER: &str = "x-mock-scenario";

/// The faults and pacing one request asks for. The default is a well-behaved answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    /// Answer with this HTTP status and an OpenAI-shaped error body (`error:<status>`).
    pub error_status: Option<u16>,
    /// Send the head, then close the connection after this many SSE events, without `[DONE]`
    /// (`hangup-after:<n>`). A non-streaming answer is cut in the middle of its JSON instead.
    pub hangup_after: Option<usize>,
    /// Accept the request and never answer (`hang`); only [`crate::MockUpstream::shutdown`] ends it.
    pub hang: bool,
    /// Extra delay between SSE events (`slow:<ms>`).
    pub chunk_delay: Option<Duration>,
    /// Extra delay before the response head (`delay:<ms>`).
    pub head_delay: Option<Duration>,
    /// A 200 whose body is not valid JSON (`malformed-json`); in a stream, one event's data is broken.
    pub malformed_json: bool,
    /// An event stream whose framing is broken (`malformed-sse`), even for a non-streaming request.
    pub malformed_sse: bool,
    /// An in-stream `data: {"error":...}` event after the first content, then the stream ends
    /// (`stream-error`). A non-streaming request gets a 500 instead.
    pub stream_error: bool,
    /// Number of content pieces a stream is split into (`chunks:<n>`), overriding the config.
    pub chunks: Option<usize>,
    /// End the body this long after its last event, in a later segment, as real servers do over
    /// a network (`end-delay:<ms>`). A whole JSON answer is then sent chunked.
    pub end_delay: Option<Duration>,
    /// Compress the answer (`encoding:gzip|deflate|br|zstd`, or `encoding:auto` to pick from the
    /// request's `accept-encoding` as real APIs do). Streams are flushed event by event.
    pub encoding: Option<EncodingChoice>,
    /// Frame the answer with both `transfer-encoding: chunked` and a `content-length`
    /// (`cl-te`), which RFC 9112 §6.3 says a recipient resolves in favour of the former.
    pub cl_te: bool,
    /// Add this many extra response headers (`headers:<n>`).
    pub extra_headers: Option<usize>,
}

/// The content coding a scenario asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingChoice {
    /// The first of br, gzip, zstd, deflate that the request's `accept-encoding` lists.
    Auto,
    /// This one, whatever the request accepts.
    Fixed(Coding),
}

/// A content coding the mock can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `gzip`
    Gzip,
    /// `deflate` (zlib-wrapped, as RFC 9110 defines it)
    Deflate,
    /// `br`
    Brotli,
    /// `zstd`
    Zstd,
}

impl Coding {
    /// The `content-encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    fn from_token(token: &str) -> Option<Self> {
        [Self::Gzip, Self::Deflate, Self::Brotli, Self::Zstd]
            .into_iter()
            .find(|c| token.trim().eq_ignore_ascii_case(c.token()))
    }

    /// What `encoding:auto` picks for an `accept-encoding` value (q=0 entries excluded).
    pub fn negotiate(accept: &str) -> Option<Self> {
        let offered: Vec<Self> = accept
            .split(',')
            .filter(|entry| {
                !entry
                    .split(';')
                    .skip(1)
                    .any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"))
            })
            .filter_map(|entry| Self::from_token(entry.split(';').next().unwrap_or_default()))
            .collect();
        [Self::Brotli, Self::Gzip, Self::Zstd, Self::Deflate]
            .into_iter()
            .find(|c| offered.contains(c))
    }
}

/// A scenario string that could not be understood. The mock answers it with a 400 so a typo in a
/// test is loud instead of silently producing a happy path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown mock scenario step `{step}` (expected error:<status>, hangup-after:<n>, hang, slow:<ms>, delay:<ms>, chunks:<n>, malformed-json, malformed-sse, stream-error, end-delay:<ms>, encoding:<gzip|deflate|br|zstd|auto>, cl-te or headers:<n>)"
)]
pub struct ScenarioError {
    /// The step that failed to parse.
    pub step: String,
}

impl Scenario {
    /// Parses a comma-separated scenario such as `slow:20,hangup-after:3`.
    pub fn parse(spec: &str) -> Result<Self, ScenarioError> {
        let mut scenario = Scenario::default();
        for step in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            scenario.apply_step(step)?;
        }
        Ok(scenario)
    }

    /// Whether a model name is meant as a scenario rather than a model (it starts with one of the
    /// scenario keywords), so `"model": "error:429"` works from any SDK.
    pub fn looks_like_scenario(model: &str) -> bool {
        let head = model.split([',', ':']).next().unwrap_or_default();
        matches!(
            head,
            "error"
                | "hangup-after"
                | "hang"
                | "slow"
                | "delay"
                | "chunks"
                | "malformed-json"
                | "malformed-sse"
                | "stream-error"
                | "end-delay"
                | "encoding"
                | "cl-te"
                | "headers"
        )
    }

    /// Adds the steps of `other` on top of `self` (header first, model name second).
    pub fn merge(&mut self, other: Scenario) {
        self.error_status = self.error_status.or(other.error_status);
        self.hangup_after = self.hangup_after.or(other.hangup_after);
        self.hang |= other.hang;
        self.chunk_delay = self.chunk_delay.or(other.chunk_delay);
        self.head_delay = self.head_delay.or(other.head_delay);
        self.malformed_json |= other.malformed_json;
        self.malformed_sse |= other.malformed_sse;
        self.stream_error |= other.stream_error;
        self.chunks = self.chunks.or(other.chunks);
        self.end_delay = self.end_delay.or(other.end_delay);
        self.encoding = self.encoding.or(other.encoding);
        self.cl_te |= other.cl_te;
        self.extra_headers = self.extra_headers.or(other.extra_headers);
    }

    fn apply_step(&mut self, step: &str) -> Result<(), ScenarioError> {
        let bad = || ScenarioError {
            step: step.to_owned(),
        };
        let (name, arg) = match step.split_once(':') {
            Some((name, arg)) => (name.trim(), Some(arg.trim())),
            None => (step, None),
        };
        let number = |arg: Option<&str>| -> Result<u64, ScenarioError> {
            arg.and_then(|a| a.parse::<u64>().ok()).ok_or_else(bad)
        };
        match (name, arg) {
            ("error", arg) => {
                let status = number(arg)?;
                let status = u16::try_from(status).map_err(|_| bad())?;
                if !(400..=599).contains(&status) {
                    return Err(bad());
                }
                self.error_status = Some(status);
            }
            ("hangup-after", arg) => {
                self.hangup_after = Some(usize::try_from(number(arg)?).map_err(|_| bad())?);
            }
            ("hang", None) => self.hang = true,
            ("slow", arg) => self.chunk_delay = Some(Duration::from_millis(number(arg)?)),
            ("delay", arg) => self.head_delay = Some(Duration::from_millis(number(arg)?)),
            ("chunks", arg) => {
                let n = usize::try_from(number(arg)?).map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                self.chunks = Some(n);
            }
            ("malformed-json", None) => self.malformed_json = true,
            ("malformed-sse", None) => self.malformed_sse = true,
            ("stream-error", None) => self.stream_error = true,
            ("end-delay", arg) => self.end_delay = Some(Duration::from_millis(number(arg)?)),
            ("encoding", Some("auto")) => self.encoding = Some(EncodingChoice::Auto),
            ("encoding", Some(token)) => {
                let coding = Coding::from_token(token).ok_or_else(bad)?;
                self.encoding = Some(EncodingChoice::Fixed(coding));
            }
            ("cl-te", None) => self.cl_te = true,
            ("headers", arg) => {
                let n = usize::try_from(number(arg)?).map_err(|_| bad())?;
                if n > 10_000 {
                    return Err(bad());
                }
                self.extra_headers = Some(n);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_and_combinations() -> Result<(), ScenarioError> {
        let s = Scenario::parse("slow:20, hangup-after:3,delay:5,chunks:7")?;
        assert_eq!(s.chunk_delay, Some(Duration::from_millis(20)));
        assert_eq!(s.hangup_after, Some(3));
        assert_eq!(s.head_delay, Some(Duration::from_millis(5)));
        assert_eq!(s.chunks, Some(7));
        assert!(!s.hang);
        let s = Scenario::parse("error:429")?;
        assert_eq!(s.error_status, Some(429));
        let s = Scenario::parse("hang,malformed-json,malformed-sse,stream-error")?;
        assert!(s.hang && s.malformed_json && s.malformed_sse && s.stream_error);
        assert_eq!(Scenario::parse("")?, Scenario::default());
        let s = Scenario::parse("end-delay:60,encoding:br,cl-te,headers:150")?;
        assert_eq!(s.end_delay, Some(Duration::from_millis(60)));
        assert_eq!(s.encoding, Some(EncodingChoice::Fixed(Coding::Brotli)));
        assert!(s.cl_te);
        assert_eq!(s.extra_headers, Some(150));
        assert_eq!(
            Scenario::parse("encoding:auto")?.encoding,
            Some(EncodingChoice::Auto)
        );
        Ok(())
    }

    #[test]
    fn rejects_typos_and_out_of_range_values() {
        for bad in [
            "eror:429",
            "error",
            "error:200",
            "error:abc",
            "slow",
            "hang:3",
            "chunks:0",
            "encoding:lzma",
            "encoding",
            "cl-te:1",
            "headers:99999",
            "x",
        ] {
            assert!(Scenario::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn negotiates_like_a_real_api() {
        assert_eq!(Coding::negotiate("gzip, deflate"), Some(Coding::Gzip));
        assert_eq!(Coding::negotiate("gzip, deflate, br"), Some(Coding::Brotli));
        assert_eq!(Coding::negotiate("br;q=0, zstd"), Some(Coding::Zstd));
        assert_eq!(Coding::negotiate("identity"), None);
    }

    #[test]
    fn recognises_scenario_model_names() {
        assert!(Scenario::looks_like_scenario("error:429"));
        assert!(Scenario::looks_like_scenario("hang"));
        assert!(Scenario::looks_like_scenario("slow:10,hangup-after:2"));
        assert!(!Scenario::looks_like_scenario("gpt-4o-mini"));
        assert!(!Scenario::looks_like_scenario("hangman"));
    }

    #[test]
    fn header_steps_win_over_model_steps() -> Result<(), ScenarioError> {
        let mut header = Scenario::parse("error:503")?;
        header.merge(Scenario::parse("error:429,hang")?);
        assert_eq!(header.error_status, Some(503));
        assert!(header.hang);
        Ok(())
    }
}
