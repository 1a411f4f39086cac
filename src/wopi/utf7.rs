//! UTF-7 (RFC 2152) for the WOPI name headers (wopi.md §11): `X-WOPI-SuggestedTarget`,
//! `X-WOPI-RelativeTarget`, `X-WOPI-RequestedName` arrive in it and
//! `X-WOPI-ValidRelativeTarget` leaves in it. No maintained crate implements RFC 2152 (the
//! `utf7-imap` family is IMAP's modified form, `&…-`), so this is the small codec the RFC
//! describes, property-tested against its own encoder and the .NET validator's forms.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD};

/// Runs end on a sextet boundary: the encoder's last bits are padding (RFC 2152 says zero,
/// but decoders are told to accept any).
const RUN: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Why a header is not UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Utf7Error {
    #[error("not 7-bit")]
    NotAscii,
    #[error("bad base64 run")]
    BadRun,
    #[error("not valid UTF-16")]
    BadUtf16,
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Decodes RFC 2152 UTF-7: direct and optional-direct characters pass through, `+…` is a
/// base64 run of UTF-16BE code units ended by `-` (consumed) or any other non-base64
/// character (kept), `+-` is `+`.
pub fn decode(s: &str) -> Result<String, Utf7Error> {
    let b = s.as_bytes();
    if !b.is_ascii() {
        return Err(Utf7Error::NotAscii);
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'+' {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < b.len() && is_b64(b[end]) {
            end += 1;
        }
        if end == start {
            // `+-` is a literal plus; a lone `+` before anything else is malformed.
            if b.get(end) == Some(&b'-') {
                out.push('+');
                i = end + 1;
                continue;
            }
            return Err(Utf7Error::BadRun);
        }
        let bytes = RUN.decode(&s[start..end]).map_err(|_| Utf7Error::BadRun)?;
        if bytes.len() % 2 != 0 {
            return Err(Utf7Error::BadRun);
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        out.push_str(&String::from_utf16(&units).map_err(|_| Utf7Error::BadUtf16)?);
        i = if b.get(end) == Some(&b'-') {
            end + 1
        } else {
            end
        };
    }
    Ok(out)
}

/// Characters sent directly: RFC 2152's "direct characters" and space (the conservative set
/// wopi.md §11 asks for).
fn direct(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '(),-./:?".contains(c)
}

/// Encodes conservatively: only direct characters as they are, everything else (including
/// the optional-direct ones) in base64 runs, each closed with `-`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('+');
        out.push_str(&STANDARD_NO_PAD.encode(bytes));
        out.push('-');
        run.clear();
    };
    for c in s.chars() {
        if c == '+' && run.is_empty() {
            out.push_str("+-");
        } else if direct(c) {
            flush(&mut run, &mut out);
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2152_examples_and_the_validator_forms() {
        assert_eq!(decode("Hi Mom -+Jjo--!").unwrap(), "Hi Mom -\u{263A}-!");
        assert_eq!(decode("+ZeVnLIqe-").unwrap(), "日本語");
        assert_eq!(decode("A+ImIDkQ.").unwrap(), "A\u{2262}\u{391}.");
        assert_eq!(decode("1 +- 1").unwrap(), "1 + 1");
        assert_eq!(decode("Projekte +ACM-2026").unwrap(), "Projekte #2026");
        // The .NET validator encodes the optional-direct characters.
        assert_eq!(
            decode("madeup+AF8-name.wopitestx").unwrap(),
            "madeup_name.wopitestx"
        );
        assert_eq!(decode("madeup_name.docx").unwrap(), "madeup_name.docx");
        assert_eq!(encode("madeup_name.docx"), "madeup+AF8-name.docx");
        assert_eq!(encode("Résumé 2.docx"), "R+AOk-sum+AOk- 2.docx");
        assert_eq!(encode("a+b"), "a+-b");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(decode("é"), Err(Utf7Error::NotAscii));
        assert_eq!(decode("a+"), Err(Utf7Error::BadRun));
        // A lone high surrogate.
        assert_eq!(decode("+2D0-"), Err(Utf7Error::BadUtf16));
        // Three bytes: not whole UTF-16 units.
        assert_eq!(decode("+AAAA-"), Err(Utf7Error::BadRun));
    }
}
