//! Proxy errors, classified by who is at fault, with a bounded `error.type` and an
//! OpenAI-shaped JSON body for the client. Internal error text never reaches a client: the body
//! names the upstream and a fixed reason, nothing else.

use std::error::Error as StdError;
use std::io;

use bytes::Bytes;
use http::StatusCode;
use llmtap_core::semconv::error_type;

/// Why a call could not be forwarded or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream could not be reached (DNS, refused, TLS, reset before a response).
    #[error("upstream {upstream} unreachable: {reason}")]
    UpstreamUnreachable {
        /// Upstream base URL, without credentials or query.
        upstream: String,
        /// A fixed, client-safe reason.
        reason: &'static str,
    },
    /// The upstream did not send response headers in time.
    #[error("upstream {upstream} sent no response within {secs} s")]
    UpstreamTimeout {
        /// Upstream base URL.
        upstream: String,
        /// The configured limit.
        secs: u64,
    },
    /// The upstream's response head had more headers (or bytes) than the proxy accepts.
    #[error(
        "upstream {upstream} sent a response head over llmtap's limit of {max_headers} headers / {max_kib} KiB"
    )]
    UpstreamHeadTooLarge {
        /// Upstream base URL.
        upstream: String,
        /// The header-count limit.
        max_headers: usize,
        /// The head-size limit, KiB.
        max_kib: usize,
    },
    /// The client closed its connection before its request body was complete.
    #[error("the client went away before its request body was complete")]
    ClientGone,
    /// The client's request body stalled past the body timeout.
    #[error("the request body stalled for longer than the body timeout")]
    ClientBodyTimeout,
    /// The proxy had its limit of model calls in flight: refused at once, to be retried.
    #[error(
        "{limit} calls are in flight, the limit ({}); retry shortly",
        llmtap_core::settings::MAX_IN_FLIGHT.names()
    )]
    Overloaded {
        /// The configured limit.
        limit: usize,
    },
}

impl ProxyError {
    /// HTTP status the client receives: the upstream's fault is 502/504, never a blanket 400.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UpstreamUnreachable { .. } | Self::UpstreamHeadTooLarge { .. } => {
                StatusCode::BAD_GATEWAY
            }
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::ClientGone => StatusCode::BAD_REQUEST,
            Self::ClientBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Bounded `error.type` value recorded on the span.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UpstreamUnreachable { .. } => error_type::UPSTREAM_UNREACHABLE,
            Self::UpstreamHeadTooLarge { .. } => error_type::UPSTREAM_RESPONSE_HEAD_TOO_LARGE,
            Self::UpstreamTimeout { .. } => "upstream_timeout",
            Self::ClientGone => error_type::CLIENT_DISCONNECTED,
            Self::ClientBodyTimeout => error_type::CLIENT_BODY_TIMEOUT,
            Self::Overloaded { .. } => error_type::OVERLOADED,
        }
    }

    /// OpenAI-shaped error body, so SDKs show the message to their user.
    pub fn client_body(&self) -> Bytes {
        let body = serde_json::json!({
            "error": {
                "type": format!("llmtap_{}", self.error_type()),
                "code": self.error_type(),
                "message": format!("llmtap: {self}"),
                "param": null,
            }
        });
        Bytes::from(body.to_string())
    }

    /// Whether the upstream is at fault (counted as an upstream error), not the client.
    pub fn is_upstream_fault(&self) -> bool {
        !matches!(
            self,
            Self::ClientGone | Self::ClientBodyTimeout | Self::Overloaded { .. }
        )
    }

    /// The error for a client's failed upload.
    pub(crate) fn from_upload(cause: crate::body::UploadError) -> Self {
        match cause {
            crate::body::UploadError::ClientGone => Self::ClientGone,
            crate::body::UploadError::Stalled => Self::ClientBodyTimeout,
        }
    }

    /// Classifies a client error from the upstream HTTP client.
    pub(crate) fn from_client_error(
        upstream: String,
        err: &crate::pool::PoolError,
        limits: HeadLimits,
    ) -> Self {
        if head_too_large(err) {
            return Self::UpstreamHeadTooLarge {
                upstream,
                max_headers: limits.max_headers,
                max_kib: limits.max_bytes / 1024,
            };
        }
        let reason = if err.is_connect() {
            io_reason(err).unwrap_or("connection failed")
        } else {
            io_reason(err).unwrap_or("connection closed before a response")
        };
        Self::UpstreamUnreachable { upstream, reason }
    }
}

/// What the upstream client accepts in a response head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub(crate) max_headers: usize,
    pub(crate) max_bytes: usize,
}

/// Whether hyper refused the response head for its size (too many headers, or too many bytes).
fn head_too_large(err: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse_too_large)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// Walks the source chain for an I/O error and names its kind with a fixed string.
fn io_reason(err: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(match io.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused",
                io::ErrorKind::ConnectionReset => "connection reset",
                io::ErrorKind::ConnectionAborted => "connection aborted",
                io::ErrorKind::TimedOut => "connect timed out",
                io::ErrorKind::NotFound => "host not found",
                io::ErrorKind::InvalidData => "TLS or protocol error",
                _ => "I/O error",
            });
        }
        let text = e.to_string();
        if text.contains("dns error") || text.contains("failed to lookup") {
            return Some("host not found");
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_openai_shaped_and_bounded() {
        let err = ProxyError::UpstreamUnreachable {
            upstream: "http://127.0.0.1:9".into(),
            reason: "connection refused",
        };
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        let v: serde_json::Value = serde_json::from_slice(&err.client_body()).expect("json");
        assert_eq!(v["error"]["type"], "llmtap_upstream_unreachable");
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(msg.contains("http://127.0.0.1:9"), "{msg}");
        let timeout = ProxyError::UpstreamTimeout {
            upstream: "x".into(),
            secs: 3,
        };
        assert_eq!(timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(timeout.error_type(), "upstream_timeout");
    }
}
