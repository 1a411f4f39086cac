//! Write coalescing. One small write (typically a response head) is held until the next write
//! or a flush, and then leaves together with it in one vectored send: a head and a
//! Content-Length body make one send instead of two (each loopback send also runs the
//! receiver's path). Nothing more is held for a streamed body, so when an upstream breaks off
//! mid-body everything received so far has reached the client.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use pingora::protocols::Stream;
use tokio::io::AsyncWrite;

/// The largest write the cork holds back.
pub const CORK_BYTES: usize = 4096;

/// Bytes written but not yet sent. Allocated only while something is held, so an idle
/// connection keeps no buffer.
#[derive(Default)]
pub struct Cork {
    held: Vec<u8>,
}

impl Cork {
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.held.capacity()
    }

    /// Whether a write of `len` bytes is small enough to wait for the next one.
    pub fn takes_small(&self, len: usize) -> bool {
        self.held.is_empty() && len <= CORK_BYTES
    }

    pub fn hold(&mut self, bufs: &[IoSlice<'_>]) {
        bufs.iter().for_each(|b| self.held.extend_from_slice(b));
    }

    /// Writes `bufs` behind what is held, in one vectored send where the stream takes them (a
    /// chunked body's size line, data and CRLF arrive as one vectored write); returns how many
    /// bytes of `bufs` went out.
    pub fn poll_write_behind(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        const MAX_SLICES: usize = 8;
        loop {
            let held = self.held.len();
            if held == 0 {
                return Pin::new(&mut *inner).poll_write_vectored(cx, bufs);
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            slices[0] = IoSlice::new(&self.held);
            let taken = bufs.len().min(MAX_SLICES - 1);
            slices[1..=taken].copy_from_slice(&bufs[..taken]);
            let n = std::task::ready!(
                Pin::new(&mut *inner).poll_write_vectored(cx, &slices[..=taken])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            if n < held {
                self.held.drain(..n);
                continue;
            }
            self.held = Vec::new();
            if n > held {
                return Poll::Ready(Ok(n - held));
            }
        }
    }

    /// Sends what is held.
    pub fn poll_send(
        &mut self,
        inner: &mut Stream,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        while !self.held.is_empty() {
            let n = std::task::ready!(Pin::new(&mut *inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        self.held = Vec::new();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Sends, limited, readable};
    use super::*;

    #[tokio::test]
    async fn one_small_write_waits_for_the_next_write_or_a_flush() {
        use tokio::io::AsyncWriteExt;
        let (a, mut peer) = tokio::io::duplex(1 << 20);
        let mut s = limited(Box::new(a));
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(readable(&mut peer).await.is_empty(), "a head waits");
        s.flush().await.unwrap();
        assert_eq!(readable(&mut peer).await, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(s.cork.capacity(), 0, "no buffer kept after a flush");

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
        let parts = [IoSlice::new(b"a"), IoSlice::new(b"b")];
        assert_eq!(s.write_vectored(&parts).await.unwrap(), 2);
        AsyncWriteExt::shutdown(&mut s).await.unwrap();
        assert_eq!(readable(&mut peer).await, b"ab");
    }

    #[tokio::test]
    async fn a_held_head_and_a_chunk_written_as_slices_leave_in_one_send() {
        use tokio::io::AsyncWriteExt;
        let sends = Sends::default();
        let mut s = limited(Box::new(sends.clone()));
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
        assert_eq!(
            sends.sent(),
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec()],
            "one send"
        );

        // A large vectored write behind a held one: everything arrives, in order.
        let big = vec![b'y'; CORK_BYTES * 2];
        s.write_all(b"held|").await.unwrap();
        let parts = [IoSlice::new(&big), IoSlice::new(b"|end")];
        let written = s.write_vectored(&parts).await.unwrap();
        assert_eq!(written, big.len() + 4, "the recording stream takes all");
        let sent = sends.sent();
        let last = sent.last().unwrap();
        assert_eq!(&last[..5], b"held|");
        assert_eq!(&last[5..5 + big.len()], &big[..]);
        assert_eq!(&last[5 + big.len()..], b"|end");
    }
}
