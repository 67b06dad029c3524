//! Proxy counters for `/healthz` and the shutdown report. Plain atomics, one per counter and
//! provider slot: no lock is shared across connections on the request path.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use llmtap_core::semconv;
use serde::Serialize;

/// Provider slots counted individually; anything else lands in `other`.
const PROVIDERS: [&str; 12] = [
    semconv::provider::OPENAI,
    semconv::provider::ANTHROPIC,
    semconv::provider::GCP_GEMINI,
    semconv::provider::GCP_VERTEX_AI,
    semconv::provider::AZURE_AI_OPENAI,
    semconv::provider::GROQ,
    semconv::provider::MISTRAL_AI,
    semconv::provider::DEEPSEEK,
    semconv::provider::X_AI,
    semconv::provider::PERPLEXITY,
    semconv::provider::COHERE,
    semconv::provider::AWS_BEDROCK,
];

/// Shared counters.
#[derive(Debug)]
pub struct ProxyStats {
    started: Instant,
    by_provider: [AtomicU64; PROVIDERS.len()],
    other_provider: AtomicU64,
    unrecorded: AtomicU64,
    upstream_errors: AtomicU64,
    calls_finished: AtomicU64,
    calls_failed: AtomicU64,
    in_flight: AtomicU64,
    limits: LimitCounters,
    /// Set when the shutdown grace ran out: calls still open end as `shutdown_grace_exceeded`.
    grace_over: AtomicBool,
    cut_by_shutdown: AtomicU64,
}

/// How often each connection-hygiene limit acted (see the README's limits table).
#[derive(Debug, Default)]
struct LimitCounters {
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    capture_buffer_full: AtomicU64,
    connection_limit_waits: AtomicU64,
    accept_errors: AtomicU64,
    calls_shed: AtomicU64,
}

/// A copy of the limit counters, in `/healthz` under `limits`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LimitsSnapshot {
    /// Connections closed because a request head (or the next one, on an idle keep-alive
    /// connection) did not arrive within the header timeout.
    pub header_timeouts: u64,
    /// Requests whose body stalled longer than the body timeout between two reads.
    pub body_timeouts: u64,
    /// Request bodies not captured because the global capture buffer was full.
    pub capture_buffer_full: u64,
    /// Accepts that waited because the connection limit was reached.
    pub connection_limit_waits: u64,
    /// Failed accepts (out of descriptors and the like), each followed by a back-off.
    pub accept_errors: u64,
    /// Model calls refused with 503 because the in-flight limit was reached.
    pub calls_shed: u64,
}

/// Which limit acted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    HeaderTimeout,
    BodyTimeout,
    CaptureBufferFull,
    ConnectionLimitWait,
    AcceptError,
    CallShed,
}

impl Default for ProxyStats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            by_provider: std::array::from_fn(|_| AtomicU64::new(0)),
            other_provider: AtomicU64::new(0),
            unrecorded: AtomicU64::new(0),
            upstream_errors: AtomicU64::new(0),
            calls_finished: AtomicU64::new(0),
            calls_failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            limits: LimitCounters::default(),
            grace_over: AtomicBool::new(false),
            cut_by_shutdown: AtomicU64::new(0),
        }
    }
}

/// A point-in-time copy of [`ProxyStats`].
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    /// Seconds since the proxy started.
    pub uptime_secs: f64,
    /// Recorded requests per `gen_ai.provider.name`.
    pub requests_by_provider: std::collections::BTreeMap<String, u64>,
    /// Requests on unknown paths, forwarded without a span.
    pub unrecorded_requests: u64,
    /// Upstream failures: unreachable, timeouts and non-2xx answers.
    pub upstream_errors: u64,
    /// Calls whose span has ended.
    pub calls_finished: u64,
    /// Of those, calls that ended with an `error.type`.
    pub calls_failed: u64,
    /// Calls whose span has not ended yet.
    pub calls_in_flight: u64,
    /// Calls ended by the end of the shutdown grace (`error.type=shutdown_grace_exceeded`).
    pub calls_cut_by_shutdown: u64,
    /// How often each connection limit acted.
    pub limits: LimitsSnapshot,
}

impl ProxyStats {
    pub(crate) fn record_request(&self, provider: &str) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        match PROVIDERS.iter().position(|p| *p == provider) {
            Some(i) => self.by_provider[i].fetch_add(1, Ordering::Relaxed),
            None => self.other_provider.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub(crate) fn record_unrecorded(&self) {
        self.unrecorded.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_call_finished(&self, failed: bool) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.calls_finished.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.calls_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_limit(&self, limit: Limit) {
        let counter = match limit {
            Limit::HeaderTimeout => &self.limits.header_timeouts,
            Limit::BodyTimeout => &self.limits.body_timeouts,
            Limit::CaptureBufferFull => &self.limits.capture_buffer_full,
            Limit::ConnectionLimitWait => &self.limits.connection_limit_waits,
            Limit::CallShed => &self.limits.calls_shed,
            Limit::AcceptError => &self.limits.accept_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// From now on, calls that end because their connection was closed were cut by shutdown.
    pub(crate) fn mark_grace_over(&self) {
        self.grace_over.store(true, Ordering::SeqCst);
    }

    /// Whether the shutdown grace has run out.
    pub(crate) fn grace_over(&self) -> bool {
        self.grace_over.load(Ordering::SeqCst)
    }

    pub(crate) fn record_cut_by_shutdown(&self) {
        self.cut_by_shutdown.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls whose span has not ended.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut by_provider = std::collections::BTreeMap::new();
        for (name, count) in PROVIDERS.iter().zip(&self.by_provider) {
            let n = count.load(Ordering::Relaxed);
            if n > 0 {
                by_provider.insert((*name).to_owned(), n);
            }
        }
        let other = self.other_provider.load(Ordering::Relaxed);
        if other > 0 {
            by_provider.insert("other".to_owned(), other);
        }
        StatsSnapshot {
            uptime_secs: self.started.elapsed().as_secs_f64(),
            requests_by_provider: by_provider,
            unrecorded_requests: self.unrecorded.load(Ordering::Relaxed),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
            calls_finished: self.calls_finished.load(Ordering::Relaxed),
            calls_failed: self.calls_failed.load(Ordering::Relaxed),
            calls_in_flight: self.in_flight.load(Ordering::Relaxed),
            calls_cut_by_shutdown: self.cut_by_shutdown.load(Ordering::Relaxed),
            limits: LimitsSnapshot {
                header_timeouts: self.limits.header_timeouts.load(Ordering::Relaxed),
                body_timeouts: self.limits.body_timeouts.load(Ordering::Relaxed),
                capture_buffer_full: self.limits.capture_buffer_full.load(Ordering::Relaxed),
                connection_limit_waits: self.limits.connection_limit_waits.load(Ordering::Relaxed),
                calls_shed: self.limits.calls_shed.load(Ordering::Relaxed),
                accept_errors: self.limits.accept_errors.load(Ordering::Relaxed),
            },
        }
    }
}
