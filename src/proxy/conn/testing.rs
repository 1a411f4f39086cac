//! Test helpers of the connection layer: a limited stream over any inner stream, and an inner
//! stream that records each send.

use std::pin::Pin;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ClientLimits;
use super::deadline::{HeadClock, IN_HEAD};
use super::stream::LimitedStream;

pub fn limited(inner: Stream) -> LimitedStream {
    limited_in(inner, IN_HEAD)
}

/// A limited stream whose connection is in `phase`.
pub fn limited_in(inner: Stream, phase: u8) -> LimitedStream {
    let limits = ClientLimits {
        header_timeout: Duration::from_secs(5),
        keepalive_timeout: Duration::from_secs(5),
    };
    LimitedStream::new(
        inner,
        HeadClock::new(limits, Arc::new(AtomicU8::new(phase))),
    )
}

/// Whatever the peer can read within 100 ms.
pub async fn readable(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
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

/// A stream that records every write call it gets: one entry per send. Reads give the request
/// it was made with, once, then wait.
#[derive(Debug, Default, Clone)]
pub struct Sends(Arc<Mutex<Vec<Vec<u8>>>>, Arc<Mutex<Vec<u8>>>);

impl Sends {
    /// A stream a client has sent `request` on.
    pub fn with_request(request: &[u8]) -> Self {
        Self(Arc::default(), Arc::new(Mutex::new(request.to_vec())))
    }

    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

impl AsyncRead for Sends {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut request = self.1.lock().unwrap();
        if request.is_empty() {
            return Poll::Pending;
        }
        let n = request.len().min(buf.remaining());
        buf.put_slice(&request[..n]);
        request.drain(..n);
        Poll::Ready(Ok(()))
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
