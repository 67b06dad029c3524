//! HTTP header names shared by the two ways in: the proxy reads them, the SDK writes them. One
//! definition, so a rename can never make the SDK and the proxy talk past each other.

/// Request header: agent name of the caller (→ `gen_ai.agent.name`).
pub const HEADER_AGENT: &str = "x-llmtap-agent";
/// Request header: the agent invocation's own id, when the caller has one (→ `gen_ai.agent.id`).
pub const HEADER_AGENT_ID: &str = "x-llmtap-agent-id";
/// Request header: the span id (16 hex digits) of the caller's own `invoke_agent` span for this
/// agent — an SDK that records agent spans sends it, so the proxy adds no agent span of its own.
pub const HEADER_AGENT_SPAN: &str = "x-llmtap-agent-span";
/// Request header: session / conversation id of the caller (→ `gen_ai.conversation.id`).
pub const HEADER_SESSION: &str = "x-llmtap-session";
/// Request header prefix of free-form metadata (`x-llmtap-meta-<k>` → `llmtap.meta.<k>`, with
/// `-` in `<k>` read as `_`).
pub const HEADER_META_PREFIX: &str = "x-llmtap-meta-";
/// Prefix of every llmtap request header; the proxy strips all of them before forwarding.
pub const HEADER_PREFIX: &str = "x-llmtap-";
/// W3C Trace Context request header naming the caller's span.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// W3C Trace Context vendor state that travels with [`HEADER_TRACEPARENT`].
pub const HEADER_TRACESTATE: &str = "tracestate";
/// Response header carrying the call's own span (W3C Trace Context level 2): the proxy sets it so
/// a caller can hand the call's span to the agent it spawns.
pub const HEADER_TRACERESPONSE: &str = "traceresponse";

/// Response headers in which providers name their request id (OpenAI and most compatibles,
/// Anthropic, Google, Azure API Management), in the order they are looked up.
pub const UPSTREAM_REQUEST_ID_HEADERS: [&str; 4] = [
    "x-request-id",
    "request-id",
    "x-goog-request-id",
    "apim-request-id",
];

/// Longest upstream request id recorded: it is an identifier, not a payload.
const MAX_UPSTREAM_REQUEST_ID_BYTES: usize = 128;

/// The provider's request id from a response head, for `llmtap.upstream.request_id`: the first of
/// [`UPSTREAM_REQUEST_ID_HEADERS`] present (`header` looks a name up as text), cut at a char
/// boundary to a bounded length. Shared by the proxy and the SDK so both record the same value.
pub fn upstream_request_id<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let id = UPSTREAM_REQUEST_ID_HEADERS
        .iter()
        .find_map(|name| header(name))?;
    Some(bounded_copy(id, MAX_UPSTREAM_REQUEST_ID_BYTES))
}

/// Rate-limit headers of a response head, for the `llmtap.ratelimit.*` attributes. Counts that
/// are not plain integers are left out; text values are bounded like the request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_limit: Option<u64>,
    pub requests_remaining: Option<u64>,
    pub requests_reset: Option<String>,
    pub tokens_limit: Option<u64>,
    pub tokens_remaining: Option<u64>,
    pub tokens_reset: Option<String>,
    pub retry_after: Option<String>,
}

/// Header names per field: OpenAI's (and most compatibles') first, then Anthropic's; for tokens
/// Anthropic's combined window first, then its input-token window.
const RATELIMIT_REQUESTS_LIMIT: [&str; 2] = [
    "x-ratelimit-limit-requests",
    "anthropic-ratelimit-requests-limit",
];
const RATELIMIT_REQUESTS_REMAINING: [&str; 2] = [
    "x-ratelimit-remaining-requests",
    "anthropic-ratelimit-requests-remaining",
];
const RATELIMIT_REQUESTS_RESET: [&str; 2] = [
    "x-ratelimit-reset-requests",
    "anthropic-ratelimit-requests-reset",
];
const RATELIMIT_TOKENS_LIMIT: [&str; 3] = [
    "x-ratelimit-limit-tokens",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-input-tokens-limit",
];
const RATELIMIT_TOKENS_REMAINING: [&str; 3] = [
    "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-remaining",
];
const RATELIMIT_TOKENS_RESET: [&str; 3] = [
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
];
/// Standard HTTP header a 429 or 503 carries.
const RETRY_AFTER: &str = "retry-after";
/// Longest reset or retry-after text recorded (a date or a duration, never a payload).
const MAX_RATELIMIT_TEXT_BYTES: usize = 64;

/// The rate-limit state in a response head (`header` looks a name up as text). Pure, so the
/// proxy and the SDK record the same attributes from the same headers.
pub fn rate_limit<'a>(header: impl Fn(&str) -> Option<&'a str>) -> RateLimit {
    let text = |names: &[&str]| names.iter().find_map(|name| header(name));
    let count = |names: &[&str]| text(names).and_then(|v| v.trim().parse::<u64>().ok());
    let bounded =
        |names: &[&str]| text(names).map(|v| bounded_copy(v.trim(), MAX_RATELIMIT_TEXT_BYTES));
    RateLimit {
        requests_limit: count(&RATELIMIT_REQUESTS_LIMIT),
        requests_remaining: count(&RATELIMIT_REQUESTS_REMAINING),
        requests_reset: bounded(&RATELIMIT_REQUESTS_RESET),
        tokens_limit: count(&RATELIMIT_TOKENS_LIMIT),
        tokens_remaining: count(&RATELIMIT_TOKENS_REMAINING),
        tokens_reset: bounded(&RATELIMIT_TOKENS_RESET),
        retry_after: bounded(&[RETRY_AFTER]),
    }
}

/// `text` cut at a char boundary to at most `max` bytes.
fn bounded_copy(text: &str, max: usize) -> String {
    crate::utf8::prefix(text, max).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_takes_the_first_header_and_is_bounded() {
        let headers = [("request-id", "req_b"), ("apim-request-id", "req_c")];
        let lookup = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        assert_eq!(upstream_request_id(lookup).as_deref(), Some("req_b"));
        assert_eq!(upstream_request_id(|_| None), None);
        // 1 + 200 bytes: byte 128 falls inside an `é`, so the cut steps back to 127.
        let long = format!("a{}", "é".repeat(100));
        let cut = upstream_request_id(|_| Some(long.as_str())).unwrap_or_default();
        assert_eq!(cut.len(), 127);
        assert!(long.starts_with(&cut));
        assert_eq!(upstream_request_id(|_| Some("abc")).as_deref(), Some("abc"));
    }

    #[test]
    fn rate_limit_reads_openai_and_anthropic_heads() {
        let openai = [
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", " 29000 "),
            ("x-ratelimit-reset-tokens", "2s"),
            ("retry-after", "1"),
        ];
        let lookup = |name: &str| openai.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        assert_eq!(
            rate_limit(lookup),
            RateLimit {
                requests_limit: Some(500),
                requests_remaining: Some(499),
                requests_reset: Some("120ms".into()),
                tokens_limit: Some(30000),
                tokens_remaining: Some(29000),
                tokens_reset: Some("2s".into()),
                retry_after: Some("1".into()),
            }
        );
        let anthropic = [
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-input-tokens-remaining", "7000"),
            ("anthropic-ratelimit-tokens-reset", "2026-05-01T12:00:30Z"),
            ("x-ratelimit-limit-tokens", "not a number"),
        ];
        let lookup = |name: &str| anthropic.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let got = rate_limit(lookup);
        assert_eq!(got.requests_remaining, Some(49));
        assert_eq!(got.tokens_remaining, Some(7000));
        assert_eq!(got.tokens_reset.as_deref(), Some("2026-05-01T12:00:30Z"));
        assert_eq!(
            got.tokens_limit, None,
            "a count that is not a number is left out"
        );
        assert_eq!(rate_limit(|_| None), RateLimit::default());
        let long = "9".repeat(500);
        let cut = rate_limit(|n| (n == "retry-after").then_some(long.as_str()));
        assert_eq!(cut.retry_after.map(|s| s.len()), Some(64));
    }
}
