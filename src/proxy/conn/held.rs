//! The held answer. An answer the proxy builds whole before sending (a rewritten
//! CheckFileInfo, chunked because its length is known only at its end) is held across
//! pingora's flushes — pingora writes head + flush, chunk + flush, last chunk + flush — and
//! leaves in one send once its terminating chunk has been written. Only such answers are held:
//! a streamed body must never wait.
//!
//! [`super::hold_answer`] (in `stream.rs`, beside the stream it reaches) is the one seam
//! between the HTTP phases and the connection layer: a phase asks for the answer it is about
//! to send to be held, and nothing else in the proxy reaches into the connection.

use std::sync::atomic::{AtomicBool, Ordering};

/// pingora's terminating chunk, written on its own when a chunked answer ends.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The most a held answer may take before it is sent regardless (above the proxy's limit for
/// an answer it rewrites).
pub const HOLD_BYTES: usize = 256 * 1024;

/// Whether the answer being written is held, and whether it has ended.
#[derive(Default)]
pub struct Held {
    /// Set from the HTTP phase (through a shared reference to the stream).
    on: AtomicBool,
    /// The held answer's last chunk has been written: the next flush sends everything.
    ended: bool,
}

impl Held {
    pub fn start(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    /// Whether a write of `len` bytes joins the held answer, `held` bytes being held already;
    /// a write that would take it past `HOLD_BYTES` ends the hold (what is held then leaves
    /// with that write).
    pub fn takes(&mut self, held: usize, len: usize) -> bool {
        if !self.on.load(Ordering::Relaxed) {
            return false;
        }
        if held + len > HOLD_BYTES {
            self.end();
            return false;
        }
        true
    }

    /// Notes a write that joined the held answer: the last chunk ends it, whether it came as
    /// one buffer or in slices.
    pub fn joined(&mut self, bufs: &[std::io::IoSlice<'_>]) {
        let mut bytes = bufs.iter().flat_map(|b| b.iter().copied());
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.ended |= total == LAST_CHUNK.len() && bytes.by_ref().eq(LAST_CHUNK.iter().copied());
    }

    pub fn end(&mut self) {
        self.on.store(false, Ordering::Relaxed);
        self.ended = false;
    }

    /// At a flush: false while a held answer has not ended (it keeps waiting), else true (and
    /// the hold is over).
    pub fn flushes(&mut self) -> bool {
        if self.on.load(Ordering::Relaxed) {
            if !self.ended {
                return false;
            }
            self.end();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use pingora::protocols::Stream;

    use super::super::deadline::PAST_HEAD;
    use super::super::stream::hold_answer_on;
    use super::super::testing::{Sends, limited_in};
    use super::*;

    #[tokio::test]
    async fn a_held_answer_leaves_whole_in_one_send_across_flushes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sends = Sends::default();
        let mut s: Stream = Box::new(limited_in(Box::new(sends.clone()), PAST_HEAD));
        let sent = || sends.sent();
        // pingora writing a chunked answer: head + flush, chunk + flush, last chunk + flush.
        assert!(hold_answer_on(&s), "found through the boxed stream");
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
        assert!(hold_answer_on(&s));
        s.write_all(b"cut short").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(sent().len(), 2);
        let mut buf = [0u8; 8];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(50), s.read(&mut buf)).await;
        assert!(read.is_err(), "the recording stream has nothing to read");
        assert_eq!(sent().last().unwrap(), b"cut short");

        // More than a held answer may take leaves at once.
        assert!(hold_answer_on(&s));
        s.write_all(&vec![b'z'; HOLD_BYTES + 1]).await.unwrap();
        assert_eq!(sent().last().unwrap().len(), HOLD_BYTES + 1);
    }

    #[test]
    fn only_the_last_chunk_ends_a_held_answer() {
        let mut h = Held::default();
        assert!(!h.takes(0, 10), "nothing is held unless asked");
        assert!(h.flushes());
        h.start();
        assert!(h.takes(0, 10));
        h.joined(&[std::io::IoSlice::new(b"0\r\n")]);
        assert!(!h.flushes(), "not ended yet");
        h.joined(&[
            std::io::IoSlice::new(b"0\r\n"),
            std::io::IoSlice::new(b"\r\n"),
        ]);
        assert!(h.flushes());
        assert!(!h.takes(0, 10), "the hold is over");
    }

    /// pingora's own HTTP/1 writer (head, chunks as vectored writes, the last chunk, flushes
    /// between): a held answer leaves whole, in one send.
    #[tokio::test]
    async fn a_held_answer_through_pingoras_chunked_writer_leaves_in_one_send() {
        use super::super::deadline::IN_HEAD;
        use pingora::http::ResponseHeader;
        use pingora::protocols::http::v1::server::HttpSession;
        let sends = Sends::with_request(b"GET /wopi/files/x HTTP/1.1\r\nHost: a\r\n\r\n");
        let stream: Stream = Box::new(limited_in(Box::new(sends.clone()), IN_HEAD));
        let mut session = HttpSession::new(stream);
        session.read_request().await.unwrap();
        assert!(hold_answer_on(session.stream()));
        let mut head = ResponseHeader::build(200, None).unwrap();
        head.insert_header("Transfer-Encoding", "chunked").unwrap();
        session.write_response_header(Box::new(head)).await.unwrap();
        session.write_body(b"{\"Name\":").await.unwrap();
        session.write_body(b"\"a.docx\"}").await.unwrap();
        assert!(
            sends.sent().is_empty(),
            "nothing leaves before the answer has ended"
        );
        session.finish_body().await.unwrap();
        let sent = sends.sent();
        assert_eq!(sent.len(), 1, "one send: {sent:?}");
        let text = String::from_utf8(sent[0].clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n8\r\n{\"Name\":\r\n9\r\n\"a.docx\"}\r\n0\r\n\r\n"),
            "{text}"
        );
    }

    /// The two write paths agree: the same answer written as single buffers or as slices (the
    /// last chunk too) is held the same way and leaves in one send.
    #[tokio::test]
    async fn both_write_paths_hold_alike() {
        use std::io::IoSlice;
        use tokio::io::AsyncWriteExt;
        let sends = Sends::default();
        let mut s: Stream = Box::new(limited_in(Box::new(sends.clone()), PAST_HEAD));
        assert!(hold_answer_on(&s));
        // Each vectored write is taken whole (the held answer takes everything it is given).
        let head: &[u8] = b"HTTP/1.1 200 OK\r\n\r\n";
        let n = s.write_vectored(&[IoSlice::new(head)]).await.unwrap();
        assert_eq!(n, head.len());
        s.flush().await.unwrap();
        let chunk = [
            IoSlice::new(b"2\r\n"),
            IoSlice::new(b"{}"),
            IoSlice::new(b"\r\n"),
        ];
        assert_eq!(s.write_vectored(&chunk).await.unwrap(), 7);
        s.flush().await.unwrap();
        let last = [IoSlice::new(b"0\r\n"), IoSlice::new(b"\r\n")];
        assert_eq!(s.write_vectored(&last).await.unwrap(), LAST_CHUNK.len());
        assert!(
            sends.sent().is_empty(),
            "held until the flush after the last chunk"
        );
        s.flush().await.unwrap();
        assert_eq!(
            sends.sent(),
            vec![b"HTTP/1.1 200 OK\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec()]
        );
    }
}
