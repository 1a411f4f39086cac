//! Lets a listener's `ProxyHttp` be replaced while it serves: a reload swaps in a new value and
//! each request keeps the one it started with to its end, so a reload never mixes settings
//! within a request nor drops one.
//!
//! Every hook of pingora's `ProxyHttp` is forwarded, whether a service overrides it today or
//! not, so one overridden tomorrow cannot be skipped silently (the test below calls each one
//! through the wrapper). Only the HTTP cache's hooks are not: pingora calls them only for a
//! session whose cache is enabled, which no wopigate listener does, and their types belong to a
//! crate wopigate does not use.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::Error;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{
    FailToProxy, ProxyHttp, ProxyWarnLogContext, PurgeStatus, RangeType, Session,
};
use tokio::sync::mpsc;

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

    /// Modules are set up once per listener, from the service it started with.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        self.current.load().init_downstream_modules(modules)
    }

    async fn upstream_peer(
        &self,
        s: &mut Session,
        c: &mut Pinned<T>,
    ) -> pingora::Result<Box<HttpPeer>> {
        c.svc.upstream_peer(s, &mut c.ctx).await
    }

    async fn request_filter(&self, s: &mut Session, c: &mut Pinned<T>) -> pingora::Result<bool> {
        c.svc.request_filter(s, &mut c.ctx).await
    }

    async fn early_request_filter(
        &self,
        s: &mut Session,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc.early_request_filter(s, &mut c.ctx).await
    }

    fn allow_spawning_subrequest(&self, s: &Session, c: &Pinned<T>) -> bool {
        c.svc.allow_spawning_subrequest(s, &c.ctx)
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

    async fn proxy_upstream_filter(
        &self,
        s: &mut Session,
        c: &mut Pinned<T>,
    ) -> pingora::Result<bool> {
        c.svc.proxy_upstream_filter(s, &mut c.ctx).await
    }

    fn range_header_filter(
        &self,
        s: &mut Session,
        r: &mut ResponseHeader,
        c: &mut Pinned<T>,
    ) -> RangeType {
        c.svc.range_header_filter(s, r, &mut c.ctx)
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

    async fn response_filter(
        &self,
        s: &mut Session,
        r: &mut ResponseHeader,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc.response_filter(s, r, &mut c.ctx).await
    }

    async fn custom_forwarding(
        &self,
        s: &mut Session,
        c: &mut Pinned<T>,
        to_upstream: Option<mpsc::Sender<Bytes>>,
        to_downstream: mpsc::Sender<Bytes>,
    ) -> pingora::Result<()> {
        c.svc
            .custom_forwarding(s, &mut c.ctx, to_upstream, to_downstream)
            .await
    }

    async fn downstream_custom_message_proxy_filter(
        &self,
        s: &mut Session,
        message: Bytes,
        c: &mut Pinned<T>,
        final_hop: bool,
    ) -> pingora::Result<Option<Bytes>> {
        c.svc
            .downstream_custom_message_proxy_filter(s, message, &mut c.ctx, final_hop)
            .await
    }

    async fn upstream_custom_message_proxy_filter(
        &self,
        s: &mut Session,
        message: Bytes,
        c: &mut Pinned<T>,
        final_hop: bool,
    ) -> pingora::Result<Option<Bytes>> {
        c.svc
            .upstream_custom_message_proxy_filter(s, message, &mut c.ctx, final_hop)
            .await
    }

    fn upstream_response_body_filter(
        &self,
        s: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        c: &mut Pinned<T>,
    ) -> pingora::Result<Option<Duration>> {
        c.svc
            .upstream_response_body_filter(s, body, end, &mut c.ctx)
    }

    fn upstream_response_trailer_filter(
        &self,
        s: &mut Session,
        trailers: &mut http::HeaderMap,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc
            .upstream_response_trailer_filter(s, trailers, &mut c.ctx)
    }

    fn response_body_filter(
        &self,
        s: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        c: &mut Pinned<T>,
    ) -> pingora::Result<Option<Duration>> {
        c.svc.response_body_filter(s, body, end, &mut c.ctx)
    }

    async fn response_trailer_filter(
        &self,
        s: &mut Session,
        trailers: &mut http::HeaderMap,
        c: &mut Pinned<T>,
    ) -> pingora::Result<Option<Bytes>> {
        c.svc.response_trailer_filter(s, trailers, &mut c.ctx).await
    }

    async fn logging(&self, s: &mut Session, e: Option<&Error>, c: &mut Pinned<T>) {
        c.svc.logging(s, e, &mut c.ctx).await
    }

    fn persist_connection_context(
        &self,
        s: &Session,
        c: &Pinned<T>,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        c.svc.persist_connection_context(s, &c.ctx)
    }

    fn on_connection_reuse(
        &self,
        s: &mut Session,
        c: &mut Pinned<T>,
        previous: Box<dyn Any + Send + Sync>,
    ) {
        c.svc.on_connection_reuse(s, &mut c.ctx, previous)
    }

    fn suppress_error_log(&self, s: &Session, c: &Pinned<T>, e: &Error) -> bool {
        c.svc.suppress_error_log(s, &c.ctx, e)
    }

    fn suppress_proxy_warn_log(
        &self,
        s: &Session,
        c: &Pinned<T>,
        e: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        c.svc.suppress_proxy_warn_log(s, &c.ctx, e, context)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        s: &mut Session,
        e: Box<Error>,
        c: &mut Pinned<T>,
        client_reused: bool,
    ) -> Box<Error> {
        c.svc
            .error_while_proxy(peer, s, e, &mut c.ctx, client_reused)
    }

    fn fail_to_connect(
        &self,
        s: &mut Session,
        peer: &HttpPeer,
        c: &mut Pinned<T>,
        e: Box<Error>,
    ) -> Box<Error> {
        c.svc.fail_to_connect(s, peer, &mut c.ctx, e)
    }

    async fn fail_to_proxy(&self, s: &mut Session, e: &Error, c: &mut Pinned<T>) -> FailToProxy {
        c.svc.fail_to_proxy(s, e, &mut c.ctx).await
    }

    async fn connected_to_upstream(
        &self,
        s: &mut Session,
        reused: bool,
        peer: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        digest: Option<&Digest>,
        c: &mut Pinned<T>,
    ) -> pingora::Result<()> {
        c.svc
            .connected_to_upstream(s, reused, peer, fd, digest, &mut c.ctx)
            .await
    }

    fn request_summary(&self, s: &Session, c: &Pinned<T>) -> String {
        c.svc.request_summary(s, &c.ctx)
    }

    fn is_purge(&self, s: &Session, c: &Pinned<T>) -> bool {
        c.svc.is_purge(s, &c.ctx)
    }

    fn purge_response_filter(
        &self,
        s: &Session,
        c: &mut Pinned<T>,
        status: PurgeStatus,
        response: &mut std::borrow::Cow<'static, ResponseHeader>,
    ) -> pingora::Result<()> {
        c.svc.purge_response_filter(s, &mut c.ctx, status, response)
    }
}

#[cfg(test)]
mod tests;
