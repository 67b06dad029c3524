//! HTTP header names shared by the two ways in: the proxy reads them, the SDK writes them. One
//! definition, so a rename can never make the SDK and the proxy talk past each other.

/// Request header: agent name of the caller (→ `gen_ai.agent.name`).
pub const HEADER_AGENT: &str = "x-llmtap-agent";
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
    let mut end = id.len().min(MAX_UPSTREAM_REQUEST_ID_BYTES);
    while end > 0 && !id.is_char_boundary(end) {
        end -= 1;
    }
    Some(id.get(..end).unwrap_or_default().to_owned())
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
}
