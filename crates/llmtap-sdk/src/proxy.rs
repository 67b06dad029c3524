//! Proxy mode: calls of any HTTP client go through `llmtap proxy`, which records the model span;
//! the SDK only adds the headers that put that span in the right place —
//! `traceparent` (the parent span), `x-llmtap-agent`, `x-llmtap-session` and
//! `x-llmtap-meta-<k>` — and records no model span of its own, so nothing is counted twice.
//! The proxy strips the `x-llmtap-*` headers before forwarding.
//!
//! ```
//! # fn demo(agent: &llmtap_sdk::AgentHandle, client: &reqwest::Client) {
//! use llmtap_sdk::proxy::RequestBuilderExt as _;
//! let request = client
//!     .post("http://127.0.0.1:8421/v1/chat/completions")
//!     .llmtap(agent); // traceparent + x-llmtap-* headers
//! # let _ = request;
//! # }
//! ```

use http::{HeaderMap, HeaderName, HeaderValue};
use llmtap_core::call::{LlmCall, Usage};
use llmtap_core::capture::CapturePolicy;
use llmtap_core::codec::{self, StreamState};
use llmtap_core::headers::{
    HEADER_AGENT, HEADER_AGENT_ID, HEADER_AGENT_SPAN, HEADER_SESSION, HEADER_TRACEPARENT,
    HEADER_TRACERESPONSE, HEADER_TRACESTATE,
};

use crate::parent::Parent;

/// Writes the proxy headers for a call made under `parent` into `headers`, replacing any values
/// already there. A root parent writes no `traceparent`; a parent with no agent writes no agent
/// headers.
pub fn inject_headers(parent: impl Into<Parent>, headers: &mut HeaderMap) {
    let parent = parent.into();
    let mut set = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    };
    if let Some(span) = parent.span_context() {
        set(
            HEADER_TRACEPARENT,
            &llmtap_core::trace_context::format_traceparent(span),
        );
        let state = span.trace_state().header();
        if !state.is_empty() {
            set(HEADER_TRACESTATE, &state);
        }
    }
    if let Some(agent) = parent.agent() {
        set(HEADER_AGENT, agent.name());
        if let Some(id) = agent.id() {
            set(HEADER_AGENT_ID, id);
        }
        // This SDK records the agent's span itself: the proxy must not add another.
        set(
            HEADER_AGENT_SPAN,
            &agent.span_context().span_id().to_string(),
        );
        if let Some(session) = agent.conversation_id() {
            set(HEADER_SESSION, session);
        }
        for (k, v) in agent.meta() {
            set(&llmtap_core::meta::header_name(k), v);
        }
    }
}

/// The proxy headers for a call made under `parent`, as a new map.
pub fn headers(parent: impl Into<Parent>) -> HeaderMap {
    let mut map = HeaderMap::new();
    inject_headers(parent, &mut map);
    map
}

/// Adds the proxy headers to a `reqwest` request.
pub trait RequestBuilderExt: Sized {
    /// The proxy headers for a call under `parent` (an agent handle, tool span, [`Parent`]).
    fn llmtap(self, parent: impl Into<Parent>) -> Self;

    /// The proxy headers for a call under the ambient context.
    fn llmtap_ambient(self) -> Self {
        self.llmtap(Parent::current())
    }
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn llmtap(self, parent: impl Into<Parent>) -> Self {
        self.headers(headers(parent))
    }
}

/// The span the proxy recorded for a call, from its response's `traceresponse` header, as a
/// parent: an agent spawned because of this answer then nests under that call (a hand-off).
pub fn traceresponse_parent(headers: &HeaderMap) -> Option<Parent> {
    let value = headers.get(HEADER_TRACERESPONSE)?.to_str().ok()?;
    Parent::from_traceparent(value).ok()
}

/// The usage a model API response body reports, decoded with the proxy's own codecs — for
/// [`crate::AgentHandle::add_usage`] in proxy mode, where the proxy's span carries the call's
/// usage and the SDK's agent spans still want it in their totals. `path` selects the codec
/// (`/v1/chat/completions`...); the body may be JSON or a complete SSE stream. `None` when the
/// path is unknown or the body names no usage.
pub fn usage_from_body(path: &str, body: &[u8]) -> Option<Usage> {
    let api = codec::route(path)?.api;
    let policy = CapturePolicy::no_content();
    let mut call = LlmCall::new(api.operation(), "");
    let looks_like_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if looks_like_json {
        codec::parse_response(api, body, &policy, &mut call).ok()?;
    } else {
        let mut state = StreamState::with_capture(api, &policy);
        state.feed(body);
        state.finish(&policy, &mut call, true);
    }
    let u = call.usage;
    (u.input_tokens.is_some() || u.output_tokens.is_some()).then_some(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Telemetry;

    #[test]
    fn headers_name_the_agent_and_its_span() {
        let t = Telemetry::disabled();
        let agent = t
            .agent("researcher-1")
            .root()
            .conversation_id("s-42")
            .meta("User-Tier", "gold")
            .start();
        let h = headers(&*agent);
        assert_eq!(h[HEADER_AGENT], "researcher-1");
        assert_eq!(h[HEADER_SESSION], "s-42");
        assert_eq!(h["x-llmtap-meta-user-tier"], "gold");
        assert_eq!(h[HEADER_TRACEPARENT].to_str().unwrap(), agent.traceparent());
        // The SDK records the agent span itself: it says so, and names it.
        assert_eq!(
            h[HEADER_AGENT_SPAN].to_str().unwrap(),
            agent.span_context().span_id().to_string()
        );
        assert_eq!(h.len(), 5);
        let with_id = t.agent("w").root().id("agent-7").start();
        assert_eq!(headers(&*with_id)[HEADER_AGENT_ID], "agent-7");
        assert!(headers(Parent::root()).is_empty());
    }

    #[test]
    fn usage_from_json_and_sse_bodies() {
        let json = br#"{"id":"x","object":"chat.completion","model":"m","choices":[],
            "usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;
        let u = usage_from_body("/v1/chat/completions", json).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(7), Some(3)));
        let sse = b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        let u = usage_from_body("/v1/chat/completions", sse).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (Some(5), Some(2)));
        assert!(usage_from_body("/v1/models", json).is_none());
    }
}
