//! Property tests for every parser that takes outside input: whatever arrives, they answer
//! (usually with an error) and never panic; and where a round trip exists, it holds.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use wopigate::ids::Resource;
use wopigate::ids::{path_id_of, path_matches, resource_of_path_id};
use wopigate::secret::Secret;
use wopigate::tokens::gateway::{Claims, FileGrant, Grant, TokenKeys};
use wopigate::wopi::ViewMode;

fn keys() -> TokenKeys {
    TokenKeys::new(&Secret::new("property test key material, 32+ chars"), None)
}

/// Arbitrary text leaning towards the characters parsers care about.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9+/=_.!$:%-]{0,200}",
        "(wg1\\.)?[A-Za-z0-9_-]{0,300}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}",
    ]
}

proptest! {
    // No regression files written into the tree (CI runs on clean clones).
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn file_ids_never_panic(s in texty()) {
        let _ = wopigate::ids::decode_file_id(&s);
        let _ = resource_of_path_id(&s);
    }

    #[test]
    fn path_ids_round_trip(
        storage in "[a-z0-9-]{1,40}",
        space in "[a-z0-9-]{0,40}",
        // Control characters are refused in ids by design (`decode_file_id`).
        opaque in "[^\\p{Cc}]{1,60}",
    ) {
        let r = Resource { storage_id: storage, space_id: space, opaque_id: opaque };
        let id = path_id_of(&r);
        prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert!(path_matches(&id, &r));
    }

    #[test]
    fn gateway_tokens_never_panic_and_only_ours_open(s in texty()) {
        prop_assert!(keys().verify(&s, 0).is_err());
    }

    #[test]
    fn gateway_tokens_round_trip_and_any_change_breaks_them(
        opaque in "[a-z0-9-]{1,40}",
        exp in 1_000u64..4_000_000_000,
        iat in 0u64..4_000_000_000,
        sid in proptest::option::of("[a-zA-Z0-9-]{1,40}"),
        at in any::<prop::sample::Index>(),
    ) {
        let claims = Claims {
            grant: Grant::File(FileGrant {
                resource: Resource { storage_id: "s".into(), space_id: String::new(), opaque_id: opaque },
                app: None,
                view_mode: ViewMode::ViewOnly,
            }),
            user: Default::default(),
            mobile: false,
            exp,
            login: wopigate::tokens::gateway::Login { iat, sid, sub: None },
        };
        let k = keys();
        let t = k.issue(&claims);
        prop_assert_eq!(k.verify(&t, 0).unwrap(), claims);
        // Change one character after the prefix: never accepted.
        let body = &t[4..];
        let i = at.index(body.len());
        let c = body.as_bytes()[i];
        let replacement = if c == b'A' { 'B' } else { 'A' };
        let mut changed = t.clone();
        changed.replace_range(4 + i..4 + i + 1, &replacement.to_string());
        prop_assert!(k.verify(&changed, 0).is_err());
    }

    #[test]
    fn wopi_headers_never_panic(
        path in "(/wopi/files/[^/]{0,20}(/contents)?|/wopibootstrapper|/wopi/containers/.{0,10}(/children)?|.{0,30})",
        over in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        old in any::<bool>(),
        post in any::<bool>(),
    ) {
        let m = if post { http::Method::POST } else { http::Method::GET };
        let mut headers = http::HeaderMap::new();
        if let Some(v) = over.as_deref().and_then(|o| http::HeaderValue::from_bytes(o).ok()) {
            headers.insert("x-wopi-override", v.clone());
            headers.insert("x-wopi-ecosystemoperation", v);
        }
        if old {
            headers.insert("x-wopi-oldlock", http::HeaderValue::from_static("l"));
        }
        let route = wopigate::wopi::route::classify(&m, &path, &headers);
        prop_assert!(!route.label().is_empty());
        if let Some(op) = route.operation() {
            prop_assert!(!op.as_str().is_empty());
        }
    }

    #[test]
    fn proof_headers_and_wopi_tokens_never_panic(ts in texty(), token in texty()) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let _ = wopigate::wopi::proof::check_timestamp(Some(&ts), now);
        let _ = wopigate::tokens::wopiserver::read(&token);
        let _ = wopigate::wopi::proof::expected_bytes(token.as_bytes(), &ts, 42);
    }

    #[test]
    fn discovery_xml_never_panics(xml in prop_oneof![
        any::<String>(),
        "<wopi-discovery><net-zone name=\"[a-z-]{0,12}\"><app name=\"[A-Za-z]{0,8}\"><action name=\"[a-z]{0,6}\" ext=\"[a-z]{0,5}\" urlsrc=\"[^\"]{0,40}\"/></app></net-zone>(<proof-key [^>]{0,60}/>)?</wopi-discovery>",
        "<[a-z-]{1,12}( [a-z]{1,5}=\"[^\"]{0,10}\")*>{0,3}",
    ]) {
        let _ = wopigate::discovery::xml::parse(&xml);
    }

    #[test]
    fn configuration_never_panics(text in prop_oneof![
        any::<String>(),
        "\\[(server|oidc|reva|wopiserver|tokens|mobile|admin)\\]\n([a-z_]{1,20} = (\"[^\"\n]{0,20}\"|[0-9]{1,6}|true|false)\n){0,5}",
    ]) {
        let dir = std::env::temp_dir();
        let _ = wopigate::config::Config::parse_in(&text, &dir, None);
    }

    #[test]
    fn check_file_info_rewriting_never_panics_and_never_leaks(body in texty(), token in "[A-Za-z0-9._-]{8,40}") {
        if let Some(out) = wopigate::tokens::swap::check_file_info(body.as_bytes(), &token, "wg1.X", None, wopigate::tokens::swap::Decided { can_not_write_relative: false, supports_rename: false, user_can_rename: false }) {
            prop_assert!(!String::from_utf8_lossy(&out).contains(&token));
        }
    }

    #[test]
    fn redaction_removes_tokens_wherever_they_appear(
        before in "[ -~]{0,40}",
        after in "[ &\"',;}]{1}[ -~]{0,40}",
        token in "eyJ[A-Za-z0-9_-]{4,40}\\.[A-Za-z0-9_-]{4,40}\\.[A-Za-z0-9_-]{8,40}",
    ) {
        let line = format!("{before} access_token={token}{after}");
        let out = wopigate::telemetry::redact(&line);
        prop_assert!(!out.contains(&token), "{}", out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// UTF-7 names round-trip, non-ASCII and astral characters included; the encoding is
    /// 7-bit and keeps the conservative direct set as it is.
    #[test]
    fn utf7_names_round_trip(name in prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 ._()-]{0,40}",
        "[äöüßéèçñ日本語😀+_#!&~ a-z]{0,40}",
    ]) {
        let encoded = wopigate::wopi::utf7::encode(&name);
        prop_assert!(encoded.is_ascii(), "{encoded}");
        prop_assert_eq!(wopigate::wopi::utf7::decode(&encoded).unwrap(), name.clone());
        if name.chars().all(|c| c.is_ascii_alphanumeric() || " '(),-./:?".contains(c)) {
            prop_assert_eq!(encoded, name);
        }
    }

    /// Whatever arrives as a UTF-7 header: an answer, never a panic; and the name rules give
    /// a legal name for any suggestion.
    #[test]
    fn utf7_decoding_and_name_rules_never_panic(raw in texty(), base in texty()) {
        let _ = wopigate::wopi::utf7::decode(&raw);
        let name = wopigate::wopi::names::suggested(&raw, &base);
        prop_assert!(wopigate::wopi::names::is_legal(&name), "{name:?}");
    }
}
