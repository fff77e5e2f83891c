//! Identifier checks and "did you mean": one copy each, for every part of the core.

/// A GUID in its registry form, `8-4-4-4-12` hexadecimal digits (either case, no braces).
pub(crate) fn is_guid(s: &str) -> bool {
    let mut groups = s.split('-');
    let fits = [8, 4, 4, 4, 12].iter().all(|&len| {
        groups.next().is_some_and(|g| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    fits && groups.next().is_none()
}

/// A DNS name of at least two labels (RFC 1035 letters, digits and hyphens; RFC 1123 allows a
/// leading digit), at most 253 characters, whose last label is not numeric (so not an address).
pub(crate) fn is_domain_name(s: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    s.len() <= 253
        && s.split('.').count() >= 2
        && s.split('.').all(label_ok)
        && s.rsplit('.').next().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

/// `bytes` as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
pub(crate) fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Formats 16 random bytes as a version 4, variant 1 UUID (RFC 9562 section 5.4), lowercase.
pub(crate) fn uuid_v4(mut bytes: [u8; 16]) -> String {
    // Constant indices into a [u8; 16]: checked at compile time.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format_uuid(&bytes)
}

/// `value` as a canonical lowercase GUID when it is one (also in braces, as .NET prints them).
pub(crate) fn canonical_guid(value: &str) -> Option<String> {
    let inner = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')).unwrap_or(value);
    is_guid(inner).then(|| inner.to_ascii_lowercase())
}

/// Levenshtein distance by characters, for "did you mean".
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(usize::MAX);
            let left = row.get(j).copied().unwrap_or(usize::MAX);
            let cost = usize::from(ca != *cb);
            let best = (diagonal + cost).min(above.saturating_add(1)).min(left.saturating_add(1));
            diagonal = above;
            if let Some(slot) = row.get_mut(j + 1) {
                *slot = best;
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The candidate closest to `word`, if it is close enough to be a likely typo (a third of its
/// length in edits, at least one and at most two; a difference in case alone always counts).
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (word.chars().count() / 3).clamp(1, 2);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            let d = if c.eq_ignore_ascii_case(word) { 0 } else { distance(word, c) };
            (d, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

/// `" (did you mean `x`?)"` when a candidate is close to `word`, else empty: the tail of a
/// message that names an unknown value.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    suggest(word, candidates).map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_in_either_case_and_nothing_else() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
        assert!(!is_guid("{72f988bf-86f1-41af-91ab-2d7cd011db47}"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47-0"));
        assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
        assert!(!is_guid("72f988bg-86f1-41af-91ab-2d7cd011db47"));
        assert_eq!(
            canonical_guid("{72F988BF-86F1-41AF-91AB-2D7CD011DB47}").as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        assert_eq!(canonical_guid("72f988bf"), None);
    }

    #[test]
    fn domain_names_need_two_labels_and_a_non_numeric_top_label() {
        assert!(is_domain_name("contoso.onmicrosoft.com"));
        assert!(!is_domain_name("contoso"));
        assert!(!is_domain_name("10.0.0.1"));
        assert!(!is_domain_name("-a.com"));
        assert!(!is_domain_name("a..com"));
    }

    #[test]
    fn suggestions_are_close_matches_only() {
        assert_eq!(
            suggest("ref_protectd", ["ref_protected", "ref"]).as_deref(),
            Some("ref_protected")
        );
        assert_eq!(suggest("Ref", ["ref"]).as_deref(), Some("ref"));
        assert_eq!(suggest("zzzzzz", ["ref"]), None);
        assert_eq!(did_you_mean("alow", ["allow", "deny"]), " (did you mean `allow`?)");
    }
}
