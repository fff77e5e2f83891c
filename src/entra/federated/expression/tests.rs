use serde_json::json;

use super::*;
use crate::entra::federated::ExpressionError;

fn claims(sub: &str) -> Claims {
    Claims::test_job("https://gitlab.com", 1_760_000_000, |raw| raw["sub"] = json!(sub))
}

fn holds(expression: &str, sub: &str) -> bool {
    Expression::parse(expression).unwrap().evaluate(&claims(sub))
}

#[test]
fn gitlabs_documented_examples() {
    // GitLab's Azure doc: one credential for every branch, one for every tag.
    let branches = "claims['sub'] matches 'project_path:mygroup/myproject:ref_type:branch:ref:*'";
    assert!(holds(branches, "project_path:mygroup/myproject:ref_type:branch:ref:main"));
    assert!(holds(branches, "project_path:mygroup/myproject:ref_type:branch:ref:feature/x"));
    assert!(!holds(branches, "project_path:mygroup/myproject:ref_type:tag:ref:v1"));
    let tags = "claims['sub'] matches 'project_path:mygroup/myproject:ref_type:tag:ref:*'";
    assert!(holds(tags, "project_path:mygroup/myproject:ref_type:tag:ref:v1.0"));
}

#[test]
fn wildcards_and_eq() {
    assert!(holds("claims['sub'] matches 'a?c'", "abc"));
    assert!(!holds("claims['sub'] matches 'a?c'", "ac"));
    assert!(holds("claims['sub'] matches 'a*'", "a"));
    assert!(holds("claims['sub'] matches '*'", ""));
    assert!(holds("claims['sub'] eq 'x:y'", "x:y"));
    assert!(!holds("claims['sub'] eq 'x:*'", "x:y"), "eq has no wildcards");
    assert!(!holds("claims['sub'] eq 'ABC'", "abc"), "case-sensitive");
    assert!(!holds("claims['sub'] matches 'A*'", "abc"), "case-sensitive");
}

#[test]
fn and_requires_every_clause() {
    let e = "claims['sub'] matches 'p:*' and claims['sub'] matches '*:main'";
    assert!(holds(e, "p:main"));
    assert!(!holds(e, "p:dev"));
    assert!(!holds(e, "q:main"));
    let parsed = Expression::parse(e).unwrap();
    assert_eq!(parsed.claims(), ["sub", "sub"]);
}

#[test]
fn absent_or_non_string_claims_hold_for_nothing() {
    assert!(!holds("claims['no_such_claim'] matches '*'", "x"));
    assert!(!holds("claims['runner_id'] eq '12'", "x"), "runner_id is a number");
}

fn err(expression: &str) -> ExpressionError {
    Expression::parse(expression).expect_err("must not parse")
}

#[test]
fn parse_errors_name_the_column() {
    assert_eq!(err(""), ExpressionError::Empty);
    assert_eq!(
        err("claim['sub'] eq 'x'"),
        ExpressionError::Unexpected {
            column: 1,
            expected: "`claims['`".into(),
            found: "`claim['sub']`".into()
        }
    );
    // The name runs to the next quote, so `]` is then missing.
    assert!(matches!(err("claims['sub] eq 'x'"), ExpressionError::Unexpected { column: 18, .. }));
    assert_eq!(err("claims['sub"), ExpressionError::Unterminated { column: 8 });
    assert_eq!(err("claims[''] eq 'x'"), ExpressionError::EmptyClaimName { column: 9 });
    assert_eq!(
        err("claims['sub'] Matches 'x'"),
        ExpressionError::UnknownOperator { column: 15, operator: "Matches".into() }
    );
    assert_eq!(
        err("claims['sub'] like 'x'"),
        ExpressionError::UnknownOperator { column: 15, operator: "like".into() }
    );
    assert_eq!(err("claims['sub'] eq 'x"), ExpressionError::Unterminated { column: 18 });
    assert!(matches!(
        err("claims['sub']  eq 'x'"),
        ExpressionError::Unexpected { column: 15, ref expected, .. }
            if expected == "exactly one space before the operator"
    ));
    assert!(matches!(err("claims['sub'] eq  'x'"), ExpressionError::Unexpected { column: 18, .. }));
    assert!(matches!(err("claims['sub']eq 'x'"), ExpressionError::Unexpected { column: 14, .. }));
    assert!(matches!(
        err("claims['sub'] eq x"),
        ExpressionError::Unexpected { column: 18, ref expected, .. }
            if expected == "a comparand in single quotes"
    ));
    assert!(matches!(
        err("claims['sub'] eq 'x' or claims['sub'] eq 'y'"),
        ExpressionError::Unexpected { column: 22, .. }
    ));
    assert!(matches!(
        err("claims['sub'] eq 'x' and"),
        ExpressionError::Unexpected { column: 25, ref found, .. } if found == "the end"
    ));
    assert!(matches!(err("claims['sub'] eq 'x'y"), ExpressionError::Unexpected { column: 21, .. }));
    assert!(matches!(err("claims['sub'] eq"), ExpressionError::Unexpected { column: 17, .. }));
    assert!(matches!(
        err(&format!("claims['sub'] eq '{}'", "a".repeat(MAX_EXPRESSION_CHARS))),
        ExpressionError::TooLong { .. }
    ));
}

#[test]
fn parse_errors_read_well() {
    assert_eq!(
        err("claims['sub'] Matches 'x'").to_string(),
        "column 15: unknown operator `Matches`; language version 1 has only `matches` \
         (wildcards `*` and `?`) and `eq`"
    );
    assert_eq!(err("claims['sub'] eq 'x").kind(), "expression-unterminated");
}

#[test]
fn wildcard_agrees_with_a_reference() {
    fn reference(p: &[char], t: &[char]) -> bool {
        match p {
            [] => t.is_empty(),
            ['*', rest @ ..] => (0..=t.len()).any(|k| reference(rest, &t[k..])),
            ['?', rest @ ..] => !t.is_empty() && reference(rest, &t[1..]),
            [c, rest @ ..] => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n).unwrap()
    };
    for _ in 0..10_000 {
        let p: Vec<char> = (0..next(6) + 1).map(|_| ['a', 'b', '*', '?', '/'][next(5)]).collect();
        let t: Vec<char> = (0..next(7)).map(|_| ['a', 'b', '/'][next(3)]).collect();
        let (ps, ts): (String, String) = (p.iter().collect(), t.iter().collect());
        assert_eq!(wildcard(&ps, &ts), reference(&p, &t), "{ps:?} {ts:?}");
    }
}

#[test]
fn arbitrary_input_never_panics() {
    let seed =
        "claims['sub'] matches 'project_path:a/b:ref_type:branch:ref:*' and claims['sub'] eq 'x'";
    let alphabet: Vec<char> = "claims[']` matcheseqand*?\u{e9}\0\n".chars().collect();
    let mut state: u64 = 0x1234_5678_9ABC_DEF1;
    for _ in 0..5000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut chars: Vec<char> = seed.chars().collect();
        for k in 0..(state % 4) {
            let pos = usize::try_from((state >> (8 * k)) % 90).unwrap() % chars.len();
            let c = alphabet[usize::try_from(state >> 40).unwrap() % alphabet.len()];
            if (state >> (k + 3)) & 1 == 0 {
                chars[pos] = c;
            } else {
                chars.truncate(pos);
            }
            if chars.is_empty() {
                break;
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.evaluate(&claims("project_path:a/b:ref_type:branch:ref:main"));
        }
    }
}
