//! The request side of PutRelativeFile and the container writes: which name headers came
//! (exactly one, UTF-7 decoded), whether `X-WOPI-Size` agrees with the body, and a refusal
//! with the WOPI headers that go beside it.

use crate::error::{ErrorCode, Reply};
use crate::wopi::utf7;

/// The name headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `X-WOPI-SuggestedTarget`: adjusted until legal and free, never refused.
    Suggested(String),
    /// `X-WOPI-RelativeTarget`: exactly this name.
    Relative { name: String, overwrite: bool },
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Reads the name headers: exactly one of the two, UTF-7 decoded.
pub fn target_of(h: &http::HeaderMap) -> Result<Target, Reply> {
    let decode = |v: &str| {
        utf7::decode(v).map_err(|_| Reply::refuse(ErrorCode::BadRequest, "the name is not UTF-7"))
    };
    match (
        header(h, "x-wopi-suggestedtarget"),
        header(h, "x-wopi-relativetarget"),
    ) {
        (Some(s), None) => Ok(Target::Suggested(decode(s)?)),
        (None, Some(r)) => Ok(Target::Relative {
            name: decode(r)?,
            overwrite: header(h, "x-wopi-overwriterelativetarget")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        }),
        (Some(_), Some(_)) => Err(Reply::refuse(
            ErrorCode::BadRequest,
            "X-WOPI-SuggestedTarget and X-WOPI-RelativeTarget are exclusive",
        )),
        (None, None) => Err(Reply::refuse(
            ErrorCode::BadRequest,
            "X-WOPI-SuggestedTarget or X-WOPI-RelativeTarget is required",
        )),
    }
}

/// `X-WOPI-Size` must agree with the body's length when both are given.
pub fn check_size(h: &http::HeaderMap) -> Result<(), Reply> {
    let Some(size) = header(h, "x-wopi-size") else {
        return Ok(());
    };
    let size: u64 = size
        .trim()
        .parse()
        .map_err(|_| Reply::refuse(ErrorCode::BadRequest, "X-WOPI-Size is not a number"))?;
    match header(h, "content-length").map(|v| v.trim().parse::<u64>()) {
        Some(Ok(len)) if len != size => Err(Reply::refuse(
            ErrorCode::BadRequest,
            "X-WOPI-Size differs from the body's length",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn exactly_one_name_header_decoded_from_utf7() {
        assert_eq!(
            target_of(&headers(&[("X-WOPI-SuggestedTarget", ".pdf")])).unwrap(),
            Target::Suggested(".pdf".into())
        );
        assert_eq!(
            target_of(&headers(&[
                ("X-WOPI-RelativeTarget", "R+AOk-sum+AOk-.docx"),
                ("X-WOPI-OverwriteRelativeTarget", "True")
            ]))
            .unwrap(),
            Target::Relative {
                name: "Résumé.docx".into(),
                overwrite: true
            }
        );
        for bad in [
            headers(&[]),
            headers(&[
                ("X-WOPI-SuggestedTarget", "a"),
                ("X-WOPI-RelativeTarget", "b"),
            ]),
        ] {
            assert_eq!(target_of(&bad).unwrap_err().status, 400);
        }
        assert!(check_size(&headers(&[("X-WOPI-Size", "5"), ("Content-Length", "5")])).is_ok());
        assert!(check_size(&headers(&[("X-WOPI-Size", "5"), ("Content-Length", "6")])).is_err());
        assert!(check_size(&headers(&[("X-WOPI-Size", "x")])).is_err());
    }
}
