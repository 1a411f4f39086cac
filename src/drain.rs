//! Requests in flight, counted explicitly so a graceful stop ends when the last one has. The
//! `wopigate_requests_in_flight` gauge shows the same count per listener, but shutdown never
//! reads a metric: it waits on this count.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A count of requests in flight and the signal that it reached zero.
pub struct Drain {
    count: Mutex<u64>,
    idle: Condvar,
}

impl Drain {
    pub const fn new() -> Self {
        Self {
            count: Mutex::new(0),
            idle: Condvar::new(),
        }
    }

    fn enter(&self) {
        if let Ok(mut n) = self.count.lock() {
            *n += 1;
        }
    }

    fn leave(&self) {
        if let Ok(mut n) = self.count.lock() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.idle.notify_all();
            }
        }
    }

    /// Blocks until nothing is in flight, or `limit` has passed; true when idle.
    pub fn wait_until_idle(&self, limit: Duration) -> bool {
        let Ok(guard) = self.count.lock() else {
            return false;
        };
        self.idle
            .wait_timeout_while(guard, limit, |n| *n > 0)
            .map(|(n, _)| *n == 0)
            .unwrap_or(false)
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

/// Requests in flight on every listener of this process.
pub static PROCESS: Drain = Drain::new();

/// Held by a request's context from its first byte to its log line, whatever path it takes.
pub struct InFlight(&'static str);

impl InFlight {
    pub fn enter(listener: &'static str) -> Self {
        PROCESS.enter();
        crate::metrics::metrics()
            .requests_in_flight
            .with_label_values(&[listener])
            .inc();
        Self(listener)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        crate::metrics::metrics()
            .requests_in_flight
            .with_label_values(&[self.0])
            .dec();
        PROCESS.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_signalled_when_the_last_request_ends() {
        static DRAIN: Drain = Drain::new();
        DRAIN.enter();
        DRAIN.enter();
        assert!(
            !DRAIN.wait_until_idle(Duration::from_millis(20)),
            "two in flight"
        );
        let waiter = std::thread::spawn(|| DRAIN.wait_until_idle(Duration::from_secs(10)));
        DRAIN.leave();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!waiter.is_finished(), "one request is still in flight");
        DRAIN.leave();
        assert!(waiter.join().unwrap(), "woken by the last request's end");
    }
}
