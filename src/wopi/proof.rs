//! WOPI proof keys (wopi.md §10): the bytes an office app signs, the keys from discovery, and the
//! three-way verification rule. RSASSA-PKCS1-v1_5 with SHA-256 via the `rsa` crate.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

/// The `<proof-key>` attributes of a discovery document, verbatim (wopi.md §10.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProofKeyXml {
    pub value: String,
    pub modulus: String,
    pub exponent: String,
    pub oldvalue: String,
    pub oldmodulus: String,
    pub oldexponent: String,
}

/// .NET ticks at the Unix epoch.
const EPOCH_TICKS: i64 = 621_355_968_000_000_000;
const TICKS_PER_SECOND: i64 = 10_000_000;
/// Proofs older than this are replays (wopi.md §10.3).
pub const MAX_AGE_SECONDS: i64 = 20 * 60;
/// Allowed clock skew into the future.
pub const MAX_FUTURE_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("proof key in discovery is unusable")]
    BadKey,
    #[error("X-WOPI-TimeStamp missing or not a number")]
    BadTimestamp,
    #[error("X-WOPI-TimeStamp is older than 20 minutes")]
    Stale,
    #[error("X-WOPI-TimeStamp is in the future")]
    Future,
    #[error("X-WOPI-Proof missing")]
    Missing,
}

/// A client's current and old public keys.
#[derive(Debug, Clone)]
pub struct ProofKeys {
    pub current: RsaPublicKey,
    pub old: Option<RsaPublicKey>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

fn from_components(modulus: &str, exponent: &str) -> Option<RsaPublicKey> {
    let n = b64(modulus)?;
    let e = b64(exponent)?;
    RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).ok()
}

/// A CryptoAPI PUBLICKEYBLOB (wopi.md §10.4): header, "RSA1", bit length, exponent, modulus, all
/// little-endian.
fn from_blob(value: &str) -> Option<RsaPublicKey> {
    let b = b64(value)?;
    if b.len() < 20 || b[0] != 0x06 || &b[8..12] != b"RSA1" {
        return None;
    }
    let bits = u32::from_le_bytes(b[12..16].try_into().ok()?) as usize;
    let exp = u32::from_le_bytes(b[16..20].try_into().ok()?);
    let modulus = b.get(20..20 + bits / 8)?;
    RsaPublicKey::new(BigUint::from_bytes_le(modulus), BigUint::from(exp)).ok()
}

fn key(modulus: &str, exponent: &str, blob: &str) -> Option<RsaPublicKey> {
    from_components(modulus, exponent).or_else(|| from_blob(blob))
}

impl ProofKeys {
    /// Prefers `modulus`/`exponent`, falls back to the CSP blob (`value`).
    pub fn from_discovery(x: &ProofKeyXml) -> Result<Self, ProofError> {
        let current = key(&x.modulus, &x.exponent, &x.value).ok_or(ProofError::BadKey)?;
        let old = key(&x.oldmodulus, &x.oldexponent, &x.oldvalue);
        Ok(Self { current, old })
    }
}

/// The signed bytes: length-prefixed token, upper-cased URL and timestamp (wopi.md §10.1).
pub fn expected_bytes(token: &[u8], url: &str, timestamp: i64) -> Vec<u8> {
    let url = url.to_uppercase();
    let mut out = Vec::with_capacity(16 + token.len() + url.len());
    out.extend_from_slice(&(token.len() as u32).to_be_bytes());
    out.extend_from_slice(token);
    out.extend_from_slice(&(url.len() as u32).to_be_bytes());
    out.extend_from_slice(url.as_bytes());
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out
}

/// Parses `X-WOPI-TimeStamp` and checks its age against `now`.
pub fn check_timestamp(header: Option<&str>, now: SystemTime) -> Result<i64, ProofError> {
    let ticks: i64 = header
        .and_then(|h| h.trim().parse().ok())
        .ok_or(ProofError::BadTimestamp)?;
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let then_secs = ticks
        .checked_sub(EPOCH_TICKS)
        .ok_or(ProofError::BadTimestamp)?
        / TICKS_PER_SECOND;
    if now_secs - then_secs > MAX_AGE_SECONDS {
        return Err(ProofError::Stale);
    }
    if then_secs - now_secs > MAX_FUTURE_SECONDS {
        return Err(ProofError::Future);
    }
    Ok(ticks)
}

/// .NET ticks for a time (for signing clients in tests).
pub fn ticks_of(t: SystemTime) -> i64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    EPOCH_TICKS + d.as_secs() as i64 * TICKS_PER_SECOND + i64::from(d.subsec_nanos()) / 100
}

/// How a proof was accepted, or that it was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `X-WOPI-Proof` with the current key.
    Current,
    /// `X-WOPI-ProofOld` with the current key: the client rotated, our discovery may be stale.
    ClientRotated,
    /// `X-WOPI-Proof` with the old key: we rotated, the client has not yet.
    OldKey,
    Rejected,
}

impl Verdict {
    pub fn accepted(self) -> bool {
        self != Self::Rejected
    }

    /// Accepted, but discovery should be refreshed (wopi.md §9.1).
    pub fn suggests_refresh(self) -> bool {
        matches!(self, Self::Rejected | Self::OldKey | Self::ClientRotated)
    }
}

fn verifies(key: &RsaPublicKey, digest: &[u8], sig_b64: Option<&str>) -> bool {
    // Undecodable or wrong-length signatures are failures, never success (security.md W2).
    let Some(sig) = sig_b64.and_then(b64) else {
        return false;
    };
    if sig.len() != key_len(key) {
        return false;
    }
    key.verify(Pkcs1v15Sign::new::<Sha256>(), digest, &sig)
        .is_ok()
}

fn key_len(key: &RsaPublicKey) -> usize {
    use rsa::traits::PublicKeyParts;
    key.size()
}

/// The three-way rule (wopi.md §10.3): Proof/current, ProofOld/current, Proof/old. Never
/// ProofOld/old alone.
pub fn verify(
    keys: &ProofKeys,
    signed: &[u8],
    proof: Option<&str>,
    proof_old: Option<&str>,
) -> Verdict {
    let digest = Sha256::digest(signed);
    if verifies(&keys.current, &digest, proof) {
        return Verdict::Current;
    }
    if verifies(&keys.current, &digest, proof_old) {
        return Verdict::ClientRotated;
    }
    if keys
        .old
        .as_ref()
        .is_some_and(|old| verifies(old, &digest, proof))
    {
        return Verdict::OldKey;
    }
    Verdict::Rejected
}

#[cfg(test)]
mod tests;
