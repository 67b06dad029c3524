//! Header handling: llmtap's own `x-llmtap-*` headers are read and stripped, hop-by-hop headers
//! are not forwarded, and W3C trace context goes in and out.
//!
//! Credentials (`authorization`, `x-api-key`, `api-key`, `x-goog-api-key`, cookies) are forwarded
//! to the upstream untouched but never read into a record: nothing in this module copies a header
//! value into telemetry except the three llmtap headers below.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::SpanContext;

/// The header names are defined once in `llmtap-core`, shared with the SDK that writes them.
pub use llmtap_core::headers::{
    HEADER_AGENT, HEADER_AGENT_ID, HEADER_AGENT_SPAN, HEADER_META_PREFIX, HEADER_PREFIX,
    HEADER_SESSION, HEADER_TRACERESPONSE,
};

/// Longest llmtap header value recorded; longer ones are cut (they are labels, not payloads).
const MAX_LABEL_BYTES: usize = 256;
/// Most `x-llmtap-meta-*` headers recorded per call (bounded attribute count).
const MAX_META: usize = 32;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus proxy credentials meant for us, never forwarded.
/// Typed names: removing by text would validate and hash each name on every call.
static HOP_BY_HOP: [HeaderName; 8] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// The llmtap headers of one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct AgentHeaders {
    pub(crate) agent_name: Option<String>,
    pub(crate) agent_id: Option<String>,
    /// The caller records the agent's span itself (`x-llmtap-agent-span`): the proxy adds none.
    pub(crate) agent_span_recorded: bool,
    pub(crate) session: Option<String>,
    pub(crate) meta: Vec<(String, String)>,
}

/// Reads the `x-llmtap-*` headers and removes them so the upstream never sees them.
pub(crate) fn take_agent_headers(headers: &mut HeaderMap) -> AgentHeaders {
    // Most calls carry none: one pass over the names instead of four lookups by text.
    if !headers
        .keys()
        .any(|name| name.as_str().starts_with(HEADER_PREFIX))
    {
        return AgentHeaders::default();
    }
    let mut out = AgentHeaders {
        agent_name: label(headers.get(HEADER_AGENT)),
        agent_id: label(headers.get(HEADER_AGENT_ID)),
        agent_span_recorded: headers.contains_key(HEADER_AGENT_SPAN),
        session: label(headers.get(HEADER_SESSION)),
        meta: Vec::new(),
    };
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(HEADER_PREFIX))
        .cloned()
        .collect();
    for name in ours {
        if let Some(key) = name.as_str().strip_prefix(HEADER_META_PREFIX)
            && out.meta.len() < MAX_META
            && !key.is_empty()
            && let Some(value) = label(headers.get(&name))
        {
            out.meta
                .push((llmtap_core::meta::normalise_key(key), value));
        }
        headers.remove(&name);
    }
    out
}

fn label(value: Option<&HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    Some(llmtap_core::utf8::prefix(text, MAX_LABEL_BYTES).to_owned())
}

/// Removes hop-by-hop headers, including any named by `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `traceresponse` value for a span: `00-<trace-id>-<span-id>-<flags>`.
pub(crate) fn traceresponse(span: &SpanContext) -> Option<HeaderValue> {
    if !span.is_valid() {
        return None;
    }
    HeaderValue::from_str(&llmtap_core::trace_context::format_traceparent(span)).ok()
}

/// Lets the OTel propagator read a `HeaderMap`.
pub(crate) struct HeaderExtractor<'a>(pub(crate) &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Lets the OTel propagator write into a `HeaderMap`.
pub(crate) struct HeaderInjector<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llmtap_headers_are_read_and_stripped() {
        let mut h = HeaderMap::new();
        h.insert(HEADER_AGENT, HeaderValue::from_static("researcher-1"));
        h.insert(HEADER_SESSION, HeaderValue::from_static("s-42"));
        h.insert("x-llmtap-meta-user-tier", HeaderValue::from_static("gold"));
        h.insert("x-llmtap-unknown", HeaderValue::from_static("x"));
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-secret"),
        );
        let got = take_agent_headers(&mut h);
        assert_eq!(got.agent_name.as_deref(), Some("researcher-1"));
        assert_eq!(got.session.as_deref(), Some("s-42"));
        assert_eq!(got.meta, vec![("user_tier".to_owned(), "gold".to_owned())]);
        assert!(h.keys().all(|k| !k.as_str().starts_with("x-llmtap-")));
        assert!(h.contains_key("authorization"), "credentials are forwarded");
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }
}
