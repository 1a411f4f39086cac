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
mod tests {
    use super::*;

    #[test]
    fn check_file_info_loses_the_upstream_token_and_gains_mobile_properties() {
        let up = "eyJ.up+stream/token=";
        let body = serde_json::json!({
            "BaseFileName": "a:b?.docx", "OwnerId": "o#1", "UserId": "u/1", "Size": 5,
            "Version": "v1", "SupportsCoauth": false, "AccessTokenExpiry": 5, "ServerTime": 6,
            "HostEditUrl": format!("https://office/edit?WOPISrc=x&access_token={}", encoded(up)),
            "DownloadUrl": format!("https://gw/wopi/iop/download?access_token={}", encoded(up)),
            "Raw": up,
        });
        let out = check_file_info(
            body.to_string().as_bytes(),
            up,
            "wg1.GATEWAY",
            Some(MobileAmend {
                flags: MobileFlags {
                    is_edu_user: false,
                    license_check_for_edit: true,
                },
                user_id: "u/1",
            }),
            Decided {
                can_not_write_relative: true,
                supports_rename: false,
                user_can_rename: false,
            },
        )
        .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(!text.contains("eyJ.up"), "{text}");
        assert!(!text.contains(&encoded(up)), "{text}");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["HostEditUrl"],
            "https://office/edit?WOPISrc=x&access_token=wg1.GATEWAY"
        );
        assert_eq!(v["Raw"], "wg1.GATEWAY");
        assert!(v.get("DownloadUrl").is_none());
        for k in CSPP_PLUS_ONLY {
            assert!(v.get(*k).is_none(), "{k}");
        }
        assert_eq!(v["IsEduUser"], false);
        assert_eq!(v["LicenseCheckForEditIsEnabled"], true);
        assert_eq!(v["SupportsContainers"], true);
        assert_eq!(v["SupportsEcosystem"], true);
        assert_eq!(v["BaseFileName"], "a-b-.docx");
        assert_eq!(v["OwnerId"], "o-1");
        assert_eq!(v["UserId"], "u-1");
        // Web holders keep the wopiserver's property set (minus the token).
        let rename = Decided {
            can_not_write_relative: false,
            supports_rename: true,
            user_can_rename: true,
        };
        let web = check_file_info(body.to_string().as_bytes(), up, "wg1.G", None, rename).unwrap();
        let v: Value = serde_json::from_slice(&web).unwrap();
        assert_eq!(v["SupportsCoauth"], false);
        assert!(v.get("IsEduUser").is_none());
        assert_eq!(
            (&v["SupportsRename"], &v["UserCanRename"]),
            (&true.into(), &true.into())
        );
        assert!(check_file_info(b"not json", up, "g", None, rename).is_none());
    }

    #[test]
    fn pass_through_answers_keep_their_token_and_say_what_the_gateway_decides() {
        // The wopiserver with `enablerename` on says true; the gateway does not rename for it.
        let body = br#"{"BaseFileName":"a.docx","SupportsRename":true,"UserCanRename":true,"HostEditUrl":"https://o/e?access_token=eyJwopiserver.token.sig"}"#;
        let no = Decided {
            can_not_write_relative: true,
            supports_rename: false,
            user_can_rename: false,
        };
        let out = pass_through_check_file_info(body, no).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["SupportsRename"], false);
        assert_eq!(v["UserCanRename"], false);
        assert_eq!(v["UserCanNotWriteRelative"], true);
        assert_eq!(
            v["HostEditUrl"],
            "https://o/e?access_token=eyJwopiserver.token.sig"
        );
        // The tree path (escapes in the body) says the same.
        let escaped = br#"{"BaseFileName":"caf\u00e9.docx","SupportsRename":true}"#;
        let v: Value =
            serde_json::from_slice(&pass_through_check_file_info(escaped, no).unwrap()).unwrap();
        assert_eq!(
            (&v["SupportsRename"], &v["BaseFileName"]),
            (&false.into(), &"café.docx".into())
        );
        assert!(pass_through_check_file_info(b"[1]", no).is_none());
    }

    #[test]
    fn put_relative_hands_out_a_gateway_token_for_the_new_file() {
        let caller = Claims {
            grant: Grant::File(FileGrant {
                resource: Resource {
                    storage_id: "st".into(),
                    space_id: "sp".into(),
                    opaque_id: "old".into(),
                },
                app: Some("Collabora".into()),
                view_mode: crate::wopi::ViewMode::ReadWrite,
            }),
            user: Default::default(),
            mobile: false,
            exp: 123,
        };
        let new_inode = inode_of(&Resource {
            storage_id: "st".into(),
            space_id: String::new(),
            opaque_id: "new-file".into(),
        });
        let up = "eyJnew.upstream.token";
        let body = serde_json::json!({
            "Name": "copy.docx",
            "Url": format!("https://gw/wopi/files/{new_inode}?access_token={}", encoded(up)),
            "HostEditUrl": format!("https://office/edit?access_token={}", encoded(up)),
            "HostViewUrl": format!("https://office/view?access_token={up}"),
        });
        let issued = std::cell::RefCell::new(Vec::new());
        let out = put_relative(body.to_string().as_bytes(), &caller, |c| {
            issued.borrow_mut().push(c.clone());
            "wg1.NEW".to_owned()
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("eyJnew"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["Url"],
            format!("https://gw/wopi/files/{new_inode}?access_token=wg1.NEW")
        );
        assert_eq!(v["HostViewUrl"], "https://office/view?access_token=wg1.NEW");
        let new = &issued.borrow()[0];
        let f = new.file().unwrap();
        assert_eq!(
            (f.resource.opaque_id.as_str(), f.resource.space_id.as_str()),
            ("new-file", "sp")
        );
        assert_eq!((new.exp, f.app.as_deref()), (123, Some("Collabora")));
        // Without a usable Url nothing is passed on.
        assert!(put_relative(br#"{"Name":"x"}"#, &caller, |_| String::new()).is_none());
    }

    #[test]
    fn a_token_is_found_by_its_tail_exactly_where_the_whole_token_is() {
        let long = format!(
            "eyJhbGciOiJIUzI1NiJ9.{}.sig-{}",
            "p".repeat(300),
            "s".repeat(40)
        );
        let tail_only = &long[long.len() - TAIL_BYTES - 5..];
        assert_eq!(TokenFinder::new("").find_iter(b"anything").count(), 0);
        for token in [long.as_str(), "short-tok", "aaaa"] {
            for hay in [
                token.to_owned(),
                format!("x{token}y{token}"),
                format!("{token}{token}"),
                format!("{tail_only}|{token}|{tail_only}"),
                format!("no token here {}", &token[1..]),
                format!("aaaaaaaaa{token}"),
            ] {
                let want: Vec<usize> = hay.match_indices(token).map(|(i, _)| i).collect();
                let got: Vec<usize> = TokenFinder::new(token).find_iter(hay.as_bytes()).collect();
                assert_eq!(got, want, "token {token:.12}… in {hay:.40}…");
            }
        }
    }

    #[test]
    fn the_upstream_target_names_the_inode_and_carries_the_upstream_token() {
        let r = Resource {
            storage_id: "st".into(),
            space_id: "sp".into(),
            opaque_id: "op".into(),
        };
        let t = upstream_target(
            "/wopi/files/GATEWAYID/contents",
            "access_token=wg1.x&access_token_ttl=5",
            &r,
            "eyJ a+b",
        );
        assert_eq!(
            t,
            format!(
                "/wopi/files/{}/contents?access_token=eyJ+a%2Bb&access_token_ttl=5",
                inode_of(&r)
            )
        );
        let t = upstream_target("/wopi/files/GATEWAYID", "", &r, "t");
        assert_eq!(t, format!("/wopi/files/{}?", inode_of(&r)));
    }
}
