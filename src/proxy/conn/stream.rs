//! The accepted stream under the connection's limits: reads go through the head clock
//! ([`super::deadline`]) and replay what `try_peek` took; writes go through the cork
//! ([`super::cork`]) and the held answer ([`super::held`]). Everything else is the inner
//! stream's.

use std::fmt;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    Stream, TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::cork::Cork;
use super::deadline::{HeadClock, Verdict};
use super::held::Held;

/// What `try_peek` reads at once: a typical request head, so it needs no second read.
const PEEK_BYTES: usize = 4096;

pub struct LimitedStream {
    inner: Stream,
    pub(super) clock: HeadClock,
    /// Bytes `try_peek` read off the socket, handed to the next reads before the socket's.
    replay: Vec<u8>,
    replay_at: usize,
    pub(super) cork: Cork,
    pub(super) held: Held,
}

impl fmt::Debug for LimitedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedStream")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl LimitedStream {
    pub fn new(inner: Stream, clock: HeadClock) -> Self {
        Self {
            inner,
            clock,
            replay: Vec::new(),
            replay_at: 0,
            cork: Cork::default(),
            held: Held::default(),
        }
    }

    /// A read from the connection itself, under the head and keep-alive clocks.
    fn poll_read_socket(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Never wait for input while holding output.
        if !self.cork.is_empty() {
            self.held.end();
            std::task::ready!(self.cork.poll_send(&mut self.inner, cx))?;
            std::task::ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        }
        if self.clock.past_head() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        match self.clock.poll(cx) {
            Verdict::Read => {}
            // End of stream: pingora closes quietly.
            Verdict::Idle => return Poll::Ready(Ok(())),
            Verdict::TooSlow => {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request head not received in time",
                )));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.clock.saw(&buf.filled()[before..]);
        }
        polled
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

impl LimitedStream {
    /// Both write paths: a write joins the held answer first (noting its last chunk, however
    /// pingora slices it), else one small write waits in the cork for the next, else it goes
    /// out behind whatever waits.
    fn write_or_keep(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.held.takes(self.cork.len(), total) {
            self.cork.hold(bufs);
            self.held.joined(bufs);
            return Poll::Ready(Ok(total));
        }
        if self.cork.takes_small(total) {
            self.cork.hold(bufs);
            return Poll::Ready(Ok(total));
        }
        self.cork.poll_write_behind(&mut self.inner, cx, bufs)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_or_keep(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.write_or_keep(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.held.flushes() {
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.cork.poll_send(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        this.held.end();
        std::task::ready!(this.cork.poll_send(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
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

/// Holds the answer now being written on the session's connection until it has ended, so that
/// it leaves in one send. False when the connection is not one of ours (HTTP/2).
pub fn hold_answer(session: &pingora::proxy::Session) -> bool {
    session.stream().is_some_and(hold_answer_on)
}

pub(super) fn hold_answer_on(stream: &Stream) -> bool {
    (**stream)
        .as_any()
        .downcast_ref::<LimitedStream>()
        .map(|s| s.held.start())
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::super::deadline::PAST_HEAD;
    use super::super::testing::limited;
    use super::*;

    #[tokio::test]
    async fn what_the_peek_reads_is_replayed_once_in_order() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut peer) = tokio::io::duplex(1 << 16);
        let mut s = limited(Box::new(a));
        peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1];
        assert!(s.try_peek(&mut first).await.unwrap());
        assert_eq!(&first, b"G");
        assert_eq!(
            s.clock.phase.load(std::sync::atomic::Ordering::Acquire),
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
}
