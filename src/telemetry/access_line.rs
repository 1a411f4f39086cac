//! The access log's JSON lines, written straight into a buffer in the layout of the fmt layer's
//! JSON output; text output keeps the fmt layer.

use super::{push_batched, redact};

/// Whether lines are JSON (`server.log_format = "json"`); the access log then writes its own.
pub(super) static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

#[cfg(test)]
mod tests {
    use super::{json_string, rfc3339_micros};

    #[test]
    fn access_lines_are_the_fmt_layers_json() {
        let mut t = String::new();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_458_561_902_859);
        rfc3339_micros(at, &mut t);
        assert_eq!(t, "2026-11-23T18:29:21.902859Z");
        for (secs, want) in [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000000Z"),
        ] {
            let mut t = String::new();
            rfc3339_micros(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                &mut t,
            );
            assert_eq!(t, want);
        }
        let mut s = String::new();
        json_string("a\"b\\c\n\u{1}é", &mut s);
        assert_eq!(s, r#""a\"b\\c\n\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\n\u{1}é");
    }
}
