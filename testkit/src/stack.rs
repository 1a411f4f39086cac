//! A whole deployment of doubles (IdP, REVA, wopiserver, office apps) plus the configuration
//! that points a gateway at them. Used by the integration tests and the demo.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

use super::fake_office::{COLLABORA_DISCOVERY, FakeOffice, MICROSOFT_DISCOVERY};
use super::fake_reva::{Authenticator, FakeReva};
use super::fake_wopiserver::FakeWopiserver;
use super::tap::ResponseTap;
use super::test_idp::TestIdp;
use super::tree::{Content, Tree, read_only_perms};
use super::{Running, free_port, localhost};
use wopigate::config::ExchangeMode;
use wopigate::pb::cs3::storage::provider::v1beta1::ResourcePermissions;
use wopigate::tokens::reva::{UserClaim, UserIdClaim};

pub const AUDIENCE: &str = "wopigate";
pub const STORAGE: &str = "storage-1";
/// Size of the synthetic `big.odt`.
pub const BIG_FILE_BYTES: u64 = 256 * 1024 * 1024;

pub struct StackOptions {
    pub mode: ExchangeMode,
    /// Office apps as (appname, discovery XML), in order of preference.
    pub offices: Vec<(&'static str, &'static str)>,
    /// Gateway listen port (0 = pick a free one).
    pub gateway_port: u16,
    /// Appended to the generated configuration (extra sections).
    pub extra_config: String,
    /// Hand out gateway tokens (`tokens.wrap_tokens`; mint mode only).
    pub wrap_tokens: bool,
    /// Another OpenID provider as (issuer, audience) instead of the stack's test IdP.
    pub oidc: Option<(String, String)>,
    /// Extra `key = value` lines for the `[server]` section.
    pub server_extra: String,
    /// Put a [`ResponseTap`] in front of the gateway: clients use its port, and every response
    /// is scanned for secrets and tokens. Off for tests that need the gateway's own socket
    /// (closing listeners, TLS on the public listener).
    pub tap: bool,
    /// wopiserver instances (siblings sharing storage and locks); more than one is configured
    /// as `[[wopiserver.instances]]` named `wopi-0`, `wopi-1`, …
    pub wopiservers: usize,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            mode: ExchangeMode::Mint,
            offices: vec![
                ("Collabora", COLLABORA_DISCOVERY),
                ("Microsoft Office Online", MICROSOFT_DISCOVERY),
            ],
            gateway_port: 0,
            extra_config: String::new(),
            wrap_tokens: true,
            oidc: None,
            server_extra: String::new(),
            tap: true,
            wopiservers: 1,
        }
    }
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub tree: Tree,
    pub idp: TestIdp,
    pub reva: FakeReva,
    pub wopiserver: FakeWopiserver,
    pub offices: Vec<(String, FakeOffice)>,
    pub idp_server: Running,
    pub reva_server: Running,
    pub wopi_server: Running,
    /// The instances after the first (`wopiserver`, `wopi_server`), in configuration order.
    pub more_wopiservers: Vec<(FakeWopiserver, Running)>,
    pub office_servers: Vec<Running>,
    pub gateway_port: u16,
    /// The port the gateway itself listens on (`gateway_port` unless tapped).
    pub listen_port: u16,
    /// Reads every response on its way to the tests (see [`StackOptions::tap`]).
    pub tap: Option<ResponseTap>,
    /// The gateway's admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin_port: u16,
    pub mode: ExchangeMode,
    pub extra_config: String,
    pub wrap_tokens: bool,
    /// (issuer, audience) of another OpenID provider the gateway trusts instead of `idp`.
    pub oidc: Option<(String, String)>,
    pub server_extra: String,
    /// The gateway's token key (`tokens.key_file`).
    pub token_key: String,
    pub reva_secret: String,
    pub iop_secret: String,
    pub wopi_secret: String,
}

fn random_secret(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The sample files every test can rely on.
pub fn seed(tree: &Tree) {
    tree.add_folder(STORAGE, "home", None, "home");
    tree.add_file(
        STORAGE,
        "file-docx",
        Some("home"),
        "report.docx",
        Content::Bytes(b"hello, world".to_vec()),
    );
    tree.add_file(
        STORAGE,
        "file-odt",
        Some("home"),
        "notes.odt",
        Content::Bytes(b"odt bytes".to_vec()),
    );
    tree.add_file(
        STORAGE,
        "file-new",
        Some("home"),
        "empty.docx",
        Content::Bytes(Vec::new()),
    );
    tree.add_file(
        STORAGE,
        "file-ro",
        Some("home"),
        "readonly.docx",
        Content::Bytes(b"read only".to_vec()),
    );
    tree.set_perms(STORAGE, "file-ro", read_only_perms());
    tree.add_file(
        STORAGE,
        "file-none",
        Some("home"),
        "secret.docx",
        Content::Bytes(b"secret".to_vec()),
    );
    tree.set_perms(STORAGE, "file-none", ResourcePermissions::default());
    // Another user's file: REVA refuses to even Stat it for anyone else.
    tree.add_file(
        STORAGE,
        "file-bob",
        None,
        "bobs.docx",
        Content::Bytes(b"bob's".to_vec()),
    );
    tree.set_owner(STORAGE, "file-bob", "bob-sub");
    tree.add_folder(STORAGE, "folder-docs", Some("home"), "Documents");
    // Two levels to browse from Office mobile: Documents/{plan.xlsx, minutes.docx, notes.txt,
    // Archive/{2023.docx, old.pptx}}.
    for (id, name) in [
        ("docs-plan", "plan.xlsx"),
        ("docs-minutes", "minutes.docx"),
        ("docs-notes", "notes.txt"),
    ] {
        tree.add_file(
            STORAGE,
            id,
            Some("folder-docs"),
            name,
            Content::Bytes(name.as_bytes().to_vec()),
        );
    }
    tree.add_folder(STORAGE, "folder-archive", Some("folder-docs"), "Archive");
    for (id, name) in [("archive-2023", "2023.docx"), ("archive-old", "old.pptx")] {
        tree.add_file(
            STORAGE,
            id,
            Some("folder-archive"),
            name,
            Content::Bytes(name.as_bytes().to_vec()),
        );
    }
    tree.add_file(
        STORAGE,
        "file-xyz",
        Some("home"),
        "data.xyz",
        Content::Bytes(b"xyz".to_vec()),
    );
    tree.add_file(
        STORAGE,
        "file-big",
        Some("home"),
        "big.odt",
        Content::Synthetic(BIG_FILE_BYTES),
    );
}

/// REVA's `bearer` auth provider: verifies the OIDC token against the IdP's keys.
fn oidc_authenticator(idp: TestIdp) -> Authenticator {
    Arc::new(move |kind: &str, secret: &str| {
        if kind != "bearer" {
            return None;
        }
        let set: JwkSet = serde_json::from_value(idp.jwks()).ok()?;
        let header = jsonwebtoken::decode_header(secret).ok()?;
        let jwk = set.find(header.kid.as_deref()?)?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[idp.audience()]);
        v.set_issuer(&[idp.issuer()]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            secret,
            &DecodingKey::from_jwk(jwk).ok()?,
            &v,
        )
        .ok()?
        .claims;
        let s = |k: &str| claims[k].as_str().unwrap_or_default().to_owned();
        Some(UserClaim {
            id: UserIdClaim {
                idp: s("iss"),
                opaque_id: s("sub"),
                user_type: 1,
            },
            username: s("preferred_username"),
            mail: s("email"),
            display_name: s("name"),
            ..Default::default()
        })
    })
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen_port = if opts.gateway_port == 0 {
            free_port()
        } else {
            opts.gateway_port
        };
        let tap = if opts.tap {
            Some(ResponseTap::start(listen_port).await.expect("response tap"))
        } else {
            None
        };
        let gateway_port = tap.as_ref().map_or(listen_port, |t| t.port);
        let tree = Tree::default();
        seed(&tree);
        let idp = TestIdp::new(AUDIENCE);
        let idp_server = idp.serve(localhost(0)).await.expect("IdP");
        let reva_secret = random_secret("reva");
        let iop_secret = random_secret("iop");
        let wopi_secret = random_secret("wopi");
        super::hygiene::register("REVA JWT secret", &reva_secret);
        super::hygiene::register("IOP secret", &iop_secret);
        super::hygiene::register("wopiserver secret", &wopi_secret);
        let token_key = random_secret("token-key-with-enough-entropy");
        super::hygiene::register("gateway token key", &token_key);
        let reva = FakeReva::new(
            &reva_secret,
            tree.clone(),
            Some(oidc_authenticator(idp.clone())),
        );
        let reva_server = reva.serve(localhost(0)).await.expect("REVA");
        let reva_url = url::Url::parse(&reva_server.url()).expect("REVA URL");
        let wopiserver = FakeWopiserver::new(
            &iop_secret,
            &wopi_secret,
            &format!("http://127.0.0.1:{gateway_port}"),
            tree.clone(),
            &reva_url,
        );
        let wopi_server = wopiserver.serve(localhost(0)).await.expect("wopiserver");
        let mut more_wopiservers = Vec::new();
        for _ in 1..opts.wopiservers {
            let sibling = wopiserver.sibling(&reva_url);
            let running = sibling.serve(localhost(0)).await.expect("wopiserver");
            more_wopiservers.push((sibling, running));
        }
        let mut offices = Vec::new();
        let mut office_servers = Vec::new();
        for (name, xml) in opts.offices {
            let office = FakeOffice::new(xml);
            office_servers.push(office.serve(localhost(0)).await.expect("office"));
            offices.push((name.to_owned(), office));
        }
        let oidc = opts.oidc;
        Stack {
            dir,
            tree,
            idp,
            reva,
            wopiserver,
            offices,
            idp_server,
            reva_server,
            wopi_server,
            more_wopiservers,
            office_servers,
            gateway_port,
            listen_port,
            tap,
            admin_port: free_port(),
            mode: opts.mode,
            extra_config: opts.extra_config,
            wrap_tokens: opts.wrap_tokens && opts.mode == ExchangeMode::Mint,
            oidc,
            server_extra: opts.server_extra,
            token_key,
            reva_secret,
            iop_secret,
            wopi_secret,
        }
    }

    /// A REVA token for alice signed with this stack's REVA secret, issued at `issued_at`.
    pub fn reva_token_for_alice(&self, ttl: std::time::Duration, issued_at: u64) -> String {
        let user = UserClaim {
            id: UserIdClaim {
                idp: self.idp.issuer(),
                opaque_id: "alice-sub".into(),
                user_type: 1,
            },
            username: "alice".into(),
            ..Default::default()
        };
        let key = jsonwebtoken::EncodingKey::from_secret(self.reva_secret.as_bytes());
        wopigate::tokens::reva::mint(&key, &user, ttl, issued_at)
            .expect("mint")
            .token
            .expose()
            .to_owned()
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    fn write_secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{value}\n")).expect("write secret");
        p
    }

    /// Configuration for a gateway in front of this stack; secrets are written to files.
    pub fn config_toml(&self) -> String {
        let iop = self.write_secret("iop.secret", &self.iop_secret);
        let reva_line = match self.mode {
            ExchangeMode::Mint => format!(
                "jwt_secret_file = {:?}\n",
                self.write_secret("reva.secret", &self.reva_secret)
            ),
            ExchangeMode::Authenticate => String::new(),
        };
        let mode = match self.mode {
            ExchangeMode::Mint => "mint",
            ExchangeMode::Authenticate => "authenticate",
        };
        let mut s = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
threads = 2
grace_period_seconds = 0
graceful_shutdown_timeout_seconds = 1
{public_url}{server_extra}
[oidc]
issuer = "{issuer}"
audience = "{audience}"
jwks_min_refetch_seconds = 1

[exchange]
mode = "{mode}"
token_ttl_seconds = 1800

[reva]
gateway = "{reva}"
{reva_line}timeout_ms = 2000

[wopiserver]
{wopi}iop_secret_file = {iop:?}
timeout_ms = 3000

[open]
folder_url_base = "https://cloud.example/files"

[admin]
listen = "127.0.0.1:{admin_port}"
probe_timeout_ms = 1000

[tokens]
key_file = {token_key:?}
wrap_tokens = {wrap}
"#,
            token_key = self.write_secret("token.key", &self.token_key),
            wrap = self.wrap_tokens,
            admin_port = self.admin_port,
            port = self.listen_port,
            public_url = if self.tap.is_some() {
                format!("public_url = \"http://127.0.0.1:{}\"\n", self.gateway_port)
            } else {
                String::new()
            },
            server_extra = self.server_extra,
            issuer = self
                .oidc
                .as_ref()
                .map_or_else(|| self.idp.issuer(), |o| o.0.clone()),
            audience = self.oidc.as_ref().map_or(AUDIENCE, |o| o.1.as_str()),
            reva = self.reva_server.url(),
            wopi = if self.more_wopiservers.is_empty() {
                format!("url = \"{}\"\n", self.wopi_server.url())
            } else {
                String::new()
            },
        );
        if !self.more_wopiservers.is_empty() {
            let urls = std::iter::once(self.wopi_server.url())
                .chain(self.more_wopiservers.iter().map(|(_, r)| r.url()));
            for (i, url) in urls.enumerate() {
                s.push_str(&format!(
                    "\n[[wopiserver.instances]]\nname = \"wopi-{i}\"\nurl = \"{url}\"\n"
                ));
            }
        }
        for ((name, _), server) in self.offices.iter().zip(&self.office_servers) {
            s.push_str(&format!(
                "\n[[office]]\nname = \"{name}\"\ndiscovery_url = \"{}/hosting/discovery\"\ntimeout_ms = 2000\nrefetch_min_seconds = 1\n",
                server.url()
            ));
        }
        s.push('\n');
        s.push_str(&self.extra_config);
        s
    }

    /// Writes the configuration and returns its path.
    pub fn write_config(&self) -> PathBuf {
        let p = self.dir.path().join("wopigate.toml");
        std::fs::write(&p, self.config_toml()).expect("write config");
        p
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Stack {
    /// Every response this stack's gateway sent the tests was read: one with a secret or a
    /// token the gateway must not hand out fails the test.
    fn drop(&mut self) {
        if let Some(tap) = &self.tap {
            let leaks = tap.take_leaks();
            if !leaks.is_empty() && !std::thread::panicking() {
                panic!("a gateway response contained: {leaks:?}");
            }
        }
    }
}
