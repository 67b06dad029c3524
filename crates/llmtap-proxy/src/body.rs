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
use llmtap_core::lifecycle::CallEnd;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Sleep;

/// Boxed error for bodies: hyper only needs `Into<Box<dyn Error>>`.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the recorder learns when the body ends: the outcome in the lifecycle's own terms
/// (`Completed`, `Truncated` by the upstream, `TimedOut` idle, `Cancelled` by the client).
#[derive(Debug, Clone)]
pub(crate) struct BodyEnd {
    pub(crate) outcome: CallEnd,
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

/// Response body that forwards upstream frames and reports copies and the outcome. Generic over
/// the upstream body only so the unit tests below can drive it with an in-memory one.
#[derive(Debug)]
pub(crate) struct TapBody<B = Incoming> {
    inner: B,
    copies: Option<mpsc::Sender<ChunkCopy>>,
    end: Option<oneshot::Sender<BodyEnd>>,
    idle: IdleTimer,
    first_chunk_at: Option<Instant>,
    copies_lost: u64,
}

impl<B> TapBody<B> {
    pub(crate) fn new(
        inner: B,
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

    fn report(&mut self, outcome: CallEnd) {
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

impl<B> Body for TapBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
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
                    this.report(CallEnd::Completed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.report(CallEnd::Truncated);
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => {
                this.report(CallEnd::Completed);
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.idle.poll_expired(cx));
                this.report(CallEnd::TimedOut);
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

impl<B> Drop for TapBody<B> {
    fn drop(&mut self) {
        // Dropped before its end: hyper only drops an unfinished body when the client is gone.
        self.report(CallEnd::Cancelled);
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

#[cfg(test)]
mod tests {
    //! The response body's state machine, driven by an in-memory upstream body: one test per
    //! outcome, and the idle timer's lazy re-arm. Time is paused, so the timers are exact.

    use std::io;

    use http_body_util::BodyExt as _;
    use tokio::time::Instant as TokioInstant;

    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    /// An upstream body fed through a channel: `Ok` bytes are data frames, `Err` breaks the body
    /// off (as a reset connection does), and dropping the sender ends it.
    struct ChannelBody(mpsc::UnboundedReceiver<io::Result<Bytes>>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|item| item.map(|r| r.map(Frame::data)))
        }
    }

    struct Harness {
        upstream: mpsc::UnboundedSender<io::Result<Bytes>>,
        body: TapBody<ChannelBody>,
        copies: mpsc::Receiver<ChunkCopy>,
        end: oneshot::Receiver<BodyEnd>,
    }

    fn harness(copy_queue: usize) -> Harness {
        let (upstream, rx) = mpsc::unbounded_channel();
        let (copies_tx, copies) = mpsc::channel(copy_queue);
        let (end_tx, end) = oneshot::channel();
        Harness {
            upstream,
            body: TapBody::new(ChannelBody(rx), copies_tx, end_tx, IDLE),
            copies,
            end,
        }
    }

    fn data(frame: Option<Result<Frame<Bytes>, BoxError>>) -> Bytes {
        match frame {
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
            Some(Err(e)) => panic!("unexpected error frame: {e}"),
            None => panic!("unexpected end of body"),
        }
    }

    fn drain_copies(copies: &mut mpsc::Receiver<ChunkCopy>) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Ok(copy) = copies.try_recv() {
            out.push(copy);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn completed_forwards_every_frame_and_copies_it() {
        let mut h = harness(8);
        h.upstream.send(Ok(Bytes::from_static(b"data: 1\n\n"))).ok();
        h.upstream.send(Ok(Bytes::new())).ok();
        h.upstream.send(Ok(Bytes::from_static(b"data: 2\n\n"))).ok();
        drop(h.upstream);

        assert_eq!(data(h.body.frame().await), "data: 1\n\n");
        assert!(data(h.body.frame().await).is_empty());
        assert_eq!(data(h.body.frame().await), "data: 2\n\n");
        assert!(h.body.frame().await.is_none());
        assert!(h.body.is_end_stream());

        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::Completed);
        assert!(end.first_chunk_at.is_some());
        assert_eq!(end.copies_lost, 0);
        // Every non-empty chunk was copied, and the copy channel is closed before the outcome.
        assert_eq!(drain_copies(&mut h.copies), ["data: 1\n\n", "data: 2\n\n"]);
        assert!(h.copies.recv().await.is_none());
        // Ended bodies stay ended; the drop afterwards changes nothing.
        assert!(h.body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_copy_queue_loses_copies_not_frames() {
        let mut h = harness(1);
        for chunk in ["a", "b", "c"] {
            h.upstream.send(Ok(Bytes::from(chunk))).ok();
        }
        drop(h.upstream);
        for chunk in ["a", "b", "c"] {
            assert_eq!(data(h.body.frame().await), chunk);
        }
        assert!(h.body.frame().await.is_none());
        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::Completed);
        assert_eq!(end.copies_lost, 2);
        assert_eq!(drain_copies(&mut h.copies), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn upstream_hangup_is_an_error_frame_and_the_outcome() {
        let mut h = harness(8);
        h.upstream.send(Ok(Bytes::from_static(b"partial"))).ok();
        h.upstream
            .send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))
            .ok();

        assert_eq!(data(h.body.frame().await), "partial");
        let err = match h.body.frame().await {
            Some(Err(e)) => e,
            other => panic!("expected the upstream error, got {other:?}"),
        };
        assert!(err.to_string().contains("reset"), "{err}");
        assert!(h.body.is_end_stream());
        assert!(h.body.frame().await.is_none(), "nothing after the error");

        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::Truncated);
        assert!(end.first_chunk_at.is_some());
        assert_eq!(drain_copies(&mut h.copies), ["partial"]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_after_the_silence_limit() {
        let mut h = harness(8);
        let start = TokioInstant::now();
        let err = match h.body.frame().await {
            Some(Err(e)) => e,
            other => panic!("expected the idle timeout, got {other:?}"),
        };
        assert_eq!(start.elapsed(), IDLE);
        assert!(err.is::<IdleTimeout>(), "{err}");
        assert!(h.body.frame().await.is_none());

        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::TimedOut);
        assert!(end.first_chunk_at.is_none());
        // The upstream is still open: the timeout, not its end, decided the outcome.
        assert!(!h.upstream.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn data_before_the_deadline_re_arms_the_timer_from_the_last_frame() {
        let mut h = harness(8);
        let start = TokioInstant::now();
        let upstream = h.upstream.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(6)).await;
            upstream.send(Ok(Bytes::from_static(b"late"))).ok();
        });

        assert_eq!(data(h.body.frame().await), "late");
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        // The timer armed at 0 s fires at 10 s, finds the frame of 6 s and re-arms for 16 s.
        let err = match h.body.frame().await {
            Some(Err(e)) => e,
            other => panic!("expected the idle timeout, got {other:?}"),
        };
        assert!(err.is::<IdleTimeout>(), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(6) + IDLE);

        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::TimedOut);
        assert!(end.first_chunk_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn client_gone_is_the_drop_of_an_unfinished_body() {
        let mut h = harness(8);
        h.upstream.send(Ok(Bytes::from_static(b"first"))).ok();
        assert_eq!(data(h.body.frame().await), "first");
        drop(h.body);

        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::Cancelled);
        assert!(end.first_chunk_at.is_some());
        assert_eq!(drain_copies(&mut h.copies), ["first"]);
        assert!(h.copies.recv().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_before_its_first_frame_is_a_client_disconnect() {
        let h = harness(8);
        drop(h.body);
        let end = h.end.await.expect("the outcome is reported");
        assert_eq!(end.outcome, CallEnd::Cancelled);
        assert!(end.first_chunk_at.is_none());
    }
}
