//! Bodies on both legs of the proxy.
//!
//! The response body is wrapped in [`TapBody`], which forwards every frame unchanged and hands a
//! cheap copy (a refcounted `Bytes`) to the call's recorder task over a bounded channel. Decoding
//! happens in that task, off the write path. The body's end, error or drop is the call's outcome,
//! delivered on a oneshot that cannot be full — so the span always learns how the call ended.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Sleep;

/// Boxed error for bodies: hyper only needs `Into<Box<dyn Error>>`.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyOutcome {
    /// Upstream sent the whole body and the client took it.
    Completed,
    /// Upstream broke the body off (connection closed or reset mid-body).
    UpstreamHangup,
    /// No chunk arrived within the idle timeout.
    IdleTimeout,
    /// The client went away before the body ended (the body was dropped unfinished).
    ClientDisconnected,
}

/// What the recorder learns when the body ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyEnd {
    pub(crate) outcome: BodyOutcome,
    pub(crate) first_chunk_at: Option<Instant>,
    pub(crate) ended_at: Instant,
    /// Chunks not copied to the recorder because its queue was full (traffic first).
    pub(crate) copies_lost: u64,
}

/// Fires once `timeout` has passed with no [`touch`](Self::touch): a body's silence limit. The
/// timer is re-armed lazily from the last touch when it fires, instead of being reset on every
/// frame (no timer-wheel work per chunk).
#[derive(Debug)]
struct IdleTimer {
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    last_activity: tokio::time::Instant,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            last_activity: tokio::time::Instant::now(),
        }
    }

    /// Something arrived: the silence starts again from now.
    fn touch(&mut self) {
        self.last_activity = tokio::time::Instant::now();
    }

    /// Ready once the silence has lasted `timeout`.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            // The timer was armed from an older touch: re-arm from the last one.
            let deadline = self.last_activity + self.timeout;
            if deadline <= tokio::time::Instant::now() {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

/// A chunk copy for the recorder.
pub(crate) type ChunkCopy = Bytes;

/// Timeout error surfaced to hyper, which aborts the client connection: the client sees a cut
/// stream, exactly what the upstream gave it.
#[derive(Debug, thiserror::Error)]
#[error("upstream sent nothing for {0:?}")]
pub(crate) struct IdleTimeout(Duration);

/// Response body that forwards upstream frames and reports copies and the outcome.
#[derive(Debug)]
pub(crate) struct TapBody {
    inner: Incoming,
    copies: Option<mpsc::Sender<ChunkCopy>>,
    end: Option<oneshot::Sender<BodyEnd>>,
    idle: IdleTimer,
    first_chunk_at: Option<Instant>,
    copies_lost: u64,
}

impl TapBody {
    pub(crate) fn new(
        inner: Incoming,
        copies: mpsc::Sender<ChunkCopy>,
        end: oneshot::Sender<BodyEnd>,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            copies: Some(copies),
            end: Some(end),
            idle: IdleTimer::new(idle_timeout),
            first_chunk_at: None,
            copies_lost: 0,
        }
    }

    fn report(&mut self, outcome: BodyOutcome) {
        // Close the copy channel first so the recorder has every copy before the outcome.
        self.copies = None;
        if let Some(end) = self.end.take() {
            let _ = end.send(BodyEnd {
                outcome,
                first_chunk_at: self.first_chunk_at,
                ended_at: Instant::now(),
                copies_lost: self.copies_lost,
            });
        }
    }
}

impl Body for TapBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.end.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && !data.is_empty()
                {
                    this.first_chunk_at.get_or_insert_with(Instant::now);
                    if let Some(tx) = &this.copies
                        && tx.try_send(data.clone()).is_err()
                    {
                        this.copies_lost += 1;
                    }
                }
                this.idle.touch();
                if this.inner.is_end_stream() {
                    this.report(BodyOutcome::Completed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.report(BodyOutcome::UpstreamHangup);
                Poll::Ready(Some(Err(Box::new(err))))
            }
            Poll::Ready(None) => {
                this.report(BodyOutcome::Completed);
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                this.report(BodyOutcome::IdleTimeout);
                Poll::Ready(Some(Err(Box::new(IdleTimeout(this.idle.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TapBody {
    fn drop(&mut self) {
        // Dropped before its end: hyper only drops an unfinished body when the client is gone.
        self.report(BodyOutcome::ClientDisconnected);
    }
}

/// Every response body the proxy sends.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// A recorded upstream response.
    Tap(TapBody),
    /// An unrecorded upstream response (unknown path), forwarded as is.
    Plain(Incoming),
    /// A body the proxy made itself (errors, `/healthz`).
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            Self::Tap(body) => Pin::new(body).poll_frame(cx),
            Self::Plain(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Tap(body) => body.is_end_stream(),
            Self::Plain(body) => body.is_end_stream(),
            Self::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Tap(body) => body.size_hint(),
            Self::Plain(body) => body.size_hint(),
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// How the client's side of an upload ended, shared between the upstream body (which sees it)
/// and the handler (which classifies the upstream request's failure).
#[derive(Debug, Default)]
pub(crate) struct UploadFate(AtomicU8);

impl UploadFate {
    const OK: u8 = 0;
    const GONE: u8 = 1;
    const STALLED: u8 = 2;

    fn set(&self, fate: u8) {
        let _ = self
            .0
            .compare_exchange(Self::OK, fate, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The client's failure, if the upload failed on its side.
    pub(crate) fn client_error(&self) -> Option<UploadError> {
        match self.0.load(Ordering::Relaxed) {
            Self::GONE => Some(UploadError::ClientGone),
            Self::STALLED => Some(UploadError::Stalled),
            _ => None,
        }
    }
}

/// Why a client's upload did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadError {
    /// The client closed or reset the connection mid-body.
    ClientGone,
    /// Nothing arrived within the body timeout.
    Stalled,
}

/// The rest of a client's body, streamed upstream with the body timeout between reads.
#[derive(Debug)]
pub(crate) struct StreamedRest {
    inner: Incoming,
    idle: IdleTimer,
    fate: Arc<UploadFate>,
}

impl StreamedRest {
    pub(crate) fn new(inner: Incoming, timeout: Duration, fate: Arc<UploadFate>) -> Self {
        Self {
            inner,
            idle: IdleTimer::new(timeout),
            fate,
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.idle.touch();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.fate.set(UploadFate::GONE);
                Poll::Ready(Some(Err(Box::new(err))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.idle.poll_expired(cx));
                self.fate.set(UploadFate::STALLED);
                Poll::Ready(Some(Err(Box::new(UploadStalled(self.idle.timeout)))))
            }
        }
    }
}

/// The upload stalled past the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("client sent no body bytes for {0:?}")]
pub(crate) struct UploadStalled(Duration);

/// The body sent upstream: the request as buffered for parsing, or — when it was larger than the
/// capture budget — the buffered prefix followed by the rest of the client's body, streamed.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// Fully buffered.
    Full(Option<Bytes>),
    /// Prefix then the remaining client body.
    Chained {
        prefix: Option<Bytes>,
        rest: Box<StreamedRest>,
    },
    /// An unrecorded request's body, streamed as is.
    Plain(Incoming),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut *self {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Chained { prefix, rest } => {
                if let Some(bytes) = prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                rest.poll_frame(cx)
            }
            Self::Plain(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| Box::new(e) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Chained { prefix, rest } => prefix.is_none() && rest.inner.is_end_stream(),
            Self::Plain(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Plain(body) => body.size_hint(),
            Self::Chained { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |b| b.len() as u64);
                let inner = rest.inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}

/// Why the start of a request body could not be buffered, with what was read of it.
#[derive(Debug)]
pub(crate) struct BufferError {
    pub(crate) cause: UploadError,
    pub(crate) partial: Bytes,
}

/// Result of reading the start of a client's request body.
#[derive(Debug)]
pub(crate) struct BufferedRequest {
    /// The bytes read (the whole body unless `complete` is false).
    pub(crate) bytes: Bytes,
    /// Whether the whole body fit in the budget.
    pub(crate) complete: bool,
    /// The global capture buffer had no room: the body was not captured at all.
    pub(crate) no_room: bool,
    /// The body to send upstream.
    pub(crate) body: RequestBody,
    /// Holds this body's share of the global capture buffer until the copy is dropped.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    /// How the client's side of the upload ends (the streamed rest may still fail).
    pub(crate) fate: Arc<UploadFate>,
}

/// What bounds the read of a request's start.
#[derive(Debug, Clone)]
pub(crate) struct BufferLimits {
    /// Per-request capture budget.
    pub(crate) max_bytes: usize,
    /// Longest pause between two reads.
    pub(crate) timeout: Duration,
    /// The capture buffer shared by every connection (permits are bytes).
    pub(crate) shared: Arc<Semaphore>,
}

/// Reads the client's body up to `limits.max_bytes` bytes without ever holding more than that —
/// nor more than the shared capture buffer has room for: past either, the rest is streamed
/// upstream uncaptured. A stalled or vanished client is an error carrying what was read.
pub(crate) async fn buffer_request(
    mut body: Incoming,
    limits: &BufferLimits,
) -> Result<BufferedRequest, BufferError> {
    use http_body_util::BodyExt as _;
    let fate = Arc::new(UploadFate::default());
    let mut buf = bytes::BytesMut::new();
    let mut permit: Option<OwnedSemaphorePermit> = None;
    while !body.is_end_stream() {
        let frame = match tokio::time::timeout(limits.timeout, body.frame()).await {
            Err(_) => {
                return Err(BufferError {
                    cause: UploadError::Stalled,
                    partial: buf.freeze(),
                });
            }
            Ok(Some(Err(_))) => {
                return Err(BufferError {
                    cause: UploadError::ClientGone,
                    partial: buf.freeze(),
                });
            }
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let over_budget = buf.len() + data.len() > limits.max_bytes;
        let room = if over_budget {
            None
        } else {
            let want = u32::try_from(data.len()).unwrap_or(u32::MAX);
            Arc::clone(&limits.shared).try_acquire_many_owned(want).ok()
        };
        let Some(more) = room else {
            // Over this request's budget, or no room left in the shared buffer: what was read
            // goes first, the rest streams, nothing more is held.
            let no_room = !over_budget;
            buf.extend_from_slice(&data);
            let prefix = buf.freeze();
            return Ok(BufferedRequest {
                bytes: if no_room {
                    Bytes::new()
                } else {
                    prefix.clone()
                },
                complete: false,
                no_room,
                body: RequestBody::Chained {
                    prefix: Some(prefix),
                    rest: Box::new(StreamedRest::new(body, limits.timeout, Arc::clone(&fate))),
                },
                permit,
                fate,
            });
        };
        match permit.as_mut() {
            Some(held) => held.merge(more),
            None => permit = Some(more),
        }
        // The usual small request arrives in one frame: keep that `Bytes` as is (no copy).
        if buf.is_empty() && body.is_end_stream() {
            return Ok(BufferedRequest {
                bytes: data.clone(),
                complete: true,
                no_room: false,
                body: RequestBody::Full(Some(data)),
                permit,
                fate,
            });
        }
        buf.extend_from_slice(&data);
    }
    let bytes = buf.freeze();
    Ok(BufferedRequest {
        bytes: bytes.clone(),
        complete: true,
        no_room: false,
        body: RequestBody::Full(Some(bytes)),
        permit,
        fate,
    })
}
