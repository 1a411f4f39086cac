//! `wopigate check`: a valid configuration passes; problems name the key, line and reason.

use std::process::Command;

use wopigate::testkit::stack::{Stack, StackOptions};

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
            stack.gateway_port
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
