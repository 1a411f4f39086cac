//! Slow and oversized clients at the connection level. pingora bounds each read of a request
//! head (60 s) but not the head as a whole, so a client sending a header byte every few seconds
//! holds a connection forever (slowloris). This wraps a listener's HTTP/1 application: every
//! request head must arrive completely within `header_timeout` — counted from the connection's
//! accept for its first request, from the head's first byte on a kept-alive connection —
//! otherwise the connection is closed. Idle keep-alive connections close after
//! `keepalive_timeout` (pingora itself keeps an HTTP/1.1 connection without a `Keep-Alive`
//! header open forever). Heads are read up to pingora's fixed 1 MiB (400 beyond); sizes below
//! that and request bodies are the gateway's business (`proxy::within_limits`,
//! `Gateway::request_body_filter`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The connection-level limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
}

/// An HTTP/1 application whose connections obey [`ClientLimits`].
pub struct LimitedHttp<A> {
    inner: Arc<A>,
    limits: ClientLimits,
}

impl<A> LimitedHttp<A> {
    pub fn new(inner: A, limits: ClientLimits) -> Self {
        Self {
            inner: Arc::new(inner),
            limits,
        }
    }
}

#[async_trait]
impl<A> ServerApp for LimitedHttp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // HTTP/2 (only ever negotiated by ALPN) has its own flow control; keep pingora's path.
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let keepalive = self.limits.keepalive_timeout.as_secs().max(1);
        let phase = Arc::new(AtomicU8::new(IN_HEAD));
        let mut stream: Stream = Box::new(LimitedStream::new(stream, self.limits, phase.clone()));
        // The proxy's per-request future is large (tens of KiB); it is only created once a
        // request has begun to arrive, so an idle connection costs little more than its socket.
        if !first_byte(&mut stream, self.limits.header_timeout, shutdown).await {
            return None;
        }
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(if *shutdown.borrow() {
            None
        } else {
            Some(keepalive)
        });
        session.set_keepalive_reuses_remaining(
            self.inner
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        let mut reused = Box::pin(self.inner.process_new_http(session, shutdown)).await;
        while let Some((mut stream, settings)) = reused.map(|r| r.consume()) {
            // The next head's clock starts with its first byte; idling before it is bounded by
            // the keep-alive timeout.
            phase.store(IN_HEAD, Ordering::Release);
            if !first_byte(&mut stream, self.limits.keepalive_timeout, shutdown).await {
                return None;
            }
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            reused = Box::pin(self.inner.process_new_http(session, shutdown)).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

/// Waits until the client sends something (true), or closes, stays silent for `limit`, or the
/// server shuts down (false). Streams that cannot peek (TLS) return at once.
async fn first_byte(stream: &mut Stream, limit: Duration, shutdown: &ShutdownWatch) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    let mut byte = [0u8; 1];
    let mut shutdown = shutdown.clone();
    tokio::select! {
        peeked = tokio::time::timeout(limit, stream.try_peek(&mut byte)) => {
            matches!(peeked, Ok(Ok(_)))
        }
        _ = shutdown.changed() => false,
    }
}

/// Where the connection is: waiting for (or reading) a request head, or past it.
const IN_HEAD: u8 = 0;
const PAST_HEAD: u8 = 1;

/// The accepted stream, watching request heads as they are read.
struct LimitedStream {
    inner: Stream,
    limits: ClientLimits,
    phase: Arc<AtomicU8>,
    /// When the head being read must be complete (from the accept for the first request), or,
    /// while `idle`, when a kept-alive connection without a new request is closed.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Between requests on a kept-alive connection, before the next head's first byte.
    idle: bool,
    /// The last bytes of the head so far (an end of head split across reads).
    tail: [u8; 3],
    /// A request line has started (blank lines before it are not a head).
    started: bool,
}

impl fmt::Debug for LimitedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedStream")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl LimitedStream {
    fn new(inner: Stream, limits: ClientLimits, phase: Arc<AtomicU8>) -> Self {
        Self {
            deadline: Some(Box::pin(tokio::time::sleep(limits.header_timeout))),
            inner,
            limits,
            phase,
            idle: false,
            tail: [0; 3],
            started: false,
        }
    }

    /// Follows the head through the bytes just read; true once it has ended.
    fn scan_head(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if !self.started {
                if b == b'\r' || b == b'\n' {
                    continue;
                }
                self.started = true;
            }
            let ended = (b == b'\n' && self.tail[2] == b'\n')
                || (b == b'\n' && self.tail[2] == b'\r' && self.tail[1] == b'\n');
            self.tail = [self.tail[1], self.tail[2], b];
            if ended {
                return true;
            }
        }
        false
    }

    fn head_done(&mut self) {
        self.phase.store(PAST_HEAD, Ordering::Release);
        self.deadline = None;
        self.idle = false;
        self.tail = [0; 3];
        self.started = false;
    }
}

fn refused(why: &'static str) -> Poll<std::io::Result<()>> {
    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why)))
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let phase = this.phase.load(Ordering::Acquire);
        if phase == PAST_HEAD {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // pingora keeps HTTP/1.1 connections alive without limit. `first_byte` bounds the idle
        // time of streams it can peek; this clock covers the others (TLS).
        let deadline = this.deadline.get_or_insert_with(|| {
            this.idle = true;
            Box::pin(tokio::time::sleep(this.limits.keepalive_timeout))
        });
        if deadline.as_mut().poll(cx).is_ready() {
            if this.idle {
                return Poll::Ready(Ok(())); // end of stream: pingora closes quietly
            }
            return refused("request head not received in time");
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if !read.is_empty() && this.idle {
                this.idle = false;
                this.deadline = Some(Box::pin(tokio::time::sleep(this.limits.header_timeout)));
            }
            if this.scan_head(read) {
                this.head_done();
            }
        }
        polled
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for LimitedStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for LimitedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for LimitedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for LimitedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for LimitedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for LimitedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for LimitedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> LimitedStream {
        let (a, _b) = tokio::io::duplex(64);
        LimitedStream::new(
            Box::new(a),
            ClientLimits {
                header_timeout: Duration::from_secs(1),
                keepalive_timeout: Duration::from_secs(1),
            },
            Arc::new(AtomicU8::new(IN_HEAD)),
        )
    }

    #[tokio::test]
    async fn the_end_of_a_head_is_found_across_reads_and_line_endings() {
        let mut s = stream();
        assert!(!s.scan_head(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r"));
        assert!(s.scan_head(b"\n\r\nbody"));
        let mut s = stream();
        assert!(!s.scan_head(b"GET / HTTP/1.1\nHost: x\n"));
        assert!(s.scan_head(b"\n"));
        let mut s = stream();
        assert!(!s.scan_head(b"GET / HTTP/1.1\r\nX: a\r\n\tfolded\r\n"));
    }
}
