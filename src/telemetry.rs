//! Logging: `tracing` with text or JSON lines on stderr; `RUST_LOG` overrides the default level.
//! pingora logs through the `log` crate, bridged into the same subscriber.
//!
//! Every formatted line passes through [`redact`] before it is written, so a token or secret
//! cannot reach the log even if some code (ours, pingora's, a dependency's) prints one: the
//! configured secrets, `access_token` values, bearer credentials, `TokenHeader`, WOPI proofs and
//! anything shaped like a JWT are replaced.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use aho_corasick::AhoCorasick;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::Config;

mod access_line;
pub use access_line::{Field, access_json, access_json_enabled};

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
        &config.admin.as_ref().and_then(|a| a.token.clone()),
        &config.store.as_ref().and_then(|s| s.password.clone()),
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
    let screen = build_screen();
    if let Ok(mut g) = SCREEN.write() {
        *g = screen;
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

/// One pass over a line for everything [`redact`] could replace (secrets, sensitive keys, token
/// prefixes), case-insensitively so it finds a superset: most lines match nothing and are
/// passed on untouched after this single scan.
static SCREEN: RwLock<Option<Arc<AhoCorasick>>> = RwLock::new(None);

fn screen() -> Option<Arc<AhoCorasick>> {
    if let Some(s) = SCREEN.read().ok().and_then(|g| g.clone()) {
        return Some(s);
    }
    let built = build_screen();
    if let (Some(s), Ok(mut g)) = (&built, SCREEN.write())
        && g.is_none()
    {
        *g = Some(s.clone());
    }
    built
}

fn build_screen() -> Option<Arc<AhoCorasick>> {
    let secrets = SECRETS.read().ok()?;
    let patterns = SENSITIVE_KEYS
        .iter()
        .copied()
        .chain([crate::tokens::gateway::PREFIX, "eyJ"])
        .chain(secrets.iter().map(|s| &**s));
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(patterns)
        .ok()
        .map(Arc::new)
}

/// Replaces credentials in one log line.
pub fn redact(line: &str) -> Cow<'_, str> {
    // Without a screen (it could not be built) every line takes the full path below.
    if screen().is_some_and(|s| !s.is_match(line)) {
        return Cow::Borrowed(line);
    }
    let mut out = Cow::Borrowed(line);
    if let Ok(secrets) = SECRETS.read() {
        for s in secrets.iter() {
            if out.contains(&**s) {
                out = Cow::Owned(out.replace(&**s, REDACTED));
            }
        }
    }
    let mut cuts = valued_keys(&out);
    cuts.extend(token_shapes(&out));
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

/// Where the values of sensitive keys (`access_token=`, `"authorization": "Bearer …"`) are.
fn valued_keys(out: &str) -> Vec<(usize, usize)> {
    let bytes = out.as_bytes();
    let lower = out.to_ascii_lowercase();
    let mut cuts = Vec::new();
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
    cuts
}

/// Where token-shaped text is: gateway tokens and anything shaped like a JWS.
fn token_shapes(out: &str) -> Vec<(usize, usize)> {
    let bytes = out.as_bytes();
    let mut cuts = Vec::new();
    // Gateway-issued tokens (`wg1.` + base64url).
    let mut from = 0;
    while let Some(pos) = out[from..].find(crate::tokens::gateway::PREFIX) {
        let start = from + pos;
        let mut i = start + crate::tokens::gateway::PREFIX.len();
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
    cuts
}

/// Lines at INFO and below (the access log) collect here and reach stderr in batches: one
/// write per `FLUSH_BYTES` or `FLUSH_EVERY` instead of one per request. Warnings and errors are
/// written at once, after what is pending.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
const FLUSH_BYTES: usize = 32 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Writes out the batched lines (also called before the process exits).
pub fn flush() {
    let batch = match PENDING.lock() {
        Ok(mut pending) => std::mem::take(&mut *pending),
        Err(_) => return,
    };
    write_out(batch);
}

/// Writes a batch taken out of `PENDING`; the lock is not held meanwhile, so a request logging
/// its line never waits for the disk. The buffer goes back for reuse.
fn write_out(mut batch: Vec<u8>) {
    if batch.is_empty() {
        return;
    }
    let _ = std::io::stderr().lock().write_all(&batch);
    batch.clear();
    if let Ok(mut pending) = PENDING.lock()
        && pending.capacity() == 0
    {
        *pending = batch;
    }
}

/// stderr, with every write redacted. The fmt layer writes each event with one `write_all`.
pub struct RedactingStderr {
    batched: bool,
}

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = redact(&text);
        let Ok(mut pending) = PENDING.lock() else {
            std::io::stderr().lock().write_all(line.as_bytes())?;
            return Ok(buf.len());
        };
        if self.batched {
            drop(pending);
            push_batched(&line);
        } else {
            // What is pending goes first, then this line.
            let batch = (!pending.is_empty()).then(|| std::mem::take(&mut *pending));
            drop(pending);
            if let Some(batch) = batch {
                write_out(batch);
            }
            std::io::stderr().lock().write_all(line.as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr { batched: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingStderr {
            batched: *meta.level() >= tracing::Level::INFO,
        }
    }
}

/// Writes batched lines out every `FLUSH_EVERY`, and before a panic message.
fn start_flusher() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("wopigate-log".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
    });
}

/// An INFO line (already redacted) into the batch.
fn push_batched(line: &str) {
    let Ok(mut pending) = PENDING.lock() else {
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    };
    pending.extend_from_slice(line.as_bytes());
    if pending.len() >= FLUSH_BYTES {
        let batch = std::mem::take(&mut *pending);
        drop(pending);
        write_out(batch);
    }
}

pub fn init(json: bool) {
    access_line::JSON.store(json, std::sync::atomic::Ordering::Relaxed);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr { batched: false });
    start_flusher();
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
