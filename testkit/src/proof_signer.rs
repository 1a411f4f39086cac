//! Signs WOPI requests like an office app does, with CryptoAPI private key blobs (the WOPI
//! validator's test keys) or freshly generated keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};

use wopigate::wopi::proof::expected_bytes;

pub struct ProofSigner {
    key: RsaPrivateKey,
}

impl ProofSigner {
    /// A CryptoAPI PRIVATEKEYBLOB (wopi.md §10.4): header, "RSA2", bit length, public exponent,
    /// then modulus, prime1, prime2, exponent1, exponent2, coefficient, private exponent, all
    /// little-endian.
    pub fn from_private_blob(b64: &str) -> Self {
        let b = STANDARD.decode(b64).expect("base64");
        assert_eq!(&b[8..12], b"RSA2");
        let bits = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
        let e = u32::from_le_bytes(b[16..20].try_into().unwrap());
        let (full, half) = (bits / 8, bits / 16);
        let mut at = 20;
        let mut take = |n: usize| {
            let v = BigUint::from_bytes_le(&b[at..at + n]);
            at += n;
            v
        };
        let n = take(full);
        let p = take(half);
        let q = take(half);
        let (_dp, _dq, _qinv) = (take(half), take(half), take(half));
        let d = take(full);
        Self {
            key: RsaPrivateKey::from_components(n, BigUint::from(e), d, vec![p, q])
                .expect("valid key"),
        }
    }

    pub fn generate() -> Self {
        Self {
            key: RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key"),
        }
    }

    /// `modulus` and `exponent` attributes for a discovery `<proof-key>`.
    pub fn modulus_exponent(&self) -> (String, String) {
        (
            STANDARD.encode(self.key.n().to_bytes_be()),
            STANDARD.encode(self.key.e().to_bytes_be()),
        )
    }

    /// Base64 `X-WOPI-Proof` value for a request.
    pub fn sign(&self, token: &str, url: &str, ticks: i64) -> String {
        let digest = Sha256::digest(expected_bytes(token.as_bytes(), url, ticks));
        STANDARD.encode(
            self.key
                .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
                .expect("sign"),
        )
    }
}

/// The WOPI validator's current and old key (the ones in `microsoft.xml`).
pub fn validator_signers() -> (ProofSigner, ProofSigner) {
    let text = include_str!("../../tests/fixtures/proof-validator.txt");
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .expect(k)
            .to_owned()
    };
    (
        ProofSigner::from_private_blob(&get("private_current")),
        ProofSigner::from_private_blob(&get("private_old")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_blob_reproduces_the_derived_vector() {
        let text = include_str!("../../tests/fixtures/proof-validator.txt");
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
        };
        let (current, old) = validator_signers();
        let ts: i64 = get("X-WOPI-TimeStamp").parse().unwrap();
        assert_eq!(
            current.sign(get("access_token"), get("URL"), ts),
            get("X-WOPI-Proof")
        );
        assert_eq!(
            old.sign(get("access_token"), get("URL"), ts),
            get("X-WOPI-ProofOld")
        );
    }
}
