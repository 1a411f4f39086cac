use super::*;
use crate::tokens::reva::UserIdClaim;

pub(crate) fn claims(exp: u64) -> Claims {
    Claims {
        grant: Grant::File(FileGrant {
            resource: Resource {
                storage_id: "1284d238-aa92-42ce-bdc4-0b0000009157".into(),
                space_id: "c3cf23bb-8f47-4719-a150-1d25a1f6fb56".into(),
                opaque_id: "7a7a5f9e-4a4f-4b3a-9a0e-2d1f3c4b5a69".into(),
            },
            app: Some("Microsoft Office Online".into()),
            view_mode: ViewMode::ReadWrite,
        }),
        user: UserClaim {
            id: UserIdClaim {
                idp: "https://idp.example.org/realms/a-rather-long-realm-name".into(),
                opaque_id: "f7fbf8c8-139b-4376-b307-cf0a8c2d0d9c".into(),
                user_type: 1,
            },
            username: "alice.example".into(),
            mail: "alice@example.org".into(),
            mail_verified: true,
            display_name: "Alice Example-Longname".into(),
            groups: Vec::new(),
        },
        mobile: true,
        exp,
        login: Login {
            iat: 1_999_990_000,
            sid: Some("5f3c2a1e-9b8d-4c7a-a6e5-0d1f2b3c4d5e".into()),
            sub: None,
        },
    }
}

#[test]
fn round_trip_is_short_opaque_and_bound_to_its_key() {
    let keys = TokenKeys::new(&Secret::new("current key material"), None);
    let c = claims(2_000_000_000);
    let t = keys.issue(&c);
    assert!(t.starts_with(PREFIX));
    assert!(
        url_encoded_len(&t) <= MAX_URL_ENCODED,
        "{}",
        url_encoded_len(&t)
    );
    assert!(!t.contains("alice"), "sealed, not just signed");
    assert_eq!(keys.verify(&t, 1_000).unwrap(), c);
    // Two issues of the same claims differ (random nonce).
    assert_ne!(keys.issue(&c), t);
    // Another key refuses it.
    let other = TokenKeys::new(&Secret::new("another key"), None);
    assert_eq!(other.verify(&t, 1_000), Err(TokenError::BadSeal));
}

#[test]
fn tampering_expiry_and_garbage_are_refused() {
    let keys = TokenKeys::new(&Secret::new("k"), None);
    let t = keys.issue(&claims(2_000));
    // Opened once (and remembered), it still expires.
    assert!(keys.verify(&t, 1_999).is_ok());
    assert_eq!(keys.verify(&t, 2_000), Err(TokenError::Expired));
    assert!(
        keys.verify(&t, 1_000).is_ok(),
        "expiry is per call, not remembered"
    );
    // Flip one character of the sealed part.
    let mut bytes = t.clone().into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(keys.verify(&tampered, 1_000), Err(TokenError::BadSeal));
    for junk in [
        "",
        "wg1.",
        "wg1.!!!",
        "eyJhbGciOiJIUzI1NiJ9.e30.x",
        &"wg1.A".repeat(2000),
    ] {
        assert!(keys.verify(junk, 1_000).is_err(), "{junk}");
    }
}

/// Tokens issued before the claims became an enum still open after an upgrade: the sealed
/// layout is the flat one (`k`, `u`, `r`, `a`, `m`, `b`, `x`, and since logins are recorded
/// `i`, `s`, `o`), a token without a login opens with the empty one (issued at the epoch: any
/// revocation of its user reaches it), and a kind without what it needs is refused.
#[test]
fn the_sealed_layout_is_the_flat_one_earlier_versions_wrote() {
    let c = claims(2_000_000_000);
    let v = serde_json::to_value(&c).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["a", "b", "i", "k", "m", "r", "s", "u", "x"]);
    let mut before_logins = v.clone();
    for k in ["i", "s"] {
        before_logins.as_object_mut().unwrap().remove(k);
    }
    let old: Claims = serde_json::from_value(before_logins).unwrap();
    assert_eq!(old.login, Login::default());
    assert_eq!(old.grant, c.grant);
    assert_eq!(
        (&v["k"], &v["m"]),
        (&"f".into(), &"VIEW_MODE_READ_WRITE".into())
    );
    let back: Claims = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back, c);
    let mut container = v.clone();
    container["k"] = "c".into();
    let container: Claims = serde_json::from_value(container).unwrap();
    assert_eq!(container.kind(), Kind::Container);
    assert_eq!(container.resource(), c.resource());
    for broken in [
        serde_json::json!({"m": null}),
        serde_json::json!({"m": "VIEW_MODE_NONSENSE"}),
        serde_json::json!({"r": null}),
        serde_json::json!({"k": "e"}),
    ] {
        let mut t = v.clone();
        for (k, x) in broken.as_object().unwrap() {
            match x {
                serde_json::Value::Null => {
                    t.as_object_mut().unwrap().remove(k);
                }
                x => t[k] = x.clone(),
            }
        }
        assert!(serde_json::from_value::<Claims>(t).is_err(), "{broken}");
    }
}

#[test]
fn rotation_keeps_tokens_of_the_previous_key_valid() {
    let old = TokenKeys::new(&Secret::new("old"), None);
    let t = old.issue(&claims(2_000_000_000));
    let rotated = TokenKeys::new(&Secret::new("new"), Some(&Secret::new("old")));
    assert!(rotated.verify(&t, 1_000).is_ok());
    let fresh = rotated.issue(&claims(2_000_000_000));
    assert!(
        TokenKeys::new(&Secret::new("new"), None)
            .verify(&fresh, 1_000)
            .is_ok()
    );
    // Once the old key is dropped, its tokens stop working.
    assert_eq!(
        TokenKeys::new(&Secret::new("new"), None).verify(&t, 1_000),
        Err(TokenError::BadSeal)
    );
}
