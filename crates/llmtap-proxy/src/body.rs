//! Bodies on both legs of the proxy.
//!
//! The request body is never held back for capture ([`start_upload`]). What the client sent with
//! its head is read without waiting; when that is the whole body (the usual small request) it
//! goes upstream as one known-length body and is the capture copy. Otherwise the request goes
//! upstream at once with a [`TeeBody`]: the part already read, then each client frame as it
//! arrives, unchanged, with a copy appended to the capture copy while it stays within the
//! per-request budget and the shared capture buffer. The finished copy reaches the call's
//! recorder on the body's end, error or drop. The body timeout applies between client reads on
//! that path, and how the client's side failed ([`UploadFate`]) is kept for the handler.
//!
//! The response body is wrapped in [`TapBody`], which forwards every frame unchanged and hands a
//! cheap copy (a refcounted `Bytes`) to the call's recorder task over a bounded channel. Decoding
//! happens in that task, off the write path. The body's end, error or drop is the call's outcome,
//! delivered on a oneshot that cannot be full — so the span always learns how the call ended.

use std::collections::VecDeque;
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

use crate::stats::{Limit, ProxyStats};

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

/// The upload stalled past the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("client sent no body bytes for {0:?}")]
pub(crate) struct UploadStalled(Duration);

/// What bounds a request's upload and its capture copy.
#[derive(Debug, Clone)]
pub(crate) struct UploadLimits {
    /// Per-request capture budget.
    pub(crate) max_bytes: usize,
    /// Longest pause between two reads of the client's body.
    pub(crate) timeout: Duration,
    /// The capture buffer shared by every connection (permits are bytes).
    pub(crate) shared: Arc<Semaphore>,
    /// Where a stalled upload and a full capture buffer are counted, when they happen.
    pub(crate) stats: Arc<ProxyStats>,
}

/// How far the capture copy of a request body got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyEnd {
    /// The copy holds the whole body.
    Complete,
    /// The body passed the capture budget: copying stopped there and nothing is kept.
    OverBudget,
    /// The shared capture buffer had no room: copying stopped and nothing is kept.
    NoRoom,
    /// The upload did not reach its end (the client broke it off, or the upstream stopped
    /// reading it): the copy is what had arrived.
    Cut,
}

/// The capture copy of a request body, as the call's recorder receives it.
#[derive(Debug)]
pub(crate) struct RequestCopy {
    pub(crate) bytes: Bytes,
    pub(crate) end: CopyEnd,
    /// This copy's share of the shared capture buffer, released with the copy.
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestCopy {
    /// A copy whose sender vanished without a word (cannot happen: the tee reports on drop).
    pub(crate) fn lost() -> Self {
        Self {
            bytes: Bytes::new(),
            end: CopyEnd::Cut,
            _permit: None,
        }
    }
}

/// Frames appended one by one; a single frame stays the client's own `Bytes`, so the usual
/// small request is never copied.
#[derive(Debug, Default)]
enum Joined {
    #[default]
    Empty,
    One(Bytes),
    Many(bytes::BytesMut),
}

impl Joined {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(bytes) => bytes.len(),
            Self::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, data: &Bytes) {
        *self = match std::mem::take(self) {
            Self::Empty => Self::One(data.clone()),
            Self::One(first) => {
                let mut joined = bytes::BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(data);
                Self::Many(joined)
            }
            Self::Many(mut joined) => {
                joined.extend_from_slice(data);
                Self::Many(joined)
            }
        };
    }

    fn freeze(self) -> Bytes {
        match self {
            Self::Empty => Bytes::new(),
            Self::One(bytes) => bytes,
            Self::Many(bytes) => bytes.freeze(),
        }
    }
}

/// The capture copy while the body passes: it never grows past the per-request budget nor takes
/// more of the shared buffer than it has room for. Past either it stops and lets go of what it
/// held; the forwarding goes on regardless.
#[derive(Debug)]
struct CopyBuilder {
    held: Joined,
    permit: Option<OwnedSemaphorePermit>,
    /// Why copying stopped early.
    stopped: Option<CopyEnd>,
    max_bytes: usize,
    shared: Arc<Semaphore>,
    stats: Arc<ProxyStats>,
}

impl CopyBuilder {
    fn new(limits: &UploadLimits) -> Self {
        Self {
            held: Joined::Empty,
            permit: None,
            stopped: None,
            max_bytes: limits.max_bytes,
            shared: Arc::clone(&limits.shared),
            stats: Arc::clone(&limits.stats),
        }
    }

    fn push(&mut self, data: &Bytes) {
        if self.stopped.is_some() || data.is_empty() {
            return;
        }
        if self.held.len() + data.len() > self.max_bytes {
            self.stop(CopyEnd::OverBudget);
            return;
        }
        let want = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let Ok(more) = Arc::clone(&self.shared).try_acquire_many_owned(want) else {
            self.stats.record_limit(Limit::CaptureBufferFull);
            self.stop(CopyEnd::NoRoom);
            return;
        };
        match self.permit.as_mut() {
            Some(held) => held.merge(more),
            None => self.permit = Some(more),
        }
        self.held.push(data);
    }

    /// Copying is over for `why`: what was held is of no use (a cut-off body is neither parsed
    /// nor peeked) and goes back to the shared buffer now, not when the upload ends.
    fn stop(&mut self, why: CopyEnd) {
        self.stopped = Some(why);
        self.held = Joined::Empty;
        self.permit = None;
    }

    /// The copy as it stands; `reached_end` says whether the upload got to its end.
    fn finish(&mut self, reached_end: bool) -> RequestCopy {
        let end = match self.stopped {
            Some(why) => why,
            None if reached_end => CopyEnd::Complete,
            None => CopyEnd::Cut,
        };
        RequestCopy {
            bytes: std::mem::take(&mut self.held).freeze(),
            end,
            _permit: self.permit.take(),
        }
    }
}

/// A client body still arriving when the request went upstream: it yields the frames read
/// before, then forwards each further client frame unchanged as it arrives, and tees a copy of
/// it into the capture copy. The copy goes to the call's recorder on the body's end, error or
/// drop (a drop before the end — the upstream stopped reading — leaves it [`CopyEnd::Cut`]).
/// Generic over the client body only so the unit tests can drive it with an in-memory one.
#[derive(Debug)]
pub(crate) struct TeeBody<B = Incoming> {
    /// Frames read before the request went upstream, forwarded first.
    prefix: VecDeque<Frame<Bytes>>,
    inner: B,
    /// The client's body ended while the prefix was read (nothing more to poll).
    inner_ended: bool,
    /// The body timeout, armed the first time the upstream waits on the client.
    idle: Option<IdleTimer>,
    timeout: Duration,
    fate: Arc<UploadFate>,
    stats: Arc<ProxyStats>,
    copy: CopyBuilder,
    done: Option<oneshot::Sender<RequestCopy>>,
}

impl<B> TeeBody<B> {
    fn finish(&mut self, reached_end: bool) {
        if let Some(done) = self.done.take() {
            let _ = done.send(self.copy.finish(reached_end));
        }
    }

    fn rest_ended(&self) -> bool
    where
        B: Body,
    {
        self.prefix.is_empty() && (self.inner_ended || self.inner.is_end_stream())
    }
}

impl<B> Body for TeeBody<B>
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
        if this.done.is_none() {
            return Poll::Ready(None);
        }
        if let Some(frame) = this.prefix.pop_front() {
            if this.rest_ended() {
                this.finish(true);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if this.inner_ended {
            this.finish(true);
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(idle) = this.idle.as_mut() {
                    idle.touch();
                }
                if let Some(data) = frame.data_ref() {
                    this.copy.push(data);
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.fate.set(UploadFate::GONE);
                this.finish(false);
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let idle = this.idle.get_or_insert_with(|| IdleTimer::new(timeout));
                ready!(idle.poll_expired(cx));
                this.fate.set(UploadFate::STALLED);
                this.stats.record_limit(Limit::BodyTimeout);
                this.finish(false);
                Poll::Ready(Some(Err(Box::new(UploadStalled(timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none() || self.rest_ended()
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .prefix
            .iter()
            .filter_map(|frame| frame.data_ref())
            .map(|data| data.len() as u64)
            .sum();
        if self.inner_ended {
            return SizeHint::with_exact(read);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(read));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(read));
        }
        hint
    }
}

impl<B> Drop for TeeBody<B> {
    fn drop(&mut self) {
        // Dropped before its end: the upstream stopped reading (it answered, or failed).
        self.finish(false);
    }
}

/// The body sent upstream for a recorded call: the whole request when it had arrived with its
/// head, or what had arrived followed by the rest as the client sends it.
#[derive(Debug)]
pub(crate) enum RequestBody<B = Incoming> {
    /// The whole body, read before the request went upstream.
    Full(Option<Bytes>),
    /// Still arriving: streamed and teed.
    Tee(Box<TeeBody<B>>),
    /// An unrecorded request's body, streamed as is.
    Plain(B),
}

impl<B> Body for RequestBody<B>
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
        match &mut *self {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Tee(body) => Pin::new(body.as_mut()).poll_frame(cx),
            Self::Plain(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Tee(body) => body.is_end_stream(),
            Self::Plain(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Tee(body) => body.size_hint(),
            Self::Plain(body) => body.size_hint(),
        }
    }
}

/// The client's body broke off before the request went upstream: the client is gone.
#[derive(Debug)]
pub(crate) struct UploadCut {
    /// What had arrived (as far as the capture copy kept it).
    pub(crate) partial: Bytes,
}

/// A recorded request's body, ready to go upstream.
#[derive(Debug)]
pub(crate) struct StartedUpload<B = Incoming> {
    /// The whole body when it was read before sending (empty when it streams), for the model
    /// peek at span start.
    pub(crate) read: Bytes,
    /// The body to send upstream.
    pub(crate) body: RequestBody<B>,
    /// The body's length when it is all there: sent upstream as `content-length`.
    pub(crate) whole_length: Option<usize>,
    /// The capture copy: sent at once for a whole body, by the tee when the upload ends.
    pub(crate) copy: oneshot::Receiver<RequestCopy>,
    /// How the client's side of the upload ends (a streamed rest may still fail).
    pub(crate) fate: Arc<UploadFate>,
}

/// How the read of what the client had already sent ended.
enum ReadyRead {
    /// The body is complete.
    Ended,
    /// More is to come (or enough was read to start with).
    More,
    /// The body failed: the client is gone.
    Broken,
}

/// Takes the frames that are ready without waiting, stopping once past the capture budget.
fn read_ready<B>(
    body: &mut B,
    cx: &mut Context<'_>,
    prefix: &mut VecDeque<Frame<Bytes>>,
    copy: &mut CopyBuilder,
) -> ReadyRead
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut read = 0usize;
    loop {
        if body.is_end_stream() {
            return ReadyRead::Ended;
        }
        if read > copy.max_bytes {
            return ReadyRead::More;
        }
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => return ReadyRead::More,
            Poll::Ready(None) => return ReadyRead::Ended,
            Poll::Ready(Some(Err(_))) => return ReadyRead::Broken,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.len());
                    copy.push(data);
                }
                prefix.push_back(frame);
            }
        }
    }
}

/// Starts a recorded request's upload without waiting for its body: what the client has already
/// sent is read (the usual small request arrives with its head, whole); if that is the whole
/// body and its copy fits, it goes upstream as one known-length body. Otherwise the request goes
/// upstream at once with a [`TeeBody`] that streams the rest and tees the capture copy within
/// `limits`. A body that has already failed is an error carrying what was read.
pub(crate) async fn start_upload<B>(
    mut body: B,
    limits: &UploadLimits,
) -> Result<StartedUpload<B>, UploadCut>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut prefix = VecDeque::new();
    let mut copy = CopyBuilder::new(limits);
    let ready =
        std::future::poll_fn(|cx| Poll::Ready(read_ready(&mut body, cx, &mut prefix, &mut copy)))
            .await;
    let (copy_tx, copy_rx) = oneshot::channel();
    let fate = Arc::new(UploadFate::default());
    let inner_ended = match ready {
        ReadyRead::Broken => {
            return Err(UploadCut {
                partial: copy.finish(false).bytes,
            });
        }
        ReadyRead::Ended if copy.stopped.is_none() => {
            let whole = copy.finish(true);
            let bytes = whole.bytes.clone();
            let _ = copy_tx.send(whole);
            return Ok(StartedUpload {
                read: bytes.clone(),
                whole_length: Some(bytes.len()),
                body: RequestBody::Full(Some(bytes)),
                copy: copy_rx,
                fate,
            });
        }
        // Whole but not copied (over the budget, or no room): forwarded in the client's
        // framing, as the streamed case is.
        ReadyRead::Ended => true,
        ReadyRead::More => false,
    };
    let tee = TeeBody {
        prefix,
        inner: body,
        inner_ended,
        idle: None,
        timeout: limits.timeout,
        fate: Arc::clone(&fate),
        stats: Arc::clone(&limits.stats),
        copy,
        done: Some(copy_tx),
    };
    Ok(StartedUpload {
        // Nothing to peek: only a whole body names its model (`peek_model` finds none in a
        // cut-off one), so the span starts without it and is named once the copy is parsed.
        read: Bytes::new(),
        body: RequestBody::Tee(Box::new(tee)),
        whole_length: None,
        copy: copy_rx,
        fate,
    })
}

#[cfg(test)]
mod tests {
    //! The response body's state machine, driven by an in-memory upstream body: one test per
    //! outcome, and the idle timer's lazy re-arm. Then the request side, driven by an in-memory
    //! client body: the whole-body start, the tee's forwarding and copy, and each way it ends.
    //! Time is paused, so the timers are exact.

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

    // The request side: what arrived with the head, then the tee.

    const TOTAL_PERMITS: usize = 1 << 20;

    struct Upload {
        client: mpsc::UnboundedSender<io::Result<Bytes>>,
        started: StartedUpload<ChannelBody>,
        shared: Arc<Semaphore>,
        stats: Arc<ProxyStats>,
    }

    /// A client body with `before` already sent when the upload starts; `ended`: and closed.
    async fn upload(
        before: &[&'static str],
        ended: bool,
        max_bytes: usize,
        permits: usize,
    ) -> Upload {
        let (client, rx) = mpsc::unbounded_channel();
        for chunk in before {
            client.send(Ok(Bytes::from_static(chunk.as_bytes()))).ok();
        }
        let shared = Arc::new(Semaphore::new(permits));
        let stats = Arc::new(ProxyStats::default());
        let limits = UploadLimits {
            max_bytes,
            timeout: IDLE,
            shared: Arc::clone(&shared),
            stats: Arc::clone(&stats),
        };
        let (client, body) = if ended {
            // A sender that is already gone: the body ends right after `before`.
            let (closed, _) = mpsc::unbounded_channel();
            drop(client);
            (closed, ChannelBody(rx))
        } else {
            (client, ChannelBody(rx))
        };
        let started = match start_upload(body, &limits).await {
            Ok(started) => started,
            Err(cut) => panic!("the upload was cut at once: {cut:?}"),
        };
        Upload {
            client,
            started,
            shared,
            stats,
        }
    }

    /// The copy the recorder would get, once the upload has ended.
    fn copy_now(copy: &mut oneshot::Receiver<RequestCopy>) -> RequestCopy {
        match copy.try_recv() {
            Ok(copy) => copy,
            Err(e) => panic!("the copy was not sent: {e:?}"),
        }
    }

    fn is_tee(body: &RequestBody<ChannelBody>) -> bool {
        matches!(body, RequestBody::Tee(_))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrived_with_its_head_goes_upstream_whole_and_is_the_copy() {
        let body = r#"{"model":"gpt-4o"}"#;
        let mut up = upload(&[body], true, 1024, TOTAL_PERMITS).await;
        assert!(!is_tee(&up.started.body));
        assert_eq!(up.started.whole_length, Some(body.len()));
        let copy = copy_now(&mut up.started.copy);
        assert_eq!(copy.end, CopyEnd::Complete);
        assert_eq!(copy.bytes, body);
        // The usual small request: one frame, shared by the body, the peek and the copy.
        assert_eq!(up.started.read.as_ptr(), copy.bytes.as_ptr());
        assert_eq!(data(up.started.body.frame().await), body);
        assert!(up.started.body.frame().await.is_none());
        assert_eq!(up.shared.available_permits(), TOTAL_PERMITS - body.len());
        drop(copy);
        assert_eq!(
            up.shared.available_permits(),
            TOTAL_PERMITS,
            "released with the copy"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn several_ready_frames_that_end_the_body_are_one_whole_body() {
        let mut up = upload(&["ab", "cd"], true, 1024, TOTAL_PERMITS).await;
        assert_eq!(up.started.whole_length, Some(4));
        assert_eq!(data(up.started.body.frame().await), "abcd");
        assert!(up.started.body.frame().await.is_none());
        assert_eq!(copy_now(&mut up.started.copy).end, CopyEnd::Complete);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tee_forwards_every_frame_unchanged_in_order_and_copies_the_whole_body() {
        let mut up = upload(&["ab"], false, 1024, TOTAL_PERMITS).await;
        assert!(is_tee(&up.started.body));
        assert_eq!(up.started.whole_length, None, "the client's own framing");
        assert_eq!(data(up.started.body.frame().await), "ab");
        for chunk in ["cd", "", "ef"] {
            up.client
                .send(Ok(Bytes::from_static(chunk.as_bytes())))
                .ok();
        }
        for chunk in ["cd", "", "ef"] {
            assert_eq!(data(up.started.body.frame().await), chunk);
        }
        assert!(
            up.started.copy.try_recv().is_err(),
            "no copy before the upload ends"
        );
        drop(up.client);
        assert!(up.started.body.frame().await.is_none());
        assert!(up.started.body.is_end_stream());
        let copy = copy_now(&mut up.started.copy);
        assert_eq!(copy.end, CopyEnd::Complete);
        assert_eq!(copy.bytes, "abcdef");
        assert!(up.started.fate.client_error().is_none());
        assert_eq!(up.shared.available_permits(), TOTAL_PERMITS - 6);
        drop(copy);
        assert_eq!(up.shared.available_permits(), TOTAL_PERMITS);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_budget_the_copy_stops_and_lets_go_while_forwarding_goes_on() {
        let mut up = upload(&["ab"], false, 5, TOTAL_PERMITS).await;
        assert_eq!(data(up.started.body.frame().await), "ab");
        up.client.send(Ok(Bytes::from_static(b"cd"))).ok();
        assert_eq!(data(up.started.body.frame().await), "cd");
        assert_eq!(up.shared.available_permits(), TOTAL_PERMITS - 4);
        for chunk in ["ef", "g"] {
            up.client
                .send(Ok(Bytes::from_static(chunk.as_bytes())))
                .ok();
            assert_eq!(data(up.started.body.frame().await), chunk);
        }
        // "ef" would have made 6 bytes of a 5-byte budget: copying stopped there (even "g",
        // which would fit, is not copied) and what was held is released at once.
        assert_eq!(up.shared.available_permits(), TOTAL_PERMITS);
        drop(up.client);
        assert!(up.started.body.frame().await.is_none());
        let copy = copy_now(&mut up.started.copy);
        assert_eq!(copy.end, CopyEnd::OverBudget);
        assert!(copy.bytes.is_empty());
        assert_eq!(up.stats.snapshot().limits.capture_buffer_full, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_room_in_the_shared_buffer_stops_the_copy_and_is_counted() {
        let mut up = upload(&["ab"], false, 1024, 3).await;
        assert_eq!(up.shared.available_permits(), 1);
        assert_eq!(data(up.started.body.frame().await), "ab");
        up.client.send(Ok(Bytes::from_static(b"cd"))).ok();
        assert_eq!(
            data(up.started.body.frame().await),
            "cd",
            "forwarded anyway"
        );
        assert_eq!(up.shared.available_permits(), 3, "what it held is released");
        up.client.send(Ok(Bytes::from_static(b"e"))).ok();
        assert_eq!(data(up.started.body.frame().await), "e");
        drop(up.client);
        assert!(up.started.body.frame().await.is_none());
        let copy = copy_now(&mut up.started.copy);
        assert_eq!(copy.end, CopyEnd::NoRoom);
        assert!(copy.bytes.is_empty());
        assert_eq!(up.stats.snapshot().limits.capture_buffer_full, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_error_mid_body_is_client_gone_and_cuts_the_copy() {
        let mut up = upload(&["ab"], false, 1024, TOTAL_PERMITS).await;
        assert_eq!(data(up.started.body.frame().await), "ab");
        up.client
            .send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))
            .ok();
        match up.started.body.frame().await {
            Some(Err(err)) => assert!(err.to_string().contains("reset"), "{err}"),
            other => panic!("expected the client's error, got {other:?}"),
        }
        assert_eq!(
            up.started.fate.client_error(),
            Some(UploadError::ClientGone)
        );
        let copy = copy_now(&mut up.started.copy);
        assert_eq!(copy.end, CopyEnd::Cut);
        assert_eq!(copy.bytes, "ab");
        assert!(up.started.body.is_end_stream());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_past_the_body_timeout_is_stalled_and_counted() {
        let mut up = upload(&["ab"], false, 1024, TOTAL_PERMITS).await;
        assert_eq!(data(up.started.body.frame().await), "ab");
        let start = TokioInstant::now();
        let err = match up.started.body.frame().await {
            Some(Err(e)) => e,
            other => panic!("expected the stall, got {other:?}"),
        };
        assert_eq!(start.elapsed(), IDLE);
        assert!(err.is::<UploadStalled>(), "{err}");
        assert_eq!(up.started.fate.client_error(), Some(UploadError::Stalled));
        assert_eq!(up.stats.snapshot().limits.body_timeouts, 1);
        assert_eq!(copy_now(&mut up.started.copy).end, CopyEnd::Cut);
        assert!(
            !up.client.is_closed(),
            "the timeout, not the client, ended it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tee_dropped_before_its_end_reports_a_cut_copy_and_no_client_fault() {
        let mut up = upload(&["ab"], false, 1024, TOTAL_PERMITS).await;
        assert_eq!(data(up.started.body.frame().await), "ab");
        drop(up.started.body);
        let copy = copy_now(&mut up.started.copy);
        assert_eq!(copy.end, CopyEnd::Cut);
        assert_eq!(copy.bytes, "ab");
        assert!(up.started.fate.client_error().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_already_broken_is_an_upload_cut_with_what_arrived() {
        let (client, rx) = mpsc::unbounded_channel();
        client.send(Ok(Bytes::from_static(b"ab"))).ok();
        client
            .send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))
            .ok();
        let shared = Arc::new(Semaphore::new(TOTAL_PERMITS));
        let limits = UploadLimits {
            max_bytes: 1024,
            timeout: IDLE,
            shared: Arc::clone(&shared),
            stats: Arc::new(ProxyStats::default()),
        };
        match start_upload(ChannelBody(rx), &limits).await {
            Err(cut) => assert_eq!(cut.partial, "ab"),
            Ok(_) => panic!("a broken body was started"),
        }
        assert_eq!(shared.available_permits(), TOTAL_PERMITS);
    }
}
