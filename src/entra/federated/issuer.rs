//! The issuer a federated credential names, checked as the verifier checks a token's `iss`,
//! and which issuers Entra accepts flexible credentials for.

use super::IssuerError;
use crate::IssuerNearMiss;

/// Checks an issuer before it goes into a federated credential: `https://`, a lowercase host,
/// no trailing slash, no whitespace (facts 1.3: GitLab's `iss` is its URL without a trailing
/// slash). Plain `http://` is accepted only for a loopback host (test stand-ins).
///
/// # Errors
/// [`IssuerError::NearMiss`] with the issuer as GitLab sends it, when the difference is one
/// people commonly make; [`IssuerError::NotUrl`] otherwise.
pub fn check_issuer(issuer: &str) -> Result<(), IssuerError> {
    let not_url = || IssuerError::NotUrl { issuer: issuer.to_owned() };
    let mut near_miss: Option<IssuerNearMiss> = None;
    let mut note = |kind: IssuerNearMiss| {
        near_miss.get_or_insert(kind);
    };
    let bare: String = issuer.chars().filter(|c| !c.is_whitespace()).collect();
    if bare != issuer {
        note(IssuerNearMiss::Whitespace);
    }
    let lower = bare.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", bare.get(8..).unwrap_or_default())
    } else if lower.starts_with("http://") {
        ("http", bare.get(7..).unwrap_or_default())
    } else if bare.contains("://") || bare.is_empty() {
        return Err(not_url());
    } else {
        note(IssuerNearMiss::Scheme);
        ("", bare.as_str())
    };
    if bare.get(..scheme.len()).is_some_and(|s| s != scheme) {
        note(IssuerNearMiss::Case);
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    let valid = !host.is_empty()
        && authority.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !path.contains(['?', '#']);
    if !valid {
        return Err(not_url());
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    let scheme = if scheme == "http" && loopback {
        "http"
    } else {
        if scheme == "http" {
            note(IssuerNearMiss::Scheme);
        }
        "https"
    };
    if authority.bytes().any(|b| b.is_ascii_uppercase()) {
        note(IssuerNearMiss::Case);
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed != path {
        note(IssuerNearMiss::TrailingSlash);
    }
    match near_miss {
        None => Ok(()),
        Some(near_miss) => Err(IssuerError::NearMiss {
            issuer: issuer.to_owned(),
            near_miss,
            fix: format!("{scheme}://{}{trimmed}", authority.to_ascii_lowercase()),
        }),
    }
}

/// Whether Entra documents flexible credentials for this GitLab issuer: `https://gitlab.com`,
/// `https://gitlab.<name>.com` and `https://gitlab.<name>.ca` ("where `example` can be any
/// string"). Other self-managed hosts are not eligible by the documented rule.
pub fn flexible_issuer_eligible(issuer: &str) -> bool {
    if issuer == "https://gitlab.com" {
        return true;
    }
    issuer
        .strip_prefix("https://gitlab.")
        .and_then(|rest| rest.strip_suffix(".com").or_else(|| rest.strip_suffix(".ca")))
        .is_some_and(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The claims a GitLab flexible credential may read besides `sub`: the newest Entra pages
/// require `claims['project_id'] eq` next to `sub` for mutable subjects, and the page on
/// mutable subjects names `namespace_id` and `user_id` as alternatives. All take `eq`.
pub const GITLAB_EXPRESSION_CLAIMS: [&str; 4] = ["sub", "project_id", "namespace_id", "user_id"];

#[cfg(test)]
mod tests;
