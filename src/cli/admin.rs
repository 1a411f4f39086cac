//! `wopigate admin …`: the admin API from a shell. It finds the API and its bearer in the
//! configuration file (`[admin] listen` and `token_file`; a `$CREDENTIALS_DIRECTORY/…` path is
//! read from `$CREDENTIALS_DIRECTORY`, else from the package's `/etc/wopigate/secrets`), or
//! from `--url` and `--token-file`, and prints tables (or the API's JSON with `--json`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::secret::Secret;

/// Where the package keeps the files systemd hands over as credentials.
const PACKAGE_SECRETS: &str = "/etc/wopigate/secrets";

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The gateway's configuration file: where its admin listener and bearer are.
    #[arg(long, short, default_value = "/etc/wopigate/wopigate.toml")]
    pub config: PathBuf,
    /// The admin listener's URL (instead of the configuration's `[admin] listen`).
    #[arg(long)]
    pub url: Option<String>,
    /// The file holding the admin bearer (instead of the configuration's `token_file`).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Action,
}

/// Filters of the session and lock lists.
#[derive(Args, Debug, Default)]
pub struct Filters {
    #[arg(long)]
    pub user: Option<String>,
    /// A file id, `storage$space!opaque`.
    #[arg(long)]
    pub file: Option<String>,
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long)]
    pub instance: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Open office sessions (every replica's, with a shared store).
    Sessions(Filters),
    /// WOPI locks the gateway saw granted.
    Locks(Filters),
    /// The revocations in force.
    Revocations,
    /// Revoke a user's, a session's or a file's tokens, or everything issued before a time.
    Revoke {
        /// The OIDC `sub`.
        #[arg(long, group = "scope")]
        user: Option<String>,
        /// The IdP session (`sid`).
        #[arg(long, group = "scope")]
        sid: Option<String>,
        /// A file id, `storage$space!opaque`.
        #[arg(long, group = "scope")]
        file: Option<String>,
        /// Unix seconds: every token issued up to then.
        #[arg(long, group = "scope")]
        before: Option<u64>,
    },
    /// Release the lock the gateway saw on a file (its holder's office app is gone).
    Release {
        #[arg(long)]
        file: String,
    },
}

pub fn main(args: AdminArgs) -> ExitCode {
    match run(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wopigate admin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &AdminArgs) -> Result<String, String> {
    let (url, token) = endpoint(args)?;
    let (method, path, body) = request(&args.action)?;
    crate::http_client::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (status, answer) = runtime.block_on(call(&url, &token, method, &path, body))?;
    if !(200..300).contains(&status) {
        let why = answer["message"].as_str().unwrap_or("no message");
        return Err(format!("{status}: {why}"));
    }
    Ok(if args.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        )
    } else {
        table(&args.action, &answer)
    })
}

fn request(action: &Action) -> Result<(reqwest::Method, String, Option<Value>), String> {
    use reqwest::Method;
    let list = |what: &str, f: &Filters| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                [
                    ("user", &f.user),
                    ("file", &f.file),
                    ("app", &f.app),
                    ("instance", &f.instance),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_deref()?))),
            )
            .finish();
        let sep = if q.is_empty() { "" } else { "?" };
        (Method::GET, format!("/admin/{what}{sep}{q}"), None)
    };
    Ok(match action {
        Action::Sessions(f) => list("sessions", f),
        Action::Locks(f) => list("locks", f),
        Action::Revocations => (Method::GET, "/admin/revocations".into(), None),
        Action::Revoke {
            user,
            sid,
            file,
            before,
        } => {
            let body = match (user, sid, file, before) {
                (Some(u), None, None, None) => json!({ "user": u }),
                (None, Some(s), None, None) => json!({ "sid": s }),
                (None, None, Some(f), None) => json!({ "file": f }),
                (None, None, None, Some(t)) => json!({ "before": t }),
                _ => return Err("name exactly one of --user, --sid, --file, --before".into()),
            };
            (Method::POST, "/admin/revocations".into(), Some(body))
        }
        Action::Release { file } => (
            Method::POST,
            "/admin/locks/release".into(),
            Some(json!({ "file": file })),
        ),
    })
}

async fn call(
    url: &str,
    token: &Secret,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = http
        .request(method, format!("{}{path}", url.trim_end_matches('/')))
        .bearer_auth(token.expose());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the admin API at {url}: {e}"))?;
    let status = resp.status().as_u16();
    let answer = resp.json().await.unwrap_or(Value::Null);
    Ok((status, answer))
}

/// The admin API's URL and bearer, from the flags or the configuration file.
fn endpoint(args: &AdminArgs) -> Result<(String, Secret), String> {
    let config = || -> Result<toml::Table, String> {
        let text = std::fs::read_to_string(&args.config)
            .map_err(|e| format!("{}: {e}", args.config.display()))?;
        text.parse::<toml::Table>()
            .map_err(|e| format!("{}: {e}", args.config.display()))
    };
    let admin_key = |key: &str| -> Result<Option<String>, String> {
        Ok(config()?
            .get("admin")
            .and_then(|a| a.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned))
    };
    let url = match &args.url {
        Some(u) => u.clone(),
        None => format!(
            "http://{}",
            admin_key("listen")?.unwrap_or_else(|| "127.0.0.1:9180".into())
        ),
    };
    let token_file = match &args.token_file {
        Some(f) => f.clone(),
        None => {
            let f = admin_key("token_file")?
                .ok_or("no [admin] token_file in the configuration: the admin API is off")?;
            credential_path(&args.config, &f)
        }
    };
    let token =
        Secret::from_file(&token_file).map_err(|e| format!("{}: {e}", token_file.display()))?;
    Ok((url, token))
}

/// A credential path of the configuration, outside systemd.
fn credential_path(config: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("$CREDENTIALS_DIRECTORY/") {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map_or_else(|| PathBuf::from(PACKAGE_SECRETS), PathBuf::from);
        return dir.join(rest);
    }
    config.parent().unwrap_or(Path::new(".")).join(path)
}

/// "12 s ago", "in 3 min": times relative to now.
fn relative(t: Option<u64>) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let now = crate::tokens::now();
    let (d, past) = if t <= now {
        (now - t, true)
    } else {
        (t - now, false)
    };
    let text = match d {
        0..120 => format!("{d} s"),
        120..7200 => format!("{} min", d / 60),
        _ => format!("{} h", d / 3600),
    };
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

fn table(action: &Action, answer: &Value) -> String {
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or("-").to_owned();
    let (head, rows): (&[&str], Vec<Vec<String>>) = match action {
        Action::Sessions(_) => (
            &[
                "USER",
                "FILE",
                "APP",
                "MODE",
                "INSTANCE",
                "REPLICA",
                "OPENED",
                "LAST SEEN",
            ],
            rows(&answer["sessions"], |x| {
                vec![
                    s(x, "user"),
                    s(x, "file"),
                    s(x, "app"),
                    s(x, "view_mode")
                        .trim_start_matches("VIEW_MODE_")
                        .to_owned(),
                    s(x, "instance"),
                    s(x, "replica"),
                    relative(x["opened"].as_u64()),
                    relative(x["last_seen"].as_u64()),
                ]
            }),
        ),
        Action::Locks(_) => (
            &[
                "FILE", "LOCK ID", "HOLDER", "APP", "INSTANCE", "SINCE", "EXPIRES",
            ],
            rows(&answer["locks"], |x| {
                vec![
                    s(x, "file"),
                    s(x, "lock_id"),
                    s(x, "holder"),
                    s(x, "app"),
                    s(x, "instance"),
                    relative(x["since"].as_u64()),
                    relative(x["expires"].as_u64()),
                ]
            }),
        ),
        Action::Revocations | Action::Revoke { .. } => {
            let list = match &answer["revocation"] {
                Value::Null => answer["revocations"].clone(),
                one => Value::Array(vec![one.clone()]),
            };
            (
                &["SCOPE", "VALUE", "BEFORE", "EXPIRES"],
                rows(&list, |x| {
                    vec![
                        s(x, "scope"),
                        s(x, "value"),
                        relative(x["before"].as_u64()),
                        relative(x["expires"].as_u64()),
                    ]
                }),
            )
        }
        Action::Release { .. } => {
            let l = &answer["released"];
            return format!(
                "released lock {} on {} (held by {})\n",
                s(l, "lock_id"),
                s(l, "file"),
                s(l, "holder")
            );
        }
    };
    render(head, &rows)
}

fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default()
}

/// Columns padded to their widest cell.
fn render(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(head.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_and_credentials_found_outside_systemd() {
        let t = render(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
        let p = credential_path(Path::new("/etc/wopigate/wopigate.toml"), "admin.token");
        assert_eq!(p, PathBuf::from("/etc/wopigate/admin.token"));
        assert_eq!(relative(None), "-");
        assert!(relative(Some(crate::tokens::now() - 30)).ends_with("s ago"));
        let revoke = Action::Revoke {
            user: Some("a".into()),
            sid: None,
            file: None,
            before: None,
        };
        let (m, p, b) = request(&revoke).unwrap();
        assert_eq!(
            (m, p.as_str()),
            (reqwest::Method::POST, "/admin/revocations")
        );
        assert_eq!(b, Some(json!({"user": "a"})));
        let f = Filters {
            user: Some("alice sub".into()),
            ..Default::default()
        };
        assert_eq!(
            request(&Action::Locks(f)).unwrap().1,
            "/admin/locks?user=alice+sub"
        );
    }
}
