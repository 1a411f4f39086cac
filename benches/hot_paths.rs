//! The per-request paths in isolation: OIDC validation (cached and uncached), REVA token
//! minting, WOPI proofs, gateway-issued WOPI tokens, and what every proxied WOPI call goes
//! through (routing, operation naming, request ids, the CheckFileInfo rewrite, log redaction).
//! `cargo bench --bench hot_paths` (one group: `cargo bench --bench hot_paths -- routing`)

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use wopigate::auth::{JwksSource, KeySet, OidcValidator, ValidatorSettings};
use wopigate::tokens::reva::{self, USER_TYPE_PRIMARY};
use wopigate::tokens::reva::{UserClaim, UserIdClaim};
use wopigate_testkit::test_idp::{TestIdp, now};

/// What the gateway decides in a web holder's CheckFileInfo (the default configuration).
const DECIDED: wopigate::tokens::swap::Decided = wopigate::tokens::swap::Decided {
    can_not_write_relative: false,
    supports_rename: false,
    user_can_rename: false,
};

fn validator(idp: &TestIdp, cache_entries: u64) -> OidcValidator {
    let keys = KeySet::from_jwks_json(idp.jwks().to_string().as_bytes()).unwrap();
    OidcValidator::new(
        ValidatorSettings {
            issuer: "https://idp.bench".into(),
            audience: "wopigate".into(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            leeway: Duration::from_secs(60),
            max_token_bytes: 16 * 1024,
            cache_entries,
        },
        Arc::new(JwksSource::fixed(keys)),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idp = TestIdp::new("wopigate");
    let claims = json!({"iss": "https://idp.bench", "aud": "wopigate", "sub": "alice-sub", "exp": now() + 3600});
    let rs = idp.sign("rsa-1", &claims);
    let es = idp.sign("ec-1", &claims);

    let cached = validator(&idp, 10_000);
    rt.block_on(cached.validate(&rs)).unwrap();
    c.bench_function("oidc_validate_cached_rs256", |b| {
        b.iter(|| rt.block_on(cached.validate(&rs)).unwrap())
    });

    // A zero-capacity cache keeps nothing, so every call verifies the signature.
    let uncached = validator(&idp, 0);
    c.bench_function("oidc_validate_uncached_rs256", |b| {
        b.iter(|| rt.block_on(uncached.validate(&rs)).unwrap())
    });
    c.bench_function("oidc_validate_uncached_es256", |b| {
        b.iter(|| rt.block_on(uncached.validate(&es)).unwrap())
    });

    let key = EncodingKey::from_secret(b"bench-reva-secret-0123456789");
    let user = UserClaim {
        id: UserIdClaim {
            idp: "https://idp.bench".into(),
            opaque_id: "alice-sub".into(),
            user_type: USER_TYPE_PRIMARY,
        },
        username: "alice".into(),
        mail: "alice@example.org".into(),
        display_name: "Alice Example".into(),
        ..Default::default()
    };
    c.bench_function("reva_token_mint", |b| {
        b.iter(|| reva::mint(&key, &user, Duration::from_secs(3600), now()).unwrap())
    });
}

/// Proof verification on the WOPI hot path: a current-key hit, and the old-key fallback (which
/// first fails both current-key checks).
fn proof(c: &mut Criterion) {
    use std::time::SystemTime;
    use wopigate::wopi::proof::{self, ProofKeys, ticks_of};
    use wopigate_testkit::proof_signer::validator_signers;
    let xml = wopigate::discovery::xml::parse(wopigate_testkit::fake_office::MICROSOFT_DISCOVERY)
        .unwrap();
    let keys = ProofKeys::from_discovery(&xml.proof_key.unwrap()).unwrap();
    let (current, old) = validator_signers();
    let url = "https://wopi.example.org/wopi/files/storage-1!ZmlsZS1kb2N4?access_token=abc";
    let ts = ticks_of(SystemTime::now());
    let signed = proof::expected_bytes(b"abc", url, ts);
    let by_current = current.sign("abc", url, ts);
    let by_old = old.sign("abc", url, ts);
    assert_eq!(
        proof::verify(&keys, &signed, Some(&by_current), None),
        proof::Verdict::Current
    );
    assert_eq!(
        proof::verify(&keys, &signed, Some(&by_old), None),
        proof::Verdict::OldKey
    );
    c.bench_function("proof_verify_current_key", |b| {
        b.iter(|| {
            proof::verify(
                &keys,
                &proof::expected_bytes(b"abc", url, ts),
                Some(&by_current),
                Some(&by_old),
            )
        })
    });
    c.bench_function("proof_verify_old_key_fallback", |b| {
        b.iter(|| {
            proof::verify(
                &keys,
                &proof::expected_bytes(b"abc", url, ts),
                Some(&by_old),
                None,
            )
        })
    });
}

/// Gateway-issued WOPI tokens: issue (seal) and verify (remembered, and open + check on first
/// use), the per-request cost of wrapped tokens.
fn gateway_tokens(c: &mut Criterion) {
    use wopigate::ids::Resource;
    use wopigate::secret::Secret;
    use wopigate::tokens::gateway::{Claims, FileGrant, Grant, TokenKeys};
    let keys = TokenKeys::new(
        &Secret::new("bench current key material"),
        Some(&Secret::new("bench previous key material")),
    );
    let claims = Claims {
        grant: Grant::File(FileGrant {
            resource: Resource {
                storage_id: "1284d238-aa92-42ce-bdc4-0b0000009157".into(),
                space_id: "c3cf23bb-8f47-4719-a150-1d25a1f6fb56".into(),
                opaque_id: "7a7a5f9e-4a4f-4b3a-9a0e-2d1f3c4b5a69".into(),
            },
            app: Some("Collabora".into()),
            view_mode: wopigate::wopi::ViewMode::ReadWrite,
        }),
        user: UserClaim {
            id: UserIdClaim {
                idp: "https://idp.example.org/realms/cloud".into(),
                opaque_id: "f7fbf8c8-139b-4376-b307-cf0a8c2d0d9c".into(),
                user_type: USER_TYPE_PRIMARY,
            },
            username: "alice".into(),
            mail: "alice@example.org".into(),
            display_name: "Alice Example".into(),
            ..Default::default()
        },
        mobile: true,
        exp: now() + 36_000,
        login: wopigate::tokens::gateway::Login {
            iat: now(),
            sid: Some("5f3c2a1e-9b8d-4c7a-a6e5-0d1f2b3c4d5e".into()),
            sub: None,
        },
    };
    let token = keys.issue(&claims);
    eprintln!(
        "gateway token: {} characters URL-encoded",
        wopigate::tokens::gateway::url_encoded_len(&token)
    );
    c.bench_function("gateway_token_issue", |b| b.iter(|| keys.issue(&claims)));
    // An office app repeats its token on every call: after the first, verify finds it
    // remembered. The first use opens it (base64, AEAD, JSON) and remembers it.
    c.bench_function("gateway_token_verify_remembered", |b| {
        b.iter(|| keys.verify(&token, now()).unwrap())
    });
    c.bench_function("gateway_token_verify_first_use", |b| {
        b.iter_batched(
            || keys.issue(&claims),
            |fresh| keys.verify(&fresh, now()).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

/// What a proxied WOPI call costs the gateway besides the network: classify the route, name the
/// operation, make a request id, rewrite CheckFileInfo for a gateway-token holder, redact the
/// access-log line.
fn routing(c: &mut Criterion) {
    use wopigate::proxy::headers;
    use wopigate::wopi::route;
    let path = "/wopi/files/MTI4NGQyMzgkYzNjZjIzYmIhN2E3YTVmOWU/contents";
    let none = http::HeaderMap::new();
    c.bench_function("routing_classify", |b| {
        b.iter(|| route::classify(std::hint::black_box(&http::Method::POST), path, &none))
    });
    let mut refresh = http::HeaderMap::new();
    refresh.insert(
        "x-wopi-override",
        http::HeaderValue::from_static("REFRESH_LOCK"),
    );
    c.bench_function("routing_classify_with_operation", |b| {
        b.iter(|| {
            route::classify(
                &http::Method::POST,
                std::hint::black_box("/wopi/files/abc"),
                &refresh,
            )
        })
    });
    c.bench_function("routing_request_id", |b| b.iter(headers::new_request_id));

    // A CheckFileInfo answer of the wopiserver's shape with its token in three URLs.
    let upstream = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.{}.sig",
        "x".repeat(600)
    );
    let gateway = format!("wg1.{}", "g".repeat(400));
    let mut body = serde_json::Map::new();
    for (k, v) in [
        ("BaseFileName", "report.docx"),
        ("OwnerId", "owner-of-the-home"),
        ("UserId", "alice@https://idp.example.org"),
        ("UserFriendlyName", "Alice Example"),
        ("Version", "v1700000000"),
        ("BreadcrumbBrandName", "CERNBox"),
    ] {
        body.insert(k.into(), json!(v));
    }
    for k in ["HostEditUrl", "HostViewUrl", "DownloadUrl"] {
        body.insert(
            k.into(),
            json!(format!(
                "https://office.example.org/edit?WOPISrc=x&access_token={upstream}"
            )),
        );
    }
    body.insert("Size".into(), json!(12345));
    body.insert("SupportsLocks".into(), json!(true));
    let body = serde_json::to_vec(&body).unwrap();
    c.bench_function("routing_check_file_info_rewrite", |b| {
        b.iter(|| {
            wopigate::tokens::swap::check_file_info(&body, &upstream, &gateway, None, DECIDED)
                .unwrap()
        })
    });

    // The pass-through answer (the wopiserver's own token stays): the gateway's decisions said.
    c.bench_function("routing_check_file_info_pass_through", |b| {
        b.iter(|| wopigate::tokens::swap::pass_through_check_file_info(&body, DECIDED).unwrap())
    });

    let line = r#"{"timestamp":"2026-11-23T18:29:21.902859Z","level":"INFO","fields":{"message":"request","listener":"public","request_id":"4f1c2a9b7d3e5f60000000000000002a","method":"GET","path":"/wopi/files/storage-1!ZmlsZS1kb2N4","route":"wopi_files","operation":"CheckFileInfo","app":"Collabora","status":200,"duration_ms":0.41,"upstream_ms":0.12,"bytes_in":0,"bytes_out":803},"target":"wopigate::access"}"#;
    c.bench_function("routing_redact_access_line", |b| {
        b.iter(|| wopigate::telemetry::redact(std::hint::black_box(line)).len())
    });
}

/// The revocation check every proxied call makes (issue #26: ≤ 2 µs with 10 000 entries): a
/// token that no entry matches (the common case) and one that an entry revokes.
fn revocations(c: &mut Criterion) {
    use wopigate::control::revocation::{Entry, Presented, Revocations, Scope};
    let set = Revocations::default();
    let now = now();
    for i in 0..10_000u32 {
        let scope = match i % 3 {
            0 => Scope::User(format!("user-{i}")),
            1 => Scope::Sid(format!("5f3c2a1e-9b8d-4c7a-a6e5-{i:012}")),
            _ => Scope::File(format!(
                "1284d238-aa92-42ce-bdc4-0b0000009157$space!file-{i}"
            )),
        };
        set.insert(
            Entry {
                scope,
                before: now,
                expires: now + 86_400,
            },
            now,
        );
    }
    let clean = Presented {
        users: ["f7fbf8c8-139b-4376-b307-cf0a8c2d0d9c"; 2],
        sid: Some("5f3c2a1e-9b8d-4c7a-a6e5-0d1f2b3c4d5e"),
        file: Some((
            "1284d238-aa92-42ce-bdc4-0b0000009157",
            "7a7a5f9e-4a4f-4b3a-9a0e-2d1f3c4b5a69",
        )),
        iat: now - 60,
    };
    let revoked = Presented {
        file: Some(("1284d238-aa92-42ce-bdc4-0b0000009157", "file-9998")),
        ..clean
    };
    assert!(!set.revoked(&clean) && set.revoked(&revoked));
    c.bench_function("revocation check, 10 000 entries, not revoked", |b| {
        b.iter(|| set.revoked(std::hint::black_box(&clean)))
    });
    c.bench_function("revocation check, 10 000 entries, revoked by file", |b| {
        b.iter(|| set.revoked(std::hint::black_box(&revoked)))
    });
}

criterion_group!(benches, bench, proof, gateway_tokens, routing, revocations);
criterion_main!(benches);
