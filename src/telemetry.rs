//! Logging: `tracing` with text or JSON lines on stderr; `RUST_LOG` overrides the default level.
//! pingora logs through the `log` crate, bridged into the same subscriber.
//!
//! Every formatted line passes through [`redact`] before it is written, so a token or secret
//! cannot reach the log even if some code (ours, pingora's, a dependency's) prints one: the
//! configured secrets, `access_token` values, bearer credentials, `TokenHeader`, WOPI proofs and
//! anything shaped like a JWT are replaced.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, RwLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::Config;

const REDACTED: &str = "[redacted]";

/// Secret values from the configuration; replaced wherever they appear.
static SECRETS: RwLock<Vec<Arc<str>>> = RwLock::new(Vec::new());

/// Keys whose value is a credential, however it is written (`key=v`, `key: v`, `"key":"v"`).
const SENSITIVE_KEYS: &[&str] = &[
    "access_token",
    "authorization",
    "tokenheader",
    "x-access-token",
    "x-wopi-proof",
    "x-wopi-proofold",
    "client_secret",
    "bearer",
];

/// Remembers the secrets of `config` for redaction (called at start and on every reload).
pub fn set_secrets(config: &Config) {
    let mut list: Vec<Arc<str>> = vec![Arc::from(config.wopiserver.iop_secret.expose())];
    for s in [
        &config.reva.jwt_secret,
        &config.tokens.key,
        &config.tokens.previous_key,
    ]
    .into_iter()
    .flatten()
    {
        list.push(Arc::from(s.expose()));
    }
    if let Ok(mut g) = SECRETS.write() {
        // Keep the old ones too: lines about the previous generation may still be written.
        for s in list {
            if !s.is_empty() && !g.contains(&s) {
                g.push(s);
            }
        }
    }
}

fn is_value_end(b: u8) -> bool {
    matches!(
        b,
        b'"' | b'\'' | b'&' | b',' | b';' | b'}' | b'>' | b'<' | b' ' | b'\t' | b'\n' | b'\r'
    )
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Replaces credentials in one log line.
pub fn redact(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    if let Ok(secrets) = SECRETS.read() {
        for s in secrets.iter() {
            if out.contains(&**s) {
                out = Cow::Owned(out.replace(&**s, REDACTED));
            }
        }
    }
    let bytes = out.as_bytes();
    let lower = out.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for key in SENSITIVE_KEYS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let mut i = from + pos + key.len();
            from = i;
            let starts_word = from - key.len() == 0 || !is_b64url(bytes[from - key.len() - 1]);
            let separated =
                i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b'=' | b':' | b' ' | b'\\');
            if !starts_word || !separated {
                continue;
            }
            // Separators between a key and its value: quotes, `=`, `:`, spaces, a scheme word.
            while i < bytes.len() && matches!(bytes[i], b'"' | b'\'' | b'=' | b':' | b' ' | b'\\') {
                i += 1;
            }
            if lower[i..].starts_with("bearer") {
                i += "bearer".len();
                while i < bytes.len() && matches!(bytes[i], b' ' | b':') {
                    i += 1;
                }
            }
            let start = i;
            while i < bytes.len() && !is_value_end(bytes[i]) && bytes[i] != b'\\' {
                i += 1;
            }
            if i > start && !lower[start..i].starts_with("[redacted]") {
                cuts.push((start, i));
            }
        }
    }
    // Gateway-issued tokens (`wg1.` + base64url).
    let mut from = 0;
    while let Some(pos) = out[from..].find(crate::gwtoken::PREFIX) {
        let start = from + pos;
        let mut i = start + crate::gwtoken::PREFIX.len();
        while i < bytes.len() && is_b64url(bytes[i]) {
            i += 1;
        }
        if i - start > 20 {
            cuts.push((start, i));
        }
        from = i;
    }
    // Anything shaped like a JWS (`eyJ….….…`): OIDC, REVA and wopiserver tokens.
    let mut from = 0;
    while let Some(pos) = out[from..].find("eyJ") {
        let start = from + pos;
        let (mut i, mut dots) = (start, 0);
        while i < bytes.len() && (is_b64url(bytes[i]) || bytes[i] == b'.') {
            dots += usize::from(bytes[i] == b'.');
            i += 1;
        }
        if dots >= 2 {
            cuts.push((start, i));
        }
        from = i.max(start + 3);
    }
    if cuts.is_empty() {
        return out;
    }
    cuts.sort_unstable();
    let mut s = String::with_capacity(out.len());
    let mut at = 0;
    for (a, b) in cuts {
        if b <= at {
            continue;
        }
        s.push_str(&out[at..a.max(at)]);
        s.push_str(REDACTED);
        at = b;
    }
    s.push_str(&out[at..]);
    Cow::Owned(s)
}

/// stderr, with every write redacted. The fmt layer writes each event with one `write_all`.
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr()
            .lock()
            .write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_are_replaced_in_every_shape() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
        let cases = [
            format!("GET /wopi/files/x?access_token={jwt}&access_token_ttl=5"),
            format!("\"authorization\":\"Bearer {jwt}\""),
            "Authorization: Bearer opaque-credential-123".to_owned(),
            "tokenheader=opaque-reva-token-456".to_owned(),
            "x-wopi-proof: c2lnbmF0dXJlLWJ5dGVz==".to_owned(),
            format!("something {jwt} else"),
            "bare wg1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA token".to_owned(),
        ];
        for line in &cases {
            let r = redact(line);
            for secret in [
                jwt,
                "opaque-credential-123",
                "opaque-reva-token-456",
                "c2lnbmF0dXJlLWJ5dGVz",
            ] {
                assert!(!r.contains(secret), "{line} -> {r}");
            }
            assert!(r.contains("[redacted]"), "{r}");
        }
        // Ordinary lines are left alone.
        let plain = "request_id=abc route=wopi_file status=200 duration_ms=1.2";
        assert_eq!(redact(plain), plain);
        assert!(redact("access_token_ttl=5").contains("5"));
    }
}
