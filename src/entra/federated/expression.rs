//! Entra's flexible federated credential language, version 1 (preview).
//!
//! As documented (facts 2.2): `claims['<claimName>'] <operator> '<comparand>'`, with exactly
//! one space around the operator and the comparand in single quotes; the operators are
//! `matches` (wildcards `?`, one character, and `*`, any run of characters) and `eq` (exact);
//! `and` combines expressions. Nothing else is documented (no `or`, `not`, lists, regex or
//! escapes), so nothing else is accepted. Comparisons are case-sensitive, like all of Entra's
//! federated credential matching. For GitLab issuers Entra supports the claim `sub`, and (its
//! newest pages) requires `project_id` next to it.

use std::fmt;

use serde_json::Value;

use super::ExpressionError;
use crate::Claims;

/// Longest accepted expression, in characters (Entra's own limit is not documented).
pub(crate) const MAX_EXPRESSION_CHARS: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Eq,
    Matches,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Clause {
    claim: String,
    operator: Operator,
    comparand: String,
}

/// A parsed `claimsMatchingExpression` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression {
    source: String,
    clauses: Vec<Clause>,
}

struct Cursor {
    chars: Vec<char>,
    pos: usize,
}

impl Cursor {
    fn column(&self) -> usize {
        self.pos + 1
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn excerpt(&self) -> String {
        let rest: String = self.chars.iter().skip(self.pos).take(12).collect();
        if rest.is_empty() {
            "the end".to_owned()
        } else {
            format!("`{rest}`")
        }
    }

    fn unexpected(&self, expected: &str) -> ExpressionError {
        ExpressionError::Unexpected {
            column: self.column(),
            expected: expected.to_owned(),
            found: self.excerpt(),
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        let n = literal.chars().count();
        let matches = self.chars.iter().skip(self.pos).take(n).copied().eq(literal.chars());
        if matches {
            self.pos += n;
        }
        matches
    }

    fn expect(&mut self, literal: &str, expected: &str) -> Result<(), ExpressionError> {
        if self.eat(literal) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Exactly one space: the documented form.
    fn one_space(&mut self, before: &str) -> Result<(), ExpressionError> {
        if !self.eat(" ") {
            return Err(self.unexpected(&format!("one space before {before}")));
        }
        if self.peek().is_some_and(char::is_whitespace) {
            return Err(self.unexpected(&format!("exactly one space before {before}")));
        }
        Ok(())
    }

    /// Up to the next `'`, which is consumed; `quote_column` is where the quoted text opened.
    fn quoted(&mut self, quote_column: usize) -> Result<String, ExpressionError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '\'' {
                let text = self.chars.get(start..self.pos).unwrap_or_default().iter().collect();
                self.pos += 1;
                return Ok(text);
            }
            self.pos += 1;
        }
        Err(ExpressionError::Unterminated { column: quote_column })
    }
}

impl Expression {
    /// Parses an expression of language version 1.
    ///
    /// # Errors
    /// An [`ExpressionError`] with the column and what the grammar expected there.
    pub fn parse(source: &str) -> Result<Self, ExpressionError> {
        let chars: Vec<char> = source.chars().collect();
        if chars.is_empty() {
            return Err(ExpressionError::Empty);
        }
        if chars.len() > MAX_EXPRESSION_CHARS {
            return Err(ExpressionError::TooLong {
                length: chars.len(),
                limit: MAX_EXPRESSION_CHARS,
            });
        }
        let mut cur = Cursor { chars, pos: 0 };
        let mut clauses = Vec::new();
        loop {
            clauses.push(Self::clause(&mut cur)?);
            if cur.peek().is_none() {
                break;
            }
            cur.expect(" ", "` and ` or the end of the expression")?;
            if cur.peek().is_some_and(char::is_whitespace) {
                return Err(cur.unexpected("exactly one space before `and`"));
            }
            cur.expect("and", "`and` (the only connective language version 1 has)")?;
            cur.one_space("the next `claims[...]`")?;
        }
        Ok(Self { source: source.to_owned(), clauses })
    }

    fn clause(cur: &mut Cursor) -> Result<Clause, ExpressionError> {
        cur.expect("claims['", "`claims['`")?;
        let quote_column = cur.column() - 1;
        let name_column = cur.column();
        let claim = cur.quoted(quote_column)?;
        if claim.is_empty() {
            return Err(ExpressionError::EmptyClaimName { column: name_column });
        }
        cur.expect("]", "`]` after the claim name")?;
        cur.one_space("the operator")?;
        let op_column = cur.column();
        let mut word = String::new();
        while let Some(c) = cur.peek().filter(|c| !c.is_whitespace()) {
            word.push(c);
            cur.pos += 1;
        }
        let operator = match word.as_str() {
            "matches" => Operator::Matches,
            "eq" => Operator::Eq,
            "" => return Err(cur.unexpected("an operator, `matches` or `eq`")),
            _ => {
                return Err(ExpressionError::UnknownOperator { column: op_column, operator: word })
            }
        };
        cur.one_space("the comparand")?;
        let quote_column = cur.column();
        cur.expect("'", "a comparand in single quotes")?;
        let comparand = cur.quoted(quote_column)?;
        Ok(Clause { claim, operator, comparand })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The claims the expression reads, in order.
    pub fn claims(&self) -> Vec<&str> {
        self.clauses.iter().map(|c| c.claim.as_str()).collect()
    }

    /// Whether the token's claims satisfy the expression, as Entra would evaluate it: every
    /// clause must hold; a claim that is absent or not a string holds for nothing.
    pub fn evaluate(&self, claims: &Claims) -> bool {
        self.clauses.iter().all(|clause| match claims.raw.get(&clause.claim) {
            Some(Value::String(value)) => match clause.operator {
                Operator::Eq => *value == clause.comparand,
                Operator::Matches => wildcard(&clause.comparand, value),
            },
            _ => false,
        })
    }

    /// Builds `claims['sub'] matches '<pattern>'`.
    pub(crate) fn sub_matches(pattern: &str) -> String {
        format!("claims['sub'] matches '{pattern}'")
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Entra's `matches`: `*` any run of characters (`/` included), `?` exactly one, anchored.
pub(crate) fn wildcard(pattern: &str, value: &str) -> bool {
    let text: Vec<char> = value.chars().collect();
    let mut reach = vec![false; text.len() + 1];
    if let Some(first) = reach.first_mut() {
        *first = true;
    }
    for p in pattern.chars() {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            let before = j.checked_sub(1);
            let value = match p {
                '*' => {
                    reach.get(j).copied().unwrap_or(false)
                        || before.and_then(|k| next.get(k)).copied().unwrap_or(false)
                }
                '?' => before.and_then(|k| reach.get(k)).copied().unwrap_or(false),
                c => {
                    before.and_then(|k| reach.get(k)).copied().unwrap_or(false)
                        && before.and_then(|k| text.get(k)) == Some(&c)
                }
            };
            if let Some(slot) = next.get_mut(j) {
                *slot = value;
            }
        }
        reach = next;
    }
    reach.last().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests;
