//! `wopigate check`: a valid configuration passes; problems name the key, line and reason.

use std::process::Command;

use wopigate_testkit::stack::{Stack, StackOptions};

use crate::bin;

fn check(config: &str, dir: &std::path::Path) -> (bool, String, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_accepts_good_and_rejects_bad_configs() {
    let stack = Stack::start(StackOptions::default()).await;
    let good = stack.config_toml();
    let (ok, out, err) = check(&good, stack.dir());
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "public listener: http://127.0.0.1:{}",
            stack.listen_port
        )),
        "{out}"
    );

    // Unknown key: named, with its line.
    let bad = good.replace("[exchange]\n", "[exchange]\nmoed = \"mint\"\n");
    let line = bad.lines().position(|l| l.starts_with("moed")).unwrap() + 1;
    let (ok, _, err) = check(&bad, stack.dir());
    assert!(!ok);
    assert!(
        err.contains("moed") && err.contains(&format!("line {line}")),
        "{err}"
    );

    // Missing secret file.
    let bad = good.replace("iop.secret", "does-not-exist.secret");
    let (ok, _, err) = check(&bad, stack.dir());
    assert!(!ok);
    assert!(
        err.contains("wopiserver.iop_secret_file") && err.contains("cannot read secret file"),
        "{err}"
    );

    // The public default REVA secret.
    std::fs::write(stack.dir().join("default.secret"), "Pive-Fumkiu4\n").unwrap();
    let bad = good.replace("reva.secret", "default.secret");
    let (ok, _, err) = check(&bad, stack.dir());
    assert!(!ok);
    assert!(
        err.contains("reva.jwt_secret_file") && err.contains("public default"),
        "{err}"
    );

    // Empty secret, and mint mode without a REVA secret.
    std::fs::write(stack.dir().join("empty.secret"), "\n").unwrap();
    let (ok, _, err) = check(&good.replace("iop.secret", "empty.secret"), stack.dir());
    assert!(!ok && err.contains("is empty"), "{err}");
    let no_secret: String = good
        .lines()
        .filter(|l| !l.starts_with("jwt_secret_file"))
        .collect::<Vec<_>>()
        .join("\n");
    let (ok, _, err) = check(&no_secret, stack.dir());
    assert!(!ok && err.contains("required when exchange.mode"), "{err}");

    // `run` refuses the same configuration and exits non-zero.
    let path = stack.dir().join("run.toml");
    std::fs::write(&path, good.replace("reva.secret", "default.secret")).unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_covers_tls_listeners_and_the_admin_listener() {
    let stack = Stack::start(StackOptions::default()).await;
    let good = stack.config_toml();
    let fixture = |n: &str| format!("{}/tests/fixtures/tls/{n}", env!("CARGO_MANIFEST_DIR"));
    let with_tls = |cert: &str, key: &str| {
        good.replacen(
            "[server]\n",
            &format!(
                "[server]\ntls = {{ cert_file = {:?}, key_file = {:?} }}\n",
                fixture(cert),
                fixture(key)
            ),
            1,
        )
    };
    let (ok, out, err) = check(&with_tls("server.pem", "server.key"), stack.dir());
    assert!(ok, "{err}");
    assert!(
        out.contains("public listener: https://") && out.contains("key matches"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "admin listener:  http://127.0.0.1:{}",
            stack.admin_port
        )),
        "{out}"
    );

    // A key that belongs to another certificate, and a missing certificate.
    let (ok, _, err) = check(&with_tls("server.pem", "client.key"), stack.dir());
    assert!(
        !ok && err.contains("server.tls.cert_file") && err.contains("does not match"),
        "{err}"
    );
    let (ok, _, err) = check(&with_tls("nope.pem", "server.key"), stack.dir());
    assert!(!ok && err.contains("cannot read"), "{err}");

    // The admin listener on a public address, or on the public listener's address.
    let public_admin = good.replace(
        &format!(
            "listen = \"127.0.0.1:{}\"\nprobe_timeout_ms",
            stack.admin_port
        ),
        "listen = \"0.0.0.0:9180\"\nprobe_timeout_ms",
    );
    let (ok, _, err) = check(&public_admin, stack.dir());
    assert!(
        !ok && err.contains("admin.listen") && err.contains("allow_public"),
        "{err}"
    );
    let (ok, out, _) = check(
        &public_admin.replace("probe_timeout_ms", "allow_public = true\nprobe_timeout_ms"),
        stack.dir(),
    );
    assert!(ok && out.contains("NOT loopback"), "{out}");
    let clash = good.replace(
        &format!(
            "listen = \"127.0.0.1:{}\"\nprobe_timeout_ms",
            stack.admin_port
        ),
        &format!(
            "listen = \"127.0.0.1:{}\"\nprobe_timeout_ms",
            stack.listen_port
        ),
    );
    let (ok, _, err) = check(&clash, stack.dir());
    assert!(
        !ok && err.contains("must differ from server.listen"),
        "{err}"
    );

    // Upstream client certificates are checked the same way.
    let mtls = format!(
        "{good}\n[wopiserver.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        fixture("client.pem"),
        fixture("server2.key")
    );
    let (ok, _, err) = check(&mtls, stack.dir());
    assert!(
        !ok && err.contains("wopiserver.tls.cert_file") && err.contains("does not match"),
        "{err}"
    );
}

/// The README's lines for trying the example configuration by hand work as written: they make
/// the credentials, and `wopigate check` accepts `conf/wopigate.toml` with them.
#[test]
fn the_readme_lines_for_the_example_configuration_work() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .map(|b| b.split("```").next().unwrap_or_default())
        .find(|b| b.contains("creds=$(mktemp -d)"))
        .expect("the README's credentials block");
    if Command::new("openssl").arg("version").output().is_err() {
        wopigate_testkit::skip_without("openssl", "the README credentials lines");
        return;
    }
    let script = block.replace("./target/release/wopigate", &bin().display().to_string());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("public listener: https://"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_the_control_sections() {
    let stack = Stack::start(StackOptions::default()).await;
    let dir = stack.dir();
    std::fs::write(
        dir.join("admin.token"),
        "a-long-enough-admin-bearer-0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(dir.join("short.token"), "short\n").unwrap();
    std::fs::write(dir.join("store.password"), "store-password\n").unwrap();
    let with = |admin: &str, tokens: &str, oidc: &str, store: &str| {
        let mut c = stack
            .config_toml()
            .replace("[admin]\n", &format!("[admin]\n{admin}"))
            .replace("[tokens]\n", &format!("[tokens]\n{tokens}"))
            .replace("[oidc]\n", &format!("[oidc]\n{oidc}"));
        c.push_str(store);
        c
    };
    let good = with(
        "token_file = \"admin.token\"\n",
        "recheck_seconds = 60\nidle_seconds = 900\n",
        "logout_clients = [\"web\"]\n",
        "\n[store]\nurl = \"rediss://valkey.example:6380/2\"\npassword_file = \"store.password\"\n",
    );
    let (ok, out, err) = check(&good, dir);
    assert!(ok, "{err}");
    for line in [
        "admin API:       http://127.0.0.1:",
        "shared store:    rediss://valkey.example:6380/2, password from a file",
        "back-channel logout: ",
        "access re-checked every 60 s; a token unused 900 s is let go",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    assert!(!out.contains("store-password"), "{out}");
    let (ok, out, _) = check(&stack.config_toml(), dir);
    assert!(ok && out.contains("admin API:       off") && out.contains("shared store:    none"));
    for (bad, key) in [
        (
            with("token_file = \"short.token\"\n", "", "", ""),
            "admin.token_file",
        ),
        (
            with("token_file = \"missing.token\"\n", "", "", ""),
            "admin.token_file",
        ),
        (
            with("", "recheck_seconds = 0\n", "", ""),
            "tokens.recheck_seconds",
        ),
        (
            with("", "idle_seconds = 10\n", "", ""),
            "tokens.idle_seconds",
        ),
        (
            with("", "", "", "\n[store]\nurl = \"http://redis:6379\"\n"),
            "store.url",
        ),
        (
            with(
                "",
                "",
                "",
                "\n[store]\nurl = \"redis://:secret@redis:6379\"\n",
            ),
            "store.url",
        ),
        (
            with("", "", "", "\n[store]\nurl = \"redis://r\"\nport = 1\n"),
            "port",
        ),
    ] {
        let (ok, _, err) = check(&bad, dir);
        assert!(!ok && err.contains(key), "{key}: {err}");
        assert!(
            !err.contains("secret@"),
            "the password is not echoed: {err}"
        );
    }
}
