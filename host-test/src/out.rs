//! Standard output: one place that writes it, so a closed pipe (`... | head -1`) ends the
//! program quietly instead of panicking, and a `--json` call prints exactly one document.

use std::cell::Cell;
use std::io::{self, Write};

thread_local! {
    static JSON_PRINTED: Cell<bool> = const { Cell::new(false) };
}

/// Why writing to stdout stopped.
#[derive(Debug)]
pub(crate) enum Closed {
    /// The reader went away (EPIPE): not an error for a command-line tool.
    Pipe,
    /// Any other write error.
    Other(io::Error),
}

/// Writes `text` and a newline to stdout.
pub(crate) fn line(text: &str) -> Result<(), Closed> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}").and_then(|()| stdout.flush()).map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Closed::Pipe
        } else {
            Closed::Other(e)
        }
    })
}

/// Writes one JSON document (compact) to stdout, and remembers that it did: a `--json` call
/// that fails after printing its document does not print a second one.
pub(crate) fn json(doc: &serde_json::Value) -> Result<(), Closed> {
    JSON_PRINTED.with(|p| p.set(true));
    line(&doc.to_string())
}

/// Records that the caller printed a JSON document itself (text already JSON).
pub(crate) fn json_mark() {
    JSON_PRINTED.with(|p| p.set(true));
}

/// True once a JSON document went to stdout.
pub(crate) fn json_printed() -> bool {
    JSON_PRINTED.with(Cell::get)
}

/// Re-indents compact JSON text without parsing it into values, so every number keeps its exact
/// digits (an integer beyond 64 bits stays as signed, not `1.2e+22`).
pub(crate) fn pretty(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pretty;

    #[test]
    fn pretty_keeps_numbers_and_strings_exactly() {
        let json = r#"{"big":12345678901234567890123,"s":"a, b: {c}","e":[],"o":{},"q":"\"x\\"}"#;
        let out = pretty(json);
        assert!(out.contains("\"big\": 12345678901234567890123"), "{out}");
        assert!(out.contains("\"s\": \"a, b: {c}\""), "{out}");
        assert!(out.contains("\"e\": []") && out.contains("\"o\": {}"), "{out}");
        assert!(out.contains(r#""q": "\"x\\""#), "{out}");
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());
    }
}
