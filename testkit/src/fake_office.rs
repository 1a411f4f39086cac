//! Fake office app: serves real-shaped discovery XML at `/hosting/discovery` and counts fetches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Running;

pub const MICROSOFT_DISCOVERY: &str = include_str!("../../tests/fixtures/discovery/microsoft.xml");
pub const COLLABORA_DISCOVERY: &str = include_str!("../../tests/fixtures/discovery/collabora.xml");

#[derive(Clone)]
pub struct FakeOffice {
    xml: Arc<std::sync::RwLock<String>>,
    fetches: Arc<AtomicUsize>,
}

impl FakeOffice {
    pub fn new(xml: &str) -> Self {
        Self {
            xml: Arc::new(std::sync::RwLock::new(xml.to_owned())),
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Serves `xml` from now on (e.g. a rotated proof key).
    pub fn set_xml(&self, xml: &str) {
        *self.xml.write().unwrap() = xml.to_owned();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/hosting/discovery", get(discovery))
            .with_state(self.clone())
    }

    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<Running> {
        super::serve_http(self.router(), addr).await
    }

    /// The same over https with the given certificate and key (PEM).
    pub async fn serve_https(
        &self,
        addr: SocketAddr,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> std::io::Result<Running> {
        super::serve_https(self.router(), addr, cert_pem, key_pem).await
    }
}

async fn discovery(State(s): State<FakeOffice>) -> impl IntoResponse {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    let xml = s.xml.read().unwrap().clone();
    ([("content-type", "text/xml")], xml)
}
