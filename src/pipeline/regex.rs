//! The regular expressions of GitLab CI rules (`=~ /release\/.*/`, `only: [/^v\d+/]`).
//!
//! GitLab evaluates them with RE2. This is a small subset, enough for ref names: literals,
//! escapes (`\d \w \s \D \W \S` and escaped punctuation), `.`, classes (`[a-z0-9_-]`, `[^/]`),
//! anchors (`^ $ \A \z`), groups (`(...)`, `(?:...)`), alternation, and the quantifiers
//! `* + ? {n} {n,} {n,m}` (lazy forms match the same strings). Flags: `i`. Anything else
//! (look-around, back-references, named classes, inline flags) is refused, and the rule that
//! uses it is reported as not evaluated rather than guessed.
//!
//! Matching simulates the compiled automaton over all states at once (no backtracking), so time
//! is linear in the input and bounded by the program size.

use std::fmt;

/// Longest accepted pattern, in characters.
const MAX_PATTERN_CHARS: usize = 512;
/// Deepest accepted group nesting.
const MAX_GROUP_DEPTH: usize = 16;
/// Largest accepted repetition count in `{n,m}`.
const MAX_REPEAT: u32 = 64;
/// Largest compiled program, in instructions.
const MAX_PROGRAM: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Empty,
    Char(char),
    Any,
    Class { ranges: Vec<(char, char)>, negated: bool },
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat { node: Box<Node>, min: u32, max: Option<u32> },
}

/// Why a pattern is not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unsupported {
    /// 0-based character position.
    pub(crate) position: usize,
    /// What is not supported or wrong.
    pub(crate) reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position + 1, self.reason)
    }
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Regex {
    source: String,
    ast: Node,
    program: Vec<Inst>,
    classes: Vec<(Vec<(char, char)>, bool)>,
    case_insensitive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inst {
    Char(char),
    Any,
    Class(usize),
    Start,
    End,
    Split(usize, usize),
    Jmp(usize),
    Match,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, Unsupported> {
        Err(Unsupported { position: self.pos, reason: reason.into() })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Result<Node, Unsupported> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, Unsupported> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantified(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars.get(start..self.pos)?.iter().collect();
        digits.parse().ok()
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, Unsupported> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let open = self.pos;
                self.pos += 1;
                let Some(min) = self.number() else {
                    // RE2 reads a `{` that starts no repetition as a literal.
                    self.pos = open;
                    return Ok(atom);
                };
                let max = if self.peek() == Some(',') {
                    self.pos += 1;
                    if self.peek() == Some('}') {
                        None
                    } else {
                        Some(match self.number() {
                            Some(n) => n,
                            None => return self.fail("expected a number or `}` in `{n,m}`"),
                        })
                    }
                } else {
                    Some(min)
                };
                if self.peek() != Some('}') {
                    return self.fail("expected `}` to close the repetition");
                }
                if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
                    return self.fail(format!(
                        "repetition counts must be ordered and at most {MAX_REPEAT}"
                    ));
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        if matches!(atom, Node::Start | Node::End | Node::Empty) {
            return self.fail("nothing to repeat");
        }
        self.pos += 1;
        // A lazy quantifier matches the same set of strings.
        if self.peek() == Some('?') {
            self.pos += 1;
        }
        if matches!(self.peek(), Some('*' | '+' | '?')) {
            return self.fail("a quantifier cannot follow another");
        }
        Ok(Node::Repeat { node: Box::new(atom), min, max })
    }

    fn escape_class(c: char) -> Option<(Vec<(char, char)>, bool)> {
        let digit = vec![('0', '9')];
        let word = vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
        let space = vec![('\t', '\r'), (' ', ' ')];
        Some(match c {
            'd' => (digit, false),
            'D' => (digit, true),
            'w' => (word, false),
            'W' => (word, true),
            's' => (space, false),
            'S' => (space, true),
            _ => return None,
        })
    }

    fn escaped_literal(&self, c: char) -> Result<char, Unsupported> {
        match c {
            'n' => Ok('\n'),
            't' => Ok('\t'),
            c if c.is_ascii_punctuation() => Ok(c),
            c => self.fail(format!("the escape `\\{c}` is not supported")),
        }
    }

    fn atom(&mut self) -> Result<Node, Unsupported> {
        let Some(c) = self.peek() else { return self.fail("unexpected end") };
        match c {
            '(' => {
                self.pos += 1;
                if self.peek() == Some('?') {
                    if self.chars.get(self.pos + 1) == Some(&':') {
                        self.pos += 2;
                    } else {
                        return self.fail(
                            "only `(?:` groups are supported (no look-around, flags or names)",
                        );
                    }
                }
                self.depth += 1;
                if self.depth > MAX_GROUP_DEPTH {
                    return self.fail(format!("groups nest deeper than {MAX_GROUP_DEPTH}"));
                }
                let inner = self.alternation()?;
                self.depth -= 1;
                if self.peek() != Some(')') {
                    return self.fail("expected `)`");
                }
                self.pos += 1;
                Ok(inner)
            }
            '[' => self.class(),
            '.' => {
                self.pos += 1;
                Ok(Node::Any)
            }
            '^' => {
                self.pos += 1;
                Ok(Node::Start)
            }
            '$' => {
                self.pos += 1;
                Ok(Node::End)
            }
            '*' | '+' | '?' => self.fail("nothing to repeat"),
            '\\' => {
                self.pos += 1;
                let Some(e) = self.peek() else {
                    return self.fail("a pattern cannot end with `\\`");
                };
                self.pos += 1;
                if let Some((ranges, negated)) = Self::escape_class(e) {
                    return Ok(Node::Class { ranges, negated });
                }
                match e {
                    'A' => Ok(Node::Start),
                    'z' => Ok(Node::End),
                    _ => {
                        self.pos -= 1;
                        let literal = self.escaped_literal(e)?;
                        self.pos += 1;
                        Ok(Node::Char(literal))
                    }
                }
            }
            c => {
                self.pos += 1;
                Ok(Node::Char(c))
            }
        }
    }

    fn class(&mut self) -> Result<Node, Unsupported> {
        self.pos += 1; // `[`
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else { return self.fail("expected `]` to close the class") };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if c == '[' && self.chars.get(self.pos + 1) == Some(&':') {
                return self.fail("named classes such as `[:alpha:]` are not supported");
            }
            self.pos += 1;
            let low = if c == '\\' {
                let Some(e) = self.peek() else { return self.fail("a class cannot end with `\\`") };
                if let Some((more, false)) = Self::escape_class(e) {
                    self.pos += 1;
                    ranges.extend(more);
                    continue;
                }
                let literal = self.escaped_literal(e)?;
                self.pos += 1;
                literal
            } else {
                c
            };
            let is_range =
                self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']');
            if is_range {
                self.pos += 1;
                let Some(mut high) = self.peek() else { return self.fail("unfinished range") };
                self.pos += 1;
                if high == '\\' {
                    let Some(e) = self.peek() else { return self.fail("unfinished range") };
                    high = self.escaped_literal(e)?;
                    self.pos += 1;
                }
                if high < low {
                    return self.fail(format!("the range `{low}-{high}` is backwards"));
                }
                ranges.push((low, high));
            } else {
                ranges.push((low, low));
            }
        }
        Ok(Node::Class { ranges, negated })
    }
}

struct Compiler<'a> {
    program: Vec<Inst>,
    classes: &'a mut Vec<(Vec<(char, char)>, bool)>,
}

impl Compiler<'_> {
    fn push(&mut self, inst: Inst) -> Result<usize, Unsupported> {
        if self.program.len() >= MAX_PROGRAM {
            return Err(Unsupported {
                position: 0,
                reason: format!("the pattern compiles to more than {MAX_PROGRAM} steps"),
            });
        }
        self.program.push(inst);
        Ok(self.program.len() - 1)
    }

    fn patch(&mut self, at: usize, inst: Inst) {
        if let Some(slot) = self.program.get_mut(at) {
            *slot = inst;
        }
    }

    fn node(&mut self, node: &Node) -> Result<(), Unsupported> {
        match node {
            Node::Empty => {}
            Node::Char(c) => {
                self.push(Inst::Char(*c))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Class { ranges, negated } => {
                self.classes.push((ranges.clone(), *negated));
                self.push(Inst::Class(self.classes.len() - 1))?;
            }
            Node::Start => {
                self.push(Inst::Start)?;
            }
            Node::End => {
                self.push(Inst::End)?;
            }
            Node::Concat(items) => {
                for item in items {
                    self.node(item)?;
                }
            }
            Node::Alt(branches) => {
                let mut jumps = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(branch)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.program.len();
                        self.patch(split, Inst::Split(split + 1, next));
                    } else {
                        self.node(branch)?;
                    }
                }
                let end = self.program.len();
                for j in jumps {
                    self.patch(j, Inst::Jmp(end));
                }
            }
            Node::Repeat { node, min, max } => {
                for _ in 0..*min {
                    self.node(node)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.node(node)?;
                        self.push(Inst::Jmp(split))?;
                        let end = self.program.len();
                        self.patch(split, Inst::Split(split + 1, end));
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.node(node)?;
                        }
                        let end = self.program.len();
                        for s in splits {
                            self.patch(s, Inst::Split(s + 1, end));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Regex {
    /// Compiles `pattern` (without the slashes); `flags` are the letters after the closing `/`.
    pub(crate) fn new(pattern: &str, flags: &str) -> Result<Self, Unsupported> {
        let chars: Vec<char> = pattern.chars().collect();
        if chars.len() > MAX_PATTERN_CHARS {
            return Err(Unsupported {
                position: MAX_PATTERN_CHARS,
                reason: format!("patterns longer than {MAX_PATTERN_CHARS} characters"),
            });
        }
        let mut case_insensitive = false;
        for flag in flags.chars() {
            match flag {
                'i' => case_insensitive = true,
                // `m` and `s` change nothing for single-line ref names.
                'm' | 's' => {}
                other => {
                    return Err(Unsupported {
                        position: chars.len(),
                        reason: format!("the flag `{other}` is not supported"),
                    })
                }
            }
        }
        let mut parser = Parser { chars, pos: 0, depth: 0 };
        let ast = parser.alternation()?;
        if parser.pos < parser.chars.len() {
            return parser.fail("unbalanced `)`");
        }
        let mut classes = Vec::new();
        let mut compiler = Compiler { program: Vec::new(), classes: &mut classes };
        compiler.node(&ast)?;
        compiler.push(Inst::Match)?;
        let program = compiler.program;
        Ok(Self { source: pattern.to_owned(), ast, program, classes, case_insensitive })
    }

    fn class_matches(&self, index: usize, c: char) -> bool {
        let Some((ranges, negated)) = self.classes.get(index) else { return false };
        let hit = |x: char| ranges.iter().any(|(lo, hi)| *lo <= x && x <= *hi);
        let mut found = hit(c);
        if self.case_insensitive && !found {
            found = c.to_lowercase().any(hit) || c.to_uppercase().any(hit);
        }
        found != *negated
    }

    fn char_matches(&self, pattern: char, c: char) -> bool {
        pattern == c || (self.case_insensitive && pattern.to_lowercase().eq(c.to_lowercase()))
    }

    /// Adds `pc` and everything reachable from it without consuming input.
    fn add(&self, list: &mut Vec<usize>, seen: &mut [bool], pc: usize, at: usize, len: usize) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            match seen.get_mut(pc) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            match self.program.get(pc) {
                Some(Inst::Jmp(to)) => stack.push(*to),
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Start) if at == 0 => stack.push(pc + 1),
                Some(Inst::End) if at == len => stack.push(pc + 1),
                Some(Inst::Start | Inst::End) => {}
                Some(_) => list.push(pc),
                None => {}
            }
        }
    }

    /// Whether the pattern matches somewhere in `text` (RE2's `=~` is a search, not anchored).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let len = chars.len();
        let size = self.program.len();
        let mut current = Vec::new();
        let mut seen = vec![false; size];
        self.add(&mut current, &mut seen, 0, 0, len);
        for at in 0..=len {
            if current.iter().any(|pc| self.program.get(*pc) == Some(&Inst::Match)) {
                return true;
            }
            let Some(&c) = chars.get(at) else { break };
            let mut next = Vec::new();
            let mut seen = vec![false; size];
            for &pc in &current {
                let advance = match self.program.get(pc) {
                    Some(Inst::Char(p)) => self.char_matches(*p, c),
                    Some(Inst::Any) => c != '\n',
                    Some(Inst::Class(i)) => self.class_matches(*i, c),
                    _ => false,
                };
                if advance {
                    self.add(&mut next, &mut seen, pc + 1, at + 1, len);
                }
            }
            // Unanchored search: a match may start at every position.
            self.add(&mut next, &mut seen, 0, at + 1, len);
            current = next;
        }
        current.iter().any(|pc| self.program.get(*pc) == Some(&Inst::Match))
    }

    /// A short string the pattern matches, to stand for "a ref matching /.../" (`None` when the
    /// pattern has no simple example).
    pub(crate) fn example(&self) -> Option<String> {
        let mut out = String::new();
        sample(&self.ast, &mut out);
        let example = out.trim().to_owned();
        (!example.is_empty() && self.is_match(&example)).then_some(example)
    }

    /// The pattern as an Entra `matches` wildcard over the whole name, when it has a simple
    /// shape: the wildcard and whether it accepts more than the pattern.
    pub(crate) fn to_wildcard(&self) -> Option<(String, bool)> {
        let items: Vec<&Node> = match &self.ast {
            Node::Concat(items) => items.iter().collect(),
            other => vec![other],
        };
        let anchored_start = matches!(items.first(), Some(Node::Start));
        let anchored_end = matches!(items.last(), Some(Node::End));
        let inner = items.iter().skip(usize::from(anchored_start));
        let inner = inner.take(
            items.len().saturating_sub(usize::from(anchored_start) + usize::from(anchored_end)),
        );
        let mut out = String::new();
        let mut broader = self.case_insensitive;
        if !anchored_start {
            out.push('*');
        }
        for node in inner {
            match node {
                Node::Char(c) if *c != '*' && *c != '?' && *c != '\'' => out.push(*c),
                Node::Any => out.push('?'),
                Node::Repeat { node, min, max: None } if matches!(**node, Node::Any) => {
                    for _ in 0..*min {
                        out.push('?');
                    }
                    out.push('*');
                }
                Node::Repeat { node, max: None, .. } if matches!(**node, Node::Class { .. }) => {
                    broader = true;
                    out.push('*');
                }
                Node::Class { .. } => {
                    broader = true;
                    out.push('?');
                }
                _ => return None,
            }
        }
        if !anchored_end && !out.ends_with('*') {
            out.push('*');
        }
        // Entra's `*` also crosses `/`, like `.`; a class was widened to any character.
        Some((out, broader))
    }
}

fn sample(node: &Node, out: &mut String) {
    match node {
        Node::Empty | Node::Start | Node::End => {}
        Node::Char(c) => out.push(*c),
        Node::Any => out.push('x'),
        Node::Class { ranges, negated: false } => {
            if let Some((lo, hi)) = ranges.first() {
                // Prefer a digit `1` over `0` so versions read naturally (`v1.1.1`).
                out.push(if *lo <= '1' && '1' <= *hi { '1' } else { *lo });
            }
        }
        Node::Class { ranges, negated: true } => {
            let pick = ['x', 'a', '1', '-', '_']
                .into_iter()
                .find(|c| !ranges.iter().any(|(lo, hi)| lo <= c && c <= hi));
            if let Some(c) = pick {
                out.push(c);
            }
        }
        Node::Concat(items) => items.iter().for_each(|i| sample(i, out)),
        Node::Alt(branches) => {
            if let Some(first) = branches.first() {
                sample(first, out);
            }
        }
        Node::Repeat { node, min, max } => {
            let count = if *max == Some(0) { 0 } else { (*min).max(1) };
            for _ in 0..count {
                sample(node, out);
            }
        }
    }
}

/// Splits `/pattern/flags` into its parts (the closing slash is the last one).
pub(crate) fn split_literal(literal: &str) -> Option<(&str, &str)> {
    let rest = literal.strip_prefix('/')?;
    let close = rest.rfind('/')?;
    let flags = rest.get(close + 1..)?;
    if !flags.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((rest.get(..close)?, flags))
}

#[cfg(test)]
mod tests;
