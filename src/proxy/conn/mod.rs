//! The connection layer, below HTTP (style.md principle 11): what a listener enforces and
//! does per connection, one concern a file.
//! - [`deadline`]: slow and idle clients. pingora bounds each read of a request head (60 s)
//!   but not the head as a whole, so a client sending a header byte every few seconds would
//!   hold a connection forever (slowloris); and it keeps an HTTP/1.1 connection without a
//!   `Keep-Alive` header open forever. Heads are read up to pingora's fixed 1 MiB (400
//!   beyond); sizes below that and request bodies are the HTTP layer's business
//!   ([`super::limits`]).
//! - [`cork`]: write coalescing, a response head and its body in one send.
//! - [`held`]: the held answer.
//! - [`stream`]: the accepted stream that combines them, and [`hold_answer`], the one seam
//!   through which an HTTP phase reaches this layer; this file: the application wrapper
//!   that puts every HTTP/1 connection of a listener on such a stream.

mod cork;
mod deadline;
mod held;
mod stream;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;

use deadline::{HeadClock, IN_HEAD};
use stream::LimitedStream;
pub use stream::hold_answer;

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
        let _open = OpenConnection::counted();
        // HTTP/2 (only ever negotiated by ALPN) has its own flow control; keep pingora's path.
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let keepalive = self.limits.keepalive_timeout.as_secs().max(1);
        let phase = Arc::new(AtomicU8::new(IN_HEAD));
        let clock = HeadClock::new(self.limits, phase.clone());
        let mut stream: Stream = Box::new(LimitedStream::new(stream, clock));
        // The proxy's per-request future is large (tens of KiB); it is only created once a
        // request has begun to arrive, so an idle connection costs little more than its socket.
        if !first_byte(&mut stream, shutdown).await {
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
            if !first_byte(&mut stream, shutdown).await {
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

/// One open client connection in `wopigate_open_connections`, for as long as it lives.
struct OpenConnection;

impl OpenConnection {
    fn counted() -> Self {
        crate::metrics::metrics().open_connections.inc();
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::metrics().open_connections.dec();
    }
}

/// Waits until the client sends something (true), or closes, stays silent too long, or the
/// server shuts down (false). How long is the stream's own clock: the head deadline for a
/// connection's first request, the keep-alive timeout between requests. What arrived is
/// replayed to pingora (`LimitedStream::try_peek`).
async fn first_byte(stream: &mut Stream, shutdown: &ShutdownWatch) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    let mut byte = [0u8; 1];
    let mut shutdown = shutdown.clone();
    tokio::select! {
        peeked = stream.try_peek(&mut byte) => peeked.is_ok(),
        _ = shutdown.changed() => false,
    }
}
