//! Strict JSON: duplicate member names rejected, nesting depth bounded.
//!
//! `serde_json` keeps the last of two members with the same name. A verifier that reads the first
//! while another component reads the last can be made to disagree about what was signed (the
//! classic `{"alg":"RS256","alg":"none"}` trick), so duplicates are refused outright. Depth is
//! bounded below `serde_json`'s own recursion limit so the limit can be named in the error.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JsonProblem {
    /// The document is not valid JSON; the detail is `serde_json`'s message (line and column).
    Syntax(String),
    /// A member name appears twice in one object.
    DuplicateMember(String),
    /// Arrays and objects nest deeper than the limit.
    TooDeep(usize),
}

/// What `value` is, as messages say it: `a string`, `an array`, `an object`...
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// [`type_name`] in YAML's words (`a list`, `a mapping`), for documents users write as YAML.
pub(crate) fn yaml_type_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
        scalar => type_name(scalar),
    }
}

/// Parses `input` as strict JSON into a [`Value`].
pub(crate) fn parse(input: &[u8], max_depth: usize) -> Result<Value, JsonProblem> {
    let problem = RefCell::new(None);
    let seed = Strict { depth: 0, max_depth, problem: &problem };
    let mut de = serde_json::Deserializer::from_slice(input);
    let result = seed.deserialize(&mut de).and_then(|value| de.end().map(|()| value));
    match result {
        Ok(value) => Ok(value),
        Err(err) => {
            Err(problem.into_inner().unwrap_or_else(|| JsonProblem::Syntax(err.to_string())))
        }
    }
}

struct Strict<'p> {
    depth: usize,
    max_depth: usize,
    problem: &'p RefCell<Option<JsonProblem>>,
}

impl<'p> Strict<'p> {
    fn nested(&self) -> Self {
        Strict { depth: self.depth + 1, max_depth: self.max_depth, problem: self.problem }
    }

    fn fail<E: de::Error>(&self, problem: JsonProblem) -> E {
        let message = format!("{problem:?}");
        *self.problem.borrow_mut() = Some(problem);
        E::custom(message)
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        if self.depth >= self.max_depth {
            return Err(self.fail(JsonProblem::TooDeep(self.max_depth)));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            // The map itself is the set of names seen so far: no second copy of each name.
            if members.contains_key(&name) {
                return Err(self.fail(JsonProblem::DuplicateMember(name)));
            }
            let value = map.next_value_seed(self.nested())?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ordinary_documents() {
        let v = parse(br#"{"a":[1,2,{"b":null}],"c":"d","e":1.5,"f":-3,"g":true}"#, 8).unwrap();
        assert_eq!(v["a"][2]["b"], Value::Null);
        assert_eq!(v["f"], Value::from(-3));
    }

    #[test]
    fn rejects_duplicate_members_even_when_escaped() {
        assert_eq!(
            parse(br#"{"alg":"RS256","alg":"none"}"#, 8),
            Err(JsonProblem::DuplicateMember("alg".into()))
        );
        assert_eq!(
            parse(br#"{"a":1,"\u0061":2}"#, 8),
            Err(JsonProblem::DuplicateMember("a".into()))
        );
        assert_eq!(
            parse(br#"{"x":{"k":1,"k":2}}"#, 8),
            Err(JsonProblem::DuplicateMember("k".into()))
        );
    }

    #[test]
    fn bounds_depth() {
        assert!(parse(b"[[[]]]", 3).is_ok());
        assert_eq!(parse(b"[[[[]]]]", 3), Err(JsonProblem::TooDeep(3)));
        let deep = "[".repeat(10_000);
        assert_eq!(parse(deep.as_bytes(), 16), Err(JsonProblem::TooDeep(16)));
    }

    #[test]
    fn rejects_trailing_data_and_garbage() {
        assert!(matches!(parse(b"{} {}", 8), Err(JsonProblem::Syntax(_))));
        assert!(matches!(parse(b"{\"a\":}", 8), Err(JsonProblem::Syntax(_))));
        assert!(matches!(parse(b"", 8), Err(JsonProblem::Syntax(_))));
        assert!(matches!(parse(b"\xff", 8), Err(JsonProblem::Syntax(_))));
    }
}
