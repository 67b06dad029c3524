//! [`AgentSpans`]: the `invoke_agent {agent}` spans of proxy-only agent trees (ADR 0014).
//!
//! A call that names its agent (`x-llmtap-agent`) belongs to one *invocation* of that agent,
//! keyed by what the call says about where it comes from:
//!
//! - with a `traceparent`: the trace, the parent span and the agent (name, and
//!   `x-llmtap-agent-id` when sent) — an agent spawned by a hand-off sends its spawner's
//!   `traceresponse` on every call, so all its calls meet here;
//! - without one: the agent and its session (`x-llmtap-session`) or id — a root agent's calls
//!   share one trace only if something says they belong together; otherwise each call is its own
//!   invocation.
//!
//! The invocation's span is the parent of the agent's model calls. An invocation spawned from a
//! call of another invocation (its parent span is that call's span) is that invocation's child:
//! it keeps its parent open and adds its usage to the parent's totals when it ends.
//!
//! An invocation ends once it has no call in flight and no open child and has been quiet for the
//! configured period — or at shutdown at the latest — with the end time of its last descendant
//! and the `llmtap.usage.total.*` of its subtree. Ending happens in one place,
//! [`Registry::end_ready`]. A caller that records its own agent span (the SDK, which sends
//! `x-llmtap-agent-span`) gets none from the proxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use llmtap_core::agent::{ProvidersSeen, UsageTotals};
use llmtap_core::call::Usage;
use llmtap_core::semconv;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceId, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};

/// Most invocations open at once; past it, new ones get no agent span (their calls are still
/// recorded, as children of their `traceparent`), so a flood of agent names cannot grow memory.
pub(crate) const MAX_OPEN_INVOCATIONS: usize = 10_000;

/// What identifies one agent invocation; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum InvocationKey {
    /// Spawned under a span of an existing trace.
    Child {
        trace: TraceId,
        parent: SpanId,
        name: String,
        id: Option<String>,
    },
    /// A root agent whose calls say they belong together (session or id).
    Root {
        name: String,
        id: Option<String>,
        session: Option<String>,
    },
    /// A root call with nothing to group it by: an invocation of its own.
    Single(u64),
}

/// What a call says about its agent.
#[derive(Debug)]
pub(crate) struct AgentCall<'a> {
    pub(crate) name: &'a str,
    pub(crate) id: Option<&'a str>,
    pub(crate) session: Option<&'a str>,
    pub(crate) meta: &'a [(String, String)],
    /// The context from the request's `traceparent` (empty when it had none).
    pub(crate) parent: &'a Context,
    /// When the call's request head arrived.
    pub(crate) started_at: SystemTime,
}

#[derive(Debug)]
struct OpenInvocation {
    span: Span,
    /// Calls in flight plus open child invocations: the invocation cannot end while non-zero.
    busy: usize,
    /// End of the latest descendant so far (the span's end time).
    last_end: SystemTime,
    /// Since when nothing happened under it (the quiet period counts from here).
    quiet_since: Instant,
    totals: UsageTotals,
    providers: ProvidersSeen,
    /// The invocation one of whose calls spawned this one.
    parent: Option<InvocationKey>,
    /// Span ids of its model calls, so invocations they spawn find their parent.
    calls: Vec<SpanId>,
}

#[derive(Debug, Default)]
struct Registry {
    open: HashMap<InvocationKey, OpenInvocation>,
    /// Model-call span → the invocation it belongs to (while that invocation is open).
    owners: HashMap<SpanId, InvocationKey>,
}

/// The open agent invocations of one proxy.
#[derive(Debug)]
pub(crate) struct AgentSpans {
    tracer: SdkTracer,
    quiet: Duration,
    registry: Mutex<Registry>,
    singles: AtomicU64,
    /// Invocations refused because [`MAX_OPEN_INVOCATIONS`] were open.
    refused: AtomicU64,
}

/// One call's share of an invocation: the parent for its model span, released when it ends.
#[derive(Debug)]
pub(crate) struct AgentLease {
    spans: Arc<AgentSpans>,
    key: InvocationKey,
    context: SpanContext,
    released: bool,
}

/// A span to end once the registry's lock is released.
struct Ending {
    span: Span,
    attributes: Vec<KeyValue>,
    at: SystemTime,
}

impl AgentSpans {
    pub(crate) fn new(tracer: SdkTracer, quiet: Duration) -> Arc<Self> {
        Arc::new(Self {
            tracer,
            quiet,
            registry: Mutex::new(Registry::default()),
            singles: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// How often [`end_quiet`](Self::end_quiet) should run.
    pub(crate) fn sweep_interval(&self) -> Duration {
        (self.quiet / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Invocations open now.
    pub(crate) fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Invocations that got no span because too many were open.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The invocation `call` belongs to, joined or started; `None` when too many are open.
    pub(crate) fn enter(self: &Arc<Self>, call: &AgentCall<'_>) -> Option<AgentLease> {
        let parent_span = call.parent.span();
        let parent = parent_span.span_context();
        let key = if parent.is_valid() {
            InvocationKey::Child {
                trace: parent.trace_id(),
                parent: parent.span_id(),
                name: call.name.to_owned(),
                id: call.id.map(str::to_owned),
            }
        } else if call.id.is_some() || call.session.is_some() {
            InvocationKey::Root {
                name: call.name.to_owned(),
                id: call.id.map(str::to_owned),
                session: call.session.map(str::to_owned),
            }
        } else {
            InvocationKey::Single(self.singles.fetch_add(1, Ordering::Relaxed))
        };
        let mut registry = self.lock();
        if let Some(open) = registry.open.get_mut(&key) {
            open.busy += 1;
            let context = open.span.span_context().clone();
            return Some(self.lease(key, context));
        }
        if registry.open.len() >= MAX_OPEN_INVOCATIONS {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let parent_key = parent
            .is_valid()
            .then(|| registry.owners.get(&parent.span_id()).cloned())
            .flatten();
        if let Some(parent_key) = &parent_key
            && let Some(parent) = registry.open.get_mut(parent_key)
        {
            parent.busy += 1;
        }
        let span = self.start_span(call);
        let context = span.span_context().clone();
        registry.open.insert(
            key.clone(),
            OpenInvocation {
                span,
                busy: 1,
                last_end: call.started_at,
                quiet_since: Instant::now(),
                totals: UsageTotals::default(),
                providers: ProvidersSeen::default(),
                parent: parent_key,
                calls: Vec::new(),
            },
        );
        Some(self.lease(key, context))
    }

    fn lease(self: &Arc<Self>, key: InvocationKey, context: SpanContext) -> AgentLease {
        AgentLease {
            spans: Arc::clone(self),
            key,
            context,
            released: false,
        }
    }

    fn start_span(&self, call: &AgentCall<'_>) -> Span {
        let mut attributes = Vec::with_capacity(4 + call.meta.len());
        attributes.push(KeyValue::new(
            semconv::GEN_AI_OPERATION_NAME,
            semconv::operation::INVOKE_AGENT,
        ));
        attributes.push(KeyValue::new(
            semconv::GEN_AI_AGENT_NAME,
            call.name.to_owned(),
        ));
        if let Some(id) = call.id {
            attributes.push(KeyValue::new(semconv::GEN_AI_AGENT_ID, id.to_owned()));
        }
        if let Some(session) = call.session {
            attributes.push(KeyValue::new(
                semconv::GEN_AI_CONVERSATION_ID,
                session.to_owned(),
            ));
        }
        for (key, value) in call.meta {
            attributes.push(KeyValue::new(semconv::meta_key(key), value.clone()));
        }
        self.tracer
            .span_builder(semconv::agent_span_name(Some(call.name)))
            .with_kind(SpanKind::Internal)
            .with_start_time(call.started_at)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, call.parent)
    }

    /// Ends every invocation that has been quiet for the period.
    pub(crate) fn end_quiet(&self) {
        let endings = self.lock().end_ready(Some(self.quiet));
        end_all_of(endings);
    }

    /// Ends every invocation (at shutdown, after the calls ended): children first, each with the
    /// end time of its last descendant.
    pub(crate) fn end_all(&self) {
        let endings = self.lock().end_ready(None);
        end_all_of(endings);
    }

    fn release(&self, key: &InvocationKey, call: Option<(&Usage, &str)>, ended: SystemTime) {
        let mut registry = self.lock();
        let Some(open) = registry.open.get_mut(key) else {
            return;
        };
        open.busy = open.busy.saturating_sub(1);
        open.last_end = open.last_end.max(ended);
        open.quiet_since = Instant::now();
        if let Some((usage, provider)) = call {
            open.totals.add(usage);
            open.providers.note(provider);
        }
    }

    fn note_call(&self, key: &InvocationKey, call: SpanId) {
        let mut registry = self.lock();
        if let Some(open) = registry.open.get_mut(key) {
            open.calls.push(call);
            registry.owners.insert(call, key.clone());
        }
    }
}

fn end_all_of(endings: Vec<Ending>) {
    for Ending {
        mut span,
        attributes,
        at,
    } in endings
    {
        span.set_attributes(attributes);
        span.end_with_timestamp(at);
    }
}

impl Registry {
    /// Takes out every invocation ready to end — idle and quiet for `quiet`, or all of them when
    /// `None` — cascading to parents that become ready, and returns their spans to end. The one
    /// place an agent span's end is decided.
    fn end_ready(&mut self, quiet: Option<Duration>) -> Vec<Ending> {
        let mut endings = Vec::new();
        loop {
            let now = Instant::now();
            let ready: Vec<InvocationKey> = self
                .open
                .iter()
                .filter(|(_, open)| {
                    open.busy == 0
                        && quiet
                            .is_none_or(|q| now.saturating_duration_since(open.quiet_since) >= q)
                })
                .map(|(key, _)| key.clone())
                .collect();
            let ready = if ready.is_empty() && quiet.is_none() {
                // At shutdown nothing may stay open, even a lease that was never released.
                self.open.keys().cloned().collect()
            } else {
                ready
            };
            if ready.is_empty() {
                return endings;
            }
            for key in ready {
                let Some(open) = self.open.remove(&key) else {
                    continue;
                };
                for call in &open.calls {
                    self.owners.remove(call);
                }
                if let Some(parent_key) = &open.parent
                    && let Some(parent) = self.open.get_mut(parent_key)
                {
                    parent.busy = parent.busy.saturating_sub(1);
                    parent.totals.merge(&open.totals);
                    parent.last_end = parent.last_end.max(open.last_end);
                    parent.quiet_since = parent.quiet_since.max(open.quiet_since);
                }
                let mut attributes = open.totals.attributes();
                if let Some(provider) = open.providers.single() {
                    attributes.push(KeyValue::new(
                        semconv::GEN_AI_PROVIDER_NAME,
                        provider.to_owned(),
                    ));
                }
                endings.push(Ending {
                    span: open.span,
                    attributes,
                    at: open.last_end,
                });
            }
        }
    }
}

impl AgentLease {
    /// The context the call's model span starts in: the invocation's span as its parent.
    pub(crate) fn parent_context(&self) -> Context {
        Context::new().with_remote_span_context(self.context.clone())
    }

    /// The call's own span, so invocations it spawns nest under this one.
    pub(crate) fn note_call(&self, call: &SpanContext) {
        self.spans.note_call(&self.key, call.span_id());
    }

    /// The call ended at `ended` with `usage`, on `provider`.
    pub(crate) fn finish(mut self, usage: &Usage, provider: &str, ended: SystemTime) {
        self.released = true;
        self.spans
            .release(&self.key, Some((usage, provider)), ended);
    }
}

impl Drop for AgentLease {
    fn drop(&mut self) {
        if !self.released {
            self.spans.release(&self.key, None, SystemTime::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

    use super::*;

    /// Keeps every exported span, in end order.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    impl Collect {
        fn get_finished_spans(&self) -> Result<Vec<SpanData>, ()> {
            Ok(self.0.lock().unwrap().clone())
        }
    }

    fn spans(quiet: Duration) -> (Arc<AgentSpans>, Collect, SdkTracerProvider) {
        let exporter = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (
            AgentSpans::new(provider.tracer("test"), quiet),
            exporter,
            provider,
        )
    }

    fn call<'a>(name: &'a str, parent: &'a Context, session: Option<&'a str>) -> AgentCall<'a> {
        AgentCall {
            name,
            id: None,
            session,
            meta: &[],
            parent,
            started_at: SystemTime::now(),
        }
    }

    fn usage(input: u64) -> Usage {
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(1),
            ..Usage::default()
        }
    }

    fn int(span: &SpanData, key: &str) -> Option<i64> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .and_then(|kv| match &kv.value {
                opentelemetry::Value::I64(n) => Some(*n),
                _ => None,
            })
    }

    /// A model call's span context under `lease` (its id is what a spawned agent's
    /// `traceparent` names).
    fn model_call(lease: &AgentLease, n: u64) -> SpanContext {
        SpanContext::new(
            lease.context.trace_id(),
            SpanId::from(n),
            lease.context.trace_flags(),
            false,
            lease.context.trace_state().clone(),
        )
    }

    #[test]
    fn a_spawned_agent_nests_keeps_its_parent_open_and_adds_its_totals() {
        let (agents, exporter, _provider) = spans(Duration::ZERO);
        let root_parent = Context::new();
        let root = agents
            .enter(&call("orchestrator", &root_parent, Some("s1")))
            .unwrap();
        let root_call = model_call(&root, 1);
        let root_trace = root.context.trace_id();
        root.note_call(&root_call);
        root.finish(&usage(10), "openai", SystemTime::now());

        // The spawned agent's calls name the orchestrator's model call as their parent.
        let handoff = Context::new().with_remote_span_context(root_call.clone());
        let child = agents.enter(&call("writer", &handoff, Some("s1"))).unwrap();
        let again = agents.enter(&call("writer", &handoff, Some("s1"))).unwrap();
        assert_eq!(
            child.context.span_id(),
            again.context.span_id(),
            "one invocation"
        );
        assert_eq!(child.context.trace_id(), root_trace);
        child.finish(&usage(5), "openai", SystemTime::now());
        agents.end_quiet();
        assert!(
            exporter.get_finished_spans().unwrap().is_empty(),
            "a call is still in flight"
        );
        let late = SystemTime::now() + Duration::from_secs(5);
        again.finish(&usage(7), "anthropic", late);
        agents.end_quiet();

        let done = exporter.get_finished_spans().unwrap();
        assert_eq!(done.len(), 2, "both ended, child first");
        assert_eq!(done[0].name, "invoke_agent writer");
        assert_eq!(done[1].name, "invoke_agent orchestrator");
        assert_eq!(done[0].parent_span_id, root_call.span_id());
        assert_eq!(
            int(&done[0], semconv::LLMTAP_USAGE_TOTAL_INPUT_TOKENS),
            Some(12)
        );
        assert_eq!(
            int(&done[1], semconv::LLMTAP_USAGE_TOTAL_INPUT_TOKENS),
            Some(22)
        );
        assert_eq!(
            done[1].end_time, late,
            "the root ends with its last descendant"
        );
        assert_eq!(done[0].end_time, late);
        let provider = |s: &SpanData| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == semconv::GEN_AI_PROVIDER_NAME)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(provider(&done[0]), None, "two providers: none");
        assert_eq!(provider(&done[1]).as_deref(), Some("openai"));
        assert_eq!(agents.open(), 0);
    }

    #[test]
    fn quiet_period_keeps_an_invocation_open_and_shutdown_ends_it() {
        let (agents, exporter, _provider) = spans(Duration::from_secs(3600));
        let none = Context::new();
        let lease = agents.enter(&call("a", &none, Some("s"))).unwrap();
        let ended = SystemTime::now();
        lease.finish(&usage(1), "openai", ended);
        agents.end_quiet();
        assert!(exporter.get_finished_spans().unwrap().is_empty());
        // Same session, same name: the same invocation while it is open.
        let second = agents.enter(&call("a", &none, Some("s"))).unwrap();
        drop(second);
        agents.end_all();
        let done = exporter.get_finished_spans().unwrap();
        assert_eq!(done.len(), 1);
        assert!(done[0].end_time >= ended);
    }

    #[test]
    fn root_calls_with_nothing_in_common_are_separate_invocations() {
        let (agents, exporter, _provider) = spans(Duration::ZERO);
        let none = Context::new();
        let a = agents.enter(&call("a", &none, None)).unwrap();
        let b = agents.enter(&call("a", &none, None)).unwrap();
        assert_ne!(a.context.trace_id(), b.context.trace_id());
        drop((a, b));
        agents.end_all();
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 2);
    }
}
