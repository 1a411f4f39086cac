//! Swapping a gateway token for the wopiserver's and back. On the way up the request target
//! names the wopiserver's inode and carries its token ([`upstream_target`]); on the way down the
//! JSON answers of the wopiserver that must change for an office app holding a gateway token:
//! CheckFileInfo (its `HostEditUrl`/`HostViewUrl`/`DownloadUrl` embed the
//! wopiserver token, and Office for iOS/Android needs properties the wopiserver does not send,
//! wopi.md §4.6–4.7) and PutRelativeFile (its URLs carry a wopiserver token for the new file).

use std::borrow::Cow;

use memchr::memmem::Finder;
use serde_json::{Map, Value};

use crate::ids::{Resource, inode_of, resource_of_inode};
use crate::tokens::gateway::{Claims, FileGrant, Grant};

/// The WOPI+ properties the CSPP schema forbids (wopi.md §4.7).
const CSPP_PLUS_ONLY: &[&str] = &[
    "SupportsCoauth",
    "SequenceNumber",
    "OfficeCollaborationServiceEndpointUrl",
    "RealTimeChannelEndpointUrl",
    "AccessTokenExpiry",
    "ServerTime",
    "SharingStatus",
    "FileGeoLocationCode",
];

/// Characters Office for iOS refuses in names and ids (wopi.md §1.5).
const IOS_FORBIDDEN: &[char] = &[
    '\\', '/', ':', '*', '?', '"', '<', '>', '|', '#', '{', '}', '^', '[', ']', '`', '%',
];

pub fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| if IOS_FORBIDDEN.contains(&c) { '-' } else { c })
        .collect()
}

/// What the mobile additions say about the user (same values as CheckContainerInfo).
#[derive(Debug, Clone, Copy)]
pub struct MobileFlags {
    pub is_edu_user: bool,
    pub license_check_for_edit: bool,
}

/// The mobile amendments for one user: their flags and the `UserId` the bootstrapper reported.
pub struct MobileAmend<'a> {
    pub flags: MobileFlags,
    pub user_id: &'a str,
}

/// `token` as a form-urlencoded query value. JWTs and gateway tokens need no escaping, so the
/// common case borrows instead of allocating.
pub fn url_encoded(token: &str) -> Cow<'_, str> {
    // Without an early exit the loop vectorises: a wopiserver token is ~2 KiB, checked on every
    // rewritten answer.
    let plain = token.bytes().fold(true, |all, b| {
        all & (b.is_ascii_alphanumeric() | (b == b'*') | (b == b'-') | (b == b'.') | (b == b'_'))
    });
    if plain {
        Cow::Borrowed(token)
    } else {
        Cow::Owned(url::form_urlencoded::byte_serialize(token.as_bytes()).collect())
    }
}

#[cfg(test)]
fn encoded(token: &str) -> String {
    url_encoded(token).into_owned()
}

/// How much of a token's end the search looks for: building a searcher costs time linear in
/// its needle (for a 600-byte token it was 3 % of a proxied CheckFileInfo), and a token's last
/// bytes (its signature) are as rare as the whole token.
const TAIL_BYTES: usize = 32;

/// A token searched for by its tail, each tail match confirmed against the whole token.
struct TokenFinder<'a> {
    token: &'a [u8],
    tail: Finder<'a>,
}

impl<'a> TokenFinder<'a> {
    fn new(token: &'a str) -> Self {
        let token = token.as_bytes();
        Self {
            token,
            tail: Finder::new(&token[token.len().saturating_sub(TAIL_BYTES)..]),
        }
    }

    /// Where the whole token starts in `hay`, left to right, without overlaps. A tail match that
    /// is not the whole token moves the search on by one byte only: the tail may repeat inside
    /// the token.
    fn find_iter<'h>(&'h self, hay: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
        let (len, tail) = (self.token.len(), self.tail.needle().len());
        // The earliest place a tail match can end a whole token; an empty token is never found.
        let mut from = if len == 0 { usize::MAX } else { len - tail };
        std::iter::from_fn(move || {
            loop {
                let hit = from + self.tail.find(hay.get(from..)?)?;
                let (start, end) = (hit + tail - len, hit + tail);
                if &hay[start..end] == self.token {
                    from = end + len - tail;
                    return Some(start);
                }
                from = hit + 1;
            }
        })
    }
}

/// One token to find (raw and URL-encoded) and what replaces each form; prepared once per
/// answer, not per string.
struct TokenSwap<'a> {
    upstream: &'a str,
    gateway: &'a str,
    find_raw: TokenFinder<'a>,
    /// The encoded forms, when encoding changes them.
    encoded: Option<(String, String)>,
}

impl<'a> TokenSwap<'a> {
    fn new(upstream: &'a str, gateway: &'a str) -> Self {
        let encoded = match url_encoded(upstream) {
            Cow::Owned(up) => Some((up, url_encoded(gateway).into_owned())),
            Cow::Borrowed(_) => None,
        };
        Self {
            upstream,
            gateway,
            find_raw: TokenFinder::new(upstream),
            encoded,
        }
    }

    /// Replaces the token in every string of `v`.
    fn apply(&self, v: &mut Value) {
        let find_encoded = self
            .encoded
            .as_ref()
            .map(|(up, gw)| (TokenFinder::new(up), gw.as_str()));
        self.apply_with(v, find_encoded.as_ref());
    }

    fn apply_with(&self, v: &mut Value, encoded: Option<&(TokenFinder<'_>, &str)>) {
        match v {
            Value::String(s) => {
                // Most strings (names, ids, flags) are shorter than a token: no search at all.
                // An empty token would match everywhere: there is nothing to replace then.
                if s.len() < self.upstream.len() || self.upstream.is_empty() {
                    return;
                }
                if let Some(replaced) = replace_all(s, &self.find_raw, self.gateway) {
                    *s = replaced;
                }
                if let Some((find, gw)) = encoded
                    && let Some(replaced) = replace_all(s, find, gw)
                {
                    *s = replaced;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| self.apply_with(v, encoded)),
            Value::Object(o) => o.values_mut().for_each(|v| self.apply_with(v, encoded)),
            _ => {}
        }
    }
}

/// `s` with every match of `find` replaced by `with`; `None` when nothing matches.
fn replace_all(s: &str, find: &TokenFinder<'_>, with: &str) -> Option<String> {
    let mut hits = find.find_iter(s.as_bytes()).peekable();
    hits.peek()?;
    let needle = find.token.len();
    let mut out = String::with_capacity(s.len() + with.len());
    let mut at = 0;
    for hit in hits {
        // A match of valid UTF-8 in valid UTF-8 starts and ends on character boundaries.
        out.push_str(&s[at..hit]);
        out.push_str(with);
        at = hit + needle;
    }
    out.push_str(&s[at..]);
    Some(out)
}

/// Replaces the wopiserver token, raw or URL-encoded, in every string of `v`.
fn replace_token(v: &mut Value, upstream: &str, gateway: &str) {
    TokenSwap::new(upstream, gateway).apply(v);
}

/// CheckFileInfo properties that say what the gateway does, not what the wopiserver would:
/// it serves PutRelativeFile itself, and it refuses RenameFile unless renaming is on (the
/// wopiserver renames whatever its `enablerename` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    pub can_not_write_relative: bool,
    /// RenameFile is served to this token at all (`SupportsRename`).
    pub supports_rename: bool,
    /// …and this token may rename (`UserCanRename`).
    pub user_can_rename: bool,
}

impl Decided {
    fn members(self) -> [(&'static str, bool); 3] {
        [
            ("UserCanNotWriteRelative", self.can_not_write_relative),
            ("SupportsRename", self.supports_rename),
            ("UserCanRename", self.user_can_rename),
        ]
    }

    fn apply(self, o: &mut Map<String, Value>) {
        for (k, b) in self.members() {
            o.insert(k.into(), Value::Bool(b));
        }
    }
}

/// CheckFileInfo for a gateway-token holder. `None` when the body is not a JSON object (it is
/// then withheld rather than passed on with the wopiserver token inside).
pub fn check_file_info(
    body: &[u8],
    upstream_token: &str,
    gateway_token: &str,
    mobile: Option<MobileAmend<'_>>,
    decided: Decided,
) -> Option<Vec<u8>> {
    if mobile.is_none()
        && let Some(out) =
            raw::check_file_info(body, Some((upstream_token, gateway_token)), decided)
    {
        return Some(out);
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object_mut()?;
    drop_iop_urls(o);
    decided.apply(o);
    if let Some(m) = mobile {
        amend_for_mobile(o, m.flags);
        // Bootstrap's UserId and CheckFileInfo's must be the same value (wopi.md §7.2).
        o.insert("UserId".into(), Value::String(sanitise(m.user_id)));
    }
    replace_token(&mut v, upstream_token, gateway_token);
    serde_json::to_vec(&v).ok()
}

mod raw;

/// A pass-through CheckFileInfo (the wopiserver's own token, not swapped) with what the
/// gateway decides. `None` when the answer is not a JSON object.
pub fn pass_through_check_file_info(body: &[u8], decided: Decided) -> Option<Vec<u8>> {
    if let Some(out) = raw::check_file_info(body, None, decided) {
        return Some(out);
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    decided.apply(v.as_object_mut()?);
    serde_json::to_vec(&v).ok()
}

/// The wopiserver's download endpoint is /wopi/iop/*, never reachable from the public side.
fn drop_iop_urls(o: &mut Map<String, Value>) {
    for k in ["DownloadUrl", "FileUrl"] {
        if o.get(k)
            .and_then(Value::as_str)
            .is_some_and(|u| u.contains("/wopi/iop/"))
        {
            o.remove(k);
        }
    }
}

fn amend_for_mobile(o: &mut Map<String, Value>, flags: MobileFlags) {
    for k in CSPP_PLUS_ONLY {
        o.remove(*k);
    }
    let set = |o: &mut Map<String, Value>, k: &str, b: bool| {
        o.insert(k.to_owned(), Value::Bool(b));
    };
    set(o, "IsEduUser", flags.is_edu_user);
    set(
        o,
        "LicenseCheckForEditIsEnabled",
        flags.license_check_for_edit,
    );
    set(o, "SupportsContainers", true);
    set(o, "SupportsEcosystem", true);
    set(o, "SupportsGetLock", true);
    set(o, "SupportsDeleteFile", true);
    for k in ["BaseFileName", "UserId", "OwnerId"] {
        if let Some(Value::String(s)) = o.get_mut(k) {
            *s = sanitise(s);
        }
    }
    // Never emit null (wopi.md §1.4).
    o.retain(|_, v| !v.is_null());
}

/// The request target the wopiserver gets for a gateway-token request: the same operation on
/// the wopiserver's inode for `resource`, with its token in place of the gateway's.
pub fn upstream_target(path: &str, query: &str, resource: &Resource, upstream: &str) -> String {
    let rest = path
        .strip_prefix("/wopi/files/")
        .and_then(|p| p.find('/').map(|i| &p[i..]))
        .unwrap_or("");
    let encoded = url_encoded(upstream);
    let mut target = String::with_capacity(path.len() + query.len() + encoded.len() + 64);
    target.push_str("/wopi/files/");
    target.push_str(&inode_of(resource));
    target.push_str(rest);
    target.push('?');
    super::carriers::replace_access_token(query, &encoded, &mut target);
    target
}

/// PutRelativeFile's answer for a gateway-token holder: the new file's URLs get a gateway token
/// for the new file (same user, app, view mode and expiry as the calling token; its wopiserver
/// token is obtained again on first use). `None` when the answer cannot be made safe.
pub fn put_relative(
    body: &[u8],
    caller: &Claims,
    issue: impl Fn(&Claims) -> String,
) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let url = v.get("Url").and_then(Value::as_str)?.to_owned();
    let parsed = url::Url::parse(&url).ok()?;
    let new_upstream = super::carriers::access_token(parsed.query())
        .ok()??
        .into_owned();
    let inode = parsed.path().rsplit('/').next()?;
    let file = caller.file()?;
    let resource = resource_of_inode(inode, &file.resource.space_id)?;
    let claims = Claims {
        grant: Grant::File(FileGrant {
            resource,
            ..file.clone()
        }),
        ..caller.clone()
    };
    let token = issue(&claims);
    replace_token(&mut v, &new_upstream, &token);
    // Whatever still carries the upstream token (it should not) is dropped, not leaked.
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, v| !v.as_str().is_some_and(|s| s.contains(&new_upstream)));
    }
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests;
