//! Where tokens travel in a request, parsed here and nowhere else: the `access_token` query
//! parameter of WOPI URLs (wopi.md §10.2) and the bearer of an `Authorization` header
//! (RFC 6750, scheme case-insensitive; Office mobile's documented `Bearer: <token>` form,
//! wopi.md §7.2, where the caller allows it).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// Why no single token could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    #[error("no bearer token")]
    Missing,
    #[error("more than one token in the request")]
    Several,
    #[error("malformed Authorization header")]
    Malformed,
}

const ACCESS_TOKEN: &str = "access_token=";

/// The raw (still percent-encoded) `access_token` query value. Repeats of the same value are
/// tolerated; differing ones are refused (security.md R7: a token could be checked and another
/// one used).
pub fn raw_access_token(query: &str) -> Result<Option<&str>, CarrierError> {
    let mut found: Option<&str> = None;
    for value in query
        .split('&')
        .filter_map(|p| p.strip_prefix(ACCESS_TOKEN))
    {
        match found {
            Some(prev) if prev != value => return Err(CarrierError::Several),
            _ => found = Some(value),
        }
    }
    Ok(found)
}

/// The token as issued: the query value with `+` as a space and percent-decoding applied
/// (wopi.md §10.2; the proof signs this form). Borrowed from the query when nothing needs
/// decoding (JWTs and gateway tokens never do).
pub fn access_token(query: Option<&str>) -> Result<Option<Cow<'_, str>>, CarrierError> {
    Ok(raw_access_token(query.unwrap_or_default())?.map(decode))
}

fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(raw);
    }
    let spaced = raw.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// `query` with every `access_token` value replaced by `encoded` (already URL-encoded) and
/// every other parameter kept as sent.
pub fn replace_access_token(query: &str, encoded: &str, out: &mut String) {
    let mut first = true;
    for p in query.split('&').filter(|p| !p.is_empty()) {
        if !first {
            out.push('&');
        }
        first = false;
        if p.starts_with(ACCESS_TOKEN) {
            out.push_str(ACCESS_TOKEN);
            out.push_str(encoded);
        } else {
            out.push_str(p);
        }
    }
}

/// Which spellings of the bearer a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerForm {
    /// `Bearer <token>` only.
    Standard,
    /// Also `Bearer: <token>`, as Microsoft documents for Office mobile (wopi.md §7.2).
    AllowColon,
}

/// The token of one `Authorization` header value.
pub fn bearer(value: &[u8], form: BearerForm) -> Result<&str, CarrierError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| CarrierError::Malformed)?
        .trim();
    let end = match form {
        BearerForm::Standard => text.find(' '),
        BearerForm::AllowColon => text.find([' ', ':']),
    };
    let (scheme, rest) = text.split_at(end.ok_or(CarrierError::Missing)?);
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(CarrierError::Missing);
    }
    let token = match form {
        BearerForm::Standard => rest,
        BearerForm::AllowColon => rest.trim_start().trim_start_matches(':'),
    }
    .trim();
    if token.is_empty() {
        return Err(CarrierError::Missing);
    }
    Ok(token)
}

/// The bearer of a request's `Authorization` headers: exactly one header is allowed.
pub fn single_bearer<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
    form: BearerForm,
) -> Result<&'a str, CarrierError> {
    let first = values.next().ok_or(CarrierError::Missing)?;
    if values.next().is_some() {
        return Err(CarrierError::Several);
    }
    bearer(first, form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_duplicates() {
        assert_eq!(
            raw_access_token("a=1&access_token=x&b=2").unwrap(),
            Some("x")
        );
        assert_eq!(
            raw_access_token("access_token=x&access_token=x").unwrap(),
            Some("x")
        );
        assert!(raw_access_token("access_token=x&access_token=y").is_err());
        assert_eq!(raw_access_token("access_token_ttl=5").unwrap(), None);
    }

    #[test]
    fn access_token_is_decoded_as_issued() {
        assert_eq!(
            access_token(Some("x=1&access_token=a%2Bb+c%3D")).unwrap(),
            Some(Cow::Owned("a+b c=".to_owned()))
        );
        assert!(matches!(
            access_token(Some("access_token=eyJ.a-b_c.d")).unwrap(),
            Some(Cow::Borrowed("eyJ.a-b_c.d"))
        ));
        assert_eq!(access_token(None).unwrap(), None);
    }

    #[test]
    fn access_token_replacement_keeps_the_rest() {
        let mut out = String::new();
        replace_access_token("a=1&access_token=old&&b=2", "NEW%3D", &mut out);
        assert_eq!(out, "a=1&access_token=NEW%3D&b=2");
    }

    #[test]
    fn bearer_parsing() {
        let std = BearerForm::Standard;
        assert_eq!(bearer(b"Bearer abc", std), Ok("abc"));
        assert_eq!(bearer(b"bearer  abc ", std), Ok("abc"));
        assert_eq!(bearer(b"BEARER abc", std), Ok("abc"));
        assert_eq!(bearer(b"Basic abc", std), Err(CarrierError::Missing));
        assert_eq!(bearer(b"Bearer ", std), Err(CarrierError::Missing));
        assert_eq!(bearer(b"Bearer", std), Err(CarrierError::Missing));
        assert_eq!(bearer(b"Bearer: abc", std), Err(CarrierError::Missing));
        assert_eq!(bearer(b"Bearer \xff", std), Err(CarrierError::Malformed));
    }

    #[test]
    fn office_mobile_colon_form() {
        let colon = BearerForm::AllowColon;
        assert_eq!(bearer(b"Bearer abc", colon), Ok("abc"));
        assert_eq!(bearer(b"Bearer: abc", colon), Ok("abc"));
        assert_eq!(bearer(b"bearer:abc", colon), Ok("abc"));
        assert_eq!(bearer(b"Basic abc", colon), Err(CarrierError::Missing));
        assert_eq!(bearer(b"Bearer ", colon), Err(CarrierError::Missing));
        assert_eq!(bearer(b"Bearer:", colon), Err(CarrierError::Missing));
    }

    #[test]
    fn only_one_authorization_header() {
        let std = BearerForm::Standard;
        assert_eq!(
            single_bearer([b"Bearer a".as_slice()].into_iter(), std),
            Ok("a")
        );
        assert_eq!(
            single_bearer([b"Bearer a".as_slice(), b"Bearer b"].into_iter(), std),
            Err(CarrierError::Several)
        );
        assert_eq!(
            single_bearer(std::iter::empty(), std),
            Err(CarrierError::Missing)
        );
    }
}
