//! The response body: a whole document, or scripted SSE events paced by a timer, optionally ending
//! in a hang-up. Pacing lives in the body itself, so dropping the response (client gone, server
//! shut down) stops everything with no background task left behind.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// The error a scripted hang-up raises: hyper then closes the connection without finishing the
/// body (no terminating chunk on HTTP/1.1, `RST_STREAM` on HTTP/2), which is what a client sees
/// when a real upstream dies mid-stream.
#[derive(Debug, thiserror::Error)]
#[error("mock upstream hung up mid-response (scripted)")]
pub(crate) struct ScriptedHangUp;

/// Pause before a scripted hang-up, long enough for the connection to write what came before.
const HANG_UP_FLUSH_GRACE: Duration = Duration::from_millis(25);

/// Body of every mock response.
#[derive(Debug)]
pub(crate) struct MockBody {
    pieces: VecDeque<Bytes>,
    delay: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    sent_any: bool,
    hang_up_at_end: bool,
    /// The exact length when the body is one known document, so HTTP/1.1 gets a `content-length`.
    exact_len: Option<u64>,
    /// Pause between the last piece and the end of the body (`end-delay`).
    end_delay: Option<Duration>,
}

impl MockBody {
    /// A complete document sent at once.
    pub(crate) fn full(bytes: Bytes) -> Self {
        let exact_len = Some(bytes.len() as u64);
        MockBody {
            pieces: VecDeque::from([bytes]),
            delay: Duration::ZERO,
            sleep: None,
            sent_any: false,
            hang_up_at_end: false,
            exact_len,
            end_delay: None,
        }
    }

    /// Pieces sent one frame each, `delay` apart, then a hang-up if asked.
    pub(crate) fn paced(pieces: Vec<Bytes>, delay: Duration, hang_up_at_end: bool) -> Self {
        MockBody {
            pieces: pieces.into(),
            delay,
            sleep: None,
            sent_any: false,
            hang_up_at_end,
            exact_len: None,
            end_delay: None,
        }
    }

    /// Ends the body `delay` after its last piece, in a segment of its own (HTTP/1.1: the
    /// terminating chunk; HTTP/2: the empty DATA frame with END_STREAM). The body is then
    /// chunked even when it is one document.
    pub(crate) fn end_after(&mut self, delay: Duration) {
        self.end_delay = Some(delay);
        self.exact_len = None;
    }

    /// Rewrites every piece through `f` (a compressor that flushes per piece), `tail` last.
    pub(crate) fn map_pieces(&mut self, mut f: impl FnMut(&[u8]) -> Bytes, tail: Bytes) {
        let pieces = std::mem::take(&mut self.pieces);
        let whole = self.exact_len.is_some();
        let mut out: VecDeque<Bytes> = pieces.iter().map(|p| f(p)).collect();
        if !tail.is_empty() {
            match out.back_mut() {
                Some(last) if whole => {
                    let mut joined = last.to_vec();
                    joined.extend_from_slice(&tail);
                    *last = Bytes::from(joined);
                }
                _ => out.push_back(tail),
            }
        }
        out.retain(|p| !p.is_empty());
        if whole {
            self.exact_len = Some(out.iter().map(|p| p.len() as u64).sum());
        }
        self.pieces = out;
    }

    /// The pieces still to send (refcounted copies).
    pub(crate) fn clone_pieces(&self) -> Vec<Bytes> {
        self.pieces.iter().cloned().collect()
    }

    /// The number of payload bytes still to send (for a `content-length` that lies).
    pub(crate) fn pending_len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len() as u64).sum()
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = ScriptedHangUp;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.pieces.is_empty() {
            if this.hang_up_at_end {
                // hyper drops what it has buffered but not yet written when a body fails, so
                // pause first: the events already produced reach the client, then the cut.
                let grace = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(HANG_UP_FLUSH_GRACE)));
                if grace.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
                this.hang_up_at_end = false;
                return Poll::Ready(Some(Err(ScriptedHangUp)));
            }
            if let Some(delay) = this.end_delay {
                let pause = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
                this.end_delay = None;
            }
            return Poll::Ready(None);
        }
        if this.sent_any && !this.delay.is_zero() {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.delay)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        match this.pieces.pop_front() {
            Some(piece) => {
                this.sent_any = true;
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty() && !self.hang_up_at_end && self.end_delay.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(len) if !self.sent_any => SizeHint::with_exact(len),
            _ => SizeHint::default(),
        }
    }
}
