//! Several wopiserver instances: which one serves a file, whether it may take another request,
//! and when it is out of rotation. The order comes from a consistent-hash [`Ring`] (pingora's
//! load-balancing crate, built at the edge in `proxy::balance`) so all traffic of one file —
//! its open call and every WOPI call after it — goes to one instance while that is healthy;
//! this module decides what to accept from that order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// The instances' consistent-hash order, with pingora's health verdict for each.
pub trait Ring: Send + Sync {
    /// The first instance in `key`'s order that `accept(index, healthy)` takes.
    fn first(&self, key: &[u8], accept: &dyn Fn(usize, bool) -> bool) -> Option<usize>;
}

/// Instances already tried for one request (at most 64 are configurable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tried(u64);

impl Tried {
    pub fn add(&mut self, i: usize) {
        self.0 |= 1 << (i % 64);
    }

    pub fn has(self, i: usize) -> bool {
        self.0 & (1 << (i % 64)) != 0
    }
}

pub use crate::config::Capacity;

// `Tried` is a 64-bit set.
const _: () = assert!(crate::config::MAX_WOPISERVER_INSTANCES <= 64);

/// One configured instance and its live state.
pub struct Instance {
    /// The configured name: log field and the `instance` metric label.
    pub name: String,
    /// Base URL (`openinapp`, the health page).
    pub base: Url,
    /// Passive ejection: out of rotation until this many ms after `Instances::epoch`.
    ejected_until_ms: AtomicU64,
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    in_flight: IntGauge,
    queued: IntGauge,
    /// Handle of its requests counter, looked up once (not per request).
    requests: prometheus::IntCounter,
}

/// The instance is at its cap and its queue is full or the wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wopiserver instance busy")]
pub struct Busy;

/// A concurrency slot of one instance, held for the whole request (its answer streamed).
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    in_flight: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// Counts a waiter for as long as it waits, including when its request is dropped.
struct Waiting<'a>(&'a Instance);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
        self.0.queued.dec();
    }
}

impl Instance {
    pub fn new(name: String, base: Url, max_in_flight: usize) -> Self {
        let m = crate::metrics::metrics();
        Self {
            in_flight: m.instance_in_flight.with_label_values(&[&name]),
            queued: m.instance_queued.with_label_values(&[&name]),
            requests: m.instance_requests.with_label_values(&[&name]),
            name,
            base,
            ejected_until_ms: AtomicU64::new(0),
            slots: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
            waiting: AtomicUsize::new(0),
        }
    }

    fn slot(&self, permit: Option<OwnedSemaphorePermit>) -> Slot {
        self.in_flight.inc();
        self.requests.inc();
        Slot {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        }
    }

    /// A slot at once when one is free (no wait for a request under the cap); otherwise a
    /// bounded wait in a bounded queue, or [`Busy`].
    pub async fn acquire(&self, cap: &Capacity) -> Result<Slot, Busy> {
        let Some(slots) = &self.slots else {
            return Ok(self.slot(None));
        };
        if let Ok(p) = slots.clone().try_acquire_owned() {
            return Ok(self.slot(Some(p)));
        }
        let busy = || {
            crate::metrics::metrics()
                .instance_busy
                .with_label_values(&[&self.name])
                .inc();
            Busy
        };
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= cap.queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(busy());
        }
        self.queued.inc();
        let waiting = Waiting(self);
        let got = tokio::time::timeout(cap.queue_timeout, slots.clone().acquire_owned()).await;
        drop(waiting);
        match got {
            Ok(Ok(p)) => Ok(self.slot(Some(p))),
            _ => Err(busy()),
        }
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Every configured instance, their order and the rules for leaving one out.
pub struct Instances {
    list: Arc<[Instance]>,
    ring: Box<dyn Ring>,
    pub capacity: Capacity,
    /// How long a connect failure keeps an instance out of rotation.
    eject_for: Duration,
    epoch: Instant,
}

impl Instances {
    pub fn new(
        list: Arc<[Instance]>,
        ring: Box<dyn Ring>,
        capacity: Capacity,
        eject_for: Duration,
    ) -> Self {
        Self {
            list,
            ring,
            capacity,
            eject_for,
            epoch: Instant::now(),
        }
    }

    pub fn list(&self) -> &[Instance] {
        &self.list
    }

    pub fn get(&self, i: usize) -> Option<&Instance> {
        self.list.get(i)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a recent connect failure keeps instance `i` out of rotation.
    pub fn ejected(&self, i: usize) -> bool {
        self.list
            .get(i)
            .is_some_and(|x| x.ejected_until_ms.load(Ordering::Relaxed) > self.now_ms())
    }

    /// Takes instance `i` out of rotation for `eject_for` after a refused connection; the
    /// active health check puts it back only once that has passed.
    pub fn eject(&self, i: usize) {
        let Some(x) = self.list.get(i) else {
            return;
        };
        let until = self.now_ms() + self.eject_for.as_millis() as u64;
        if x.ejected_until_ms.swap(until, Ordering::Relaxed) <= self.now_ms() {
            tracing::warn!(wopiserver = %x.name, "wopiserver instance refused a connection; out of rotation for {:?}", self.eject_for);
            crate::metrics::metrics()
                .instance_ejections
                .with_label_values(&[&x.name, "connect"])
                .inc();
        }
    }

    /// The instance for `key` not yet tried: the first healthy, not ejected one in the key's
    /// order; when none is, the first untried one all the same (a failed health probe — the
    /// wopiserver reports FAIL while REVA restarts — must not turn every request away).
    pub fn choose(&self, key: &[u8], tried: Tried) -> Option<usize> {
        self.ring
            .first(key, &|i, healthy| {
                healthy && !tried.has(i) && !self.ejected(i)
            })
            .or_else(|| self.ring.first(key, &|i, _| !tried.has(i)))
    }
}

/// The consistent-hash key of a file: the same for the open call (REVA's resource id) and
/// every WOPI call (the path id of either token kind, decoded to the resource).
pub fn affinity_key(storage_id: &str, opaque_id: &str) -> String {
    let mut k = String::with_capacity(storage_id.len() + opaque_id.len() + 1);
    k.push_str(storage_id);
    k.push('!');
    k.push_str(opaque_id);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instances in index order from a key-chosen start, like a ring of two or more.
    struct Rotating(usize);

    impl Ring for Rotating {
        fn first(&self, key: &[u8], accept: &dyn Fn(usize, bool) -> bool) -> Option<usize> {
            let start = key.first().map_or(0, |b| *b as usize);
            (0..self.0)
                .map(|k| (start + k) % self.0)
                .find(|&i| accept(i, true))
        }
    }

    fn instances(n: usize, cap: Capacity) -> Instances {
        let list: Vec<Instance> = (0..n)
            .map(|i| {
                Instance::new(
                    format!("unit-{i}"),
                    Url::parse("http://127.0.0.1:1/").unwrap(),
                    cap.max_in_flight,
                )
            })
            .collect();
        Instances::new(
            list.into(),
            Box::new(Rotating(n)),
            cap,
            Duration::from_millis(300),
        )
    }

    const CAP: Capacity = Capacity {
        max_in_flight: 1,
        queue: 1,
        queue_timeout: Duration::from_millis(200),
    };

    #[test]
    fn tried_and_ejected_instances_are_passed_over_until_none_is_left() {
        let x = instances(3, CAP);
        assert_eq!(x.choose(&[1], Tried::default()), Some(1));
        let mut tried = Tried::default();
        tried.add(1);
        assert_eq!(x.choose(&[1], tried), Some(2));
        x.eject(2);
        assert_eq!(x.choose(&[1], tried), Some(0));
        tried.add(0);
        // Only the ejected one is left untried: still tried, never skipped into nothing.
        assert_eq!(x.choose(&[1], tried), Some(2));
        tried.add(2);
        assert_eq!(x.choose(&[1], tried), None);
        std::thread::sleep(Duration::from_millis(350));
        assert!(!x.ejected(2));
    }

    #[tokio::test]
    async fn a_full_instance_queues_briefly_then_refuses() {
        let x = instances(1, CAP);
        let i = x.get(0).unwrap();
        let held = i.acquire(&CAP).await.unwrap();
        assert_eq!(i.in_flight(), 1);
        // One may wait; it gets the slot when the holder lets go.
        let waiter = async { i.acquire(&CAP).await };
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(i.queued(), 1);
            // The queue (1) is full: the next is refused at once.
            assert_eq!(i.acquire(&CAP).await.err(), Some(Busy));
            drop(held);
        };
        let (got, ()) = tokio::join!(waiter, release);
        let got = got.unwrap();
        assert_eq!((i.in_flight(), i.queued()), (1, 0));
        // A waiter whose wait runs out is refused and leaves the queue.
        assert_eq!(i.acquire(&CAP).await.err(), Some(Busy));
        assert_eq!(i.queued(), 0);
        drop(got);
        assert_eq!(i.in_flight(), 0);
    }

    #[tokio::test]
    async fn no_cap_never_waits() {
        let cap = Capacity {
            max_in_flight: 0,
            ..CAP
        };
        let x = instances(1, cap);
        let slots: Vec<_> =
            futures_util::future::join_all((0..100).map(|_| x.get(0).unwrap().acquire(&cap))).await;
        assert!(slots.iter().all(|s| s.is_ok()));
    }
}
