//! The glob matcher used by policy conditions: `*`, `?` and `**`, compiled once at load.
//!
//! - `*` matches any run of characters within one path segment (never `/`);
//! - `?` matches exactly one character other than `/`;
//! - `**` matches any run of characters, `/` included; written as a whole segment followed by
//!   `/` (`a/**/b`), it also matches no segment at all, so `a/**/b` matches `a/b`;
//! - `\` makes the next character literal (`\*`, `\?`, `\\`).
//!
//! Matching is case-sensitive and anchored at both ends. It runs in time proportional to the
//! pattern length times the value length, whatever the pattern: no backtracking blow-up.

use std::fmt;

/// Longest accepted glob pattern, in characters.
pub(crate) const MAX_GLOB_CHARS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// One literal character.
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Segment,
    /// `**` not followed by `/` as a whole segment: any run of characters.
    Any,
    /// `**/` as a whole segment: nothing, or any run of characters ending with `/`.
    Dirs,
}

/// Why a glob pattern was refused: the character position (0-based) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GlobProblem {
    pub(crate) position: usize,
    pub(crate) reason: &'static str,
}

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`.
    pub(crate) fn new(pattern: &str) -> Result<Self, GlobProblem> {
        let chars: Vec<char> = pattern.chars().collect();
        if chars.is_empty() {
            return Err(GlobProblem {
                position: 0,
                reason: "the glob is empty; to match the empty string use an exact value \"\"",
            });
        }
        if chars.len() > MAX_GLOB_CHARS {
            return Err(GlobProblem {
                position: MAX_GLOB_CHARS,
                reason: "the glob is longer than 1024 characters",
            });
        }
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            match c {
                '\\' => match chars.get(i + 1) {
                    Some(&next) => {
                        tokens.push(Token::Literal(next));
                        i += 2;
                        continue;
                    }
                    None => {
                        return Err(GlobProblem {
                            position: i,
                            reason: "a trailing `\\` escapes nothing; write `\\\\` for a literal \
                                     backslash",
                        })
                    }
                },
                '?' => tokens.push(Token::One),
                '*' => {
                    let run = chars.iter().skip(i).take_while(|&&c| c == '*').count();
                    if run > 2 {
                        return Err(GlobProblem {
                            position: i,
                            reason: "three or more `*` in a row; use `*` within a segment or \
                                     `**` across `/`",
                        });
                    }
                    if run == 1 {
                        tokens.push(Token::Segment);
                    } else {
                        let starts_segment = i == 0 || chars.get(i - 1) == Some(&'/');
                        if starts_segment && chars.get(i + 2) == Some(&'/') {
                            tokens.push(Token::Dirs);
                            i += 3;
                            continue;
                        }
                        tokens.push(Token::Any);
                    }
                    i += run;
                    continue;
                }
                other => tokens.push(Token::Literal(other)),
            }
            i += 1;
        }
        Ok(Self { source: pattern.to_owned(), tokens })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard at all, so it matches exactly one value.
    pub(crate) fn literal(&self) -> Option<String> {
        self.tokens
            .iter()
            .map(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether `value` matches the whole pattern.
    pub(crate) fn matches(&self, value: &str) -> bool {
        let text: Vec<char> = value.chars().collect();
        // reach[j]: the tokens seen so far can match exactly text[..j].
        let mut reach = vec![false; text.len() + 1];
        if let Some(first) = reach.first_mut() {
            *first = true;
        }
        for token in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            let mut any_before = false;
            for j in 0..=text.len() {
                let here = reach.get(j).copied().unwrap_or(false);
                let prev_char = j.checked_sub(1).and_then(|k| text.get(k)).copied();
                let prev_reach = j.checked_sub(1).and_then(|k| reach.get(k)).copied();
                let prev_next = j.checked_sub(1).and_then(|k| next.get(k)).copied();
                let value = match token {
                    Token::Literal(c) => prev_reach == Some(true) && prev_char == Some(*c),
                    Token::One => prev_reach == Some(true) && prev_char.is_some_and(|p| p != '/'),
                    Token::Segment => {
                        here || (prev_next == Some(true) && prev_char.is_some_and(|p| p != '/'))
                    }
                    Token::Any => here || prev_next == Some(true),
                    Token::Dirs => {
                        any_before |= prev_reach == Some(true);
                        here || (any_before && prev_char == Some('/'))
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

    /// The pattern in Entra's `matches` syntax (`*` any run, `?` one character), widened where
    /// Entra cannot say as much: `*` and `**` both become `*`, which in Entra also crosses `/`.
    /// A literal `*`, `?` or `'` becomes `?` (Entra documents no escape). Returns the pattern and
    /// whether it is broader than this glob.
    pub(crate) fn to_entra(&self) -> (String, bool) {
        let mut out = String::new();
        let mut broader = false;
        for token in &self.tokens {
            match token {
                Token::Literal('*' | '?' | '\'') => {
                    out.push('?');
                    broader = true;
                }
                Token::Literal(c) => out.push(*c),
                Token::One => out.push('?'),
                Token::Segment => {
                    out.push('*');
                    broader = true;
                }
                Token::Any | Token::Dirs => {
                    if !out.ends_with('*') {
                        out.push('*');
                    }
                }
            }
        }
        (out, broader)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A literal value as an Entra `matches` pattern. Entra documents no escape, so `*`, `?` and `'`
/// become `?`; returns the pattern and whether it is broader than the value.
pub(crate) fn entra_literal(value: &str) -> (String, bool) {
    let mut broader = false;
    let out = value
        .chars()
        .map(|c| {
            if matches!(c, '*' | '?' | '\'') {
                broader = true;
                '?'
            } else {
                c
            }
        })
        .collect();
    (out, broader)
}

#[cfg(test)]
mod tests;
