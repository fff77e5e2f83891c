//! GitLab CI expressions (`rules:if`, `only:variables`), evaluated with three values.
//!
//! The grammar GitLab documents: variables (`$VAR`, `${VAR}`), string literals in double or
//! single quotes, `null`, regex literals (`/pattern/flags`), the comparisons `==`, `!=`, `=~`,
//! `!~`, the connectives `&&` (binds tighter) and `||`, and parentheses. A variable alone is
//! true when it is set and not empty. Undefined variables are `null`.
//!
//! The linter does not know every variable (a project variable, the commit message, whether a
//! merge request is open), so a value can be unknown and an expression can evaluate to
//! [`Tri::Unknown`]; the reasons are collected so the report can say what it could not evaluate.

use std::fmt;

use super::regex::{split_literal, Regex, Unsupported};

/// Longest accepted expression, in characters.
const MAX_EXPRESSION_CHARS: usize = 4096;
/// Deepest accepted parenthesis nesting.
const MAX_NESTING: usize = 32;
/// Most `&&` and `||` in one expression (evaluation recurses once per connective).
const MAX_CONNECTIVES: usize = 64;

/// A truth value that may be unknown (Kleene's logic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tri {
    /// Certainly false.
    No,
    /// Depends on something the linter cannot know.
    Unknown,
    /// Certainly true.
    Yes,
}

impl Tri {
    pub(crate) fn and(self, other: Self) -> Self {
        self.min(other)
    }

    pub(crate) fn or(self, other: Self) -> Self {
        self.max(other)
    }

    pub(crate) fn not(self) -> Self {
        match self {
            Self::No => Self::Yes,
            Self::Unknown => Self::Unknown,
            Self::Yes => Self::No,
        }
    }

    pub(crate) fn from_bool(b: bool) -> Self {
        if b {
            Self::Yes
        } else {
            Self::No
        }
    }
}

/// The value of a variable in one pipeline the linter imagines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Var {
    /// Set to this value (`None`: not set, i.e. `null`).
    Known(Option<String>),
    /// Could be anything: why.
    Unknown(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Var(String),
    Str(String),
    Regex(String, String),
    Null,
    Eq,
    Ne,
    Match,
    NoMatch,
    And,
    Or,
    Open,
    Close,
}

/// An expression that does not parse: what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based column.
    pub(crate) column: usize,
    /// What was expected there.
    pub(crate) expected: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: expected {}", self.column, self.expected)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Operand {
    Var(String),
    Str(String),
    /// Pattern, flags, and the pattern compiled once.
    Regex(String, String, Result<Regex, Unsupported>),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Match,
    NoMatch,
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Operand, Cmp, Operand),
    Value(Operand),
}

fn tokenize(source: &str) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err =
        |i: usize, expected: &str| SyntaxError { column: i + 1, expected: expected.to_owned() };
    while let Some(&c) = chars.get(i) {
        let start = i;
        let next = chars.get(i + 1).copied();
        let token = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('$', Some('{')) => {
                let close = (i + 2..chars.len()).find(|j| chars.get(*j) == Some(&'}'));
                let Some(close) = close else { return Err(err(i, "`}` closing `${`")) };
                let name: String = chars.get(i + 2..close).unwrap_or_default().iter().collect();
                i = close + 1;
                Token::Var(name)
            }
            ('$', _) => {
                i += 1;
                let begin = i;
                while chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    i += 1;
                }
                if i == begin {
                    return Err(err(begin, "a variable name after `$`"));
                }
                Token::Var(chars.get(begin..i).unwrap_or_default().iter().collect())
            }
            ('"' | '\'', _) => {
                let close = (i + 1..chars.len()).find(|j| chars.get(*j) == Some(&c));
                let Some(close) = close else { return Err(err(i, "a closing quote")) };
                let text: String = chars.get(i + 1..close).unwrap_or_default().iter().collect();
                i = close + 1;
                Token::Str(text)
            }
            ('/', _) => {
                let mut j = i + 1;
                let mut escaped = false;
                let mut close = None;
                while let Some(&d) = chars.get(j) {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '/' {
                        close = Some(j);
                        break;
                    }
                    j += 1;
                }
                let Some(close) = close else { return Err(err(i, "a closing `/` for the regex")) };
                let mut end = close + 1;
                while chars.get(end).is_some_and(char::is_ascii_alphabetic) {
                    end += 1;
                }
                let literal: String = chars.get(i..end).unwrap_or_default().iter().collect();
                i = end;
                match split_literal(&literal) {
                    Some((pattern, flags)) => Token::Regex(pattern.to_owned(), flags.to_owned()),
                    None => return Err(err(start, "a regex literal `/pattern/flags`")),
                }
            }
            ('=', Some('=')) => {
                i += 2;
                Token::Eq
            }
            ('!', Some('=')) => {
                i += 2;
                Token::Ne
            }
            ('=', Some('~')) => {
                i += 2;
                Token::Match
            }
            ('!', Some('~')) => {
                i += 2;
                Token::NoMatch
            }
            ('&', Some('&')) => {
                i += 2;
                Token::And
            }
            ('|', Some('|')) => {
                i += 2;
                Token::Or
            }
            ('(', _) => {
                i += 1;
                Token::Open
            }
            (')', _) => {
                i += 1;
                Token::Close
            }
            ('n', _)
                if chars
                    .get(i..i + 4)
                    .is_some_and(|w| w.iter().eq(['n', 'u', 'l', 'l'].iter())) =>
            {
                i += 4;
                Token::Null
            }
            _ => {
                return Err(err(
                    i,
                    "a variable, a quoted string, a /regex/, null, a comparison (== != =~ !~), \
                     && or ||",
                ))
            }
        };
        out.push((start, token));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    depth: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn error(&self, expected: &str) -> SyntaxError {
        let column = self.tokens.get(self.pos).map_or(self.len, |(c, _)| *c) + 1;
        SyntaxError { column, expected: expected.to_owned() }
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.comparison()?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            let right = self.comparison()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<Operand, SyntaxError> {
        let operand = match self.peek() {
            Some(Token::Var(v)) => Operand::Var(v.clone()),
            Some(Token::Str(s)) => Operand::Str(s.clone()),
            Some(Token::Regex(p, f)) => Operand::Regex(p.clone(), f.clone(), Regex::new(p, f)),
            Some(Token::Null) => Operand::Null,
            _ => return Err(self.error("a variable, a quoted string, a /regex/ or null")),
        };
        self.pos += 1;
        Ok(operand)
    }

    fn comparison(&mut self) -> Result<Expr, SyntaxError> {
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_NESTING {
                return Err(self.error(&format!("at most {MAX_NESTING} nested parentheses")));
            }
            let inner = self.or()?;
            self.depth -= 1;
            if self.peek() != Some(&Token::Close) {
                return Err(self.error("`)`"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        let left = self.operand()?;
        let cmp = match self.peek() {
            Some(Token::Eq) => Cmp::Eq,
            Some(Token::Ne) => Cmp::Ne,
            Some(Token::Match) => Cmp::Match,
            Some(Token::NoMatch) => Cmp::NoMatch,
            _ => return Ok(Expr::Value(left)),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Expr::Compare(left, cmp, right))
    }
}

impl Expr {
    /// Parses an expression.
    pub(crate) fn parse(source: &str) -> Result<Self, SyntaxError> {
        let len = source.chars().count();
        if len > MAX_EXPRESSION_CHARS {
            return Err(SyntaxError {
                column: MAX_EXPRESSION_CHARS,
                expected: format!("at most {MAX_EXPRESSION_CHARS} characters"),
            });
        }
        let tokens = tokenize(source)?;
        let connectives = tokens.iter().filter(|(_, t)| matches!(t, Token::And | Token::Or));
        if let Some((column, _)) = connectives.clone().nth(MAX_CONNECTIVES) {
            return Err(SyntaxError {
                column: column + 1,
                expected: format!("at most {MAX_CONNECTIVES} `&&` and `||` in one expression"),
            });
        }
        let mut parser = Parser { tokens, pos: 0, depth: 0, len };
        let expr = parser.or()?;
        if parser.pos < parser.tokens.len() {
            return Err(parser.error("&&, || or the end of the expression"));
        }
        Ok(expr)
    }

    /// Every `(variable, literal)` comparison and every `(variable, /regex/)` match, to collect
    /// the ref names and patterns a pipeline mentions.
    pub(crate) fn comparisons(&self, out: &mut Vec<(String, Literal)>) {
        match self {
            Self::And(a, b) | Self::Or(a, b) => {
                a.comparisons(out);
                b.comparisons(out);
            }
            Self::Compare(a, cmp, b) => {
                let pair = match (a, b) {
                    (Operand::Var(v), other) | (other, Operand::Var(v)) => Some((v, other)),
                    _ => None,
                };
                match (pair, cmp) {
                    (Some((v, Operand::Str(s))), Cmp::Eq | Cmp::Ne) => {
                        out.push((v.clone(), Literal::Name(s.clone())));
                    }
                    (Some((v, Operand::Regex(p, f, _))), Cmp::Match | Cmp::NoMatch) => {
                        out.push((v.clone(), Literal::Pattern(p.clone(), f.clone())));
                    }
                    _ => {}
                }
            }
            Self::Value(_) => {}
        }
    }

    /// Evaluates with `lookup`; every reason for an unknown result is added to `why`.
    pub(crate) fn eval(&self, lookup: &dyn Fn(&str) -> Var, why: &mut Vec<String>) -> Tri {
        match self {
            Self::And(a, b) => {
                let left = a.eval(lookup, why);
                if left == Tri::No {
                    return Tri::No;
                }
                left.and(b.eval(lookup, why))
            }
            Self::Or(a, b) => {
                let left = a.eval(lookup, why);
                if left == Tri::Yes {
                    return Tri::Yes;
                }
                left.or(b.eval(lookup, why))
            }
            Self::Value(operand) => match resolve(operand, lookup, why) {
                Resolved::Known(Some(s)) => Tri::from_bool(!s.is_empty()),
                Resolved::Known(None) => Tri::No,
                Resolved::Regex(..) => Tri::Yes,
                Resolved::Unknown => Tri::Unknown,
            },
            Self::Compare(a, cmp, b) => {
                let left = resolve(a, lookup, why);
                let right = resolve(b, lookup, why);
                match cmp {
                    Cmp::Eq => equals(&left, &right),
                    Cmp::Ne => equals(&left, &right).not(),
                    Cmp::Match => matches(&left, &right, why),
                    Cmp::NoMatch => matches(&left, &right, why).not(),
                }
            }
        }
    }
}

/// A literal an expression compares a variable with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Literal {
    /// `"main"`.
    Name(String),
    /// `/^release\/.*$/i`: pattern and flags.
    Pattern(String, String),
}

enum Resolved<'e> {
    Known(Option<String>),
    Regex(&'e str, &'e Result<Regex, Unsupported>),
    Unknown,
}

fn resolve<'e>(
    operand: &'e Operand,
    lookup: &dyn Fn(&str) -> Var,
    why: &mut Vec<String>,
) -> Resolved<'e> {
    match operand {
        Operand::Str(s) => Resolved::Known(Some(s.clone())),
        Operand::Null => Resolved::Known(None),
        Operand::Regex(p, _, compiled) => Resolved::Regex(p, compiled),
        Operand::Var(name) => match lookup(name) {
            Var::Known(value) => Resolved::Known(value),
            Var::Unknown(reason) => {
                if !why.contains(&reason) {
                    why.push(reason);
                }
                Resolved::Unknown
            }
        },
    }
}

fn equals(left: &Resolved, right: &Resolved) -> Tri {
    match (left, right) {
        (Resolved::Known(a), Resolved::Known(b)) => Tri::from_bool(a == b),
        // Comparing with a regex literal with `==` is never true in GitLab.
        (Resolved::Regex(..), Resolved::Known(_)) | (Resolved::Known(_), Resolved::Regex(..)) => {
            Tri::No
        }
        _ => Tri::Unknown,
    }
}

fn matches(left: &Resolved<'_>, right: &Resolved<'_>, why: &mut Vec<String>) -> Tri {
    let held;
    let (pattern, regex) = match right {
        Resolved::Regex(p, compiled) => (p.to_string(), *compiled),
        // GitLab 15.0+: a variable on the right of `=~` holds the regex.
        Resolved::Known(Some(text)) => match split_literal(text) {
            Some((p, f)) => {
                held = Regex::new(p, f);
                (p.to_owned(), &held)
            }
            None => {
                let reason = format!("`{text}` on the right of =~ is not a /regex/");
                if !why.contains(&reason) {
                    why.push(reason);
                }
                return Tri::Unknown;
            }
        },
        Resolved::Known(None) => return Tri::No,
        Resolved::Unknown => return Tri::Unknown,
    };
    let regex = match regex {
        Ok(regex) => regex,
        Err(e) => {
            let reason =
                format!("regex /{pattern}/ uses syntax the linter does not evaluate ({e})");
            if !why.contains(&reason) {
                why.push(reason);
            }
            return Tri::Unknown;
        }
    };
    match left {
        Resolved::Known(Some(text)) => Tri::from_bool(regex.is_match(text)),
        Resolved::Known(None) => Tri::No,
        Resolved::Regex(..) => Tri::No,
        Resolved::Unknown => Tri::Unknown,
    }
}

#[cfg(test)]
mod tests;
