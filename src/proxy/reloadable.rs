//! Lets a listener's `ProxyHttp` be replaced while it serves: a reload swaps in a new value and
//! each request keeps the one it started with to its end, so a reload never mixes settings
//! within a request nor drops one.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

pub struct Reloadable<T> {
    current: Arc<ArcSwap<T>>,
}

impl<T> Reloadable<T> {
    /// The service and the handle a reload stores its replacement through.
    pub fn new(initial: T) -> (Self, Arc<ArcSwap<T>>) {
        let current = Arc::new(ArcSwap::from_pointee(initial));
        (
            Self {
                current: current.clone(),
            },
            current,
        )
    }
}

/// The service a request started with, and that service's own context.
pub struct Pinned<T: ProxyHttp> {
    svc: Arc<T>,
    ctx: T::CTX,
}

// Delegates every hook any of wopigate's services overrides; the others keep pingora's defaults
// on both sides, so they need no forwarding.
#[async_trait]
impl<T> ProxyHttp for Reloadable<T>
where
    T: ProxyHttp + Send + Sync + 'static,
    T::CTX: Send + Sync,
{
    type CTX = Pinned<T>;

    fn new_ctx(&self) -> Pinned<T> {
        let svc = self.current.load_full();
        let ctx = svc.new_ctx();
        Pinned { svc, ctx }
    }

    async fn request_filter(&self, s: &mut Session, c: &mut Pinned<T>) -> pingora::Result<bool> {
        c.svc.request_filter(s, &mut c.ctx).await
    }

    async fn request_body_filter(
        &self,
        s: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc.request_body_filter(s, body, end, &mut c.ctx).await
    }

    async fn upstream_peer(
        &self,
        s: &mut Session,
        c: &mut Pinned<T>,
    ) -> pingora::Result<Box<HttpPeer>> {
        c.svc.upstream_peer(s, &mut c.ctx).await
    }

    async fn upstream_request_filter(
        &self,
        s: &mut Session,
        r: &mut RequestHeader,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc.upstream_request_filter(s, r, &mut c.ctx).await
    }

    async fn upstream_response_filter(
        &self,
        s: &mut Session,
        r: &mut ResponseHeader,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc.upstream_response_filter(s, r, &mut c.ctx).await
    }

    fn response_body_filter(
        &self,
        s: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        c: &mut Pinned<T>,
    ) -> pingora::Result<Option<std::time::Duration>> {
        c.svc.response_body_filter(s, body, end, &mut c.ctx)
    }

    async fn fail_to_proxy(
        &self,
        s: &mut Session,
        e: &pingora::Error,
        c: &mut Pinned<T>,
    ) -> FailToProxy {
        c.svc.fail_to_proxy(s, e, &mut c.ctx).await
    }

    fn request_summary(&self, s: &Session, c: &Pinned<T>) -> String {
        c.svc.request_summary(s, &c.ctx)
    }

    async fn logging(&self, s: &mut Session, e: Option<&pingora::Error>, c: &mut Pinned<T>) {
        c.svc.logging(s, e, &mut c.ctx).await
    }
}
