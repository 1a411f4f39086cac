//! The load benchmark's floor: pingora 0.9 proxying every request to one upstream with none of
//! wopigate's work (no token, proof, rewrite, client limits, metrics or logs), one worker
//! thread, default listener buffers. `bare-pingora <listen addr> <upstream addr>`; started by
//! `wopigate-load` (benches/load.sh).

use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

struct Bare(std::net::SocketAddr);

#[async_trait::async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream] = args.as_slice() else {
        eprintln!("usage: bare-pingora <listen addr> <upstream addr>");
        std::process::exit(2);
    };
    let upstream = upstream.parse().expect("upstream address");
    // pingora's defaults wait 300 s on shutdown; the benchmark stops it at once.
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Bare(upstream));
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}
