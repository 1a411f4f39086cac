//! Command line: `wopigate run --config FILE`, `wopigate check --config FILE`, and
//! `wopigate admin …` (the admin API, [`admin`]).

pub mod admin;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "wopigate",
    version,
    about = "OIDC-aware WOPI gateway for CS3 deployments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway in the foreground.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate the configuration and print what would be served; exit 1 on any problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The running gateway's sessions, locks and revocations (its admin API).
    Admin(admin::AdminArgs),
}

/// The command line's definition, for the man page and shell completions of the package.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Admin(args) => admin::main(args),
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!("configuration {} is valid", config.display());
                for line in describe(&c) {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid configuration", config.display());
                for p in &e.problems {
                    eprintln!("  {p}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let c = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration", config.display());
                    for p in &e.problems {
                        eprintln!("  {p}");
                    }
                    return ExitCode::FAILURE;
                }
            };
            crate::telemetry::init(c.server.log_json);
            let code = match crate::app::run(&config, c) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("cannot start: {e}");
                    ExitCode::FAILURE
                }
            };
            crate::telemetry::flush();
            code
        }
    }
}

fn tls_summary(t: &crate::tls::ClientTls) -> String {
    match (&t.ca_pem, &t.identity_pem) {
        (None, None) => "platform CAs".into(),
        (Some(_), None) => "pinned CA bundle".into(),
        (None, Some(_)) => "platform CAs, client certificate".into(),
        (Some(_), Some(_)) => "pinned CA bundle, client certificate".into(),
    }
}

/// What `check` prints: every listener and upstream, and what an operator should know.
pub fn describe(c: &Config) -> Vec<String> {
    let mut out = listeners(c);
    out.extend(upstreams(c));
    out
}

/// The listeners, their certificate and ports.
fn listeners(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    match &c.server.tls {
        Some(t) => {
            let expiry = crate::tls::load_certified_key(&t.cert_file, &t.key_file)
                .ok()
                .and_then(|k| crate::tls::not_after(&k));
            out.push(format!(
                "public listener: https://{} (certificate {}, key matches{})",
                c.server.listen,
                t.cert_file.display(),
                expiry.map_or(String::new(), |t| format!(", not after {t} Unix time"))
            ));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            if let Some(t) = expiry {
                if t < now {
                    out.push("  WARNING: the certificate has expired".into());
                } else if t < now + 14 * 86_400 {
                    out.push("  WARNING: the certificate expires within 14 days".into());
                }
            }
        }
        None => out.push(format!("public listener: http://{}", c.server.listen)),
    }
    out.push(format!("public URL:      {}", c.server.public_url));
    if let Some(i) = &c.internal {
        out.push(format!(
            "internal listener: http://{} (IOP, allowed from {:?})",
            i.listen, i.allow
        ));
    }
    match &c.admin {
        Some(a) => out.push(format!(
            "admin listener:  http://{} (/metrics, /healthz, /readyz){}",
            a.listen,
            if a.listen.ip().is_loopback() {
                ""
            } else {
                " -- NOT loopback (allow_public)"
            }
        )),
        None => out.push("admin listener:  disabled".into()),
    }
    let mut ports = vec![c.server.listen];
    ports.extend(c.internal.as_ref().map(|i| i.listen));
    ports.extend(c.admin.as_ref().map(|a| a.listen));
    if ports.iter().any(|a| a.port() < 1024) {
        out.push(
            "  NOTE: a port below 1024 needs CAP_NET_BIND_SERVICE (systemd/privileged-port.conf)"
                .into(),
        );
    }
    out
}

/// The upstreams, the token handling and the office apps.
fn upstreams(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for x in &c.wopiserver.instances {
        out.push(format!(
            "wopiserver:      {} = {} ({})",
            x.name,
            x.url,
            if x.url.scheme() == "https" {
                tls_summary(&c.wopiserver.tls)
            } else {
                "plain HTTP".into()
            }
        ));
    }
    out.push(format!(
        "REVA gateway:    {} ({})",
        c.reva.gateway,
        if c.reva.gateway.scheme() == "https" {
            tls_summary(&c.reva.tls)
        } else {
            "plain gRPC".into()
        }
    ));
    out.push(format!(
        "IdP:             {} ({})",
        c.oidc.issuer,
        tls_summary(&c.oidc.tls)
    ));
    out.push(format!("token exchange:  {:?}", c.exchange.mode));
    out.push(format!(
        "access tokens:   {}",
        match (c.tokens.wrap, &c.tokens.key, &c.tokens.previous_key) {
            (true, _, None) => "gateway-issued (wrap_tokens)".to_owned(),
            (true, _, Some(_)) =>
                "gateway-issued (wrap_tokens), previous key still accepted".to_owned(),
            (false, Some(_), _) =>
                "the wopiserver's (wrap_tokens = false); gateway tokens for mobile only".to_owned(),
            (false, None, _) => "the wopiserver's (wrap_tokens = false)".to_owned(),
        }
    ));
    out.push(match &c.mobile {
        Some(_) => format!(
            "Office mobile:   {}/wopibootstrapper (ecosystem, containers)",
            c.server.public_url
        ),
        None => "Office mobile:   off".to_owned(),
    });
    for app in &c.office {
        out.push(format!(
            "office app:      {} ({})",
            app.name, app.discovery_url
        ));
    }
    out.push(format!(
        "shutdown:        in-flight requests get {} s after SIGTERM",
        c.server.grace_period.as_secs()
    ));
    out.extend(control(c));
    out
}

/// The operator's control point: admin API, shared store, logout, session upkeep.
fn control(c: &Config) -> Vec<String> {
    let admin_api = c
        .admin
        .as_ref()
        .and_then(|a| a.token.as_ref().map(|_| a.listen));
    vec![
        match admin_api {
            Some(l) => {
                format!("admin API:       http://{l}/admin/ (bearer from [admin] token_file)")
            }
            None => "admin API:       off (no [admin] token_file)".into(),
        },
        match &c.store {
            Some(s) => format!(
                "shared store:    {}{} (revocations, logouts, sessions, locks)",
                s.url,
                if s.password.is_some() {
                    ", password from a file"
                } else {
                    ""
                }
            ),
            None => "shared store:    none (this process alone)".into(),
        },
        if c.oidc.logout_clients.is_empty() {
            "back-channel logout: off ([oidc] logout_clients is empty)".into()
        } else {
            format!(
                "back-channel logout: {}/oidc/backchannel-logout for {:?}",
                c.server.public_url, c.oidc.logout_clients
            )
        },
        format!(
            "open sessions:   access re-checked every {} s; a token unused {} s is let go",
            c.tokens.recheck.as_secs(),
            c.tokens.idle.as_secs()
        ),
    ]
}
