//! [`AgentHandle`]: the cloneable reference to a running agent, and the token totals of its
//! subtree (see the [`agent`](crate::agent) module for how both are used).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use llmtap_core::call::Usage;
use opentelemetry::trace::{FutureExt as _, SpanContext, TraceContextExt as _, WithContext};
use opentelemetry::{Context, ContextGuard};

use crate::telemetry::Telemetry;

/// Which providers an agent's own model calls went to.
pub(crate) use llmtap_core::agent::ProvidersSeen;
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
pub(crate) struct Totals {
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
    pub(crate) inner: Arc<AgentInner>,
}

pub(crate) struct AgentInner {
    pub(crate) telemetry: Telemetry,
    pub(crate) span_context: SpanContext,
    pub(crate) name: String,
    pub(crate) id: Option<String>,
    pub(crate) conversation_id: Option<String>,
    pub(crate) meta: Vec<(String, String)>,
    pub(crate) totals: Totals,
    /// `gen_ai.provider.name` as given to the builder; else learned from the model calls.
    pub(crate) provider: Option<String>,
    /// The providers of this agent's own model calls, for `gen_ai.provider.name` at its end.
    pub(crate) providers_seen: Mutex<ProvidersSeen>,
    /// The nearest enclosing agent: where this agent's usage also goes.
    pub(crate) parent: Option<AgentHandle>,
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
        llmtap_core::trace_context::format_traceparent(&self.inner.span_context)
    }

    /// The handle stored in `cx` (what [`context`](Self::context) puts there), if any.
    pub fn from_context(cx: &Context) -> Option<AgentHandle> {
        cx.get::<AgentHandle>().cloned()
    }
}
