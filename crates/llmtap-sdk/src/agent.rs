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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use llmtap_core::agent::ProvidersSeen;
use llmtap_core::call::Usage;
use llmtap_core::semconv;
use opentelemetry::trace::{
    FutureExt as _, Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
    WithContext,
};
use opentelemetry::{Context, ContextGuard, KeyValue};
use opentelemetry_sdk::trace::Span as SdkSpan;

use crate::parent::Parent;
use crate::telemetry::Telemetry;
use crate::tool::ToolBuilder;

/// Sums of the usage of every model call under an agent (its subtree), as written on its span.
pub use llmtap_core::agent::UsageTotals;

/// One atomic sum and whether anything was ever added.
#[derive(Debug, Default)]
struct Counter {
    sum: AtomicU64,
    seen: AtomicBool,
}

impl Counter {
    fn add(&self, n: Option<u64>) {
        if let Some(n) = n {
            self.sum.fetch_add(n, Ordering::Relaxed);
            self.seen.store(true, Ordering::Relaxed);
        }
    }

    fn get(&self) -> Option<u64> {
        self.seen
            .load(Ordering::Relaxed)
            .then(|| self.sum.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
struct Totals {
    input: Counter,
    output: Counter,
    cache_read: Counter,
    cache_write: Counter,
    reasoning: Counter,
}

impl Totals {
    fn add(&self, usage: &Usage) {
        self.input.add(usage.input_tokens);
        self.output.add(usage.output_tokens);
        self.cache_read.add(usage.cache_read_input_tokens);
        self.cache_write.add(usage.cache_write_input_tokens);
        self.reasoning.add(usage.reasoning_output_tokens);
    }

    fn snapshot(&self) -> UsageTotals {
        UsageTotals {
            input_tokens: self.input.get(),
            output_tokens: self.output.get(),
            cache_read_input_tokens: self.cache_read.get(),
            cache_write_input_tokens: self.cache_write.get(),
            reasoning_output_tokens: self.reasoning.get(),
        }
    }
}

/// A cloneable reference to a running agent: the parent for everything started under it, from
/// any task, thread or process. Holding one does not keep the agent's span open.
#[derive(Clone)]
pub struct AgentHandle {
    inner: Arc<AgentInner>,
}

struct AgentInner {
    telemetry: Telemetry,
    span_context: SpanContext,
    name: String,
    id: Option<String>,
    conversation_id: Option<String>,
    meta: Vec<(String, String)>,
    totals: Totals,
    /// `gen_ai.provider.name` as given to the builder; else learned from the model calls.
    provider: Option<String>,
    /// The providers of this agent's own model calls, for `gen_ai.provider.name` at its end.
    providers_seen: Mutex<ProvidersSeen>,
    /// The nearest enclosing agent: where this agent's usage also goes.
    parent: Option<AgentHandle>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("name", &self.inner.name)
            .field("id", &self.inner.id)
            .field("span_context", &self.inner.span_context)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// `gen_ai.agent.name`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `gen_ai.agent.id`, when given.
    pub fn id(&self) -> Option<&str> {
        self.inner.id.as_deref()
    }

    /// `gen_ai.conversation.id` (given or inherited from the enclosing agent).
    pub fn conversation_id(&self) -> Option<&str> {
        self.inner.conversation_id.as_deref()
    }

    /// User metadata (`llmtap.meta.<k>`), also sent as `x-llmtap-meta-<k>` in proxy mode.
    pub fn meta(&self) -> &[(String, String)] {
        &self.inner.meta
    }

    /// The agent span's context (ids and flags).
    pub fn span_context(&self) -> &SpanContext {
        &self.inner.span_context
    }

    /// The telemetry this agent records to.
    pub fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    /// The enclosing agent, if any.
    pub fn parent_agent(&self) -> Option<&AgentHandle> {
        self.inner.parent.as_ref()
    }

    /// A sub-agent of this agent.
    pub fn agent(&self, name: impl Into<String>) -> AgentBuilder {
        AgentBuilder::new(self.inner.telemetry.clone(), name.into()).parent(self)
    }

    /// A tool call of this agent.
    pub fn tool(&self, name: impl Into<String>) -> ToolBuilder {
        ToolBuilder::new(self.inner.telemetry.clone(), name.into()).parent(self)
    }

    /// This agent as a [`Parent`].
    pub fn as_parent(&self) -> Parent {
        Parent::from(self)
    }

    /// An OpenTelemetry context whose active span is this agent's and which carries this handle,
    /// so ambient lookups ([`crate::current_agent`], `tracing` spans) find it.
    pub fn context(&self) -> Context {
        Context::new()
            .with_remote_span_context(self.inner.span_context.clone())
            .with_value(self.clone())
    }

    /// Runs `future` with this agent as the ambient context (for code that does not take a
    /// handle: `tracing` spans, [`crate::agent`], [`crate::TracedClient::execute`]).
    pub fn scope<F: Future>(&self, future: F) -> WithContext<F> {
        future.with_context(self.context())
    }

    /// Makes this agent the ambient context of the current thread until the guard drops. Not for
    /// async code (the guard must not live across `.await`): use [`scope`](Self::scope) there.
    pub fn enter(&self) -> ContextGuard {
        self.context().attach()
    }

    /// `tokio::spawn` with this agent as the spawned task's ambient context.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(self.scope(future))
    }

    /// Adds one model call's usage to this agent and every agent above it. The SDK's own model
    /// calls do this themselves; use it for usage learned elsewhere (proxy mode, an in-process
    /// model), never for a call whose span already carries it under this agent.
    pub fn add_usage(&self, usage: &Usage) {
        let mut next = Some(self);
        while let Some(agent) = next {
            agent.inner.totals.add(usage);
            next = agent.inner.parent.as_ref();
        }
    }

    /// Notes the `gen_ai.provider.name` of one of this agent's own model calls: when all of
    /// them used one provider, the agent span carries it too (semconv requires it on
    /// `invoke_agent` where known). The SDK's model calls do this themselves.
    pub fn note_provider(&self, provider: &str) {
        self.inner
            .providers_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(provider);
    }

    /// `gen_ai.provider.name` for the agent span: the one given to the builder, else the one
    /// provider all its own model calls used, else none.
    pub fn provider(&self) -> Option<String> {
        if let Some(p) = &self.inner.provider {
            return Some(p.clone());
        }
        self.inner
            .providers_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .single()
            .map(str::to_owned)
    }

    /// The subtree totals so far.
    pub fn totals(&self) -> UsageTotals {
        self.inner.totals.snapshot()
    }

    /// `00-<trace-id>-<span-id>-<flags>`: hand it to another process (as `traceparent`) to make
    /// its spans children of this agent.
    pub fn traceparent(&self) -> String {
        crate::parent::format_traceparent(&self.inner.span_context)
    }

    /// The handle stored in `cx` (what [`context`](Self::context) puts there), if any.
    pub fn from_context(cx: &Context) -> Option<AgentHandle> {
        cx.get::<AgentHandle>().cloned()
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

/// A tool call of the ambient agent's telemetry (or the global one), a child of the ambient
/// context: the current agent, or a `tracing` span entered inside it.
pub fn tool(name: impl Into<String>) -> ToolBuilder {
    let telemetry = current_agent()
        .map(|a| a.inner.telemetry.clone())
        .unwrap_or_else(Telemetry::global);
    ToolBuilder::new(telemetry, name.into())
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
        self.meta.push((crate::parent::meta_key(key), value.into()));
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
