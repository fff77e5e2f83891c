//! What the fuzz targets share: splitting an input into fields, the small reference
//! implementations the differential targets compare the core with, the fixed signing keys of the
//! mutation target, and the leak check. Every oracle here is written independently of the core
//! (no call into it), so a bug cannot hide by being on both sides.

use std::collections::HashMap;

/// Splits `data` at the first `N - 1` newlines; missing fields are empty, the last keeps the rest.
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    out[N - 1] = rest;
    out
}

/// `bytes` as UTF-8, lossily: targets whose core entry point takes `&str`.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// --- base64url, written here so the canonical-encoding oracle does not use the core's engine ----

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
pub fn b64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes base64url leniently (any trailing bits, no padding); `None` for other characters or
/// an impossible length. Canonical means `b64(decode(s)) == s`.
pub fn b64_decode_lenient(input: &str) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in input.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = bits << 6 | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

/// Whether `segment` is the one canonical base64url encoding of what it decodes to.
pub fn canonical_b64(segment: &str) -> bool {
    b64_decode_lenient(segment).is_some_and(|bytes| b64(&bytes) == segment)
}

// --- the glob reference: policy globs (`*`, `?`, `**`, `**/`, `\`), by backtracking with a memo ---

#[derive(Clone, Copy, Debug, PartialEq)]
enum G {
    /// The character itself.
    Lit(char),
    /// One character but `/` (the policy's `?`).
    One,
    /// One character, `/` too (Entra's `?`).
    AnyOne,
    /// A run without `/` (the policy's `*`).
    Star,
    /// Any run (the policy's `**` inside a segment, Entra's `*`).
    Any,
    /// Whole segments (the policy's `**/`).
    Dirs,
}

/// Compiles a policy glob as the policy documentation describes it; `None` when it must be refused
/// (empty, over 1024 characters, a trailing `\`, three or more `*` in a row).
pub fn ref_glob_compile(pattern: &str) -> Option<Vec<char>> {
    let chars: Vec<char> = pattern.chars().collect();
    if chars.is_empty() || chars.len() > 1024 {
        return None;
    }
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 == chars.len() => return None,
            '\\' => i += 2,
            '*' => {
                let run = chars[i..].iter().take_while(|&&c| c == '*').count();
                if run > 2 {
                    return None;
                }
                i += run;
            }
            _ => i += 1,
        }
    }
    Some(chars)
}

fn glob_tokens(chars: &[char]) -> Vec<G> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                out.push(G::Lit(chars[i + 1]));
                i += 2;
            }
            '?' => {
                out.push(G::One);
                i += 1;
            }
            '*' if chars.get(i + 1) == Some(&'*') => {
                // `**` alone between slashes (or at the start) before a `/`: zero or more dirs.
                let whole = (i == 0 || chars[i - 1] == '/') && chars.get(i + 2) == Some(&'/');
                if whole {
                    out.push(G::Dirs);
                    i += 3;
                } else {
                    out.push(G::Any);
                    i += 2;
                }
            }
            '*' => {
                out.push(G::Star);
                i += 1;
            }
            c => {
                out.push(G::Lit(c));
                i += 1;
            }
        }
    }
    out
}

/// Whether `value` matches the compiled glob, by plain backtracking (memoized).
pub fn ref_glob_matches(compiled: &[char], value: &str) -> bool {
    let tokens = glob_tokens(compiled);
    let text: Vec<char> = value.chars().collect();
    let mut memo = HashMap::new();
    glob_at(&tokens, &text, 0, 0, &mut memo)
}

fn glob_at(
    p: &[G],
    t: &[char],
    i: usize,
    j: usize,
    memo: &mut HashMap<(usize, usize), bool>,
) -> bool {
    if let Some(&known) = memo.get(&(i, j)) {
        return known;
    }
    let result = match p.get(i) {
        None => j == t.len(),
        Some(G::Lit(c)) => t.get(j) == Some(c) && glob_at(p, t, i + 1, j + 1, memo),
        Some(G::One) => t.get(j).is_some_and(|&c| c != '/') && glob_at(p, t, i + 1, j + 1, memo),
        Some(G::AnyOne) => j < t.len() && glob_at(p, t, i + 1, j + 1, memo),
        Some(G::Star) => (j..=t.len())
            .take_while(|&k| k == j || t[k - 1] != '/')
            .any(|k| glob_at(p, t, i + 1, k, memo)),
        Some(G::Any) => (j..=t.len()).any(|k| glob_at(p, t, i + 1, k, memo)),
        Some(G::Dirs) => (j..=t.len())
            .filter(|&k| k == j || t[k - 1] == '/')
            .any(|k| glob_at(p, t, i + 1, k, memo)),
    };
    memo.insert((i, j), result);
    result
}

// --- the flexible federated credential reference: Entra's documented language, version 1 ------

/// One parsed clause: claim, `true` for `matches` (`false` for `eq`), comparand.
pub type RefClause = (String, bool, String);

/// Parses `claims['<name>'] <matches|eq> '<comparand>'` joined by ` and `, exactly as documented
/// (one space around every word, nothing else); `None` when the text is not in the language.
pub fn ref_expression_parse(source: &str) -> Option<Vec<RefClause>> {
    let length = source.chars().count();
    if length == 0 || length > 2048 {
        return None;
    }
    let mut rest = source;
    let mut clauses = Vec::new();
    loop {
        rest = rest.strip_prefix("claims['")?;
        let end = rest.find('\'')?;
        let name = &rest[..end];
        if name.is_empty() {
            return None;
        }
        rest = rest[end + 1..].strip_prefix("] ")?;
        let space = rest.find(' ')?;
        let matches = match &rest[..space] {
            "matches" => true,
            "eq" => false,
            _ => return None,
        };
        rest = rest[space..].strip_prefix(" '")?;
        let end = rest.find('\'')?;
        clauses.push((name.to_owned(), matches, rest[..end].to_owned()));
        rest = &rest[end + 1..];
        if rest.is_empty() {
            return Some(clauses);
        }
        rest = rest.strip_prefix(" and ")?;
    }
}

/// Entra's `matches`: `*` any run of characters, `?` exactly one, anything else itself; anchored.
pub fn ref_wildcard(pattern: &str, value: &str) -> bool {
    let tokens: Vec<G> = pattern
        .chars()
        .map(|c| match c {
            '*' => G::Any,
            '?' => G::AnyOne,
            c => G::Lit(c),
        })
        .collect();
    let text: Vec<char> = value.chars().collect();
    glob_at(&tokens, &text, 0, 0, &mut HashMap::new())
}

/// Evaluates parsed clauses against claims: every clause must hold; a claim that is absent or
/// not a string holds for nothing.
pub fn ref_expression_eval(
    clauses: &[RefClause],
    claims: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    clauses.iter().all(|(name, matches, comparand)| match claims.get(name) {
        Some(serde_json::Value::String(value)) => {
            if *matches {
                ref_wildcard(comparand, value)
            } else {
                value == comparand
            }
        }
        _ => false,
    })
}

// --- leaks ----------------------------------------------------------------------------------------

/// Shortest secret the leak checks look for: shorter strings can appear in a message by
/// coincidence (a one-letter token is in every word), so they prove nothing.
pub const MIN_SECRET_CHARS: usize = 16;

/// `text` with every ASCII letter and digit moved one place on in its class (`z` to `a`): a
/// different secret of the same shape, which every parser here reads exactly as the original.
/// A message that shows the original and, for the rotated input, the rotated value instead,
/// quotes the input; one that shows the original either way wrote that text itself.
pub fn rotate(text: &[u8]) -> Vec<u8> {
    text.iter()
        .map(|&b| match b {
            b'z' => b'a',
            b'Z' => b'A',
            b'9' => b'0',
            b if b.is_ascii_alphanumeric() => b + 1,
            b => b,
        })
        .collect()
}

/// How often `needle` occurs in `haystack` (overlapping occurrences count).
pub fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || needle.len() > haystack.len() {
        return 0;
    }
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Every string value of an `"access_token"` member in `body`, found by a lenient scan that does
/// not need the body to be valid JSON (a truncated answer still carries its token).
pub fn access_token_values(body: &[u8]) -> Vec<Vec<u8>> {
    const KEY: &[u8] = b"\"access_token\"";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = body[from..].windows(KEY.len()).position(|w| w == KEY) {
        let mut i = from + at + KEY.len();
        from = i;
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if body.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while body.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if body.get(i) != Some(&b'"') {
            continue;
        }
        let start = i + 1;
        let len = body[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .unwrap_or(body.len() - start);
        out.push(body[start..start + len].to_vec());
    }
    out
}

/// An HTTP answer from a token endpoint's fuzz input: status, `Content-Type` and `Retry-After`
/// (when given), one a line, then the body; `None` when the status is not a number.
pub fn token_answer(data: &[u8]) -> Option<(u16, Vec<(String, String)>, &[u8])> {
    let [status, content_type, retry_after, body] = fields::<4>(data);
    let status = text(status).trim().parse::<u16>().ok()?;
    let mut headers = vec![("Content-Type".to_owned(), text(content_type))];
    if !retry_after.is_empty() {
        headers.push(("Retry-After".to_owned(), text(retry_after)));
    }
    Some((status, headers, body))
}

/// Asserts that no `access_token` value of `body` is quoted by `shown` (the text and debug form
/// of what the parser under test made of a body). Only token-like values of at least
/// [`MIN_SECRET_CHARS`] that occur once in the whole input `data` are checked, and a value counts
/// as quoted only if the output follows it: with the token rotated in the body, the output shows
/// the rotated one instead. Text the parser writes itself, which the fuzzer can copy into the
/// token, stays the same and is not a leak.
pub fn assert_no_access_token_quoted(
    data: &[u8],
    body: &[u8],
    shown: impl Fn(&[u8]) -> String,
    what: &str,
) {
    let original = shown(body);
    for secret in access_token_values(body) {
        let token_like = secret.iter().all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(b));
        if secret.len() < MIN_SECRET_CHARS || !token_like || occurrences(data, &secret) != 1 {
            continue;
        }
        if occurrences(original.as_bytes(), &secret) == 0 {
            continue;
        }
        let at =
            body.windows(secret.len()).position(|w| w == secret.as_slice()).expect("in the body");
        let mut swapped = body.to_vec();
        swapped[at..at + secret.len()].copy_from_slice(&rotate(&secret));
        let again = shown(&swapped);
        let quoted = occurrences(again.as_bytes(), &secret) == 0
            && occurrences(again.as_bytes(), &rotate(&secret)) > 0;
        assert!(!quoted, "the {what} {:?} is in {original}", String::from_utf8_lossy(&secret));
    }
}

/// One `application/x-www-form-urlencoded` name or value, decoded strictly: `+` is a space and
/// `%` takes exactly two hex digits; `None` for a broken escape or bytes that are not UTF-8.
pub fn form_value(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

// --- keys for the mutation target -----------------------------------------------------------------

/// The PKCS#8 DER inside the first PEM block of `pem`.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let std = body.replace('+', "-").replace('/', "_");
    b64_decode_lenient(std.trim_end_matches('=')).unwrap_or_default()
}

/// Wraps DER in a PEM block with `label`, 64 characters a line (standard alphabet, padded).
pub fn pem(label: &str, der: &[u8]) -> String {
    let mut b = b64(der).replace('-', "+").replace('_', "/");
    while b.len() % 4 != 0 {
        b.push('=');
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_knows_canonical() {
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"fo"), "Zm8");
        assert!(canonical_b64("Zm8"));
        assert!(!canonical_b64("Zm9"), "trailing bits set");
        assert!(!canonical_b64("Zm8="));
    }

    #[test]
    fn glob_reference_follows_the_documentation() {
        let g = |p: &str, v: &str| ref_glob_matches(&ref_glob_compile(p).unwrap(), v);
        assert!(g("feature/*", "feature/x"));
        assert!(!g("feature/*", "feature/x/y"));
        assert!(g("a/**/b", "a/b"));
        assert!(g("a/**/b", "a/x/y/b"));
        assert!(g("a**", "a/b"));
        assert!(g("v?.\\*", "v1.*"));
        assert!(ref_glob_compile("a***").is_none());
        assert!(ref_glob_compile("a\\").is_none());
    }

    #[test]
    fn expression_reference_follows_the_documentation() {
        let c = ref_expression_parse("claims['sub'] matches 'a*' and claims['x'] eq 'b'").unwrap();
        assert_eq!(c.len(), 2);
        assert!(ref_expression_parse("claims['sub']  eq 'a'").is_none());
        assert!(ref_wildcard("a*c?", "abbbcd"));
        assert!(ref_wildcard("a?c*", "a/c/d"), "Entra's wildcards cross `/`");
        assert!(!ref_wildcard("a?c", "ac"));
    }

    #[test]
    fn access_tokens_are_found_in_broken_json() {
        assert_eq!(access_token_values(br#"{"access_token" : "abc"#), vec![b"abc".to_vec()]);
    }
}
