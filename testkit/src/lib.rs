//! Test doubles speaking the real protocols, shared by tests, benches and the demo (feature
//! `testkit`; release builds ship none of it). Every double listens on `127.0.0.1:0`, checks
//! credentials like the real component and records what it saw.
// Test doubles: a failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod demo_office;
pub mod fake_office;
pub mod fake_reva;
pub mod fake_wopiserver;
pub mod fault_proxy;
pub mod gateway;
pub mod hygiene;
pub mod proof_signer;
pub mod real_idp;
pub mod redis_server;
pub mod stack;
pub mod tap;
pub mod test_idp;
pub mod tree;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server started by a double; stops when [`Running::stop`] is called or on drop.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and drops open connections; the port then refuses connections.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Running {
    /// Binds `addr` (port 0 for an ephemeral one) and runs `serve` on the listener until the stop
    /// signal fires.
    pub async fn spawn<F, Fut>(addr: SocketAddr, serve: F) -> std::io::Result<Running>
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, rx));
        Ok(Running {
            addr,
            stop: Some(tx),
            task: Some(task),
        })
    }
}

/// Serves an axum router on `addr`.
pub async fn serve_http(router: axum::Router, addr: SocketAddr) -> std::io::Result<Running> {
    Running::spawn(addr, |listener, stop| async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
    })
    .await
}

/// Serves an axum router over TLS with a PEM certificate chain and PKCS#8 key (for pinning tests).
pub async fn serve_https(
    router: axum::Router,
    addr: SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> std::io::Result<Running> {
    serve_tls(router, addr, cert_pem, key_pem, None).await
}

/// Like [`serve_https`]; with `client_ca_pem`, clients must present a certificate that CA
/// signed (mutual TLS), and handshakes without one fail.
pub async fn serve_tls(
    router: axum::Router,
    addr: SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> std::io::Result<Running> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    wopigate::http_client::install_crypto_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(std::io::Error::other)?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(c.map_err(std::io::Error::other)?)
                    .map_err(std::io::Error::other)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder(std::sync::Arc::new(roots))
                    .build()
                    .map_err(std::io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(std::io::Error::other)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    Running::spawn(addr, move |listener, mut stop| async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => continue,
                },
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    })
    .await
}

/// An unused port on 127.0.0.1 for a process that binds it itself (the gateway).
///
/// A port released by a `bind(:0)` could be handed straight to another server's `bind(:0)`
/// before the gateway binds it (tests run in parallel), and the test would then talk to that
/// server. So the port comes from below the kernel's ephemeral range (which `bind(:0)` never
/// hands out), is checked bindable, and is never handed out twice by this process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_000;
    // Start where another test process (a second run) is unlikely to be.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        FIRST + (std::process::id() % u32::from(LAST - FIRST)) as u16,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..(LAST - FIRST) {
        let mut port = NEXT.fetch_add(1, Ordering::Relaxed);
        if port >= LAST {
            port = FIRST + port % (LAST - FIRST);
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    0
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A test that needs `tool` and cannot find it. Under CI (`CI=true`) that fails the test: a
/// skip there would pass what never ran, and `scripts/setup.sh` installs every such tool.
/// Elsewhere the test skips, saying so.
pub fn skip_without(tool: &str, what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{tool} is not installed under CI=true: {what} cannot run (scripts/setup.sh installs it)"
        );
    }
    eprintln!("SKIPPED {what}: {tool} is not installed (scripts/setup.sh installs it)");
}
