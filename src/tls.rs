//! TLS material: the public listener's certificate, swappable at run time so a reload serves a
//! renewed certificate to new connections while established ones finish on the old one, and
//! the client settings (CA bundle, client certificate) for upstreams.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Installs ring as rustls' process-wide provider (pingora, reqwest and tonic share it).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads a PEM certificate chain and its private key and checks that they belong together.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("no private key in {}: {e}", key_file.display()))?;
    install_crypto_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "the key in {} does not match the certificate in {}",
            key_file.display(),
            cert_file.display()
        ),
        other => format!("unusable certificate or key: {other}"),
    })
}

/// The leaf certificate's `notAfter` as Unix seconds.
pub fn not_after(cert: &CertifiedKey) -> Option<i64> {
    let der = cert.cert.first()?.to_vec();
    let wrapped = pingora::utils::tls::WrappedX509::new(der, pingora::utils::tls::parse_x509);
    Some(wrapped.borrow_cert().validity().not_after.timestamp())
}

/// All certificates of a PEM file; an error when there are none.
pub fn read_certs(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid PEM in {}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", file.display()));
    }
    Ok(certs)
}

/// The listener's certificate; [`ReloadableCert::reload`] swaps it atomically.
#[derive(Debug)]
pub struct ReloadableCert {
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, String> {
        let key = load_certified_key(cert_file, key_file)?;
        export_expiry(&key);
        Ok(Self {
            current: ArcSwap::from_pointee(key),
        })
    }

    /// Reads the files (the configuration may name new paths); on any problem the old
    /// certificate stays.
    pub fn reload(&self, cert_file: &Path, key_file: &Path) -> Result<(), String> {
        let key = load_certified_key(cert_file, key_file)?;
        export_expiry(&key);
        self.current.store(Arc::new(key));
        Ok(())
    }
}

fn export_expiry(key: &CertifiedKey) {
    if let Some(t) = not_after(key) {
        crate::metrics::metrics().tls_cert_not_after.set(t);
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// TLS settings for connections to one upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// Trust only these CAs (PEM) instead of the platform's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key (PEM), for upstreams that require mutual TLS.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn matching_pair_loads_and_a_mismatched_key_is_named() {
        let ok = load_certified_key(&fixture("server.pem"), &fixture("server.key")).unwrap();
        // The fixture is valid for a century.
        assert!(not_after(&ok).unwrap() > 4_000_000_000);
        let err = load_certified_key(&fixture("server.pem"), &fixture("client.key")).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = load_certified_key(&fixture("server.key"), &fixture("server.key")).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
    }
}
