//! The wopiserver as pingora reaches it: address, TLS and deadlines, resolved once per
//! configuration generation, and the peer built from them for each proxied request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::prelude::HttpPeer;

/// Where proxied WOPI traffic goes, resolved once at start.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: String,
    /// `host:port` sent as `Host`.
    pub authority: String,
    pub connect_timeout: Duration,
    /// Longest wait for the next byte from the wopiserver while proxying.
    pub read_timeout: Duration,
    /// Trusted CAs for an `https://` wopiserver; `None` = the platform's roots.
    pub ca: Option<Arc<[pingora::utils::tls::WrappedX509]>>,
    /// Client certificate for a wopiserver that requires mutual TLS.
    pub client_cert: Option<Arc<pingora::utils::tls::CertKey>>,
}

impl Upstream {
    /// The TLS parts from the configured PEM. What pingora cannot use is an error naming the
    /// key, never silently dropped (an unusable CA would otherwise mean the platform's roots).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, String> {
        use pingora::utils::tls::{CertKey, WrappedX509, parse_x509};
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let ders = |key: &str, pem: &[u8]| -> Result<Vec<Vec<u8>>, String> {
            let certs = CertificateDer::pem_slice_iter(pem)
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{key}: invalid PEM: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{key}: no certificate"));
            }
            Ok(certs)
        };
        if let Some(pem) = &tls.ca_pem {
            let certs: Vec<WrappedX509> = ders("wopiserver.tls.ca_file", pem)?
                .into_iter()
                .map(|d| WrappedX509::new(d, parse_x509))
                .collect();
            self.ca = Some(Arc::from(certs));
        }
        if let Some((cert, key)) = &tls.identity_pem {
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| format!("wopiserver.tls.key_file: no usable private key: {e}"))?;
            let chain = ders("wopiserver.tls.cert_file", cert)?;
            self.client_cert = Some(Arc::new(CertKey::new(chain, key.secret_der().to_vec())));
        }
        Ok(self)
    }
}

/// The wopiserver as a pingora peer with the configured deadlines.
pub fn peer(u: &Upstream) -> Box<HttpPeer> {
    let mut peer = HttpPeer::new(u.addr, u.tls, u.sni.clone());
    peer.options.connection_timeout = Some(u.connect_timeout);
    peer.options.total_connection_timeout = Some(u.connect_timeout);
    peer.options.read_timeout = Some(u.read_timeout);
    peer.options.write_timeout = Some(u.read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer.options.ca = u.ca.clone();
    peer.client_cert_key = u.client_cert.clone();
    Box::new(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ClientTls;

    fn upstream() -> Upstream {
        Upstream {
            addr: "127.0.0.1:8880".parse().unwrap(),
            tls: true,
            sni: "wopi.example.org".into(),
            authority: "wopi.example.org:8880".into(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            ca: None,
            client_cert: None,
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tls")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn pinned_material_is_used_or_refused_never_dropped() {
        let good = ClientTls {
            ca_pem: Some(fixture("ca.pem")),
            identity_pem: Some((fixture("client.pem"), fixture("client.key"))),
        };
        let u = upstream().with_tls(&good).unwrap();
        assert!(u.ca.is_some() && u.client_cert.is_some());
        // Used to leave `ca` unset (the platform's roots) without a word.
        let bad_ca = ClientTls {
            ca_pem: Some(b"no certificate here".to_vec()),
            identity_pem: None,
        };
        let e = upstream().with_tls(&bad_ca).err().unwrap();
        assert!(e.starts_with("wopiserver.tls.ca_file"), "{e}");
        // Used to drop the client certificate when its key did not parse.
        let bad_key = ClientTls {
            ca_pem: None,
            identity_pem: Some((fixture("client.pem"), b"no key here".to_vec())),
        };
        let e = upstream().with_tls(&bad_key).err().unwrap();
        assert!(e.starts_with("wopiserver.tls.key_file"), "{e}");
    }
}
