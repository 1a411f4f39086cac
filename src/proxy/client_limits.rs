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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
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

/// A pending deadline. pingora's coarse (10 ms) timer wheel, not tokio's: registering a tokio
/// timer that fires before the runtime's next wake-up wakes its driver (an eventfd write and an
/// extra `epoll_wait` per request); these limits are seconds long.
type Deadline = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

fn deadline_in(d: Duration) -> Deadline {
    Box::pin(pingora::time::fast_timeout::fast_sleep(d))
}

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
    deadline: Option<Deadline>,
    /// Between requests on a kept-alive connection, before the next head's first byte.
    idle: bool,
    /// The last bytes of the head so far (an end of head split across reads).
    tail: [u8; 3],
    /// A request line has started (blank lines before it are not a head).
    started: bool,
    /// Bytes `try_peek` read off the socket, handed to the next reads before the socket's.
    replay: Vec<u8>,
    replay_at: usize,
    /// A small write held until the next write or a flush, so that a response head and its body
    /// leave in one send. Allocated only while something is held.
    corked: Vec<u8>,
    /// Set by the proxy for an answer it builds whole before sending (a rewritten CheckFileInfo):
    /// head, body and chunk terminator are held across pingora's flushes and leave in one send.
    hold_answer: AtomicBool,
    /// The held answer's last chunk has been written: the next flush sends everything.
    answer_ended: bool,
}

/// pingora's terminating chunk, written on its own when a chunked answer ends.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The most a held answer may take before it is sent regardless (above the proxy's limit for an
/// answer it rewrites).
const HOLD_BYTES: usize = 256 * 1024;

/// What `try_peek` reads at once: a typical request head, so it needs no second read.
const PEEK_BYTES: usize = 4096;
/// The largest write the cork holds back.
const CORK_BYTES: usize = 4096;

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
            deadline: Some(deadline_in(limits.header_timeout)),
            inner,
            limits,
            phase,
            idle: false,
            tail: [0; 3],
            started: false,
            replay: Vec::new(),
            replay_at: 0,
            corked: Vec::new(),
            hold_answer: AtomicBool::new(false),
            answer_ended: false,
        }
    }

    /// Whether a write is taken into the held answer; a write that would take it past
    /// `HOLD_BYTES` ends the hold (what is held then leaves with that write).
    fn holds(&mut self, len: usize) -> bool {
        if !self.hold_answer.load(Ordering::Relaxed) {
            return false;
        }
        if self.corked.len() + len > HOLD_BYTES {
            self.end_hold();
            return false;
        }
        true
    }

    fn end_hold(&mut self) {
        self.hold_answer.store(false, Ordering::Relaxed);
        self.answer_ended = false;
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

/// Holds the answer now being written on `stream` (head, body, terminator) until it has ended,
/// so that it leaves in one send. For answers the proxy sends only once it has them whole: a
/// streamed body must never wait. False when the stream is not one of ours (HTTP/2).
pub fn hold_answer(stream: &Stream) -> bool {
    (**stream)
        .as_any()
        .downcast_ref::<LimitedStream>()
        .map(|s| s.hold_answer.store(true, Ordering::Relaxed))
        .is_some()
}

fn refused(why: &'static str) -> Poll<std::io::Result<()>> {
    Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why)))
}

impl LimitedStream {
    /// A read from the connection itself, under the head and keep-alive clocks.
    fn poll_read_socket(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self;
        // Never wait for input while holding output.
        if !this.corked.is_empty() {
            this.end_hold();
            std::task::ready!(this.poll_uncork(cx))?;
            std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        }
        let phase = this.phase.load(Ordering::Acquire);
        if phase == PAST_HEAD {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // pingora keeps HTTP/1.1 connections alive without limit: this clock bounds the wait for
        // the next request (`first_byte` relies on it).
        let deadline = this.deadline.get_or_insert_with(|| {
            this.idle = true;
            deadline_in(this.limits.keepalive_timeout)
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
                this.deadline = Some(deadline_in(this.limits.header_timeout));
            }
            if this.scan_head(read) {
                this.head_done();
            }
        }
        polled
    }

    /// Writes `bufs` behind what the cork holds, in one vectored send where the stream takes
    /// them (a chunked body's size line, data and CRLF arrive as one vectored write); returns
    /// how many bytes of `bufs` went out.
    fn poll_write_behind_cork(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        const MAX_SLICES: usize = 8;
        loop {
            let held = self.corked.len();
            if held == 0 {
                return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
            }
            let mut slices = [std::io::IoSlice::new(&[]); MAX_SLICES];
            slices[0] = std::io::IoSlice::new(&self.corked);
            let taken = bufs.len().min(MAX_SLICES - 1);
            slices[1..=taken].copy_from_slice(&bufs[..taken]);
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..=taken])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            if n < held {
                self.corked.drain(..n);
                continue;
            }
            // An idle connection keeps no buffer.
            self.corked = Vec::new();
            if n > held {
                return Poll::Ready(Ok(n - held));
            }
        }
    }

    /// Sends what the cork holds.
    fn poll_uncork(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.corked.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.corked))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.corked.drain(..n);
        }
        // An idle connection keeps no buffer.
        self.corked = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.replay_at < this.replay.len() {
            let held = &this.replay[this.replay_at..];
            let n = held.len().min(buf.remaining());
            buf.put_slice(&held[..n]);
            this.replay_at += n;
            if this.replay_at == this.replay.len() {
                this.replay = Vec::new();
                this.replay_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        this.poll_read_socket(cx, buf)
    }
}

/// One small write (typically a response head) is held until the next write or a flush, and
/// then leaves together with it in one vectored send: a head and a Content-Length body make one
/// send instead of two. Nothing more is held for a streamed body, so when an upstream breaks off
/// mid-body everything received so far has reached the client; only an answer the proxy marked
/// with [`hold_answer`] (built whole before it is sent) is held to its end.
impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.holds(buf.len()) {
            this.corked.extend_from_slice(buf);
            this.answer_ended |= buf == LAST_CHUNK;
            return Poll::Ready(Ok(buf.len()));
        }
        if this.corked.is_empty() && buf.len() <= CORK_BYTES {
            this.corked.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        this.poll_write_behind_cork(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if (this.corked.is_empty() && total <= CORK_BYTES) || this.holds(total) {
            bufs.iter().for_each(|b| this.corked.extend_from_slice(b));
            return Poll::Ready(Ok(total));
        }
        this.poll_write_behind_cork(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.hold_answer.load(Ordering::Relaxed) {
            if !self.answer_ended {
                return Poll::Ready(Ok(()));
            }
            self.end_hold();
        }
        std::task::ready!(self.poll_uncork(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.end_hold();
        std::task::ready!(self.poll_uncork(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

/// Waits for the first bytes of a request. What arrives (up to `PEEK_BYTES`, read in one go:
/// a peek of one byte would cost a read of its own) is kept and replayed to the next reads.
#[async_trait]
impl Peek for LimitedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        if self.replay_at == self.replay.len() {
            std::future::poll_fn(|cx| {
                // On the stack of one poll only: an idle connection's future stays small.
                let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); PEEK_BYTES];
                let mut read = ReadBuf::uninit(&mut chunk);
                std::task::ready!(self.poll_read_socket(cx, &mut read))?;
                self.replay = read.filled().to_vec();
                self.replay_at = 0;
                Poll::Ready(Ok::<_, std::io::Error>(()))
            })
            .await?;
            if self.replay.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let held = &self.replay[self.replay_at..];
        let n = held.len().min(buf.len());
        buf[..n].copy_from_slice(&held[..n]);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(inner: tokio::io::DuplexStream) -> LimitedStream {
        LimitedStream::new(
            Box::new(inner),
            ClientLimits {
                header_timeout: Duration::from_secs(5),
                keepalive_timeout: Duration::from_secs(5),
            },
            Arc::new(AtomicU8::new(IN_HEAD)),
        )
    }

    /// Whatever the peer can read within 100 ms.
    async fn readable(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), peer.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test]
    async fn one_small_write_waits_for_the_next_write_or_a_flush() {
        use tokio::io::AsyncWriteExt;
        let (a, mut peer) = tokio::io::duplex(1 << 20);
        let mut s = limited(a);
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(readable(&mut peer).await.is_empty(), "a head waits");
        s.flush().await.unwrap();
        assert_eq!(readable(&mut peer).await, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(s.corked.capacity(), 0, "no buffer kept after a flush");

        // The next write takes the held one along, without a flush: a body that breaks off
        // later still reaches the client up to where it broke.
        s.write_all(b"head|").await.unwrap();
        s.write_all(b"first part of a body").await.unwrap();
        assert_eq!(readable(&mut peer).await, b"head|first part of a body");
        let big = vec![b'x'; CORK_BYTES * 3];
        s.write_all(b"head|").await.unwrap();
        s.write_all(&big).await.unwrap();
        let got = readable(&mut peer).await;
        assert_eq!(&got[..5], b"head|");
        assert_eq!(&got[5..], &big[..]);

        // Vectored writes are held the same way; a shutdown sends what is held.
        let parts = [std::io::IoSlice::new(b"a"), std::io::IoSlice::new(b"b")];
        assert_eq!(s.write_vectored(&parts).await.unwrap(), 2);
        AsyncWriteExt::shutdown(&mut s).await.unwrap();
        assert_eq!(readable(&mut peer).await, b"ab");
    }

    /// A stream that records every write call it gets: one entry per send.
    #[derive(Debug, Default, Clone)]
    struct Sends(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

    impl AsyncRead for Sends {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }
    impl AsyncWrite for Sends {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.0.lock().unwrap().push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let sent: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = sent.len();
            self.0.lock().unwrap().push(sent);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    #[async_trait]
    impl pingora::protocols::Shutdown for Sends {
        async fn shutdown(&mut self) {}
    }
    impl pingora::protocols::UniqueID for Sends {
        fn id(&self) -> pingora::protocols::UniqueIDType {
            0
        }
    }
    impl pingora::protocols::Ssl for Sends {}
    impl pingora::protocols::GetTimingDigest for Sends {
        fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
            vec![]
        }
    }
    impl pingora::protocols::GetProxyDigest for Sends {
        fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
            None
        }
    }
    impl pingora::protocols::GetSocketDigest for Sends {
        fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
            None
        }
    }
    impl pingora::protocols::Peek for Sends {}

    #[tokio::test]
    async fn a_held_head_and_a_chunk_written_as_slices_leave_in_one_send() {
        use tokio::io::AsyncWriteExt;
        let sends = Sends::default();
        let mut s = LimitedStream::new(
            Box::new(sends.clone()),
            ClientLimits {
                header_timeout: Duration::from_secs(5),
                keepalive_timeout: Duration::from_secs(5),
            },
            Arc::new(AtomicU8::new(IN_HEAD)),
        );
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        // What pingora's chunked body writer does: size line, data and CRLF as one buffer chain.
        let mut chunk = bytes::Buf::chain(
            bytes::Buf::chain(&b"5\r\n"[..], &b"hello"[..]),
            &b"\r\n"[..],
        );
        s.write_all_buf(&mut chunk).await.unwrap();
        s.flush().await.unwrap();
        let sent = sends.0.lock().unwrap().clone();
        assert_eq!(
            sent,
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec()],
            "one send"
        );

        // A large vectored write behind a held one: everything arrives, in order.
        let big = vec![b'y'; CORK_BYTES * 2];
        s.write_all(b"held|").await.unwrap();
        let parts = [std::io::IoSlice::new(&big), std::io::IoSlice::new(b"|end")];
        let written = s.write_vectored(&parts).await.unwrap();
        assert_eq!(written, big.len() + 4, "the recording stream takes all");
        let sent = sends.0.lock().unwrap().clone();
        let last = sent.last().unwrap();
        assert_eq!(&last[..5], b"held|");
        assert_eq!(&last[5..5 + big.len()], &big[..]);
        assert_eq!(&last[5 + big.len()..], b"|end");
    }

    #[tokio::test]
    async fn a_held_answer_leaves_whole_in_one_send_across_flushes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sends = Sends::default();
        let mut s: Stream = Box::new(LimitedStream::new(
            Box::new(sends.clone()),
            ClientLimits {
                header_timeout: Duration::from_secs(5),
                keepalive_timeout: Duration::from_secs(5),
            },
            Arc::new(AtomicU8::new(PAST_HEAD)),
        ));
        let sent = || sends.0.lock().unwrap().clone();
        // pingora writing a chunked answer: head + flush, chunk + flush, last chunk + flush.
        assert!(hold_answer(&s), "found through the boxed stream");
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        s.flush().await.unwrap();
        let mut chunk = bytes::Buf::chain(&b"2\r\n{}"[..], &b"\r\n"[..]);
        s.write_all_buf(&mut chunk).await.unwrap();
        s.flush().await.unwrap();
        assert!(
            sent().is_empty(),
            "nothing leaves before the answer has ended"
        );
        s.write_all(LAST_CHUNK).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(
            sent(),
            vec![b"HTTP/1.1 200 OK\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec()]
        );

        // The next answer is not held: its head leaves at the flush.
        s.write_all(b"next").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(sent().last().unwrap(), b"next");

        // A held answer that never sees its last chunk still leaves before the next read.
        assert!(hold_answer(&s));
        s.write_all(b"cut short").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(sent().len(), 2);
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await;
        assert!(read.is_err(), "the recording stream has nothing to read");
        assert_eq!(sent().last().unwrap(), b"cut short");

        // More than a held answer may take leaves at once.
        assert!(hold_answer(&s));
        s.write_all(&vec![b'z'; HOLD_BYTES + 1]).await.unwrap();
        assert_eq!(sent().last().unwrap().len(), HOLD_BYTES + 1);
    }

    #[tokio::test]
    async fn what_the_peek_reads_is_replayed_once_in_order() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut peer) = tokio::io::duplex(1 << 16);
        let mut s = limited(a);
        peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1];
        assert!(s.try_peek(&mut first).await.unwrap());
        assert_eq!(&first, b"G");
        assert_eq!(
            s.phase.load(Ordering::Acquire),
            PAST_HEAD,
            "the head was seen"
        );
        // A second peek does not read again.
        assert!(s.try_peek(&mut first).await.unwrap());
        let mut got = [0u8; 8];
        let n = s.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"GET / HT");
        peer.write_all(b"next").await.unwrap();
        let mut rest = vec![0u8; 64];
        let n = s.read(&mut rest).await.unwrap();
        assert_eq!(&rest[..n], b"TP/1.1\r\nHost: x\r\n\r\n", "the replay first");
        let n = s.read(&mut rest).await.unwrap();
        assert_eq!(&rest[..n], b"next");
        assert_eq!(s.replay.capacity(), 0);
        // A peer that closes before sending anything: the peek fails.
        drop(peer);
        let mut b = [0u8; 1];
        assert!(s.try_peek(&mut b).await.is_err());
    }

    #[tokio::test]
    async fn the_end_of_a_head_is_found_across_reads_and_line_endings() {
        let mut s = limited(tokio::io::duplex(64).0);
        assert!(!s.scan_head(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r"));
        assert!(s.scan_head(b"\n\r\nbody"));
        let mut s = limited(tokio::io::duplex(64).0);
        assert!(!s.scan_head(b"GET / HTTP/1.1\nHost: x\n"));
        assert!(s.scan_head(b"\n"));
        let mut s = limited(tokio::io::duplex(64).0);
        assert!(!s.scan_head(b"GET / HTTP/1.1\r\nX: a\r\n\tfolded\r\n"));
    }
}
