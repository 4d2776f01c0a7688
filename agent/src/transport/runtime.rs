//! A `webrtc` runtime: the crate's tokio runtime, with larger UDP socket buffers.
//!
//! SCTP sends a whole congestion window (up to the peer's 1 MiB receive window) as a burst of
//! ~1.2 KB datagrams. With the Linux default receive buffer (`net.core.rmem_default`,
//! 208 KiB) the tail of such a burst overflows the peer's socket; when the lost packets are
//! the last of a burst, SCTP has no later SACKs to trigger fast retransmit and waits for its
//! 1 s minimum RTO. On loopback this showed up as 1 s stalls and a third of the achievable
//! throughput. Every UDP socket the crate binds is therefore given `SO_RCVBUF`/`SO_SNDBUF`
//! of `udp_socket_buffer` before the crate wraps it. The kernel caps the value at
//! `net.core.rmem_max`/`wmem_max`; operators raise those sysctls to get the full size.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// [`TokioRuntime`] with `SO_RCVBUF`/`SO_SNDBUF` set on every UDP socket.
pub(crate) struct TunedTokioRuntime {
    inner: TokioRuntime,
    udp_buffer: usize,
}

impl TunedTokioRuntime {
    /// `udp_buffer` 0 leaves the kernel defaults.
    pub(crate) fn new(udp_buffer: usize) -> Self {
        Self {
            inner: TokioRuntime,
            udp_buffer,
        }
    }
}

impl fmt::Debug for TunedTokioRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunedTokioRuntime")
            .field("udp_buffer", &self.udp_buffer)
            .finish()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for TunedTokioRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        if self.udp_buffer > 0 {
            let sock = socket2::SockRef::from(&socket);
            // Best effort: the kernel silently caps both at its *_max sysctls.
            if let Err(error) = sock.set_recv_buffer_size(self.udp_buffer) {
                tracing::debug!(%error, "could not set SO_RCVBUF");
            }
            if let Err(error) = sock.set_send_buffer_size(self.udp_buffer) {
                tracing::debug!(%error, "could not set SO_SNDBUF");
            }
        }
        self.inner.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> BoxFuture<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> BoxFuture<'static, ()> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (tuned UDP buffers)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_buffers_are_raised() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("getsockopt");
        let probe = socket.try_clone().expect("clone");
        let runtime = TunedTokioRuntime::new(before * 4);
        let _wrapped = runtime.wrap_udp_socket(socket).expect("wrap");
        let after = socket2::SockRef::from(&probe)
            .recv_buffer_size()
            .expect("getsockopt");
        // Raised, unless the kernel's rmem_max is at the default already.
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        if rmem_max > before {
            assert!(after > before, "SO_RCVBUF {after} not raised from {before}");
        }
    }
}
