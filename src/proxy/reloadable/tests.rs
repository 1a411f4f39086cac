//! Every hook reaches the pinned service: a recorder overrides them all, and each is called
//! through the wrapper. A hook the wrapper stopped forwarding would run pingora's default
//! instead and be missing from the record.

use std::sync::Mutex;

use pingora::ErrorType;
use tokio::io::AsyncWriteExt;

use super::*;

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<&'static str>>,
    generation: u32,
}

impl Recorder {
    fn saw(&self, hook: &'static str) {
        self.seen.lock().unwrap().push(hook);
    }
}

#[async_trait]
impl ProxyHttp for Recorder {
    type CTX = u32;

    fn new_ctx(&self) -> u32 {
        self.saw("new_ctx");
        self.generation
    }

    fn init_downstream_modules(&self, _: &mut HttpModules) {
        self.saw("init_downstream_modules");
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut u32) -> pingora::Result<Box<HttpPeer>> {
        self.saw("upstream_peer");
        Ok(Box::new(peer()))
    }

    async fn request_filter(&self, _: &mut Session, _: &mut u32) -> pingora::Result<bool> {
        self.saw("request_filter");
        Ok(true)
    }

    async fn early_request_filter(&self, _: &mut Session, _: &mut u32) -> pingora::Result<()> {
        self.saw("early_request_filter");
        Ok(())
    }

    fn allow_spawning_subrequest(&self, _: &Session, _: &u32) -> bool {
        self.saw("allow_spawning_subrequest");
        true
    }

    async fn request_body_filter(
        &self,
        _: &mut Session,
        _: &mut Option<Bytes>,
        _: bool,
        _: &mut u32,
    ) -> pingora::Result<()> {
        self.saw("request_body_filter");
        Ok(())
    }

    async fn proxy_upstream_filter(&self, _: &mut Session, _: &mut u32) -> pingora::Result<bool> {
        self.saw("proxy_upstream_filter");
        Ok(false)
    }

    fn range_header_filter(
        &self,
        _: &mut Session,
        _: &mut ResponseHeader,
        _: &mut u32,
    ) -> RangeType {
        self.saw("range_header_filter");
        RangeType::None
    }

    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        _: &mut RequestHeader,
        _: &mut u32,
    ) -> pingora::Result<()> {
        self.saw("upstream_request_filter");
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _: &mut Session,
        _: &mut ResponseHeader,
        _: &mut u32,
    ) -> pingora::Result<()> {
        self.saw("upstream_response_filter");
        Ok(())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        _: &mut ResponseHeader,
        _: &mut u32,
    ) -> pingora::Result<()> {
        self.saw("response_filter");
        Ok(())
    }

    async fn custom_forwarding(
        &self,
        _: &mut Session,
        _: &mut u32,
        _: Option<mpsc::Sender<Bytes>>,
        _: mpsc::Sender<Bytes>,
    ) -> pingora::Result<()> {
        self.saw("custom_forwarding");
        Ok(())
    }

    async fn downstream_custom_message_proxy_filter(
        &self,
        _: &mut Session,
        _: Bytes,
        _: &mut u32,
        _: bool,
    ) -> pingora::Result<Option<Bytes>> {
        self.saw("downstream_custom_message_proxy_filter");
        Ok(None)
    }

    async fn upstream_custom_message_proxy_filter(
        &self,
        _: &mut Session,
        _: Bytes,
        _: &mut u32,
        _: bool,
    ) -> pingora::Result<Option<Bytes>> {
        self.saw("upstream_custom_message_proxy_filter");
        Ok(None)
    }

    fn upstream_response_body_filter(
        &self,
        _: &mut Session,
        _: &mut Option<Bytes>,
        _: bool,
        _: &mut u32,
    ) -> pingora::Result<Option<Duration>> {
        self.saw("upstream_response_body_filter");
        Ok(None)
    }

    fn upstream_response_trailer_filter(
        &self,
        _: &mut Session,
        _: &mut http::HeaderMap,
        _: &mut u32,
    ) -> pingora::Result<()> {
        self.saw("upstream_response_trailer_filter");
        Ok(())
    }

    fn response_body_filter(
        &self,
        _: &mut Session,
        _: &mut Option<Bytes>,
        _: bool,
        _: &mut u32,
    ) -> pingora::Result<Option<Duration>> {
        self.saw("response_body_filter");
        Ok(None)
    }

    async fn response_trailer_filter(
        &self,
        _: &mut Session,
        _: &mut http::HeaderMap,
        _: &mut u32,
    ) -> pingora::Result<Option<Bytes>> {
        self.saw("response_trailer_filter");
        Ok(None)
    }

    async fn logging(&self, _: &mut Session, _: Option<&Error>, _: &mut u32) {
        self.saw("logging");
    }

    fn persist_connection_context(
        &self,
        _: &Session,
        _: &u32,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        self.saw("persist_connection_context");
        None
    }

    fn on_connection_reuse(&self, _: &mut Session, _: &mut u32, _: Box<dyn Any + Send + Sync>) {
        self.saw("on_connection_reuse");
    }

    fn suppress_error_log(&self, _: &Session, _: &u32, _: &Error) -> bool {
        self.saw("suppress_error_log");
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _: &Session,
        _: &u32,
        _: &Error,
        _: ProxyWarnLogContext,
    ) -> bool {
        self.saw("suppress_proxy_warn_log");
        true
    }

    fn error_while_proxy(
        &self,
        _: &HttpPeer,
        _: &mut Session,
        e: Box<Error>,
        _: &mut u32,
        _: bool,
    ) -> Box<Error> {
        self.saw("error_while_proxy");
        e
    }

    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        _: &mut u32,
        e: Box<Error>,
    ) -> Box<Error> {
        self.saw("fail_to_connect");
        e
    }

    async fn fail_to_proxy(&self, _: &mut Session, _: &Error, _: &mut u32) -> FailToProxy {
        self.saw("fail_to_proxy");
        FailToProxy {
            error_code: 599,
            can_reuse_downstream: false,
        }
    }

    async fn connected_to_upstream(
        &self,
        _: &mut Session,
        _: bool,
        _: &HttpPeer,
        _: std::os::unix::io::RawFd,
        _: Option<&Digest>,
        _: &mut u32,
    ) -> pingora::Result<()> {
        self.saw("connected_to_upstream");
        Ok(())
    }

    fn request_summary(&self, _: &Session, ctx: &u32) -> String {
        self.saw("request_summary");
        format!("generation {ctx}")
    }

    fn is_purge(&self, _: &Session, _: &u32) -> bool {
        self.saw("is_purge");
        true
    }

    fn purge_response_filter(
        &self,
        _: &Session,
        _: &mut u32,
        _: PurgeStatus,
        _: &mut std::borrow::Cow<'static, ResponseHeader>,
    ) -> pingora::Result<()> {
        self.saw("purge_response_filter");
        Ok(())
    }
}

fn peer() -> HttpPeer {
    HttpPeer::new("127.0.0.1:9", false, String::new())
}

fn error() -> Box<Error> {
    Error::new(ErrorType::ConnectRefused)
}

async fn session() -> Session {
    let (mut client, server) = tokio::io::duplex(4096);
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut session = Session::new_h1(Box::new(server));
    assert!(session.read_request().await.unwrap());
    // The client end must outlive the session's reads.
    std::mem::forget(client);
    session
}

/// Calls every forwarded hook once through `r`.
async fn call_every_hook(r: &Reloadable<Recorder>, s: &mut Session, c: &mut Pinned<Recorder>) {
    let (p, mut req, mut resp) = (
        peer(),
        RequestHeader::build("GET", b"/", None).unwrap(),
        ResponseHeader::build(200, None).unwrap(),
    );
    let (mut body, mut trailers) = (None, http::HeaderMap::new());
    let (up, down) = (mpsc::channel(1).0, mpsc::channel(1).0);
    r.init_downstream_modules(&mut HttpModules::new());
    r.upstream_peer(s, c).await.unwrap();
    assert!(r.request_filter(s, c).await.unwrap());
    r.early_request_filter(s, c).await.unwrap();
    assert!(r.allow_spawning_subrequest(s, c));
    r.request_body_filter(s, &mut body, true, c).await.unwrap();
    assert!(!r.proxy_upstream_filter(s, c).await.unwrap());
    assert!(matches!(
        r.range_header_filter(s, &mut resp, c),
        RangeType::None
    ));
    r.upstream_request_filter(s, &mut req, c).await.unwrap();
    r.upstream_response_filter(s, &mut resp, c).await.unwrap();
    r.response_filter(s, &mut resp, c).await.unwrap();
    r.custom_forwarding(s, c, Some(up), down).await.unwrap();
    let m = Bytes::from_static(b"m");
    assert!(
        r.downstream_custom_message_proxy_filter(s, m.clone(), c, true)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        r.upstream_custom_message_proxy_filter(s, m, c, true)
            .await
            .unwrap()
            .is_none()
    );
    r.upstream_response_body_filter(s, &mut body, true, c)
        .unwrap();
    r.upstream_response_trailer_filter(s, &mut trailers, c)
        .unwrap();
    r.response_body_filter(s, &mut body, true, c).unwrap();
    r.response_trailer_filter(s, &mut trailers, c)
        .await
        .unwrap();
    r.logging(s, None, c).await;
    assert!(r.persist_connection_context(s, c).is_none());
    r.on_connection_reuse(s, c, Box::new(()));
    assert!(r.suppress_error_log(s, c, &error()));
    assert!(r.suppress_proxy_warn_log(s, c, &error(), ProxyWarnLogContext::UpstreamRetry));
    r.error_while_proxy(&p, s, error(), c, false);
    r.fail_to_connect(s, &p, c, error());
    assert_eq!(r.fail_to_proxy(s, &error(), c).await.error_code, 599);
    r.connected_to_upstream(s, false, &p, 0, None, c)
        .await
        .unwrap();
    assert_eq!(r.request_summary(s, c), "generation 1");
    assert!(r.is_purge(s, c));
    let mut purge = std::borrow::Cow::Owned(ResponseHeader::build(200, None).unwrap());
    r.purge_response_filter(s, c, PurgeStatus::NoCache, &mut purge)
        .unwrap();
}

#[tokio::test]
async fn every_hook_reaches_the_service_the_request_started_with() {
    let first = Recorder {
        generation: 1,
        ..Recorder::default()
    };
    let (reloadable, slot) = Reloadable::new(first);
    let mut s = session().await;
    let mut ctx = reloadable.new_ctx();
    let pinned = ctx.svc.clone();
    // A reload while the request runs: the request keeps its generation.
    slot.store(Arc::new(Recorder {
        generation: 2,
        ..Recorder::default()
    }));
    call_every_hook(&reloadable, &mut s, &mut ctx).await;
    let seen = pinned.seen.lock().unwrap().clone();
    let expected = [
        "new_ctx",
        "upstream_peer",
        "request_filter",
        "early_request_filter",
        "allow_spawning_subrequest",
        "request_body_filter",
        "proxy_upstream_filter",
        "range_header_filter",
        "upstream_request_filter",
        "upstream_response_filter",
        "response_filter",
        "custom_forwarding",
        "downstream_custom_message_proxy_filter",
        "upstream_custom_message_proxy_filter",
        "upstream_response_body_filter",
        "upstream_response_trailer_filter",
        "response_body_filter",
        "response_trailer_filter",
        "logging",
        "persist_connection_context",
        "on_connection_reuse",
        "suppress_error_log",
        "suppress_proxy_warn_log",
        "error_while_proxy",
        "fail_to_connect",
        "fail_to_proxy",
        "connected_to_upstream",
        "request_summary",
        "is_purge",
        "purge_response_filter",
    ];
    assert_eq!(seen, expected);
    // Modules are set up from the current service (the listener's, at start).
    assert_eq!(
        *slot.load().seen.lock().unwrap(),
        ["init_downstream_modules"]
    );
}
