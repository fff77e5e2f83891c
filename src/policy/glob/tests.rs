use super::*;

fn glob(p: &str) -> Glob {
    Glob::new(p).unwrap()
}

#[test]
fn star_stays_within_a_segment() {
    assert!(glob("acme/*").matches("acme/payments"));
    assert!(!glob("acme/*").matches("acme/team/payments"));
    assert!(glob("release/*").matches("release/"));
    assert!(!glob("acme/*").matches("acme"));
}

#[test]
fn double_star_crosses_segments() {
    assert!(glob("acme/**").matches("acme/team/payments"));
    assert!(glob("acme/**").matches("acme/x"));
    assert!(!glob("acme/**").matches("acmex/y"));
    assert!(glob("a/**/b").matches("a/b"));
    assert!(glob("a/**/b").matches("a/x/y/b"));
    assert!(!glob("a/**/b").matches("a/xb"));
    assert!(glob("**/payments").matches("payments"));
    assert!(glob("**/payments").matches("acme/team/payments"));
    assert!(glob("release-**").matches("release-1/2"));
}

#[test]
fn question_mark_is_one_character_but_not_a_slash() {
    assert!(glob("v?.0").matches("v1.0"));
    assert!(!glob("v?.0").matches("v10.0"));
    assert!(!glob("a?b").matches("a/b"));
    assert!(glob("caf?").matches("café"));
}

#[test]
fn escapes_make_wildcards_literal() {
    assert!(glob(r"a\*b").matches("a*b"));
    assert!(!glob(r"a\*b").matches("axb"));
    assert_eq!(glob(r"a\*b").literal().as_deref(), Some("a*b"));
    assert_eq!(glob("a*b").literal(), None);
}

#[test]
fn matching_is_case_sensitive_and_anchored() {
    assert!(!glob("acme/*").matches("ACME/x"));
    assert!(!glob("main").matches("main2"));
    assert!(!glob("main").matches("xmain"));
}

#[test]
fn bad_patterns_are_refused_with_a_position() {
    assert_eq!(Glob::new("").unwrap_err().position, 0);
    assert_eq!(Glob::new("ab\\").unwrap_err().position, 2);
    assert_eq!(Glob::new("a***").unwrap_err().position, 1);
    assert!(Glob::new(&"a".repeat(MAX_GLOB_CHARS + 1)).is_err());
}

#[test]
fn entra_form_is_never_narrower() {
    assert_eq!(glob("acme/**").to_entra(), ("acme/*".to_owned(), false));
    assert_eq!(glob("release/*").to_entra(), ("release/*".to_owned(), true));
    assert_eq!(glob("v?").to_entra(), ("v?".to_owned(), false));
    assert_eq!(glob(r"a\*").to_entra(), ("a?".to_owned(), true));
    assert_eq!(glob("a/**/b").to_entra(), ("a/*b".to_owned(), false));
}

/// A slow, obviously correct matcher over the same syntax (without escapes).
fn reference(p: &[char], t: &[char]) -> bool {
    match p {
        [] => t.is_empty(),
        ['*', '*', '/', rest @ ..] => {
            // `**/` as a whole segment is handled by the caller's flag; here: any prefix ending
            // in `/`, or nothing.
            (0..=t.len()).any(|k| {
                (k == 0 || t.get(k - 1) == Some(&'/')) && reference(rest, t.get(k..).unwrap())
            })
        }
        ['*', '*', rest @ ..] => (0..=t.len()).any(|k| reference(rest, t.get(k..).unwrap())),
        ['*', rest @ ..] => (0..=t.len())
            .take_while(|&k| k == 0 || t.get(k - 1) != Some(&'/'))
            .any(|k| reference(rest, t.get(k..).unwrap())),
        ['?', rest @ ..] => matches!(t, [c, tail @ ..] if *c != '/' && reference(rest, tail)),
        [c, rest @ ..] => matches!(t, [d, tail @ ..] if c == d && reference(rest, tail)),
    }
}

#[test]
fn agrees_with_a_reference_implementation() {
    let alphabet = ['a', 'b', '/', '*', '?'];
    let text_alphabet = ['a', 'b', '/'];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % u64::try_from(n).unwrap()).unwrap()
    };
    let mut checked = 0;
    for _ in 0..20_000 {
        let plen = next(7) + 1;
        let pattern: String = (0..plen).map(|_| alphabet[next(alphabet.len())]).collect();
        let Ok(compiled) = Glob::new(&pattern) else { continue };
        // The reference reads `**/` as the segment form only where the compiler does.
        let chars: Vec<char> = pattern.chars().collect();
        let segment_form_elsewhere = chars
            .windows(3)
            .enumerate()
            .any(|(i, w)| w == ['*', '*', '/'] && i > 0 && chars[i - 1] != '/');
        if segment_form_elsewhere {
            continue;
        }
        let tlen = next(8);
        let text: String = (0..tlen).map(|_| text_alphabet[next(text_alphabet.len())]).collect();
        let t: Vec<char> = text.chars().collect();
        assert_eq!(
            compiled.matches(&text),
            reference(&chars, &t),
            "pattern {pattern:?} text {text:?}"
        );
        checked += 1;
    }
    assert!(checked > 5000);
}

#[test]
fn large_inputs_stay_fast() {
    let g = glob(&"*a".repeat(200));
    assert!(!g.matches(&"a".repeat(199)));
    assert!(g.matches(&"a".repeat(400)));
}
