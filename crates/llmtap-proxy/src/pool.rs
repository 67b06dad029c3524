//! [`UpstreamPool`]: llmtap's own upstream connection pool. Idle connections are reused newest
//! first; at most N connects (TCP + TLS + handshake) run at once per upstream; a call that finds
//! no idle connection waits in line and is served by whichever comes first — a connection
//! another call hands back, or a connect that finished.
//!
//! Why not hyper-util's pool: it starts a connect for every call that finds no idle connection
//! and, when an idle one turns up first, finishes that connect in the background and keeps it.
//! Capping connects in progress only queued those connects: at 7,300 calls a second (past
//! llmtap's saturation) the pool grew past 15,000 upstream connections while calls stalled for
//! over a second (docs/benchmarks.md, ADR 0016). Here a connect starts only while more calls wait
//! than connects are under way, so the pool grows no further than the concurrency the upstream
//! really saw, and a burst is absorbed by connections freed microseconds later.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, header::HOST};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::oneshot;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Times a call is sent again after a reused connection turned out closed before the request
/// was written (the upstream closed it while idle). Each retry takes another connection.
const MAX_RESENDS: usize = 4;

/// What the pool needs of a connector: TCP (+ TLS) streams hyper can drive.
pub(crate) trait Connect:
    Service<
        Uri,
        Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Connect for T where
    T: Service<
            Uri,
            Response: hyper::rt::Read + hyper::rt::Write + Connection + Unpin + Send + 'static,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// What the pool needs of a request body.
pub(crate) trait PoolBody:
    Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<T> PoolBody for T where T: Body<Data: Send, Error: Into<BoxError>> + Send + Unpin + 'static {}

/// Errors from [`UpstreamPool::send`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// TCP, TLS or the HTTP handshake failed.
    #[error("connect failed: {0}")]
    Connect(#[source] BoxError),
    /// The call failed on an established connection.
    #[error("request failed: {0}")]
    Send(#[source] hyper::Error),
    /// The URI had no scheme or authority.
    #[error("upstream URI has no scheme or host")]
    BadUri,
    /// The pool went away while the call waited (the proxy is shutting down).
    #[error("connection pool closed")]
    Closed,
}

impl PoolError {
    /// Whether no connection to the upstream could be made.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// How the pool behaves.
#[derive(Debug, Clone)]
pub(crate) struct PoolSettings {
    /// Connects in progress at once per upstream.
    pub(crate) max_connecting: usize,
    /// An idle connection older than this is closed instead of reused.
    pub(crate) idle_timeout: Duration,
    /// Most headers accepted in a response head (HTTP/1).
    pub(crate) max_headers: usize,
    /// Most bytes buffered for a response head (HTTP/1).
    pub(crate) max_head_bytes: usize,
}

/// The pool's counters and gauges, for `/healthz`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct PoolSnapshot {
    /// Connections opened since start (HTTP/1 and HTTP/2).
    pub(crate) connects: u64,
    /// Connects that failed.
    pub(crate) connect_errors: u64,
    /// Calls that found no idle connection and waited in line.
    pub(crate) waits: u64,
    /// Calls sent again because a reused connection had closed while idle.
    pub(crate) resends: u64,
    /// Idle HTTP/1 connections now.
    pub(crate) idle: usize,
    /// Connects in progress now.
    pub(crate) connecting: usize,
    /// Calls waiting for a connection now.
    pub(crate) waiting: usize,
}

/// Pooled connections to every upstream, keyed by scheme and authority.
pub(crate) struct UpstreamPool<C, B> {
    shared: Arc<Shared<C, B>>,
}

impl<C, B> Clone for UpstreamPool<C, B> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<C, B> {
    connector: C,
    settings: PoolSettings,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    hosts: Mutex<HashMap<Key, Host<B>>>,
    reaper_started: AtomicBool,
    connects: AtomicU64,
    connect_errors: AtomicU64,
    waits: AtomicU64,
    resends: AtomicU64,
}

type Key = (Scheme, Authority);

/// A connection handed out by the pool.
enum Sender<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

struct Checkout<B> {
    sender: Sender<B>,
    /// Whether the connection carried a call before: only then is a resend safe and useful.
    reused: bool,
}

type Waiter<B> = oneshot::Sender<Result<Checkout<B>, PoolError>>;

struct Idle<B> {
    sender: http1::SendRequest<B>,
    since: Instant,
}

struct Host<B> {
    /// Newest at the back.
    idle: VecDeque<Idle<B>>,
    /// One HTTP/2 connection carries every call (ALPN chose h2).
    h2: Option<http2::SendRequest<B>>,
    connecting: usize,
    waiters: VecDeque<Waiter<B>>,
}

impl<B> Default for Host<B> {
    fn default() -> Self {
        Self {
            idle: VecDeque::new(),
            h2: None,
            connecting: 0,
            waiters: VecDeque::new(),
        }
    }
}

impl<B> Host<B> {
    /// A usable connection, if one is idle; closed and expired ones are dropped on the way.
    fn take_idle(&mut self, idle_timeout: Duration) -> Option<Sender<B>> {
        if let Some(h2) = &self.h2 {
            if !h2.is_closed() {
                return Some(Sender::H2(h2.clone()));
            }
            self.h2 = None;
        }
        let now = Instant::now();
        while let Some(idle) = self.idle.pop_back() {
            if !idle.sender.is_closed() && now.duration_since(idle.since) < idle_timeout {
                return Some(Sender::H1(idle.sender));
            }
        }
        None
    }

    /// Hands `checkout` to the first caller still waiting; gives it back when nobody is.
    fn deliver(&mut self, mut checkout: Checkout<B>) -> Option<Checkout<B>> {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(Ok(checkout)) {
                Ok(()) => return None,
                Err(Ok(back)) => checkout = back,
                Err(Err(_)) => return None,
            }
        }
        Some(checkout)
    }

    /// An HTTP/1 connection ready for a call: to the first caller waiting, else idle.
    fn hand_over(&mut self, sender: http1::SendRequest<B>, reused: bool) {
        let checkout = Checkout {
            sender: Sender::H1(sender),
            reused,
        };
        if let Some(Checkout {
            sender: Sender::H1(sender),
            ..
        }) = self.deliver(checkout)
        {
            self.idle.push_back(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Hands a failed connect's error to the first caller still waiting.
    fn fail_one(&mut self, err: PoolError) {
        let mut err = err;
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(Err(err)) {
                Ok(()) => return,
                Err(Err(back)) => err = back,
                Err(Ok(_)) => return,
            }
        }
    }

    fn drop_expired(&mut self, idle_timeout: Duration) {
        let now = Instant::now();
        self.idle
            .retain(|i| !i.sender.is_closed() && now.duration_since(i.since) < idle_timeout);
        self.waiters.retain(|w| !w.is_closed());
    }
}

impl<C: Connect, B: PoolBody> UpstreamPool<C, B> {
    pub(crate) fn new(connector: C, settings: PoolSettings) -> Self {
        let mut h1 = http1::Builder::new();
        h1.max_headers(settings.max_headers)
            .max_buf_size(settings.max_head_bytes);
        let settings = PoolSettings {
            max_connecting: settings.max_connecting.max(1),
            ..settings
        };
        Self {
            shared: Arc::new(Shared {
                connector,
                settings,
                h1,
                h2: http2::Builder::new(TokioExecutor::new()),
                hosts: Mutex::default(),
                reaper_started: AtomicBool::new(false),
                connects: AtomicU64::new(0),
                connect_errors: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                resends: AtomicU64::new(0),
            }),
        }
    }

    /// Sends `req` (absolute URI) on a pooled connection; HTTP/1 gets origin-form and `host`.
    pub(crate) async fn send(&self, mut req: Request<B>) -> Result<Response<Incoming>, PoolError> {
        let uri = req.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(PoolError::BadUri);
        };
        let key: Key = (scheme.clone(), authority.clone());
        self.start_reaper();
        let mut resends = 0;
        loop {
            let checkout = self.checkout(&key).await?;
            let mut sent = match checkout.sender {
                Sender::H1(mut sender) => {
                    to_http1_form(&mut req, &uri);
                    match sender.try_send_request(req).await {
                        Ok(resp) => {
                            self.give_back_when_idle(key, sender);
                            return Ok(resp);
                        }
                        Err(err) => err,
                    }
                }
                Sender::H2(mut sender) => match sender.try_send_request(req).await {
                    Ok(resp) => return Ok(resp),
                    Err(err) => err,
                },
            };
            match sent.take_message() {
                Some(back) if checkout.reused && resends < MAX_RESENDS => {
                    resends += 1;
                    self.shared.resends.fetch_add(1, Ordering::Relaxed);
                    req = back;
                    *req.uri_mut() = uri.clone();
                }
                _ => return Err(PoolError::Send(sent.into_error())),
            }
        }
    }

    /// Counters and gauges for `/healthz`.
    pub(crate) fn snapshot(&self) -> PoolSnapshot {
        let shared = &self.shared;
        let mut snapshot = PoolSnapshot {
            connects: shared.connects.load(Ordering::Relaxed),
            connect_errors: shared.connect_errors.load(Ordering::Relaxed),
            waits: shared.waits.load(Ordering::Relaxed),
            resends: shared.resends.load(Ordering::Relaxed),
            ..PoolSnapshot::default()
        };
        for host in shared.lock().values() {
            snapshot.idle += host.idle.len();
            snapshot.connecting += host.connecting;
            snapshot.waiting += host.waiters.len();
        }
        snapshot
    }

    async fn checkout(&self, key: &Key) -> Result<Checkout<B>, PoolError> {
        let waiting = {
            let mut hosts = self.shared.lock();
            let host = hosts.entry(key.clone()).or_default();
            if let Some(sender) = host.take_idle(self.shared.settings.idle_timeout) {
                return Ok(Checkout {
                    sender,
                    reused: true,
                });
            }
            let (tx, rx) = oneshot::channel();
            host.waiters.push_back(tx);
            self.shared.waits.fetch_add(1, Ordering::Relaxed);
            Shared::start_connects(&self.shared, key, host);
            rx
        };
        waiting.await.unwrap_or(Err(PoolError::Closed))
    }

    /// An HTTP/1 connection goes back to the pool once its response body has been read.
    fn give_back_when_idle(&self, key: Key, mut sender: http1::SendRequest<B>) {
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            if let Some(shared) = shared.upgrade() {
                let mut hosts = shared.lock();
                hosts.entry(key).or_default().hand_over(sender, true);
            }
        });
    }

    /// Once per pool: close idle connections past their timeout even when no call comes.
    fn start_reaper(&self) {
        // Read first: every call passes here, and only the first needs the write.
        let started = &self.shared.reaper_started;
        if started.load(Ordering::Relaxed) || started.swap(true, Ordering::Relaxed) {
            return;
        }
        let shared: Weak<Shared<C, B>> = Arc::downgrade(&self.shared);
        let every = (self.shared.settings.idle_timeout / 2).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let idle_timeout = shared.settings.idle_timeout;
                let mut hosts = shared.lock();
                hosts.retain(|_, host| {
                    host.drop_expired(idle_timeout);
                    host.connecting > 0
                        || host.h2.is_some()
                        || !host.idle.is_empty()
                        || !host.waiters.is_empty()
                });
            }
        });
    }
}

impl<C: Connect, B: PoolBody> Shared<C, B> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Host<B>>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts connects while more calls wait than connects are under way, up to the cap.
    fn start_connects(this: &Arc<Self>, key: &Key, host: &mut Host<B>) {
        let max = this.settings.max_connecting;
        if host.connecting >= max || host.waiters.len() <= host.connecting {
            return;
        }
        host.waiters.retain(|w| !w.is_closed());
        while host.connecting < max && host.waiters.len() > host.connecting {
            host.connecting += 1;
            tokio::spawn(Self::connect_for_waiters(Arc::clone(this), key.clone()));
        }
    }

    async fn connect_for_waiters(this: Arc<Self>, key: Key) {
        let connected = this.connect(&key).await;
        let mut hosts = this.lock();
        let host = hosts.entry(key.clone()).or_default();
        host.connecting = host.connecting.saturating_sub(1);
        match connected {
            Ok(Sender::H2(sender)) => {
                if host.h2.as_ref().is_none_or(http2::SendRequest::is_closed) {
                    host.h2 = Some(sender.clone());
                }
                let mut reused = false;
                while let Some(waiter) = host.waiters.pop_front() {
                    let checkout = Checkout {
                        sender: Sender::H2(sender.clone()),
                        reused,
                    };
                    reused |= waiter.send(Ok(checkout)).is_ok();
                }
            }
            Ok(Sender::H1(sender)) => host.hand_over(sender, false),
            Err(err) => {
                this.connect_errors.fetch_add(1, Ordering::Relaxed);
                host.fail_one(err);
            }
        }
        Self::start_connects(&this, &key, host);
    }

    /// TCP (+ TLS), then the HTTP/1 or HTTP/2 handshake as ALPN decided.
    async fn connect(&self, key: &Key) -> Result<Sender<B>, PoolError> {
        let uri = Uri::builder()
            .scheme(key.0.clone())
            .authority(key.1.clone())
            .path_and_query(PathAndQuery::from_static("/"))
            .build()
            .map_err(|_| PoolError::BadUri)?;
        let mut connector = self.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect_error)?;
        let io = connector.call(uri).await.map_err(connect_error)?;
        self.connects.fetch_add(1, Ordering::Relaxed);
        if io.connected().is_negotiated_h2() {
            let (mut sender, conn) = self.h2.handshake(io).await.map_err(connect_error)?;
            drive(conn, "upstream HTTP/2 connection ended");
            sender.ready().await.map_err(connect_error)?;
            Ok(Sender::H2(sender))
        } else {
            let (mut sender, conn) = self.h1.handshake(io).await.map_err(connect_error)?;
            drive(conn, "upstream connection ended");
            sender.ready().await.map_err(connect_error)?;
            Ok(Sender::H1(sender))
        }
    }
}

fn connect_error(err: impl Into<BoxError>) -> PoolError {
    PoolError::Connect(err.into())
}

/// Runs a connection's I/O until it ends; how it ended is only worth a debug line.
fn drive(
    conn: impl std::future::Future<Output = hyper::Result<()>> + Send + 'static,
    ended: &'static str,
) {
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "{ended}");
        }
    });
}

/// HTTP/1 wants origin-form (`/v1/chat?x`) and a `host` header (with the port when it is not
/// the scheme's default).
fn to_http1_form<B>(req: &mut Request<B>, uri: &Uri) {
    if !req.headers().contains_key(HOST)
        && let Some(authority) = uri.authority()
    {
        let default_port = match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        };
        let value = match authority.port_u16() {
            Some(port) if Some(port) != default_port => {
                HeaderValue::from_str(&format!("{}:{port}", authority.host()))
            }
            _ => HeaderValue::from_str(authority.host()),
        };
        if let Ok(value) = value {
            req.headers_mut().insert(HOST, value);
        }
    }
    let origin = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(origin);
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use hyper::service::service_fn;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    type TestPool = UpstreamPool<CountingConnect, Empty<Bytes>>;

    /// An HTTP connector that can be slowed down and counts connects (all, and at once).
    #[derive(Clone)]
    struct CountingConnect {
        inner: HttpConnector,
        delay: Duration,
        started: Arc<AtomicUsize>,
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl CountingConnect {
        fn new(delay: Duration) -> Self {
            Self {
                inner: HttpConnector::new(),
                delay,
                started: Arc::default(),
                now: Arc::default(),
                most: Arc::default(),
            }
        }
        fn started(&self) -> usize {
            self.started.load(Ordering::SeqCst)
        }
        fn most_at_once(&self) -> usize {
            self.most.load(Ordering::SeqCst)
        }
    }

    impl Service<Uri> for CountingConnect {
        type Response = TokioIo<TcpStream>;
        type Error = BoxError;
        type Future =
            Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, uri: Uri) -> Self::Future {
            let mut inner = self.inner.clone();
            let (delay, now, most) = (self.delay, Arc::clone(&self.now), Arc::clone(&self.most));
            self.started.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(at_once, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let io = inner.call(uri).await;
                now.fetch_sub(1, Ordering::SeqCst);
                io.map_err(Into::into)
            })
        }
    }

    fn pool(connector: CountingConnect, max_connecting: usize) -> TestPool {
        UpstreamPool::new(
            connector,
            PoolSettings {
                max_connecting,
                idle_timeout: Duration::from_secs(90),
                max_headers: 100,
                max_head_bytes: 64 * 1024,
            },
        )
    }

    /// An HTTP/1 server that answers after `hold`, echoing the request target and `host`.
    async fn server(hold: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| async move {
                        tokio::time::sleep(hold).await;
                        let host = req.headers().get(HOST).cloned();
                        let text = format!(
                            "{} {}",
                            req.uri(),
                            host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-")
                        );
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            text,
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    async fn call(pool: &TestPool, url: &str) -> Result<String, PoolError> {
        let req = Request::get(url).body(Empty::new()).expect("request");
        let mut body = pool.send(req).await?.into_body();
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(PoolError::Send)?.into_data() {
                text.extend_from_slice(&data);
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    async fn burst(pool: &TestPool, url: &str, n: usize) -> Vec<Result<String, PoolError>> {
        let calls = (0..n).map(|_| {
            let (pool, url) = (pool.clone(), url.to_owned());
            tokio::spawn(async move { call(&pool, &url).await })
        });
        let mut out = Vec::new();
        for c in calls.collect::<Vec<_>>() {
            out.push(c.await.expect("task"));
        }
        out
    }

    #[tokio::test]
    async fn http1_gets_origin_form_and_a_host_header_with_the_port() {
        let (base, _) = server(Duration::ZERO).await;
        let pool = pool(CountingConnect::new(Duration::ZERO), 4);
        let port = base.rsplit(':').next().expect("port");
        let echoed = call(&pool, &format!("{base}/v1/chat/completions?x=1"))
            .await
            .expect("call");
        assert_eq!(echoed, format!("/v1/chat/completions?x=1 127.0.0.1:{port}"));
    }

    /// The storm case: calls that find no idle connection while connects are slow are served
    /// by connections other calls hand back, and no connect starts beyond the cap. hyper-util's
    /// pool started (and finished, and kept) a connect for each of them.
    #[tokio::test]
    async fn a_burst_reuses_returned_connections_instead_of_connecting_for_each_call() {
        let (base, accepted) = server(Duration::ZERO).await;
        let connector = CountingConnect::new(Duration::from_millis(400));
        let pool = pool(connector.clone(), 2);
        call(&pool, &base).await.expect("warm-up call");
        assert_eq!(connector.started(), 1);
        let results = burst(&pool, &base, 40).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // The one warm connection serves the line while two connects run; the line is empty
        // before they finish, so nothing more starts.
        assert!(
            connector.started() <= 3,
            "{} connects for a 40-call burst",
            connector.started()
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(accepted.load(Ordering::SeqCst) <= 3);
        let snapshot = pool.snapshot();
        assert!(snapshot.waits >= 1, "{snapshot:?}");
        assert_eq!(snapshot.waiting, 0, "{snapshot:?}");
    }

    /// Calls that each hold their connection: the pool grows to what they need, never more than
    /// the cap of connects at once.
    #[tokio::test]
    async fn connects_in_progress_stay_under_the_cap_and_every_call_is_served() {
        let (base, _) = server(Duration::from_millis(100)).await;
        let connector = CountingConnect::new(Duration::from_millis(20));
        let pool = pool(connector.clone(), 3);
        let results = burst(&pool, &base, 30).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert!(
            connector.most_at_once() <= 3,
            "{}",
            connector.most_at_once()
        );
        assert!(connector.started() <= 30, "{}", connector.started());
        // The connections went back to the pool: a second burst connects no more.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = connector.started();
        let idle = pool.snapshot().idle;
        let results = burst(&pool, &base, idle.min(30)).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(connector.started(), before, "idle connections were reused");
    }

    #[tokio::test]
    async fn a_dead_upstream_fails_every_waiting_call_with_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let url = format!("http://127.0.0.1:{port}/v1/x");
        let pool = pool(CountingConnect::new(Duration::ZERO), 2);
        let results = tokio::time::timeout(Duration::from_secs(10), burst(&pool, &url, 10))
            .await
            .expect("no call hangs");
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_err_and(PoolError::is_connect)),
            "{results:?}"
        );
        let snapshot = pool.snapshot();
        assert_eq!(snapshot.connect_errors, 10, "{snapshot:?}");
        assert_eq!((snapshot.waiting, snapshot.connecting), (0, 0));
    }

    /// An upstream that closes each connection right after answering (as servers do on their
    /// idle timeout): no call fails for it; closed connections are skipped, or the call is
    /// sent again when the close raced with it.
    #[tokio::test]
    async fn connections_the_upstream_closed_are_not_used_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    let _ = stream.write_all(answer).await;
                    // Keep-alive was implied; the server closes anyway.
                });
            }
        });
        let connector = CountingConnect::new(Duration::ZERO);
        let pool = pool(connector.clone(), 4);
        for _ in 0..5 {
            assert_eq!(call(&pool, &base).await.expect("call"), "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(connector.started(), 5);
    }

    #[tokio::test]
    async fn an_idle_connection_past_its_timeout_is_not_reused() {
        let (base, _) = server(Duration::ZERO).await;
        let connector = CountingConnect::new(Duration::ZERO);
        let pool = UpstreamPool::new(
            connector.clone(),
            PoolSettings {
                max_connecting: 4,
                idle_timeout: Duration::from_millis(50),
                max_headers: 100,
                max_head_bytes: 64 * 1024,
            },
        );
        call(&pool, &base).await.expect("first");
        // The connection goes back once hyper has seen the response end.
        tokio::time::sleep(Duration::from_millis(10)).await;
        call(&pool, &base)
            .await
            .expect("second, on the same connection");
        assert_eq!(connector.started(), 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        call(&pool, &base).await.expect("third");
        assert_eq!(connector.started(), 2);
    }
}
