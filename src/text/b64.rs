//! Strict base64url (RFC 7515 section 2 and appendix C).
//!
//! The URL-safe alphabet only, no padding, no whitespace and canonical trailing bits: a token
//! has exactly one encoding, so two different strings can never carry the same signed bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Decodes strict base64url; `None` on any deviation.
pub(crate) fn decode(input: &str) -> Option<Vec<u8>> {
    // The engine rejects padding, whitespace, characters outside the URL-safe alphabet and
    // non-zero trailing bits (`decode_allow_trailing_bits` is false for URL_SAFE_NO_PAD).
    URL_SAFE_NO_PAD.decode(input.as_bytes()).ok()
}

/// Encodes base64url without padding.
pub(crate) fn encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_canonical_input() {
        assert_eq!(decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
    }

    #[test]
    fn rejects_padding_whitespace_and_other_alphabets() {
        assert_eq!(decode("Zm8="), None);
        assert_eq!(decode("Zm 8"), None);
        assert_eq!(decode("Zm8\n"), None);
        assert_eq!(decode("a+b/"), None);
        assert_eq!(decode("Zm9v?"), None);
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "Zm9" is canonical for "fo" only with its last 2 bits zero: "Zm8" is; "Zm9" is not.
        assert_eq!(decode("Zm9"), None);
        // A lone trailing character can never be valid.
        assert_eq!(decode("Zm9vY"), None);
    }

    #[test]
    fn round_trips() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode(&encode(&data)), Some(data));
        }
    }
}
