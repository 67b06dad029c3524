//! The proxy's listening socket, with an accept queue sized for bursts.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Accept-queue length asked of the kernel, which caps it at `net.core.somaxconn` (4096 by
/// default since Linux 5.4). The standard library asks for 128: an agent swarm starting at
/// once, or a client pool answering a slow moment with new connections, overflows that, and
/// the kernel drops the SYNs it has no room for — each one a full second of retransmit delay
/// for that call (measured in docs/benchmarks.md, "Stalls at 80 %").
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (address reuse on, as the standard library does) and listens with
/// [`LISTEN_BACKLOG`]. Needs a tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Room for more pending connections than the standard library's 128, none of them
    /// accepted yet: every connect completes at once instead of waiting out a SYN retransmit.
    #[tokio::test]
    async fn a_burst_past_128_pending_connections_is_queued_not_dropped() -> anyhow::Result<()> {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(LISTEN_BACKLOG);
        let burst = somaxconn.min(512).saturating_sub(16) as usize;
        if burst <= 128 {
            eprintln!("SKIP: net.core.somaxconn is {somaxconn}; no queue past 128 to test");
            anyhow::ensure!(
                std::env::var_os("CI").is_none(),
                "net.core.somaxconn {somaxconn} on CI"
            );
            return Ok(());
        }
        let listener = bind("127.0.0.1:0".parse()?)?;
        let addr = listener.local_addr()?;
        let mut connects = tokio::task::JoinSet::new();
        for _ in 0..burst {
            connects.spawn(tokio::time::timeout(
                Duration::from_millis(900),
                tokio::net::TcpStream::connect(addr),
            ));
        }
        let mut streams = Vec::with_capacity(burst);
        while let Some(joined) = connects.join_next().await {
            if let Ok(stream) = joined? {
                streams.push(stream?);
            }
        }
        assert_eq!(
            streams.len(),
            burst,
            "connections completed before a SYN retransmit"
        );
        drop(listener);
        Ok(())
    }
}
