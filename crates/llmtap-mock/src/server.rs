//! Accept loop and request handling: record, pick the scenario, route, answer, apply faults.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::MockBody;
use crate::encode;
use crate::openai::{self, Answer, AnswerContext, BadRequest, IdSource};
use crate::scenario::{Coding, EncodingChoice, SCENARIO_HEADER, Scenario};
use crate::{MockConfig, RecordedRequest};
use crate::{anthropic, gemini, responses};

/// State shared by every connection of one mock server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    pub(crate) recorded: Mutex<VecDeque<RecordedRequest>>,
    /// Answer bodies as sent (see [`crate::MockUpstream::answers`]).
    pub(crate) answers: Mutex<VecDeque<Bytes>>,
    pub(crate) sequence: AtomicU64,
}

impl Shared {
    fn record(&self, request: RecordedRequest) {
        if self.config.record_limit == 0 {
            return;
        }
        // A poisoned lock only means another request panicked mid-push; the data is still usable.
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        while recorded.len() >= self.config.record_limit {
            recorded.pop_front();
        }
        recorded.push_back(request);
    }

    fn record_answer(&self, body: &MockBody) {
        if self.config.record_limit == 0 {
            return;
        }
        let mut whole = BytesMut::new();
        for piece in body.clone_pieces() {
            whole.extend_from_slice(&piece);
        }
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        while answers.len() >= self.config.record_limit {
            answers.pop_front();
        }
        answers.push_back(whole.freeze());
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "mock upstream: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set aborts every open connection, including hung ones.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "mock upstream: TCP_NODELAY failed");
    }
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(request, &shared).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder
        .serve_connection(TokioIo::new(ClTeIo(stream)), service)
        .await
    {
        tracing::debug!(%error, "mock upstream: connection ended with an error");
    }
}

/// The connection as hyper sees it: writes pass through, except that a response head carrying
/// [`CL_TE_MARKER`] has that header renamed to `content-length`, next to hyper's own
/// `transfer-encoding: chunked` (the `cl-te` scenario). Same length, so write counts hold.
struct ClTeIo(TcpStream);

impl tokio::io::AsyncRead for ClTeIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ClTeIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut needle = Vec::with_capacity(CL_TE_MARKER.len() + 4);
        needle.extend_from_slice(b"\r\n");
        needle.extend_from_slice(CL_TE_MARKER);
        needle.push(b':');
        match memchr::memmem::find(buf, &needle) {
            None => std::pin::Pin::new(&mut self.0).poll_write(cx, buf),
            Some(at) => {
                let mut rewritten = buf.to_vec();
                let name = at + 2..at + 2 + CL_TE_MARKER.len();
                if let Some(slot) = rewritten.get_mut(name) {
                    slot.copy_from_slice(b"content-length");
                }
                std::pin::Pin::new(&mut self.0).poll_write(cx, &rewritten)
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Reads the request body up to `limit` bytes; `None` when it is larger or the read fails.
async fn read_body(mut body: Incoming, limit: usize) -> Option<Bytes> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return None;
            }
            buffer.extend_from_slice(&data);
        }
    }
    Some(buffer.freeze())
}

/// The endpoint a path names; an optional prefix before `/v1/` (e.g. `/openai/v1/...`) is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Models,
    /// OpenAI Responses.
    Responses,
    /// Anthropic Messages.
    Messages,
    /// Gemini `:generateContent` (`stream: false`) or `:streamGenerateContent`.
    Gemini {
        stream: bool,
    },
}

/// Whose error shapes an endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Endpoint {
    fn flavor(self) -> Flavor {
        match self {
            Endpoint::Messages => Flavor::Anthropic,
            Endpoint::Gemini { .. } => Flavor::Gemini,
            _ => Flavor::OpenAi,
        }
    }
}

/// The model of a Gemini path `.../models/{model}:method`.
fn gemini_model(path: &str) -> Option<&str> {
    let (before, _) = path.rsplit_once(':')?;
    let (prefix, model) = before.rsplit_once('/')?;
    prefix.ends_with("/models").then_some(model)
}

fn route(method: &Method, path: &str) -> Option<Endpoint> {
    if method == Method::POST && gemini_model(path).is_some() {
        if path.ends_with(":generateContent") {
            return Some(Endpoint::Gemini { stream: false });
        }
        if path.ends_with(":streamGenerateContent") {
            return Some(Endpoint::Gemini { stream: true });
        }
        return None;
    }
    let (_, rest) = path.rsplit_once("/v1/")?;
    match (method, rest) {
        (&Method::POST, "chat/completions") => Some(Endpoint::ChatCompletions),
        (&Method::POST, "completions") => Some(Endpoint::Completions),
        (&Method::POST, "embeddings") => Some(Endpoint::Embeddings),
        (&Method::POST, "responses") => Some(Endpoint::Responses),
        (&Method::POST, "messages") => Some(Endpoint::Messages),
        (&Method::GET, "models") => Some(Endpoint::Models),
        _ => None,
    }
}

/// A finished answer before faults are applied.
struct Reply {
    status: StatusCode,
    answer: Answer,
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<MockBody> {
    let started = Instant::now();
    let sequence = shared.sequence.fetch_add(1, Ordering::Relaxed);
    let ids = IdSource::new(sequence);
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();

    let Some(body) = read_body(body, shared.config.max_request_bytes).await else {
        let error = BadRequest {
            message: format!(
                "Request body exceeds the mock's limit of {} bytes.",
                shared.config.max_request_bytes
            ),
            param: None,
            code: None,
        };
        return finish(
            StatusCode::PAYLOAD_TOO_LARGE,
            MockBody::full(error.body()),
            &ids,
            started,
            false,
        );
    };
    shared.record(RecordedRequest {
        method: parts.method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        version: parts.version,
        headers: parts.headers.clone(),
        body: body.clone(),
    });

    let Some(endpoint) = route(&parts.method, &path) else {
        let body = openai::unknown_path_body(parts.method.as_str(), &path);
        return finish(
            StatusCode::NOT_FOUND,
            MockBody::full(body),
            &ids,
            started,
            false,
        );
    };

    // Scenario: header first, then a model name that is a scenario.
    let header_spec = parts
        .headers
        .get(SCENARIO_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut scenario = match Scenario::parse(header_spec) {
        Ok(s) => s,
        Err(error) => return bad_request(&invalid_scenario(&error), endpoint, &ids, started),
    };
    let json: Option<Map<String, Value>> = if endpoint == Endpoint::Models {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => Some(object),
            _ => return bad_request(&BadRequest::unparsable_json(), endpoint, &ids, started),
        }
    };
    let model = match endpoint {
        Endpoint::Gemini { .. } => gemini_model(&path).unwrap_or_default().to_owned(),
        _ => json
            .as_ref()
            .and_then(|j| j.get("model"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    if Scenario::looks_like_scenario(&model) {
        match Scenario::parse(&model) {
            Ok(from_model) => scenario.merge(from_model),
            Err(error) => return bad_request(&invalid_scenario(&error), endpoint, &ids, started),
        }
    }

    if scenario.hang {
        // Never answer: the connection (and this future with it) ends only when the client goes
        // away or the server shuts down and aborts it.
        return std::future::pending::<Response<MockBody>>().await;
    }
    let head_delay = shared.config.latency + scenario.head_delay.unwrap_or_default();
    if !head_delay.is_zero() {
        tokio::time::sleep(head_delay).await;
    }

    if let Some(status) = scenario.error_status {
        return error_reply(status, endpoint, &model, &ids, started);
    }

    let context = AnswerContext {
        ids,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        chunks: scenario.chunks.or(shared.config.chunks),
        force_stream: scenario.malformed_sse,
    };
    let answer = match (endpoint, json.as_ref()) {
        (Endpoint::Models, _) => Ok(openai::models()),
        (Endpoint::ChatCompletions, Some(j)) => openai::chat_completion(j, &context),
        (Endpoint::Completions, Some(j)) => openai::text_completion(j, &context),
        (Endpoint::Embeddings, Some(j)) => openai::embeddings(j),
        (Endpoint::Responses, Some(j)) => responses::responses(j, &context),
        (Endpoint::Messages, Some(j)) => anthropic::messages(j, &context),
        (Endpoint::Gemini { stream }, Some(j)) => {
            let framing = match (stream, parts.uri.query().is_some_and(wants_sse)) {
                (false, _) => gemini::Framing::Whole,
                (true, true) => gemini::Framing::Sse,
                (true, false) => gemini::Framing::JsonArray,
            };
            gemini::generate_content(&model, framing, j, &context)
        }
        (_, None) => Err(BadRequest::unparsable_json()),
    };
    let reply = match answer {
        Ok(answer) => Reply {
            status: StatusCode::OK,
            answer,
        },
        Err(error) => return bad_request(&error, endpoint, &ids, started),
    };

    let chunk_delay = scenario.chunk_delay.unwrap_or(shared.config.chunk_delay);
    let mut response = apply_faults(
        reply,
        endpoint,
        &scenario,
        chunk_delay,
        &model,
        &ids,
        started,
    );
    if endpoint == Endpoint::Messages
        && let Ok(value) = HeaderValue::from_str(&ids.request_id())
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("request-id"), value);
    }
    let accept_encoding = parts
        .headers
        .get(hyper::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    apply_transport(&mut response, &scenario, accept_encoding);
    shared.record_answer(response.body());
    response
}

/// Header the mock puts in place of a second `content-length` for `cl-te`: hyper will not
/// write both framings, so [`ClTeIo`] renames it on the wire. Same length as `content-length`.
const CL_TE_MARKER: &[u8] = b"x-mock-clte-ln";

/// The transport-level behaviours of real servers: compression, a late end of body, CL+TE
/// framing, many headers. They change how the answer travels, never what it says.
fn apply_transport(response: &mut Response<MockBody>, scenario: &Scenario, accept_encoding: &str) {
    let coding = match scenario.encoding {
        Some(EncodingChoice::Fixed(coding)) => Some(coding),
        Some(EncodingChoice::Auto) => Coding::negotiate(accept_encoding),
        None => None,
    };
    if let Some(coding) = coding
        && encode::encode_body(response.body_mut(), coding)
    {
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
        headers.insert(
            hyper::header::VARY,
            HeaderValue::from_static("accept-encoding"),
        );
    }
    if let Some(delay) = scenario.end_delay {
        response.body_mut().end_after(delay);
    }
    if scenario.cl_te {
        // Chunked on the wire (hyper frames a body of unknown length so), plus a stale length.
        let len = response.body().pending_len();
        response.body_mut().end_after(Duration::ZERO);
        if let Ok(name) = HeaderName::from_bytes(CL_TE_MARKER) {
            response.headers_mut().insert(name, HeaderValue::from(len));
        }
    }
    if let Some(n) = scenario.extra_headers {
        let headers = response.headers_mut();
        for i in 0..n {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(format!("x-mock-extra-{i}").as_bytes()),
                HeaderValue::from_str(&format!("value-{i}-{}", "x".repeat(24))),
            ) {
                headers.insert(name, value);
            }
        }
    }
}

/// `alt=sse` in a query string.
fn wants_sse(query: &str) -> bool {
    query.split('&').any(|pair| pair == "alt=sse")
}

fn invalid_scenario(error: &crate::scenario::ScenarioError) -> BadRequest {
    BadRequest {
        message: error.to_string(),
        param: None,
        code: Some("mock_scenario_invalid"),
    }
}

fn bad_request(
    error: &BadRequest,
    endpoint: Endpoint,
    ids: &IdSource,
    started: Instant,
) -> Response<MockBody> {
    let body = match endpoint.flavor() {
        Flavor::OpenAi => error.body(),
        Flavor::Anthropic => anthropic_bad_request(&error.message, ids),
        Flavor::Gemini => gemini::error_body(400, &error.message),
    };
    finish(
        StatusCode::BAD_REQUEST,
        MockBody::full(body),
        ids,
        started,
        false,
    )
}

fn anthropic_bad_request(message: &str, ids: &IdSource) -> Bytes {
    openai::json_bytes(&serde_json::json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": ids.request_id(),
    }))
}

fn error_reply(
    status: u16,
    endpoint: Endpoint,
    model: &str,
    ids: &IdSource,
    started: Instant,
) -> Response<MockBody> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match endpoint.flavor() {
        Flavor::OpenAi => openai::error_body(status, model),
        Flavor::Anthropic => anthropic::error_body(status, &ids.request_id()),
        Flavor::Gemini => gemini::error_body(status, &gemini::error_message(status)),
    };
    let mut response = finish(code, MockBody::full(body), ids, started, false);
    if status == 429 {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Applies the body-level faults of a scenario to a successful answer.
fn apply_faults(
    reply: Reply,
    endpoint: Endpoint,
    scenario: &Scenario,
    chunk_delay: Duration,
    model: &str,
    ids: &IdSource,
    started: Instant,
) -> Response<MockBody> {
    let status = reply.status;
    match reply.answer {
        Answer::Json(document) => {
            if scenario.stream_error {
                return error_reply(500, endpoint, model, ids, started);
            }
            if scenario.malformed_sse {
                // Endpoints that never stream: an event stream whose only event is unterminated.
                let mut broken = BytesMut::from(&b"data: "[..]);
                broken.extend_from_slice(first_half(&document));
                let body = MockBody::full(broken.freeze());
                return finish(status, body, ids, started, true);
            }
            if scenario.malformed_json {
                let half = Bytes::copy_from_slice(first_half(&document));
                return finish(status, MockBody::full(half), ids, started, false);
            }
            if scenario.hangup_after.is_some() {
                let half = Bytes::copy_from_slice(first_half(&document));
                let body = MockBody::paced(vec![half], Duration::ZERO, true);
                return finish(status, body, ids, started, false);
            }
            finish(status, MockBody::full(document), ids, started, false)
        }
        Answer::JsonStream(mut pieces) => {
            if scenario.malformed_json {
                pieces.insert(
                    1.min(pieces.len()),
                    Bytes::from_static(b"\n,\r\n{\"candidates\": [{\"content\": "),
                );
            }
            if scenario.stream_error {
                // The first chunk, then the error element closing the array.
                pieces.truncate(1);
                pieces.push(gemini::stream_error_piece(false));
            }
            let hang_up = match scenario.hangup_after {
                Some(n) => {
                    pieces.truncate(n);
                    true
                }
                None => false,
            };
            let body = MockBody::paced(pieces, chunk_delay, hang_up);
            finish(status, body, ids, started, false)
        }
        Answer::Sse(mut events) => {
            if scenario.malformed_json {
                events.insert(
                    1.min(events.len()),
                    Bytes::from_static(
                        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"unterminated\n\n",
                    ),
                );
            }
            if scenario.malformed_sse {
                events = break_framing(events);
            }
            if scenario.stream_error {
                // Two events (role + content; start + ping; created + in progress; one chunk
                // for Gemini), then the provider's error event; no normal end.
                match endpoint.flavor() {
                    Flavor::Gemini => {
                        events.truncate(1);
                        events.push(gemini::stream_error_piece(true));
                    }
                    Flavor::Anthropic => {
                        events.truncate(4);
                        events.push(anthropic::stream_error_event());
                    }
                    Flavor::OpenAi if endpoint == Endpoint::Responses => {
                        events.truncate(2);
                        events.push(responses::stream_failed_event());
                    }
                    Flavor::OpenAi => {
                        events.truncate(2);
                        events.push(openai::stream_error_event());
                    }
                }
            }
            let hang_up = match scenario.hangup_after {
                Some(n) => {
                    events.truncate(n);
                    true
                }
                None => false,
            };
            let body = MockBody::paced(events, chunk_delay, hang_up);
            finish(status, body, ids, started, true)
        }
    }
}

/// Breaks SSE framing in the ways real broken upstreams do: a JSON line with no `data:` field,
/// two `data:` lines in one event (joined, they are not JSON), and a last event that never gets its
/// blank line.
fn break_framing(events: Vec<Bytes>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(events.len() + 1);
    let mut iter = events.into_iter();
    if let Some(first) = iter.next() {
        out.push(first);
    }
    out.push(Bytes::from_static(
        b"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"line without a data field\"}}]}\n\n",
    ));
    out.push(Bytes::from_static(
        b"data: {\"choices\":[]}\ndata: {\"choices\":[]}\n\n",
    ));
    out.extend(iter);
    if let Some(last) = out.pop() {
        let trimmed = last.strip_suffix(b"\n\n").unwrap_or(&last);
        out.push(Bytes::copy_from_slice(trimmed));
    }
    out
}

fn first_half(document: &Bytes) -> &[u8] {
    document.get(..document.len() / 2).unwrap_or_default()
}

/// Adds the headers every OpenAI response carries.
fn finish(
    status: StatusCode,
    body: MockBody,
    ids: &IdSource,
    started: Instant,
    event_stream: bool,
) -> Response<MockBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if event_stream {
            "text/event-stream; charset=utf-8"
        } else {
            "application/json"
        }),
    );
    if let Ok(value) = HeaderValue::from_str(&ids.request_id()) {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    headers.insert(
        HeaderName::from_static("openai-version"),
        HeaderValue::from_static("2020-10-01"),
    );
    headers.insert(
        HeaderName::from_static("openai-processing-ms"),
        HeaderValue::from(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
    );
    if event_stream {
        headers.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_allow_a_prefix_before_v1() {
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            route(&Method::POST, "/openai/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            route(&Method::POST, "/v1/completions"),
            Some(Endpoint::Completions)
        );
        assert_eq!(route(&Method::GET, "/v1/models"), Some(Endpoint::Models));
        assert_eq!(route(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(route(&Method::POST, "/chat/completions"), None);
        assert_eq!(route(&Method::POST, "/v1/nope"), None);
    }

    #[test]
    fn broken_framing_keeps_the_real_events_and_drops_the_last_blank_line() {
        let events = vec![
            Bytes::from_static(b"data: {\"a\":1}\n\n"),
            Bytes::from_static(b"data: {\"b\":2}\n\n"),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ];
        let joined: Vec<u8> = break_framing(events).concat();
        let text = String::from_utf8_lossy(&joined);
        assert!(text.starts_with("data: {\"a\":1}\n\n{\"choices\""));
        assert!(text.contains("data: {\"b\":2}\n\n"));
        assert!(text.ends_with("data: [DONE]"));
    }
}
