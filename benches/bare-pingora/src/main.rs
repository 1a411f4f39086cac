//! The load benchmark's floor: pingora proxying every request to one upstream with none of
//! wopigate's work (no token, proof, rewrite, client limits, metrics or logs), tuned as well as
//! pingora's public API allows: one worker thread on the no-steal runtime, no downstream module
//! (pingora adds a disabled compression module by default), no L4 read buffer on the plain
//! listener (requests are parsed straight from the socket; pingora's default write buffer stays:
//! without it a response head leaves in a send of its own), the upstream peer built once and
//! cloned. `bare-pingora <listen addr>
//! <upstream addr>`; started by `wopigate-load` (benches/load.sh), built with the shipped
//! binary's profile.

use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::modules::http::HttpModules;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

struct Bare(HttpPeer);

#[async_trait::async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: bare-pingora <listen addr> <upstream addr>");
        std::process::exit(2);
    };
    let upstream: std::net::SocketAddr = upstream.parse().expect("upstream address");
    // pingora's defaults wait 300 s on shutdown; the benchmark stops it at once.
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let peer = HttpPeer::new(upstream, false, String::new());
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Bare(peer));
    service.add_listener(
        ListenerConfig::tcp(listen.clone()).l4_buffer(L4BufferSettings::default().read(0)),
    );
    server.add_service(service);
    server.run_forever()
}
