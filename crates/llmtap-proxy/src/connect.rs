//! [`ConnectLimit`]: at most N connects (TCP + TLS) in progress per upstream host; the others
//! wait in line.
//!
//! hyper's pool opens a new connection for every request that finds no idle one. Under a burst
//! that is a connection storm: hundreds of handshakes at once, each slower because of the
//! others, while connections freed a moment later go unused. With a cap, a waiting request is
//! served by whichever comes first — a connection freed by another call (the pool hands it
//! over) or its own connect once a slot is free — so a burst reuses the pool instead of growing
//! it without bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::Uri;
use tokio::sync::Semaphore;
use tower_service::Service;

/// A connector that lets at most `per_host` connects run at once per `host:port`.
#[derive(Debug, Clone)]
pub(crate) struct ConnectLimit<C> {
    inner: C,
    per_host: usize,
    /// One gate per upstream authority (a handful: the configured upstreams).
    gates: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl<C> ConnectLimit<C> {
    pub(crate) fn new(inner: C, per_host: usize) -> Self {
        Self {
            inner,
            per_host: per_host.clamp(1, Semaphore::MAX_PERMITS),
            gates: Arc::default(),
        }
    }

    fn gate(&self, uri: &Uri) -> Arc<Semaphore> {
        let host = uri.authority().map_or("", |a| a.as_str()).to_owned();
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            gates
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_host))),
        )
    }
}

impl<C> Service<Uri> for ConnectLimit<C>
where
    C: Service<Uri> + Clone + Send + 'static,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let gate = self.gate(&uri);
        // Take the service that was made ready and leave a clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            // The semaphore is never closed; the permit is held until the connect ends.
            let _slot = gate.acquire_owned().await.ok();
            inner.call(uri).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A connector that takes 20 ms and records how many of its connects overlapped.
    #[derive(Debug, Clone, Default)]
    struct SlowConnect {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    impl Service<Uri> for SlowConnect {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<(), Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Uri) -> Self::Future {
            let (now, most) = (Arc::clone(&self.now), Arc::clone(&self.most));
            Box::pin(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    async fn burst(limit: &ConnectLimit<SlowConnect>, uri: &str, n: usize) {
        let uri: Uri = uri.parse().unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..n {
            calls.spawn(limit.clone().call(uri.clone()));
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_connects_at_most_the_cap_at_once_per_host() {
        let slow = SlowConnect::default();
        let limit = ConnectLimit::new(slow.clone(), 3);
        burst(&limit, "http://a.test:80/", 20).await;
        assert_eq!(slow.most.load(Ordering::SeqCst), 3);

        // Hosts do not share a gate: two hosts at once reach twice the cap.
        let slow = SlowConnect::default();
        let limit = ConnectLimit::new(slow.clone(), 3);
        tokio::join!(
            burst(&limit, "http://a.test:80/", 10),
            burst(&limit, "http://b.test:80/", 10)
        );
        assert_eq!(slow.most.load(Ordering::SeqCst), 6);

        // Without a cap (a large one) the burst connects all at once.
        let slow = SlowConnect::default();
        let limit = ConnectLimit::new(slow.clone(), 1000);
        burst(&limit, "http://a.test:80/", 20).await;
        assert_eq!(slow.most.load(Ordering::SeqCst), 20);
    }
}
