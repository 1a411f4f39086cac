//! The web holder's CheckFileInfo rewritten on the JSON text itself: one validating pass that
//! records each member's span (no `Value` tree, no re-serialisation: that was the largest part
//! of the rewrite's cost), then one copy with the token replaced. It applies only where text
//! and value agree: a body without any escape (`\\`) and tokens that need none; anything else
//! (`None`) takes the tree path in [`super`], which gives the same answer.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{TokenFinder, url_encoded};

/// The top-level members of a JSON object, borrowed from its text, in order.
struct Members<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(32));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// Text that stands for itself inside a JSON string (no quote, backslash or control
/// character), long enough never to be mistaken for a literal or a number.
fn json_plain(s: &str) -> bool {
    // No early exit: the loop vectorises (tokens are up to ~2 KiB).
    s.len() >= 16
        && !s.bytes().fold(false, |any, b| {
            any | (b == b'"') | (b == b'\\') | (b < 0x20)
        })
}

/// The token search of one answer: the wopiserver token (raw and URL-encoded) and what
/// replaces each form.
struct Swap<'a> {
    upstream: &'a str,
    gateway: &'a str,
    gw_enc: std::borrow::Cow<'a, str>,
    raw: TokenFinder<'a>,
    encoded: Option<TokenFinder<'a>>,
    /// Strings shorter than either form cannot hold the token.
    shortest: usize,
}

/// `swap`: the wopiserver token and the gateway token that replaces it; `None` for a
/// pass-through answer, whose token stays.
pub(super) fn check_file_info(
    body: &[u8],
    swap: Option<(&str, &str)>,
    decided: super::Decided,
) -> Option<Vec<u8>> {
    if memchr::memchr(b'\\', body).is_some() {
        return None;
    }
    let encoded_up = swap.map(|(up, _)| url_encoded(up));
    let swap = match (swap, &encoded_up) {
        (Some((upstream, gateway)), Some(up_enc)) => {
            let gw_enc = url_encoded(gateway);
            if ![upstream, gateway, up_enc, &gw_enc]
                .iter()
                .all(|t| json_plain(t))
            {
                return None;
            }
            Some(Swap {
                upstream,
                gateway,
                raw: TokenFinder::new(upstream),
                encoded: (*up_enc != upstream).then(|| TokenFinder::new(up_enc)),
                shortest: upstream.len().min(up_enc.len()),
                gw_enc,
            })
        }
        _ => None,
    };
    let text = std::str::from_utf8(body).ok()?;
    let members: Members<'_> = serde_json::from_str(text).ok()?;
    let grow = swap
        .as_ref()
        .map_or(0, |s| s.gateway.len().saturating_sub(s.upstream.len()) * 4);
    let mut out = Vec::with_capacity(body.len() + grow + 96);
    out.push(b'{');
    let decided = decided.members();
    let push_key = |out: &mut Vec<u8>, key: &str| {
        if out.len() > 1 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
    };
    for (key, value) in members.0 {
        let value = value.get();
        // What the gateway does, not what the wopiserver would: said once, at the end.
        if decided.iter().any(|(k, _)| *k == key) {
            continue;
        }
        // The wopiserver's download endpoint is /wopi/iop/*, never reachable from the
        // public side.
        if matches!(key, "DownloadUrl" | "FileUrl")
            && value.starts_with('"')
            && value.contains("/wopi/iop/")
        {
            continue;
        }
        push_key(&mut out, key);
        match &swap {
            Some(s) if value.len() >= s.shortest => {
                let with_raw = replace_into(value.as_bytes(), &s.raw, s.gateway.as_bytes());
                match &s.encoded {
                    Some(find) => {
                        out.extend_from_slice(&replace_into(&with_raw, find, s.gw_enc.as_bytes()))
                    }
                    None => out.extend_from_slice(&with_raw),
                }
            }
            _ => out.extend_from_slice(value.as_bytes()),
        }
    }
    for (key, value) in decided {
        push_key(&mut out, key);
        out.extend_from_slice(if value { b"true" } else { b"false" });
    }
    out.push(b'}');
    Some(out)
}

/// `hay` with every match of `find` replaced by `with`, borrowed when nothing matches.
fn replace_into<'h>(
    hay: &'h [u8],
    find: &TokenFinder<'_>,
    with: &[u8],
) -> std::borrow::Cow<'h, [u8]> {
    let mut hits = find.find_iter(hay).peekable();
    if hits.peek().is_none() {
        return std::borrow::Cow::Borrowed(hay);
    }
    let mut out = Vec::with_capacity(hay.len() + with.len());
    let mut at = 0;
    for hit in hits {
        out.extend_from_slice(&hay[at..hit]);
        out.extend_from_slice(with);
        at = hit + find.token.len();
    }
    out.extend_from_slice(&hay[at..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::{Decided, check_file_info, drop_iop_urls, encoded, replace_token};

    fn decided(relative: bool) -> Decided {
        Decided {
            can_not_write_relative: relative,
            supports_rename: true,
            user_can_rename: !relative,
        }
    }

    /// The text path and the tree path must give the same answer wherever the text path
    /// applies, and the text path must step aside where it cannot be sure.
    #[test]
    fn the_text_rewrite_agrees_with_the_tree_rewrite() {
        let tree = |body: &str, up: &str, gw: &str, decided: Decided| -> Option<Value> {
            let mut v: Value = serde_json::from_str(body).ok()?;
            let o = v.as_object_mut()?;
            drop_iop_urls(o);
            decided.apply(o);
            replace_token(&mut v, up, gw);
            Some(v)
        };
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let odd = "eyJ+odd/token=with-chars-that-encode";
        let gw = "wg1.AAAABBBBCCCCDDDDEEEEFFFF";
        for up in [jwt, odd] {
            let enc = encoded(up);
            let bodies = [
                format!(
                    r#"{{"BaseFileName":"a.docx","Size":5,"HostEditUrl":"https://o/e?WOPISrc=x&access_token={enc}","UserCanWrite":true}}"#
                ),
                format!(r#"{{ "A" : [ "{up}", {{"n":"{up}{up}"}} ], "B": null, "C": 1.5e3 }}"#),
                format!(
                    r#"{{"DownloadUrl":"https://gw/wopi/iop/download?t={up}","FileUrl":"https://cdn/file","Raw":"{up}"}}"#
                ),
                r#"{"DownloadUrl":null,"X":"short"}"#.to_owned(),
                r#"{}"#.to_owned(),
                r#"{"UserCanNotWriteRelative":false,"SupportsUpdate":true}"#.to_owned(),
            ];
            for (body, relative) in bodies.iter().flat_map(|b| [(b, false), (b, true)]) {
                let decided = decided(relative);
                let want = tree(body, up, gw, decided).unwrap();
                let fast = super::check_file_info(body.as_bytes(), Some((up, gw)), decided)
                    .unwrap_or_else(|| panic!("the text path applies to {body}"));
                let got: Value = serde_json::from_slice(&fast).unwrap();
                assert_eq!(got, want, "{body}");
                assert_eq!(got["UserCanNotWriteRelative"], relative, "{body}");
                assert_eq!(got["UserCanRename"], !relative, "{body}");
                let text = String::from_utf8(fast).unwrap();
                assert!(!text.contains(up) && !text.contains(&*enc), "{text}");
            }
        }
        // Escapes in the body, tokens that need escaping, or not an object: the tree path.
        let escaped = format!(r#"{{"BaseFileName":"caf\u00e9.docx","U":"{jwt}"}}"#);
        let no = decided(false);
        assert!(super::check_file_info(escaped.as_bytes(), Some((jwt, gw)), no).is_none());
        let out = check_file_info(escaped.as_bytes(), jwt, gw, None, no).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains(jwt));
        let quote = "eyJhbGciOiJIUzI1NiJ9.\"quoted\"-token";
        assert!(super::check_file_info(b"{}", Some((quote, gw)), no).is_none());
        for not_object in ["[1,2]", "\"x\"", "{\"a\":1", "{\"a\":1} trailing"] {
            assert!(super::check_file_info(not_object.as_bytes(), Some((jwt, gw)), no).is_none());
            assert!(check_file_info(not_object.as_bytes(), jwt, gw, None, no).is_none());
        }
    }
}
