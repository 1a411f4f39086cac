//! Finds the line of a dotted key (`office[1].discovery_url`) in the TOML text, so that errors
//! point at the place to fix.

use toml::de::{DeTable, DeValue};

pub(super) fn line_of(text: &str, key: &str) -> Option<usize> {
    let table = DeTable::parse(text).ok()?;
    let mut current: &DeTable = table.get_ref();
    let mut span = None;
    let parts: Vec<&str> = key.split('.').collect();
    for (n, part) in parts.iter().enumerate() {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        let (k, v) = current.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        span = Some(k.span());
        let mut value = v.get_ref();
        if let (Some(i), DeValue::Array(items)) = (index, value) {
            let item = items.get(i)?;
            span = Some(item.span());
            value = item.get_ref();
        }
        match value {
            DeValue::Table(t) => current = t,
            _ if n + 1 == parts.len() => {}
            _ => break,
        }
    }
    span.map(|s| line_at(text, s.start))
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

pub(super) fn parse_problem(text: &str, e: &toml::de::Error) -> super::Problem {
    let line = e.span().map(|s| line_at(text, s.start));
    let message = e.message().to_owned();
    // serde reports unknown keys as "unknown field `x`, expected one of …"
    let key = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("unknown field"))
        .unwrap_or("config")
        .to_owned();
    super::Problem {
        key,
        line,
        reason: message,
    }
}
