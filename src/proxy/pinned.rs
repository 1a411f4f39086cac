//! A reload swaps a new configuration generation into a running listener; each request keeps
//! the generation current when it began, to its end, so a reload never mixes settings within a
//! request nor drops one. pingora's own idiom: the listener's `ProxyHttp` is immutable and the
//! per-request state, the pinned generation with it, lives in `CTX` ([`Pinned`], loaded in
//! `new_ctx`). Each listener implements exactly the hooks it uses; pingora's defaults run for
//! the others, as they would for the generation itself.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// A listener's `ProxyHttp`: the slot a reload stores the next generation in.
pub struct Listener<G> {
    current: Arc<ArcSwap<G>>,
}

impl<G> Listener<G> {
    /// The listener and the handle a reload stores its replacement through.
    pub fn new(initial: G) -> (Self, Arc<ArcSwap<G>>) {
        let current = Arc::new(ArcSwap::from_pointee(initial));
        (
            Self {
                current: current.clone(),
            },
            current,
        )
    }

    /// The generation a new request is served by.
    pub fn pin<C>(&self, req: C) -> Pinned<G, C> {
        Pinned {
            generation: self.current.load_full(),
            req,
        }
    }
}

/// A request's context: the generation it started with, and its own state.
pub struct Pinned<G, C> {
    pub generation: Arc<G>,
    pub req: C,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_keeps_the_generation_it_started_with() {
        let (listener, slot) = Listener::new(1u32);
        let first = listener.pin(());
        slot.store(Arc::new(2));
        let second = listener.pin(());
        assert_eq!((*first.generation, *second.generation), (1, 2));
        drop(first);
        assert_eq!(*listener.pin(()).generation, 2);
    }
}
