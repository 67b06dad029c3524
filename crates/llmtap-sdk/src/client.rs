//! Direct mode: [`TracedClient`] wraps the application's `reqwest::Client` and records every call
//! to a model API it knows (by path: `/v1/chat/completions`, and every API `llmtap-core`'s codecs
//! route) as a model span, streams included. Other requests pass through unrecorded.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::HeaderValue;
use llmtap_core::headers::HEADER_TRACEPARENT;
use serde::de::DeserializeOwned;

use crate::model::{CallEnd, CallTarget, ModelCall};
use crate::parent::Parent;

/// A failed read of a [`TracedResponse`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// The body is not the JSON asked for.
    #[error("response body is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A `reqwest::Client` that records model calls. Cheap to clone (the client is refcounted).
#[derive(Debug, Clone)]
pub struct TracedClient {
    client: reqwest::Client,
    provider: Option<String>,
}

impl TracedClient {
    /// Wraps `client` (with whatever TLS, proxy and timeout settings it has).
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            provider: None,
        }
    }

    /// A client with reqwest's defaults (rustls TLS): needs this crate's `rustls` feature.
    #[cfg(feature = "rustls")]
    pub fn with_defaults() -> Result<Self, reqwest::Error> {
        Ok(Self::new(reqwest::Client::builder().build()?))
    }

    /// Records `gen_ai.provider.name` as `provider` instead of deriving it from the host (e.g.
    /// for an OpenAI-compatible server behind a custom domain).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// The wrapped client, e.g. to build requests.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST url`, to be sent with [`execute`](Self::execute) / [`execute_in`](Self::execute_in).
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` with the ambient context as parent (see [`crate::AgentHandle::scope`]).
    pub async fn execute(
        &self,
        request: reqwest::Request,
    ) -> Result<TracedResponse, reqwest::Error> {
        self.execute_in(Parent::current(), request).await
    }

    /// Sends `request` as a child of `parent` (an agent handle, a tool span, a [`Parent`]).
    ///
    /// The model span ends when the response has been read to its end, or when the response,
    /// its stream or this future is dropped first (`client_disconnected`, with what was seen).
    /// A `traceparent` naming the parent is added unless the request has one, so an llmtap proxy
    /// on the way records the call in the same place — and then this client records nothing.
    pub async fn execute_in(
        &self,
        parent: impl Into<Parent>,
        mut request: reqwest::Request,
    ) -> Result<TracedResponse, reqwest::Error> {
        let call = if request.method() == reqwest::Method::POST {
            let uri: Option<http::Uri> = request.url().as_str().parse().ok();
            uri.as_ref()
                .and_then(CallTarget::from_uri)
                .and_then(|mut target| {
                    target.provider.clone_from(&self.provider);
                    let body = request.body().and_then(reqwest::Body::as_bytes);
                    ModelCall::start(parent, &target, body)
                })
        } else {
            None
        };
        let Some(mut call) = call else {
            let response = self.client.execute(request).await?;
            return Ok(TracedResponse {
                response,
                call: None,
            });
        };
        if !request.headers().contains_key(HEADER_TRACEPARENT)
            && let Some(tp) = call.traceparent()
            && let Ok(value) = HeaderValue::from_str(&tp)
        {
            request.headers_mut().insert(HEADER_TRACEPARENT, value);
        }
        // Dropping this future before the answer drops `call`, which ends the span as cancelled.
        match self.client.execute(request).await {
            Ok(response) => {
                call.on_response_head(response.status().as_u16(), response.headers());
                Ok(TracedResponse {
                    response,
                    call: Some(call),
                })
            }
            Err(err) => {
                call.finish(end_for(&err));
                Err(err)
            }
        }
    }
}

fn end_for(err: &reqwest::Error) -> CallEnd {
    if err.is_timeout() {
        CallEnd::TimedOut
    } else if err.is_connect() {
        CallEnd::Unreachable
    } else if err.is_body() || err.is_decode() {
        CallEnd::Truncated
    } else {
        CallEnd::Failed(llmtap_core::semconv::error_type::OTHER.to_owned())
    }
}

/// A response whose reading is recorded. Read it with [`chunk`](Self::chunk),
/// [`bytes`](Self::bytes), [`text`](Self::text), [`json`](Self::json) or
/// [`bytes_stream`](Self::bytes_stream); the span ends at the end of the body.
#[derive(Debug)]
pub struct TracedResponse {
    response: reqwest::Response,
    call: Option<ModelCall>,
}

impl TracedResponse {
    /// HTTP status.
    pub fn status(&self) -> reqwest::StatusCode {
        self.response.status()
    }

    /// Response headers.
    pub fn headers(&self) -> &http::HeaderMap {
        self.response.headers()
    }

    /// Whether this call was recorded (a model API path) by this client.
    pub fn is_recorded(&self) -> bool {
        self.call.as_ref().is_some_and(|c| !c.recorded_upstream())
    }

    /// The proxy's `traceresponse` as a parent, when an llmtap proxy answered: hand it to an
    /// agent spawned because of this answer.
    pub fn traceresponse(&self) -> Option<Parent> {
        crate::proxy::traceresponse_parent(self.response.headers())
    }

    /// The next body chunk; `None` at the end (which ends the span).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, reqwest::Error> {
        match self.response.chunk().await {
            Ok(Some(chunk)) => {
                if let Some(call) = self.call.as_mut() {
                    call.on_chunk(&chunk);
                }
                Ok(Some(chunk))
            }
            Ok(None) => {
                if let Some(call) = self.call.as_mut() {
                    call.finish(CallEnd::Completed);
                }
                Ok(None)
            }
            Err(err) => {
                if let Some(call) = self.call.as_mut() {
                    call.finish(end_for(&err));
                }
                Err(err)
            }
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Bytes, reqwest::Error> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// The whole body as text (invalid UTF-8 replaced).
    pub async fn text(self) -> Result<String, reqwest::Error> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The whole body parsed as JSON.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, ResponseError> {
        let bytes = self.bytes().await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// The body as a stream of chunks (for SSE). Dropping the stream before its end ends the
    /// span as `client_disconnected`, keeping the partial output and usage seen.
    pub fn bytes_stream(self) -> TracedStream {
        TracedStream {
            inner: Box::pin(self.response.bytes_stream()),
            call: self.call,
        }
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// The body of a [`TracedResponse`] as a `Stream` of chunks.
pub struct TracedStream {
    inner: ByteStream,
    call: Option<ModelCall>,
}

impl std::fmt::Debug for TracedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedStream")
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl Stream for TracedStream {
    type Item = Result<Bytes, reqwest::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = this.inner.as_mut().poll_next(cx);
        if let Poll::Ready(item) = &next
            && let Some(call) = this.call.as_mut()
        {
            match item {
                Some(Ok(chunk)) => call.on_chunk(chunk),
                Some(Err(err)) => call.finish(end_for(err)),
                None => call.finish(CallEnd::Completed),
            }
        }
        next
    }
}
