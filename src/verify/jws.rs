//! Compact JWS (RFC 7515 sections 3.1, 5.2 and 7.1): parsing and signature verification.

use serde_json::{Map, Value};

use super::alg::AlgName;
use super::offload::SignatureBackend;
use crate::text::b64;
use crate::text::json::{self, JsonProblem};
use crate::{Algorithm, Jwks, Limits, Part, VerifyError};

/// The protected header of a verified token.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The key id, when the token names one (GitLab always does).
    pub kid: Option<String>,
    /// The media type, when present (GitLab sends `JWT`).
    pub typ: Option<String>,
    /// The whole header, for members this version does not name. Keys embedded or referenced
    /// here (`jwk`, `jku`, `x5u`, `x5c`) are never used to verify anything.
    pub raw: Map<String, Value>,
}

/// A compact JWS whose signature verified; the payload is not yet interpreted.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedJws {
    /// The protected header.
    pub header: Header,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
}

/// Parses a part as a strict JSON object.
pub(crate) fn json_object(
    bytes: &[u8],
    part: Part,
    limits: &Limits,
) -> Result<Map<String, Value>, VerifyError> {
    match json::parse(bytes, limits.max_json_depth) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(VerifyError::NotAnObject { part }),
        Err(JsonProblem::Syntax(detail)) => Err(VerifyError::Json { part, detail }),
        Err(JsonProblem::DuplicateMember(name)) => Err(VerifyError::DuplicateMember { part, name }),
        Err(JsonProblem::TooDeep(limit)) => Err(VerifyError::JsonTooDeep { part, limit }),
    }
}

fn parse_header(raw: Map<String, Value>, allowed: &[Algorithm]) -> Result<Header, VerifyError> {
    // RFC 7515 4.1.1: `alg` is required, a case-sensitive string.
    let alg = match raw.get("alg") {
        Some(Value::String(name)) => match Algorithm::classify(name) {
            AlgName::Supported(alg) => alg,
            AlgName::AlwaysRefused => {
                return Err(VerifyError::AlgorithmRefused { alg: name.clone() })
            }
            AlgName::Unsupported => {
                return Err(VerifyError::UnsupportedAlgorithm { alg: name.clone() })
            }
        },
        Some(_) => {
            return Err(VerifyError::HeaderInvalid { detail: "`alg` is not a string".into() })
        }
        None => return Err(VerifyError::HeaderInvalid { detail: "`alg` is missing".into() }),
    };
    if !allowed.contains(&alg) {
        return Err(VerifyError::AlgorithmNotAllowed { alg, allowed: allowed.to_vec() });
    }
    // RFC 7515 4.1.11: a critical extension we do not understand makes the token invalid. This
    // verifier understands none (it does not implement RFC 7797 unencoded payloads).
    if let Some(crit) = raw.get("crit") {
        let names: Option<Vec<String>> = crit
            .as_array()
            .filter(|names| !names.is_empty())
            .and_then(|names| names.iter().map(|n| n.as_str().map(str::to_owned)).collect());
        let Some(names) = names else {
            return Err(VerifyError::HeaderInvalid {
                detail: "`crit` is not a non-empty array of strings".into(),
            });
        };
        return Err(VerifyError::UnknownCritical { names });
    }
    let text = |name: &str| match raw.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(VerifyError::HeaderInvalid { detail: format!("`{name}` is not a string") }),
    };
    let kid = text("kid")?;
    let typ = text("typ")?;
    Ok(Header { alg, kid, typ, raw })
}

/// Checks the structure and signature of a compact JWS, not its claims.
pub(crate) fn verify(
    token: &str,
    jwks: &Jwks,
    allowed: &[Algorithm],
    limits: &Limits,
    backend: Option<&dyn SignatureBackend>,
) -> Result<VerifiedJws, VerifyError> {
    if token.len() > limits.max_token_bytes {
        return Err(VerifyError::TooLarge { size: token.len(), limit: limits.max_token_bytes });
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(VerifyError::NotCompact { parts: parts.len() });
    };
    let header_bytes = b64::decode(header_b64).ok_or(VerifyError::Base64 { part: Part::Header })?;
    let header = parse_header(json_object(&header_bytes, Part::Header, limits)?, allowed)?;
    let payload = b64::decode(payload_b64).ok_or(VerifyError::Base64 { part: Part::Payload })?;
    let signature =
        b64::decode(signature_b64).ok_or(VerifyError::Base64 { part: Part::Signature })?;
    // RFC 7515 5.2 step 8: the signing input is the encoded header and payload as sent.
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = &token.as_bytes()[..signing_input_len];
    jwks.verify(header.kid.as_deref(), header.alg, signing_input, &signature, limits, backend)?;
    Ok(VerifiedJws { header, payload })
}
