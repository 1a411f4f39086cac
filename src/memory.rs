//! Memory handed back to the system after a burst of connections. Each open connection costs a
//! few KiB of heap; when thousands close, glibc's allocator keeps the freed memory in its arenas
//! (measured: 10 000 idle keep-alive connections closed, RSS stayed at 61 MiB; the same with
//! jemalloc and mimalloc, which purge only when the thread allocates again), and an operator
//! sees a process that never shrinks. `malloc_trim` returns it (61 → 27 MiB). It runs only when
//! the open connections have fallen well below their recent high, never on the request path.
//!
//! The opposite on the request path: a file body is read in 256 KiB buffers (pingora's, see
//! `vendor/pingora-core/README.md`), and glibc, left to itself, served those from fresh `mmap`s
//! or returned the arena's top to the system between two of them, so every buffer was memory
//! the kernel had to fault in and zero again (a proxied 1 GiB GetFile: 18–27 page faults per MiB,
//! all in `recv`'s copy into the new buffer; nginx, which keeps its buffers, none). With
//! [`keep_body_buffers`] they come from the arena and are reused: no page fault per MiB.

use std::time::Duration;

/// How often the connection count is looked at.
const EVERY: Duration = Duration::from_secs(2);
/// A fall of at least this many connections, and to at most three quarters of the high, hands
/// memory back: small fluctuations never trigger it.
const MIN_FALL: i64 = 256;

/// Watches `wopigate_open_connections` and hands memory back after a fall; runs forever.
pub async fn hand_back_after_bursts() {
    let gauge = crate::metrics::metrics().open_connections.clone();
    let mut high = gauge.get();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let open = gauge.get();
        if should_hand_back(high, open) {
            // A walk over the arenas: off the runtime's threads.
            let _ = tokio::task::spawn_blocking(hand_back).await;
            tracing::info!(
                closed = high - open,
                open,
                "connections closed; free memory handed back to the system"
            );
            high = open;
        } else {
            high = high.max(open);
        }
    }
}

fn should_hand_back(high: i64, open: i64) -> bool {
    high - open >= MIN_FALL && open * 4 <= high * 3
}

/// Below this, allocations come from glibc's arenas, not from an `mmap` of their own (the
/// default, 128 KiB and adjusted as it goes, is below a body buffer).
const MMAP_THRESHOLD: i32 = 1 << 20;
/// Free memory at an arena's top that stays there rather than going back to the system at once
/// (a few body buffers' worth; bursts are handed back by [`hand_back`]).
const TRIM_THRESHOLD: i32 = 4 << 20;

/// Keeps the allocator from handing body buffers back to the system between two reads. Called
/// once at start-up, before the listeners' threads allocate.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn keep_body_buffers() {
    // SAFETY: `mallopt` only sets glibc's allocator parameters; it has no preconditions and
    // these values are in range (both are positive sizes).
    let set = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            & libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    };
    if set != 1 {
        tracing::warn!("could not tune the allocator: body buffers may cost page faults");
    }
}

/// Other allocators keep their memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_body_buffers() {}

/// Returns the allocator's free memory to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn hand_back() {
    // SAFETY: `malloc_trim` has no preconditions; it only releases free memory of glibc's
    // arenas and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn hand_back() {}

#[cfg(test)]
mod tests {
    use super::should_hand_back;

    #[test]
    fn only_a_large_fall_hands_memory_back() {
        assert!(should_hand_back(10_000, 0));
        assert!(should_hand_back(1_000, 700));
        assert!(
            !should_hand_back(1_000, 800),
            "a quarter's fall is the least"
        );
        assert!(!should_hand_back(300, 100), "fewer than 256 closed");
        assert!(!should_hand_back(0, 0));
        assert!(!should_hand_back(100, 300), "a rise");
    }
}
