//! Agents: `invoke_agent {name}` spans (INTERNAL) and the handles that keep their children
//! attached wherever the work goes.
//!
//! An [`Agent`] owns its span and ends it on [`Agent::end`] or drop. An [`AgentHandle`] is the
//! cloneable, `Send + Sync + 'static` reference to it: move it into a `tokio::spawn`ed task, a
//! `std::thread`, or send it through a channel, and what it starts there is still the agent's
//! child. Ambient context (OpenTelemetry's `Context::current()`, which `tracing` spans also set
//! through the [`crate::tracing_layer`]) works too, but an explicit handle never silently loses
//! its parent where the ambient context does not travel.
//!
//! ## Token totals
//!
//! Every model call recorded under an agent adds its usage, at the moment it ends, to that agent
//! and to every agent above it (lock-free atomic adds). When an agent ends, its span gets the sums
//! as `llmtap.usage.total.*` — never as `gen_ai.usage.*`, which backends add up across spans and
//! would double count. The totals are exact for every call that ended before the agent did, which
//! is every call of a sub-agent that the agent awaited; usage of work still running after its
//! ancestor ended cannot be written onto the already-ended span.

use std::future::Future;
use std::sync::{Arc, Mutex};

use llmtap_core::semconv;
use opentelemetry::trace::{FutureExt as _, Span as _, SpanKind, Status, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::Span as SdkSpan;

use crate::handle::{AgentHandle, AgentInner, ProvidersSeen, Totals};
use crate::parent::Parent;
use crate::telemetry::Telemetry;

impl From<&crate::agent::Agent> for Parent {
    fn from(agent: &crate::agent::Agent) -> Self {
        Self::from(agent.handle())
    }
}

impl AgentHandle {
    /// A sub-agent of this agent.
    pub fn agent(&self, name: impl Into<String>) -> AgentBuilder {
        AgentBuilder::new(self.inner.telemetry.clone(), name.into()).parent(self)
    }
}

/// The agent found in the ambient OpenTelemetry context, if any (see [`AgentHandle::scope`]).
pub fn current_agent() -> Option<AgentHandle> {
    AgentHandle::from_context(&Context::current())
}

/// An agent of the ambient agent's telemetry (or the global one from [`crate::init`]): a child
/// of the ambient context, or a root when there is none.
pub fn agent(name: impl Into<String>) -> AgentBuilder {
    let telemetry = current_agent()
        .map(|a| a.inner.telemetry.clone())
        .unwrap_or_else(Telemetry::global);
    AgentBuilder::new(telemetry, name.into())
}

/// `tokio::spawn` that carries the ambient context (and so the current agent) into the task.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.with_context(Context::current()))
}

#[derive(Debug, Clone)]
enum ParentChoice {
    Ambient,
    Explicit(Parent),
}

/// Configures an agent before its span starts. The parent is, in order: the one given with
/// [`parent`](Self::parent) (or [`root`](Self::root)), else the ambient context.
#[derive(Debug)]
#[must_use = "an agent is recorded only once started"]
pub struct AgentBuilder {
    telemetry: Telemetry,
    name: String,
    id: Option<String>,
    description: Option<String>,
    provider: Option<String>,
    conversation_id: Option<String>,
    meta: Vec<(String, String)>,
    attributes: Vec<KeyValue>,
    parent: ParentChoice,
}

impl AgentBuilder {
    pub(crate) fn new(telemetry: Telemetry, name: String) -> Self {
        Self {
            telemetry,
            name,
            id: None,
            description: None,
            provider: None,
            conversation_id: None,
            meta: Vec::new(),
            attributes: Vec::new(),
            parent: ParentChoice::Ambient,
        }
    }

    /// `gen_ai.agent.id`: a stable id of this agent instance.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// `gen_ai.agent.description`.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// `gen_ai.provider.name` of the agent (a semconv value: `openai`, `anthropic`, …), set
    /// when the span starts. Without it the agent span gets the provider of its own model calls
    /// when they all used one.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// `gen_ai.conversation.id`: a real session/thread id (never invent one). Inherited from the
    /// enclosing agent when not given.
    pub fn conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// User metadata `llmtap.meta.<key>` on this agent's span and its model calls. Keys are
    /// lower-cased and `-` becomes `_`, as the proxy reads `x-llmtap-meta-<key>`.
    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.meta
            .push((llmtap_core::meta::normalise_key(key), value.into()));
        self
    }

    /// Any other attribute, recorded as given (nothing is dropped for being undeclared).
    pub fn attribute(mut self, kv: KeyValue) -> Self {
        self.attributes.push(kv);
        self
    }

    /// The parent: an agent, tool, [`Parent::from_traceparent`]... instead of the ambient context.
    pub fn parent(mut self, parent: impl Into<Parent>) -> Self {
        self.parent = ParentChoice::Explicit(parent.into());
        self
    }

    /// A root agent (a new trace), whatever the ambient context.
    pub fn root(mut self) -> Self {
        self.parent = ParentChoice::Explicit(Parent::root());
        self
    }

    /// Starts the `invoke_agent {name}` span.
    pub fn start(self) -> Agent {
        let parent = match self.parent {
            ParentChoice::Explicit(p) => p,
            ParentChoice::Ambient => Parent::current(),
        };
        let enclosing = parent.agent().cloned();
        let conversation_id = self.conversation_id.or_else(|| {
            enclosing
                .as_ref()
                .and_then(|a| a.inner.conversation_id.clone())
        });

        let mut attrs = Vec::with_capacity(8 + self.meta.len() + self.attributes.len());
        attrs.push(KeyValue::new(
            semconv::GEN_AI_OPERATION_NAME,
            semconv::operation::INVOKE_AGENT,
        ));
        attrs.push(KeyValue::new(semconv::GEN_AI_AGENT_NAME, self.name.clone()));
        if let Some(id) = &self.id {
            attrs.push(KeyValue::new(semconv::GEN_AI_AGENT_ID, id.clone()));
        }
        if let Some(d) = &self.description {
            attrs.push(KeyValue::new(semconv::GEN_AI_AGENT_DESCRIPTION, d.clone()));
        }
        if let Some(p) = &self.provider {
            attrs.push(KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, p.clone()));
        }
        if let Some(c) = &conversation_id {
            attrs.push(KeyValue::new(semconv::GEN_AI_CONVERSATION_ID, c.clone()));
        }
        for (k, v) in &self.meta {
            attrs.push(KeyValue::new(semconv::meta_key(k), v.clone()));
        }
        attrs.extend(self.attributes);

        let tracer = self.telemetry.tracer();
        let span = tracer
            .span_builder(semconv::agent_span_name(Some(&self.name)))
            .with_kind(SpanKind::Internal)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent.otel_context());
        let handle = AgentHandle {
            inner: Arc::new(AgentInner {
                telemetry: self.telemetry,
                span_context: span.span_context().clone(),
                name: self.name,
                id: self.id,
                conversation_id,
                meta: self.meta,
                totals: Totals::default(),
                provider: self.provider,
                providers_seen: Mutex::new(ProvidersSeen::None),
                parent: enclosing,
            }),
        };
        Agent {
            handle,
            span: Some(span),
            error: None,
        }
    }
}

/// A running agent: owns the `invoke_agent` span, which ends (with the subtree's token totals)
/// on [`end`](Self::end) or drop. Derefs to its [`AgentHandle`].
#[derive(Debug)]
pub struct Agent {
    handle: AgentHandle,
    span: Option<SdkSpan>,
    error: Option<String>,
}

impl Agent {
    /// A cloneable handle for sub-agents, tools and model calls started elsewhere.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// Marks the agent failed: status Error and `error.type` (low-cardinality: an exception
    /// name, a provider code, or `_OTHER`; never free text).
    pub fn set_error(&mut self, error_type: impl Into<String>) {
        self.error = Some(error_type.into());
    }

    /// Records any attribute now (nothing is dropped for being undeclared).
    pub fn set_attribute(&mut self, kv: KeyValue) {
        if let Some(span) = self.span.as_mut() {
            span.set_attribute(kv);
        }
    }

    /// Ends the span with the subtree totals. Same as dropping, but explicit.
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        span.set_attributes(self.handle.totals().attributes());
        if self.handle.inner.provider.is_none()
            && let Some(provider) = self.handle.provider()
        {
            span.set_attribute(KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, provider));
        }
        if let Some(error) = self.error.take() {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error.clone()));
            span.set_status(Status::error(error));
        }
        span.end();
    }
}

impl std::ops::Deref for Agent {
    type Target = AgentHandle;

    fn deref(&self) -> &AgentHandle {
        &self.handle
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::UsageTotals;
    use llmtap_core::call::Usage;

    #[test]
    fn totals_add_up_the_chain_and_stay_unset_until_reported() {
        let t = Telemetry::disabled();
        let root = t.agent("root").root().start();
        let child = root.agent("child").start();
        let grandchild = child.agent("grandchild").start();
        assert_eq!(root.totals(), UsageTotals::default());
        grandchild.add_usage(&Usage {
            input_tokens: Some(10),
            output_tokens: Some(3),
            ..Usage::default()
        });
        child.add_usage(&Usage {
            input_tokens: Some(1),
            output_tokens: Some(1),
            reasoning_output_tokens: Some(1),
            ..Usage::default()
        });
        assert_eq!(grandchild.totals().input_tokens, Some(10));
        assert_eq!(grandchild.totals().reasoning_output_tokens, None);
        assert_eq!(child.totals().input_tokens, Some(11));
        assert_eq!(root.totals().output_tokens, Some(4));
        assert_eq!(root.totals().reasoning_output_tokens, Some(1));
        assert_eq!(root.totals().cache_read_input_tokens, None);
        let keys: Vec<String> = root
            .totals()
            .attributes()
            .iter()
            .map(|kv| kv.key.to_string())
            .collect();
        assert_eq!(
            keys,
            [
                semconv::LLMTAP_USAGE_TOTAL_INPUT_TOKENS,
                semconv::LLMTAP_USAGE_TOTAL_OUTPUT_TOKENS,
                semconv::LLMTAP_USAGE_TOTAL_REASONING_OUTPUT_TOKENS
            ]
        );
        assert!(!keys.iter().any(|k| k.starts_with("gen_ai.usage")));
    }

    #[test]
    fn provider_is_the_given_one_else_the_single_one_of_its_calls() {
        let t = Telemetry::disabled();
        let given = t.agent("a").root().provider("anthropic").start();
        given.note_provider("openai");
        assert_eq!(given.provider().as_deref(), Some("anthropic"));
        let learned = t.agent("b").root().start();
        assert_eq!(learned.provider(), None);
        learned.note_provider("openai");
        learned.note_provider("openai");
        assert_eq!(learned.provider().as_deref(), Some("openai"));
        learned.note_provider("gcp.gemini");
        assert_eq!(
            learned.provider(),
            None,
            "two providers: none describes the agent"
        );
    }

    #[test]
    fn children_inherit_trace_conversation_and_parent() {
        let t = Telemetry::disabled();
        let root = t.agent("root").root().conversation_id("s-1").start();
        let child = root.agent("child").start();
        assert_eq!(child.conversation_id(), Some("s-1"));
        assert_eq!(
            child.span_context().trace_id(),
            root.span_context().trace_id()
        );
        assert_eq!(child.parent_agent().map(AgentHandle::name), Some("root"));
    }

    #[test]
    fn ambient_context_is_the_default_parent() {
        let t = Telemetry::disabled();
        let root = t.agent("root").root().start();
        let inner = {
            let _g = root.enter();
            assert_eq!(
                current_agent().map(|a| a.name().to_owned()).as_deref(),
                Some("root")
            );
            agent("ambient").start()
        };
        assert_eq!(inner.parent_agent().map(AgentHandle::name), Some("root"));
        assert!(current_agent().is_none());
    }
}
