//! Text the whole core shares: strict JSON, strict base64url, identifiers and "did you mean".

pub(crate) mod b64;
pub(crate) mod ident;
pub(crate) mod json;

/// Backquoted items joined with commas, or `none`: how messages list values.
pub(crate) fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Bytes as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// `value` as one POSIX shell word: as is when it has only safe characters, else in single
/// quotes.
pub(crate) fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:@%+=,".contains(c));
    if safe {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}
