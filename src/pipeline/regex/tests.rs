#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern, "").unwrap_or_else(|e| panic!("/{pattern}/: {e}"))
}

#[test]
fn searches_unanchored_like_re2() {
    assert!(re("release").is_match("hotfix-release-2"));
    assert!(!re("^release").is_match("hotfix-release-2"));
    assert!(re("^release/.*$").is_match("release/1.2"));
    assert!(!re("^release/.*$").is_match("releases/1.2"));
}

#[test]
fn classes_escapes_and_quantifiers() {
    let semver = re(r"^v\d+\.\d+\.\d+$");
    assert!(semver.is_match("v1.20.3"));
    assert!(!semver.is_match("v1.20"));
    assert!(!semver.is_match("v1x2x3"));
    assert!(re("^[a-z0-9_-]{3,5}$").is_match("ab-9"));
    assert!(!re("^[a-z0-9_-]{3,5}$").is_match("ab"));
    assert!(re("^[^/]+$").is_match("main"));
    assert!(!re("^[^/]+$").is_match("feature/x"));
    assert!(re(r"^\w+\s\S$").is_match("ab c"));
    assert!(re("^(main|master)$").is_match("master"));
    assert!(re("^(?:feat|fix)/.+?$").is_match("fix/x"));
    assert!(re("^a{2}$").is_match("aa"));
    assert!(!re("^a{2}$").is_match("aaa"));
    assert!(re(r"\Amain\z").is_match("main"));
}

#[test]
fn case_insensitive_flag() {
    let regex = Regex::new("^RELEASE-[a-z]$", "i").unwrap();
    assert!(regex.is_match("release-X"));
    assert!(!re("^RELEASE$").is_match("release"));
}

#[test]
fn unsupported_syntax_is_refused_not_guessed() {
    for pattern in
        ["(?=x)", "(?i)main", r"(a)\1", "[[:alpha:]]", "a**", "(", "a)", "[z-a]", "x{3,1}"]
    {
        assert!(Regex::new(pattern, "").is_err(), "/{pattern}/ should be refused");
    }
    assert!(Regex::new("a", "x").is_err());
    assert!(Regex::new(&"a".repeat(MAX_PATTERN_CHARS + 1), "").is_err());
}

#[test]
fn nested_quantifiers_stay_linear() {
    let regex = re("^(a*)*b$");
    let text = "a".repeat(5000);
    assert!(!regex.is_match(&text));
}

#[test]
fn examples_match_their_pattern() {
    assert_eq!(re(r"^v\d+\.\d+\.\d+$").example().as_deref(), Some("v1.1.1"));
    assert_eq!(re(r"^release\/.*$").example().as_deref(), Some("release/x"));
    assert_eq!(re("^(main|master)$").example().as_deref(), Some("main"));
    assert_eq!(re("^$").example(), None);
}

#[test]
fn simple_patterns_become_entra_wildcards() {
    assert_eq!(re(r"^release\/.*$").to_wildcard(), Some(("release/*".to_owned(), false)));
    assert_eq!(re("^v").to_wildcard(), Some(("v*".to_owned(), false)));
    assert_eq!(re("hotfix").to_wildcard(), Some(("*hotfix*".to_owned(), false)));
    assert_eq!(re(r"^v\d+$").to_wildcard(), Some(("v*".to_owned(), true)));
    assert_eq!(re("^(a|b)$").to_wildcard(), None);
}

#[test]
fn split_literal_reads_slashes_and_flags() {
    assert_eq!(split_literal("/^v1/i"), Some(("^v1", "i")));
    assert_eq!(split_literal(r"/a\/b/"), Some((r"a\/b", "")));
    assert_eq!(split_literal("main"), None);
    assert_eq!(split_literal("/a/1"), None);
}
