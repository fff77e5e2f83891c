//! Text the whole core shares: strict JSON, strict base64url, identifiers and "did you mean".

pub(crate) mod b64;
pub(crate) mod ident;
pub(crate) mod json;

/// Backquoted items joined with commas, or `none`: how messages list values.
pub(crate) fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}
