//! Hints for the AADSTS codes a federated CI login typically hits, and for each OAuth error class.
//!
//! The hint is chosen by `error_codes` (the first code listed here) and else by `error`, never by
//! the description: Microsoft warns that the text changes. Some hints quote the value Entra saw
//! (subject, audience, issuer) from the description when it is there, to show it next to what the
//! federated credential must contain; when it is absent the hint still stands on its own.

use crate::entra::EntraErrorResponse;

/// The codes with a specific hint, in the order of the reference table.
pub(crate) const KNOWN_CODES: [u64; 21] = [
    70021, 700211, 700212, 700213, 7002137, 7002138, 700024, 700016, 50027, 90002, 9001023, 90061,
    501661, 700027, 70011, 700022, 7000215, 7000218, 900144, 7000272, 50166,
];

/// Longest value quoted from a description.
const MAX_QUOTED: usize = 300;

pub(crate) fn is_known(code: u64) -> bool {
    KNOWN_CODES.contains(&code)
}

/// The value between `marker` and the next `'` in the description, printable and bounded.
fn quoted(e: &EntraErrorResponse, marker: &str) -> Option<String> {
    let description = e.error_description.as_deref()?;
    let start = description.find(marker)?.checked_add(marker.len())?;
    let rest = description.get(start..)?;
    let value = rest.get(..rest.find('\'')?)?;
    if value.is_empty() || value.len() > MAX_QUOTED || value.chars().any(char::is_control) {
        return None;
    }
    Some(value.to_owned())
}

/// "Entra saw {what} `value`" or a fallback naming the claim.
fn saw(e: &EntraErrorResponse, markers: &[&str], what: &str, claim: &str) -> String {
    match markers.iter().find_map(|m| quoted(e, m)) {
        Some(value) => format!("Entra saw {what} `{value}`"),
        None => format!("Entra compared the token's {what} (its `{claim}` claim)"),
    }
}

const ISSUER_REACHABLE: &str = "Entra fetches \
     `{issuer}/.well-known/openid-configuration` and its `jwks_uri` (`/oauth/discovery/keys`), so \
     the GitLab instance must be reachable from the internet over HTTPS with a publicly trusted \
     certificate, and the credential's issuer must be its exact URL";

const SUBJECT_FORM: &str = "GitLab's default subject is \
     `project_path:{group}/{project}:ref_type:{branch|tag}:ref:{name}`";

pub(crate) fn hint(e: &EntraErrorResponse) -> String {
    match e.known_code() {
        Some(code) => code_hint(e, code),
        None => class_hint(&e.error).to_owned(),
    }
}

fn code_hint(e: &EntraErrorResponse, code: u64) -> String {
    match code {
        70021 => {
            let mut seen = Vec::new();
            for (marker, what) in [
                ("Assertion Issuer: '", "issuer"),
                ("Assertion Subject: '", "subject"),
                ("Assertion Audience: '", "audience"),
            ] {
                if let Some(value) = quoted(e, marker) {
                    seen.push(format!("{what} `{value}`"));
                }
            }
            let seen = if seen.is_empty() {
                "the token's `iss`, `sub` and `aud`".to_owned()
            } else {
                seen.join(", ")
            };
            format!(
                "no federated credential on the application matches {seen}: add or fix one whose \
                 issuer is the GitLab URL without a trailing slash, whose subject is the token's \
                 `sub` exactly ({SUBJECT_FORM}) and whose audience is the `aud` set in \
                 `id_tokens:<NAME>:aud`; matching is case-sensitive, and a credential created in \
                 the last minutes may not have propagated yet"
            )
        }
        700211 => format!(
            "{}, and no federated credential has that issuer: set the credential's issuer to the \
             token's `iss` exactly, i.e. the GitLab instance URL (`CI_SERVER_URL`, e.g. \
             `https://gitlab.com`) with `https://` and without a trailing slash",
            saw(e, &["issuer '"], "issuer", "iss")
        ),
        700212 => format!(
            "{}, and no federated credential lists it: the token's `aud` must be one of the \
             credential's audiences, which is `api://AzureADTokenExchange` unless the credential \
             says otherwise; set it in .gitlab-ci.yml `id_tokens:<NAME>:aud`",
            saw(e, &["audience '"], "audience", "aud")
        ),
        700213 => format!(
            "{}, and no federated credential has that subject: the credential's subject must \
             contain exactly this value ({SUBJECT_FORM}); matching is case-sensitive, and each \
             branch, tag or environment needs its own credential unless you use a flexible \
             credential (`claims['sub'] matches '...:ref:*'`)",
            saw(e, &["subject '"], "subject", "sub")
        ),
        7002137 => {
            let expected = quoted(e, "Subject is '")
                .map(|s| format!(" (Entra expects `{s}`)"))
                .unwrap_or_default();
            format!(
                "{}, and it is not the subject of the federated credential{expected}: change the \
                 credential's subject, or run the job from the project and ref the credential \
                 names ({SUBJECT_FORM})",
                saw(e, &["subject '"], "subject", "sub")
            )
        }
        7002138 => format!(
            "{}, which matches a federated credential only when letter case is ignored: fix the \
             case in the credential's subject to match the token exactly (GitLab keeps the \
             project path's case), since matching is case-sensitive",
            saw(e, &["subject '"], "subject", "sub")
        ),
        700024 => "the GitLab token is outside its valid time range at Entra: it expired (GitLab \
             sets `exp` from the job timeout) or is not valid yet; request the token in the job \
             that uses it, exchange it right away instead of caching it, and check the runner's \
             clock"
            .to_owned(),
        700016 => "the application was not found in the tenant: check that the client id is the \
             \"Application (client) ID\" of the app registration (or managed identity) and that \
             the tenant is the directory where it lives, in the right cloud"
            .to_owned(),
        50027 => "Entra refused the GitLab token as a JWT (format, issuer, audience, time range, \
             or its signature against GitLab's published keys); pass the raw ID token from \
             `id_tokens:` (not CI_JOB_TOKEN), and verify it locally against the issuer's JWKS \
             to see which check fails"
            .to_owned(),
        90002 => "the tenant was not found: check the tenant ID or domain for typos and that the \
             authority host is the tenant's cloud (public, US Government or China)"
            .to_owned(),
        9001023 => "the client-credentials grant is not supported over /common or /consumers: use \
             the directory (tenant) ID or a verified domain as the tenant"
            .to_owned(),
        90061 => format!("Entra's request to the GitLab issuer failed: {ISSUER_REACHABLE}"),
        501661 => {
            format!("Entra could not read the GitLab issuer's OIDC metadata: {ISSUER_REACHABLE}")
        }
        7000272 => "the assertion's `kid` is not among the first 100 keys of its issuer's JWKS: \
             a broker that is its own issuer must publish a new key (`use: published`) and let \
             Entra read the JWKS before it signs with it, and keep at most 100 keys"
            .to_owned(),
        50166 => "Entra could not reach the assertion's issuer: a broker's issuer must serve \
             `{issuer}/.well-known/openid-configuration` and its `jwks_uri` over HTTPS from a \
             publicly trusted endpoint (`plan --broker-config` prints both for static hosting)"
            .to_owned(),
        700027 => "the client assertion failed signature validation: for a federated credential, \
             the GitLab token was altered or signed by a key the issuer no longer publishes (pass \
             it verbatim, and check the credential's issuer); for a certificate credential, \
             upload the certificate of the private key that signed (its thumbprint is the \
             assertion's `x5t`/`x5t#S256`)"
            .to_owned(),
        70011 => "the scope is invalid: use the resource's application ID URI followed by \
             `/.default`, e.g. `https://management.azure.com/.default`, and check that the \
             resource exists in the tenant's cloud"
            .to_owned(),
        700022 => "the scopes name more than one resource: request one token per resource, each \
             with a single `{resource}/.default` scope"
            .to_owned(),
        7000215 => "a client secret was sent and is invalid; this exchange authenticates with the \
             GitLab token (`client_assertion`) only: remove `client_secret` (and \
             AZURE_CLIENT_SECRET) from the request"
            .to_owned(),
        7000218 => {
            "the request carried neither `client_assertion` nor `client_secret`: the GitLab \
             token was empty or dropped; check that the job defines it in `id_tokens:` and that \
             no proxy rewrites the body"
                .to_owned()
        }
        900144 => {
            let field = quoted(e, "parameter: '").map(|p| format!(" (`{p}`)")).unwrap_or_default();
            format!(
                "a required form field is missing{field}: send `client_id`, `scope`, \
                 `grant_type`, `client_assertion_type` and `client_assertion` in an \
                 application/x-www-form-urlencoded POST body, and check that no proxy strips it"
            )
        }
        _ => class_hint(&e.error).to_owned(),
    }
}

/// The hint for an `error` class when no code has a specific hint.
fn class_hint(error: &str) -> &'static str {
    match error {
        "invalid_client" => {
            "the client authentication failed: compare the token's `iss`, `sub` and `aud` with \
             the application's federated credentials, and the client id with the app registration"
        }
        "invalid_grant" => {
            "the assertion was refused: check that the GitLab token is fresh (not expired) and \
             matches a federated credential of the application"
        }
        "invalid_request" => {
            "the request is malformed or names a wrong tenant or application: check the tenant, \
             the client id and the form fields"
        }
        "invalid_resource" | "invalid_scope" => {
            "the scope names a resource that does not exist in the tenant: use \
             `{resource}/.default` with the resource's application ID URI"
        }
        "interaction_required" => {
            "a tenant policy (such as Conditional Access for workload identities) blocked the \
             application; ask a tenant administrator to review the sign-in logs for the trace id"
        }
        "temporarily_unavailable" => {
            "Entra is temporarily unavailable: retry with exponential backoff"
        }
        "unauthorized_client" => {
            "the application may not use this grant, or is disabled: check the app registration \
             and its service principal in the tenant"
        }
        "unsupported_grant_type" => {
            "the endpoint does not support `grant_type=client_credentials`: use the v2.0 token \
             endpoint `/{tenant}/oauth2/v2.0/token`"
        }
        _ => {
            "look up the AADSTS code at https://login.microsoftonline.com/error and quote the \
             trace id and correlation id to your Azure administrator"
        }
    }
}

#[cfg(test)]
mod tests;
