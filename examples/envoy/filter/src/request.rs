//! Reading the GitLab token from a request and planning the rewritten request headers.

use gitlab_azure_oidc::Claims;
use serde_json::Value;

/// A header that carries a token: `Authorization: Bearer <token>` by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSpec {
    /// The header name, lowercase.
    pub name: String,
    /// The auth scheme before the token (`Bearer`), or `None` when the value is the bare token.
    pub scheme: Option<String>,
}

impl Default for HeaderSpec {
    fn default() -> Self {
        Self { name: "authorization".to_owned(), scheme: Some("Bearer".to_owned()) }
    }
}

impl HeaderSpec {
    /// The header value that carries `token`.
    pub fn value(&self, token: &str) -> String {
        match &self.scheme {
            Some(scheme) => format!("{scheme} {token}"),
            None => token.to_owned(),
        }
    }
}

/// Why no token could be read from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingToken {
    /// The header is absent or empty.
    NoHeader,
    /// The header uses another scheme (e.g. `Basic`).
    WrongScheme,
}

/// Reads the token from the header's value: the scheme compares without case (RFC 9110
/// section 11.1), then one or more spaces, then the token, trimmed.
///
/// # Errors
/// [`MissingToken`] when there is nothing that could be a token.
pub fn extract_token<'v>(
    spec: &HeaderSpec,
    value: Option<&'v str>,
) -> Result<&'v str, MissingToken> {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).ok_or(MissingToken::NoHeader)?;
    let token = match &spec.scheme {
        None => value,
        Some(scheme) => {
            let (found, rest) = value.split_once(' ').ok_or(MissingToken::WrongScheme)?;
            if !found.eq_ignore_ascii_case(scheme) {
                return Err(MissingToken::WrongScheme);
            }
            rest.trim()
        }
    };
    if token.is_empty() {
        Err(MissingToken::NoHeader)
    } else {
        Ok(token)
    }
}

/// True for an HTTP field name (RFC 9110 `token`) in lowercase, or an HTTP/2 pseudo-header.
pub fn is_header_name(name: &str) -> bool {
    let body = name.strip_prefix(':').unwrap_or(name);
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
        })
}

/// Splits `scheme://authority/path` into the `:authority` and the `:path` (at least `/`).
pub fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    Some((authority.to_owned(), path.to_owned()))
}

/// The header changes for a request that goes upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderPlan {
    /// Headers to set (replacing any value the client sent).
    pub set: Vec<(String, String)>,
    /// Headers to remove: the GitLab token's header and claim headers with no value, so a
    /// client cannot smuggle its own.
    pub remove: Vec<String>,
}

/// Plans the upstream request: the Azure token in its header, the GitLab token gone, and one
/// header per configured claim (removed when the claim is absent or not a plain value).
pub fn plan_headers(
    token_header: &HeaderSpec,
    azure_header: &HeaderSpec,
    azure_token: &str,
    claim_headers: &[(String, String)],
    claims: &Claims,
) -> HeaderPlan {
    let mut plan = HeaderPlan::default();
    if token_header.name != azure_header.name {
        plan.remove.push(token_header.name.clone());
    }
    plan.set.push((azure_header.name.clone(), azure_header.value(azure_token)));
    for (header, claim) in claim_headers {
        match claim_value(claims, claim) {
            Some(value) => plan.set.push((header.clone(), value)),
            None => plan.remove.push(header.clone()),
        }
    }
    plan
}

/// A claim as a header value: strings as they are, numbers and booleans printed; `None` for
/// absent claims, arrays, objects and strings with control characters.
pub fn claim_value(claims: &Claims, claim: &str) -> Option<String> {
    let value = match claims.raw.get(claim)? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    if value.bytes().any(|b| b.is_ascii_control()) {
        None
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests;
