use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::*;

fn write(dir: &Path, name: &str, value: &str) {
    std::fs::write(dir.join(name), value).unwrap();
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"

[oidc]
issuer = "https://idp.example"
audience = "wopigate"

[reva]
gateway = "http://127.0.0.1:9142"
jwt_secret_file = "reva.secret"

[wopiserver]
url = "http://127.0.0.1:8880"
iop_secret_file = "iop.secret"

[[office]]
name = "Collabora"
discovery_url = "https://collabora.example/hosting/discovery"

[tokens]
key_file = "token.key"
"#;

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "reva.secret", "a-long-random-reva-secret\n");
    write(d.path(), "iop.secret", "a-long-random-iop-secret\n");
    write(
        d.path(),
        "token.key",
        "a-long-random-token-key-of-48-characters-at-least\n",
    );
    d
}

#[test]
fn good_config_with_defaults() {
    let d = dir();
    let c = Config::parse(GOOD, d.path()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        c.oidc.discovery_url.as_str(),
        "https://idp.example/.well-known/openid-configuration"
    );
    assert_eq!(
        c.oidc.algorithms,
        vec![Algorithm::RS256, Algorithm::ES256, Algorithm::PS256]
    );
    assert_eq!(c.oidc.leeway, Duration::from_secs(60));
    assert_eq!(c.exchange.mode, ExchangeMode::Mint);
    assert_eq!(c.exchange.claims.opaque_id, "sub");
    assert_eq!(
        c.reva.jwt_secret.as_ref().unwrap().expose(),
        "a-long-random-reva-secret"
    );
    assert_eq!(c.server.grace_period, Duration::from_secs(5));
    assert_eq!(c.office[0].name, "Collabora");
}

#[test]
fn every_problem_is_reported_with_key_and_line() {
    let d = dir();
    let text = GOOD
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"localhost\"")
        .replace("issuer = \"https://idp.example\"", "issuer = \"not a url\"");
    let e = Config::parse(&text, d.path()).unwrap_err();
    let keys: Vec<_> = e
        .problems
        .iter()
        .map(|p| (p.key.as_str(), p.line))
        .collect();
    assert!(keys.contains(&("server.listen", Some(3))), "{keys:?}");
    assert!(keys.contains(&("oidc.issuer", Some(6))), "{keys:?}");
}

#[test]
fn unknown_keys_and_bad_algorithms_are_errors() {
    let d = dir();
    let e = Config::parse(
        &GOOD.replace("[oidc]\n", "[oidc]\nissuerr = \"x\"\n"),
        d.path(),
    )
    .unwrap_err();
    assert_eq!(e.problems[0].key, "issuerr");
    assert_eq!(e.problems[0].line, Some(6));
    let e = Config::parse(
        &GOOD.replace(
            "audience = \"wopigate\"",
            "audience = \"wopigate\"\nalgorithms = [\"HS256\"]",
        ),
        d.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("oidc.algorithms"), "{e}");
}

#[test]
fn secrets_are_checked() {
    let d = dir();
    write(d.path(), "reva.secret", "Pive-Fumkiu4");
    assert!(
        Config::parse(GOOD, d.path())
            .unwrap_err()
            .to_string()
            .contains("public default")
    );
    write(d.path(), "reva.secret", "a-long-random-iop-secret");
    assert!(
        Config::parse(GOOD, d.path())
            .unwrap_err()
            .to_string()
            .contains("must differ")
    );
    write(d.path(), "reva.secret", "");
    assert!(
        Config::parse(GOOD, d.path())
            .unwrap_err()
            .to_string()
            .contains("is empty")
    );
    // authenticate mode needs no REVA secret
    let text = GOOD.replace("jwt_secret_file = \"reva.secret\"\n", "")
        + "\n[exchange]\nmode = \"authenticate\"\n";
    let c = Config::parse(&text, d.path()).unwrap();
    assert!(c.reva.jwt_secret.is_none());
    assert_eq!(c.exchange.authenticate_type, "bearer");
}

#[test]
fn office_options_are_validated() {
    let d = dir();
    write(d.path(), "not-a-ca.pem", "hello");
    let text = GOOD.replace(
        "discovery_url = \"https://collabora.example/hosting/discovery\"",
        "discovery_url = \"https://collabora.example/hosting/discovery\"\nca_file = \"not-a-ca.pem\"\nproof_keys = \"log-only\"\nnet_zone = \"external-https\"",
    ) + "\n[open.app_preference]\n\".docx\" = [\"Nobody\"]\n";
    let e = Config::parse(&text, d.path()).unwrap_err().to_string();
    assert!(
        e.contains("office[0].ca_file") && e.contains("no PEM certificate"),
        "{e}"
    );
    assert!(e.contains("\"Nobody\" is not a configured"), "{e}");
    let ok = GOOD.replace(
        "discovery_url = \"https://collabora.example/hosting/discovery\"",
        "discovery_url = \"https://collabora.example/hosting/discovery\"\nproof_keys = \"off\"\nformat = \"cbox-endpoints\"\nui_language = \"de-DE\"",
    ) + "\n[internal]\nlisten = \"127.0.0.1:8081\"\nallow = [\"10.0.0.0/8\"]\n";
    let c = Config::parse(&ok, d.path()).unwrap();
    assert_eq!(c.office[0].proof_keys, ProofMode::Off);
    assert_eq!(c.office[0].format, DiscoveryFormat::CboxEndpoints);
    assert_eq!(c.internal.unwrap().allow[0].to_string(), "10.0.0.0/8");
    let clash = GOOD.to_owned() + "\n[internal]\nlisten = \"127.0.0.1:8080\"\n";
    assert!(
        Config::parse(&clash, d.path())
            .unwrap_err()
            .to_string()
            .contains("must differ from server.listen")
    );
}

#[test]
fn the_documented_example_is_valid() {
    // As systemd would run it: the secrets and the certificate are credentials.
    let d = dir();
    let creds = dir();
    std::fs::rename(
        creds.path().join("reva.secret"),
        creds.path().join("reva-jwt-secret"),
    )
    .unwrap();
    std::fs::rename(
        creds.path().join("iop.secret"),
        creds.path().join("iop-secret"),
    )
    .unwrap();
    std::fs::rename(
        creds.path().join("token.key"),
        creds.path().join("token-key"),
    )
    .unwrap();
    std::fs::copy(fixture("server.pem"), creds.path().join("tls.crt")).unwrap();
    std::fs::copy(fixture("server.key"), creds.path().join("tls.key")).unwrap();
    let text = include_str!("../../conf/wopigate.toml");
    let c = Config::parse_in(text, d.path(), Some(creds.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.office.len(), 2);
    assert_eq!(c.server.public_url, "https://wopi.example.org");
    assert!(c.internal.is_some());
    assert!(c.server.tls.is_some());
    assert_eq!(c.admin.unwrap().listen.to_string(), "127.0.0.1:9180");
    assert_eq!(
        c.reva.jwt_secret.unwrap().expose(),
        "a-long-random-reva-secret"
    );
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn admin_listener_defaults_to_loopback_and_refuses_public_or_clashing_addresses() {
    let d = dir();
    let c = Config::parse(GOOD, d.path()).unwrap();
    let admin = c.admin.unwrap();
    assert!(admin.listen.ip().is_loopback());
    let public = format!("{GOOD}\n[admin]\nlisten = \"0.0.0.0:9180\"\n");
    let e = Config::parse(&public, d.path()).unwrap_err().to_string();
    assert!(
        e.contains("admin.listen") && e.contains("allow_public"),
        "{e}"
    );
    let allowed = format!("{GOOD}\n[admin]\nlisten = \"0.0.0.0:9180\"\nallow_public = true\n");
    assert!(Config::parse(&allowed, d.path()).is_ok());
    let clash = format!("{GOOD}\n[admin]\nlisten = \"127.0.0.1:8080\"\n");
    let e = Config::parse(&clash, d.path()).unwrap_err().to_string();
    assert!(e.contains("must differ from server.listen"), "{e}");
    let off = format!("{GOOD}\n[admin]\nenabled = false\n");
    assert!(Config::parse(&off, d.path()).unwrap().admin.is_none());
}

#[test]
fn tls_files_must_load_and_match() {
    let d = dir();
    let with_tls = |cert: &str, key: &str| {
        GOOD.replace(
            "listen = \"127.0.0.1:8080\"",
            &format!(
                "listen = \"127.0.0.1:8080\"\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}",
                fixture(cert),
                fixture(key)
            ),
        )
    };
    let c = Config::parse(&with_tls("server.pem", "server.key"), d.path()).unwrap();
    assert!(c.server.tls.is_some());
    assert_eq!(c.server.public_url, "https://127.0.0.1:8080");
    let e = Config::parse(&with_tls("server.pem", "server2.key"), d.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("server.tls.cert_file") && e.contains("does not match"),
        "{e}"
    );
    let e = Config::parse(&with_tls("missing.pem", "server.key"), d.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");

    let upstream = format!(
        "{GOOD}\n[wopiserver.tls]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        fixture("ca2.pem"),
        fixture("client.pem"),
        fixture("client.key")
    )
    .replace("[wopiserver]\n", "[wopiserver]\n");
    // `[wopiserver.tls]` after `[[office]]` is still the wopiserver's table.
    let c = Config::parse(&upstream, d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.wopiserver.tls.ca_pem.is_some());
    assert!(c.wopiserver.tls.identity_pem.is_some());
    let half = format!(
        "{GOOD}\n[reva.tls]\ncert_file = {:?}\n",
        fixture("client.pem")
    );
    let e = Config::parse(&half, d.path()).unwrap_err().to_string();
    assert!(e.contains("cert_file and key_file go together"), "{e}");
}

#[test]
fn credentials_directory_paths_resolve_from_the_environment() {
    let d = dir();
    let creds = tempfile::tempdir().unwrap();
    write(creds.path(), "iop-secret", "iop-from-credentials\n");
    let text = GOOD.replace(
        "iop_secret_file = \"iop.secret\"",
        "iop_secret_file = \"$CREDENTIALS_DIRECTORY/iop-secret\"",
    );
    let c = Config::parse_in(&text, d.path(), Some(creds.path())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.wopiserver.iop_secret.expose(), "iop-from-credentials");
    // Outside systemd the placeholder stays and the problem names the path.
    let e = Config::parse_in(&text, d.path(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("$CREDENTIALS_DIRECTORY/iop-secret"), "{e}");
    assert!(
        e.contains("$CREDENTIALS_DIRECTORY is not set") && e.contains("LoadCredential="),
        "the unset variable is named, with what to do: {e}"
    );
    assert!(
        !e.contains("cannot read"),
        "not read as a folder named after the variable: {e}"
    );
}

#[test]
fn token_and_mobile_settings() {
    let d = dir();
    let c = Config::parse(GOOD, d.path()).unwrap();
    assert!(c.tokens.wrap, "on by default in mint mode");
    assert_eq!(c.tokens.ttl, Duration::from_secs(36_000));
    assert!(c.mobile.is_none());
    // Without a key, wrapping cannot work.
    let no_key = GOOD.replace("[tokens]\nkey_file = \"token.key\"\n", "");
    let e = Config::parse(&no_key, d.path()).unwrap_err().to_string();
    assert!(e.contains("tokens.key_file"), "{e}");
    let off = format!("{no_key}\n[tokens]\nwrap_tokens = false\n");
    assert!(!Config::parse(&off, d.path()).unwrap().tokens.wrap);
    // A short key is refused.
    write(d.path(), "short.key", "short\n");
    let e = Config::parse(&GOOD.replace("token.key", "short.key"), d.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least 32"), "{e}");
    // Authenticate mode cannot wrap; mobile needs mint.
    let auth = GOOD.replace("[reva]", "[exchange]\nmode = \"authenticate\"\n\n[reva]");
    assert!(!Config::parse(&auth, d.path()).unwrap().tokens.wrap);
    let e = Config::parse(
        &auth.replace(
            "key_file = \"token.key\"",
            "key_file = \"token.key\"\nwrap_tokens = true",
        ),
        d.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tokens.wrap_tokens"), "{e}");
    let e = Config::parse(&format!("{auth}\n[mobile]\nenabled = true\n"), d.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mobile.enabled"), "{e}");
    let m = Config::parse(
        &format!("{GOOD}\n[mobile]\nenabled = true\nprovider_id = \"TP_X\"\nurl_schemes = '{{\"iOS\": [\"x\"]}}'\n"),
        d.path(),
    )
    .unwrap()
    .mobile
    .unwrap();
    assert_eq!(m.provider_id.as_deref(), Some("TP_X"));
    assert!(m.license_check_for_edit && !m.is_edu_user);
    let e = Config::parse(
        &format!("{GOOD}\n[mobile]\nenabled = true\nurl_schemes = \"nope\"\n"),
        d.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mobile.url_schemes"), "{e}");
    let e = Config::parse(
        &format!("{GOOD}\n[mobile]\nenabled = true\napp = \"Nope\"\n"),
        d.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mobile.app"), "{e}");
}

#[test]
fn client_limits_have_defaults_and_bounds() {
    let d = dir();
    let c = Config::parse(GOOD, d.path()).unwrap();
    let l = c.server.limits;
    assert_eq!(l.header_timeout, Duration::from_secs(10));
    assert_eq!(l.keepalive_timeout, Duration::from_secs(60));
    assert_eq!((l.max_header_bytes, l.max_header_count), (65536, 100));
    assert_eq!((l.max_uri_bytes, l.min_body_rate), (16384, 1024));
    let bad = GOOD.replace(
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:8080\"\nheader_timeout_ms = 0\nkeepalive_timeout_seconds = 0\nmax_header_bytes = 2000000\nmax_header_count = 1000\nmax_uri_bytes = 100",
    );
    let e = Config::parse(&bad, d.path()).unwrap_err();
    let keys: Vec<_> = e.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "server.header_timeout_ms",
        "server.keepalive_timeout_seconds",
        "server.max_header_bytes",
        "server.max_header_count",
        "server.max_uri_bytes",
    ] {
        assert!(keys.contains(&key), "{key} not reported: {keys:?}");
    }
}

#[test]
fn trusted_proxies_are_networks_and_allow_forwarded_needs_them() {
    let d = dir();
    let text = GOOD.replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]\n",
    );
    let c = Config::parse(&text, d.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert!(
        Config::parse(GOOD, d.path())
            .unwrap()
            .server
            .trusted_proxies
            .is_empty()
    );
    let bad = GOOD.replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"10.0.0.300/8\"]\n",
    );
    let e = Config::parse(&bad, d.path()).unwrap_err().to_string();
    assert!(
        e.contains("server.trusted_proxies") && e.contains("not a CIDR"),
        "{e}"
    );
    let internal = "\n[internal]\nlisten = \"127.0.0.1:18081\"\nallow_forwarded = true\n";
    let e = Config::parse(&format!("{GOOD}{internal}"), d.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("internal.allow_forwarded"), "{e}");
    assert!(Config::parse(&format!("{text}{internal}"), d.path()).is_ok());
}

#[test]
fn wopiserver_instances_and_their_limits_are_checked() {
    let d = dir();
    // One `url` is one instance named `default`, with the documented defaults.
    let c = Config::parse(GOOD, d.path()).unwrap();
    let w = &c.wopiserver;
    assert_eq!(w.instances.len(), 1);
    assert_eq!(w.instances[0].name, "default");
    assert_eq!(
        (w.capacity.max_in_flight, w.capacity.queue),
        (64, 64),
        "per-instance cap"
    );
    assert_eq!(w.health_check.interval, Duration::from_secs(5));
    assert_eq!(c.rate_limits.open_per_user, 120);
    assert_eq!(c.rate_limits.wopi_per_client, 0, "office traffic unlimited");

    let list = |instances: &str, extra: &str| {
        GOOD.replace("url = \"http://127.0.0.1:8880\"\n", extra) + instances
    };
    let two = "\n[[wopiserver.instances]]\nname = \"a\"\nurl = \"http://10.0.0.1:8880\"\n\n[[wopiserver.instances]]\nname = \"b\"\nurl = \"http://10.0.0.2:8880\"\n";
    let c = Config::parse(&list(two, ""), d.path()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = c
        .wopiserver
        .instances
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);

    let problems =
        |text: &str| -> String { Config::parse(text, d.path()).unwrap_err().to_string() };
    let e = problems(&list("", ""));
    assert!(
        e.contains("needs url or at least one [[wopiserver.instances]]"),
        "{e}"
    );
    let e = problems(&list(&two.replace("\"b\"", "\"a\""), ""));
    assert!(
        e.contains("wopiserver.instances[1].name") && e.contains("duplicate"),
        "{e}"
    );
    let e = problems(&list(&two.replace("10.0.0.2", "10.0.0.1"), ""));
    assert!(
        e.contains("wopiserver.instances[1].url") && e.contains("twice"),
        "{e}"
    );
    let e = problems(&list(&two.replace("\"b\"", "\"b c\""), ""));
    assert!(e.contains("metric label"), "{e}");
    let e = problems(&list(two, "url = \"http://127.0.0.1:8880\"\n"));
    assert!(e.contains("not both"), "{e}");
    let bad_thresholds = format!(
        "{GOOD}\n[wopiserver.health_check]\ninterval_ms = 1000\ntimeout_ms = 1000\nhealthy_after = 0\nunhealthy_after = 1000\n"
    );
    let e = problems(&bad_thresholds);
    for key in [
        "wopiserver.health_check.timeout_ms",
        "wopiserver.health_check.healthy_after",
        "wopiserver.health_check.unhealthy_after",
    ] {
        assert!(e.contains(key), "{key} not reported: {e}");
    }
    let e = problems(&format!("{GOOD}\n[rate_limits]\nwindow_seconds = 0\n"));
    assert!(e.contains("rate_limits.window_seconds"), "{e}");
}
