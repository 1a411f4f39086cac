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

/// Whether lines are JSON (`server.log_format = "json"`); the access log then writes its own.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One field of an access line.
pub enum Field<'a> {
    Str(&'a str),
    U64(u64),
    /// Written as a JSON number (non-finite: `null`).
    F64(f64),
    Ip(std::net::IpAddr),
    /// Omitted from the line, as `tracing` omits a `None`.
    Absent,
}

/// Whether the access log should write its JSON line itself ([`access_json`]): JSON output is
/// on and `wopigate::access` is enabled at INFO. Text output keeps the fmt layer.
pub fn access_json_enabled() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
        && tracing::enabled!(target: "wopigate::access", tracing::Level::INFO)
}

/// One access line in the JSON layout the fmt layer writes (`timestamp`, `level`, `fields` with
/// `message`, `target`), formatted straight into a buffer: the generic formatter built a JSON
/// map per event and visited every field through `dyn Debug`, a measurable part of a proxied
/// request. The line is redacted and batched like every other INFO line.
pub fn access_json(message: &str, fields: &[(&str, Field<'_>)]) {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(384);
    line.push_str("{\"timestamp\":\"");
    rfc3339_micros(std::time::SystemTime::now(), &mut line);
    line.push_str("\",\"level\":\"INFO\",\"fields\":{\"message\":");
    json_string(message, &mut line);
    for (name, value) in fields {
        if matches!(value, Field::Absent) {
            continue;
        }
        line.push_str(",\"");
        line.push_str(name);
        line.push_str("\":");
        match value {
            Field::Str(s) => json_string(s, &mut line),
            Field::U64(n) => line.push_str(itoa::Buffer::new().format(*n)),
            Field::F64(x) if x.is_finite() => line.push_str(ryu::Buffer::new().format_finite(*x)),
            Field::F64(_) => line.push_str("null"),
            Field::Ip(ip) => {
                let _ = write!(line, "\"{ip}\"");
            }
            Field::Absent => {}
        }
    }
    line.push_str("},\"target\":\"wopigate::access\"}\n");
    push_batched(&redact(&line));
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

/// `s` as a JSON string literal.
fn json_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    let mut at = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            out.push_str(&s[at..i]);
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                _ => {
                    let _ = write!(out, "\\u{b:04x}");
                }
            }
            at = i + 1;
        }
    }
    out.push_str(&s[at..]);
    out.push('"');
}

/// `t` as RFC 3339 in UTC with microseconds (`2026-11-23T18:29:21.902859Z`), as the fmt layer
/// writes it; the civil date from days since 1970 by H. Hinnant's algorithm.
fn rfc3339_micros(t: std::time::SystemTime, out: &mut String) {
    use std::fmt::Write as _;
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_micros()
    );
}

pub fn init(json: bool) {
    JSON.store(json, std::sync::atomic::Ordering::Relaxed);
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
    fn access_lines_are_the_fmt_layers_json() {
        let mut t = String::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_458_561_902_859);
        super::rfc3339_micros(at, &mut t);
        assert_eq!(t, "2026-11-23T18:29:21.902859Z");
        for (secs, want) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000000Z"),
        ] {
            let mut t = String::new();
            super::rfc3339_micros(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                &mut t,
            );
            assert_eq!(t, want);
        }
        let mut s = String::new();
        super::json_string("a\"b\\c\n\u{1}é", &mut s);
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\n\u{1}é");
    }

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
