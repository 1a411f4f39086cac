use std::time::{Duration, SystemTime};

use super::*;

fn keys_from(text: &str) -> ProofKeys {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_owned()
    };
    ProofKeys::from_discovery(&ProofKeyXml {
        value: get("value"),
        modulus: get("modulus"),
        exponent: get("exponent"),
        oldvalue: get("oldvalue"),
        oldmodulus: get("oldmodulus"),
        oldexponent: get("oldexponent"),
    })
    .unwrap()
}

#[test]
fn microsoft_vectors_give_their_verdicts() {
    let keys = keys_from(include_str!("../../../tests/fixtures/proof-ms-keys.txt"));
    let vectors = include_str!("../../../tests/fixtures/proof-ms-vectors.tsv");
    let mut n = 0;
    for line in vectors.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, want, token, ts, url, proof, old) = (f[0], f[1], f[2], f[3], f[4], f[5], f[6]);
        // Timestamps from 2015: no freshness check for these (wopi.md §12.1).
        let signed = expected_bytes(token.as_bytes(), url, ts.parse().unwrap());
        let verdict = verify(&keys, &signed, Some(proof), Some(old));
        assert_eq!(verdict.accepted(), want == "ACCEPT", "{name}: {verdict:?}");
        n += 1;
    }
    assert_eq!(n, 8);
}

#[test]
fn blob_and_components_give_the_same_key() {
    let text = include_str!("../../../tests/fixtures/proof-ms-keys.txt");
    let k = keys_from(text);
    let blob_only = keys_from(
        &text
            .lines()
            .filter(|l| l.contains("value="))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert_eq!(k.current, blob_only.current);
    assert_eq!(k.old, blob_only.old);
}

fn validator() -> (ProofKeys, Vec<u8>, String, String) {
    let xml = crate::discovery::xml::parse(include_str!(
        "../../../tests/fixtures/discovery/microsoft.xml"
    ))
    .unwrap();
    let keys = ProofKeys::from_discovery(&xml.proof_key.unwrap()).unwrap();
    let v = include_str!("../../../tests/fixtures/proof-validator.txt");
    let get = |k: &str| {
        v.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let signed = expected_bytes(
        get("access_token").as_bytes(),
        &get("URL"),
        get("X-WOPI-TimeStamp").parse().unwrap(),
    );
    (keys, signed, get("X-WOPI-Proof"), get("X-WOPI-ProofOld"))
}

#[test]
fn derived_vector_cases() {
    let (keys, signed, current_sig, old_sig) = validator();
    let garbage = STANDARD.encode("INVALID");
    let g = garbage.as_str();
    let cases: [(&str, Option<&str>, Option<&str>, Verdict); 9] = [
        ("D-1", Some(&current_sig), Some(&old_sig), Verdict::Current),
        (
            "D-2 swapped",
            Some(&old_sig),
            Some(&current_sig),
            Verdict::ClientRotated,
        ),
        ("D-3 behind", Some(&old_sig), Some(g), Verdict::OldKey),
        (
            "D-4 ahead",
            Some(g),
            Some(&current_sig),
            Verdict::ClientRotated,
        ),
        (
            "D-5 no ProofOld",
            Some(&current_sig),
            None,
            Verdict::Current,
        ),
        (
            "D-6 ProofOld = Proof",
            Some(&current_sig),
            Some(&current_sig),
            Verdict::Current,
        ),
        (
            "D-7 old/old only",
            Some(g),
            Some(&old_sig),
            Verdict::Rejected,
        ),
        ("D-8 garbage", Some(g), Some(g), Verdict::Rejected),
        (
            "D-9 malformed ProofOld",
            Some(g),
            Some("%%%"),
            Verdict::Rejected,
        ),
    ];
    for (name, proof, old, want) in cases {
        assert_eq!(verify(&keys, &signed, proof, old), want, "{name}");
    }
    // D-12: the whole external URL is signed.
    let v = include_str!("../../../tests/fixtures/proof-validator.txt");
    let url = v.lines().find_map(|l| l.strip_prefix("URL=")).unwrap();
    for bad_url in [
        url.split('?').next().unwrap().to_owned(),
        url.replacen("https://", "http://", 1),
    ] {
        let signed = expected_bytes(
            b"my_access_token/with+special=chars",
            &bad_url,
            638000000000000000,
        );
        assert_eq!(
            verify(&keys, &signed, Some(&current_sig), Some(&old_sig)),
            Verdict::Rejected
        );
    }
    // The expected bytes match the spec's hex digest.
    assert_eq!(
        format!("{:x}", Sha256::digest(&signed)),
        "b2b391a6bf8a3dc811e447c91e6e90665721db074d5dbb0a5d8842aa4a66b879"
    );
}

#[test]
fn timestamps() {
    let now = SystemTime::now();
    let t = ticks_of(now);
    assert_eq!(check_timestamp(Some(&t.to_string()), now), Ok(t));
    let old = ticks_of(now - Duration::from_secs(21 * 60));
    assert_eq!(
        check_timestamp(Some(&old.to_string()), now),
        Err(ProofError::Stale)
    );
    assert_eq!(
        check_timestamp(Some("635753664000000000"), now),
        Err(ProofError::Stale)
    );
    let future = ticks_of(now + Duration::from_secs(10 * 60));
    assert_eq!(
        check_timestamp(Some(&future.to_string()), now),
        Err(ProofError::Future)
    );
    assert_eq!(
        check_timestamp(Some("abc"), now),
        Err(ProofError::BadTimestamp)
    );
    assert_eq!(check_timestamp(None, now), Err(ProofError::BadTimestamp));
    assert_eq!(
        check_timestamp(Some("-9223372036854775808"), now),
        Err(ProofError::BadTimestamp)
    );
}
