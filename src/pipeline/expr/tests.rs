#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn eval(source: &str, vars: &[(&str, Option<&str>)]) -> (Tri, Vec<String>) {
    let expr = Expr::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    let lookup = |name: &str| match vars.iter().find(|(n, _)| *n == name) {
        Some((_, v)) => Var::Known(v.map(str::to_owned)),
        None => Var::Unknown(format!("${name}")),
    };
    let mut why = Vec::new();
    let result = expr.eval(&lookup, &mut why);
    (result, why)
}

#[test]
fn the_common_patterns() {
    let main = [
        ("CI_COMMIT_BRANCH", Some("main")),
        ("CI_DEFAULT_BRANCH", Some("main")),
        ("CI_COMMIT_TAG", None),
    ];
    assert_eq!(eval(r#"$CI_COMMIT_BRANCH == "main""#, &main).0, Tri::Yes);
    assert_eq!(eval("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", &main).0, Tri::Yes);
    assert_eq!(eval("$CI_COMMIT_TAG", &main).0, Tri::No);
    assert_eq!(eval("$CI_COMMIT_TAG == null", &main).0, Tri::Yes);
    assert_eq!(eval("$CI_COMMIT_BRANCH != 'main'", &main).0, Tri::No);
    assert_eq!(eval(r"$CI_COMMIT_BRANCH =~ /^ma/", &main).0, Tri::Yes);
    assert_eq!(eval(r"$CI_COMMIT_BRANCH !~ /^ma/", &main).0, Tri::No);
    assert_eq!(eval(r"$CI_COMMIT_TAG =~ /^v/", &main).0, Tri::No);
}

#[test]
fn and_binds_tighter_than_or() {
    let vars = [("A", Some("1")), ("B", None), ("C", Some("1"))];
    assert_eq!(eval("$A || $B && $B", &vars).0, Tri::Yes);
    assert_eq!(eval("($A || $B) && $B", &vars).0, Tri::No);
    assert_eq!(eval("$B && $A || $C", &vars).0, Tri::Yes);
}

#[test]
fn unknown_values_give_unknown_with_the_reason() {
    let vars = [("CI_COMMIT_BRANCH", Some("main"))];
    let (result, why) = eval("$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS", &vars);
    assert_eq!(result, Tri::Unknown);
    assert_eq!(why, ["$CI_OPEN_MERGE_REQUESTS"]);
    // A known false on the left of && decides without the unknown.
    let (result, why) = eval(r#"$CI_COMMIT_BRANCH == "x" && $DEPLOY"#, &vars);
    assert_eq!(result, Tri::No);
    assert!(why.is_empty());
    // A known true on the left of || decides too.
    assert_eq!(eval(r#"$CI_COMMIT_BRANCH == "main" || $DEPLOY"#, &vars).0, Tri::Yes);
}

#[test]
fn a_regex_held_by_a_variable() {
    let vars = [("CI_COMMIT_BRANCH", Some("release/1")), ("PATTERN", Some("/^release/"))];
    assert_eq!(eval("$CI_COMMIT_BRANCH =~ $PATTERN", &vars).0, Tri::Yes);
    let vars = [("CI_COMMIT_BRANCH", Some("release/1")), ("PATTERN", Some("release"))];
    let (result, why) = eval("$CI_COMMIT_BRANCH =~ $PATTERN", &vars);
    assert_eq!(result, Tri::Unknown);
    assert!(why[0].contains("not a /regex/"), "{why:?}");
}

#[test]
fn unsupported_regex_is_unknown_not_false() {
    let vars = [("CI_COMMIT_BRANCH", Some("main"))];
    let (result, why) = eval("$CI_COMMIT_BRANCH =~ /(?=m)/", &vars);
    assert_eq!(result, Tri::Unknown);
    assert!(why[0].contains("does not evaluate"), "{why:?}");
}

#[test]
fn syntax_errors_name_the_column() {
    let err = Expr::parse("$A == ").unwrap_err();
    assert_eq!(err.column, 7);
    let err = Expr::parse(r#"$A == "x" and $B"#).unwrap_err();
    assert_eq!(err.column, 11);
    assert!(Expr::parse("($A").is_err());
    assert!(Expr::parse("$A == 'unterminated").is_err());
    assert!(Expr::parse(&"(".repeat(40)).is_err());
    assert!(Expr::parse(&vec!["$A"; 66].join(" && ")).is_err());
    assert!(Expr::parse(&vec!["$A"; 65].join(" || ")).is_ok());
}

#[test]
fn comparisons_collect_names_and_patterns() {
    let expr =
        Expr::parse(r#"$CI_COMMIT_BRANCH == "main" || $CI_COMMIT_TAG =~ /^v\d/ || "x" == $Y"#)
            .unwrap();
    let mut out = Vec::new();
    expr.comparisons(&mut out);
    assert_eq!(
        out,
        [
            ("CI_COMMIT_BRANCH".to_owned(), Literal::Name("main".to_owned())),
            ("CI_COMMIT_TAG".to_owned(), Literal::Pattern(r"^v\d".to_owned(), String::new())),
            ("Y".to_owned(), Literal::Name("x".to_owned())),
        ]
    );
}
