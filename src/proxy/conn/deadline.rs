//! The clocks of a connection (slowloris, security.md P6): a request head must arrive whole
//! within `header_timeout` — counted from the accept for a connection's first request, from the
//! head's first byte on a kept-alive connection — and a kept-alive connection waits at most
//! `keepalive_timeout` for its next request. The clock watches the bytes as they are read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use super::ClientLimits;

/// A pending deadline. pingora's coarse (10 ms) timer wheel, not tokio's: registering a tokio
/// timer that fires before the runtime's next wake-up wakes its driver (an eventfd write and an
/// extra `epoll_wait` per request); these limits are seconds long.
type Deadline = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

fn deadline_in(d: Duration) -> Deadline {
    Box::pin(pingora::time::fast_timeout::fast_sleep(d))
}

/// Where the connection is: waiting for (or reading) a request head, or past it. Shared with
/// the connection's driver, which sets it back to `IN_HEAD` before each kept-alive request.
pub const IN_HEAD: u8 = 0;
pub const PAST_HEAD: u8 = 1;

/// What the clock says before a read from the socket.
pub enum Verdict {
    /// Read on.
    Read,
    /// The kept-alive connection stayed idle too long: end of stream, closed quietly.
    Idle,
    /// The head did not arrive in time.
    TooSlow,
}

pub struct HeadClock {
    limits: ClientLimits,
    pub phase: Arc<AtomicU8>,
    /// When the head being read must be complete (from the accept for the first request), or,
    /// while `idle`, when a kept-alive connection without a new request is closed.
    deadline: Option<Deadline>,
    /// Between requests on a kept-alive connection, before the next head's first byte.
    idle: bool,
    /// The last bytes of the head so far (an end of head split across reads).
    tail: [u8; 3],
    /// A request line has started (blank lines before it are not a head).
    started: bool,
}

impl HeadClock {
    /// The clock of a new connection: its first head is due `header_timeout` after the accept.
    pub fn new(limits: ClientLimits, phase: Arc<AtomicU8>) -> Self {
        Self {
            deadline: Some(deadline_in(limits.header_timeout)),
            limits,
            phase,
            idle: false,
            tail: [0; 3],
            started: false,
        }
    }

    /// Whether the request head has been read (the body is not the clock's business).
    pub fn past_head(&self) -> bool {
        self.phase.load(Ordering::Acquire) == PAST_HEAD
    }

    /// Before a socket read while a head is due. pingora keeps HTTP/1.1 connections alive
    /// without limit: this clock bounds the wait for the next request too.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Verdict {
        let idle = &mut self.idle;
        let keepalive = self.limits.keepalive_timeout;
        let deadline = self.deadline.get_or_insert_with(|| {
            *idle = true;
            deadline_in(keepalive)
        });
        match deadline.as_mut().poll(cx) {
            Poll::Pending => Verdict::Read,
            Poll::Ready(()) if self.idle => Verdict::Idle,
            Poll::Ready(()) => Verdict::TooSlow,
        }
    }

    /// After a read of `bytes` while a head was due: the head's own clock starts with its first
    /// byte on a kept-alive connection, and stops once the head has ended.
    pub fn saw(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() && self.idle {
            self.idle = false;
            self.deadline = Some(deadline_in(self.limits.header_timeout));
        }
        if self.scan_head(bytes) {
            self.phase.store(PAST_HEAD, Ordering::Release);
            self.deadline = None;
            self.idle = false;
            self.tail = [0; 3];
            self.started = false;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> HeadClock {
        HeadClock::new(
            ClientLimits {
                header_timeout: Duration::from_secs(5),
                keepalive_timeout: Duration::from_secs(5),
            },
            Arc::new(AtomicU8::new(IN_HEAD)),
        )
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads_and_line_endings() {
        let mut s = clock();
        assert!(!s.scan_head(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r"));
        assert!(s.scan_head(b"\n\r\nbody"));
        let mut s = clock();
        assert!(!s.scan_head(b"GET / HTTP/1.1\nHost: x\n"));
        assert!(s.scan_head(b"\n"));
        let mut s = clock();
        assert!(!s.scan_head(b"GET / HTTP/1.1\r\nX: a\r\n\tfolded\r\n"));
    }

    #[test]
    fn a_whole_head_stops_the_clock() {
        let mut s = clock();
        s.saw(b"GET / HTTP/1.1\r\n");
        assert!(!s.past_head());
        s.saw(b"Host: x\r\n\r\n");
        assert!(s.past_head());
        assert!(s.deadline.is_none(), "no deadline past the head");
    }

    #[tokio::test]
    async fn a_slow_head_is_refused_and_an_idle_connection_ends_quietly() {
        let limits = ClientLimits {
            header_timeout: Duration::from_millis(30),
            keepalive_timeout: Duration::from_millis(30),
        };
        let mut s = HeadClock::new(limits, Arc::new(AtomicU8::new(IN_HEAD)));
        s.saw(b"GET / HT");
        let verdict = std::future::poll_fn(|cx| match s.poll(cx) {
            Verdict::Read => Poll::Pending,
            v => Poll::Ready(v),
        })
        .await;
        assert!(matches!(verdict, Verdict::TooSlow));
        // Between requests: the keep-alive clock, whose end is a quiet close.
        s.saw(b"TP/1.1\r\n\r\n");
        s.phase.store(IN_HEAD, Ordering::Release);
        let verdict = std::future::poll_fn(|cx| match s.poll(cx) {
            Verdict::Read => Poll::Pending,
            v => Poll::Ready(v),
        })
        .await;
        assert!(matches!(verdict, Verdict::Idle));
    }
}
