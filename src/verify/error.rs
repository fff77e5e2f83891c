//! One error type per boundary: configuration, JWKS loading and token verification.
//!
//! Variants carry the expected and found values and their `Display` ends with what to do next.
//! A failed signature says only which key and algorithm were tried, never why the cryptography
//! failed: more detail could serve as an oracle.

use std::fmt;

use crate::text::list;
use crate::Algorithm;

/// A part of a compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The protected header (first part).
    Header,
    /// The payload, i.e. the claims (second part).
    Payload,
    /// The signature (third part).
    Signature,
}

impl Part {
    /// The lowercase name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        }
    }
}

/// How a token's `iss` nearly matches the configured issuer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuerNearMiss {
    /// Equal but for letter case.
    Case,
    /// Equal but for the scheme: `https://` missing (legacy `CI_JOB_JWT` tokens) or different.
    Scheme,
    /// Equal but for a trailing slash.
    TrailingSlash,
    /// Equal but for whitespace (a copy-and-paste accident; Entra blocks an issuer with
    /// leading or trailing whitespace).
    Whitespace,
}

impl IssuerNearMiss {
    /// How `found` nearly matches `expected`, when it differs only in a way people commonly get
    /// wrong; `None` for an unrelated issuer (or an exact match).
    pub fn between(expected: &str, found: &str) -> Option<Self> {
        let trim = |s: &str| s.trim_end_matches('/').to_owned();
        let strip_scheme = |s: &str| {
            s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s).to_owned()
        };
        let bare = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        if expected == found {
            None
        } else if bare(expected) == bare(found) {
            Some(Self::Whitespace)
        } else if trim(expected) == trim(found) {
            Some(Self::TrailingSlash)
        } else if strip_scheme(&trim(expected)) == strip_scheme(&trim(found)) {
            Some(Self::Scheme)
        } else if expected.eq_ignore_ascii_case(found) {
            Some(Self::Case)
        } else {
            None
        }
    }
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// The header's `alg` is not in the verifier's allow-list.
    AlgorithmNotAllowed {
        /// The token's `alg`.
        alg: Algorithm,
        /// The allow-list.
        allowed: Vec<Algorithm>,
    },
    /// The header's `alg` is `none` or an HMAC algorithm, which are never accepted.
    AlgorithmRefused {
        /// The token's `alg`.
        alg: String,
    },
    /// No configured audience appears in the token's `aud`.
    AudienceMismatch {
        /// The configured audiences.
        expected: Vec<String>,
        /// The token's audiences.
        found: Vec<String>,
    },
    /// A part is not strict base64url.
    Base64 {
        /// The offending part.
        part: Part,
    },
    /// The signature does not verify under the key that was tried.
    BadSignature {
        /// The key's `kid`, if it has one.
        kid: Option<String>,
        /// The algorithm that was tried.
        alg: Algorithm,
        /// How many keys were tried (more than one only for tokens without a `kid`).
        keys_tried: usize,
    },
    /// A claim is present but has the wrong type or value.
    ClaimInvalid {
        /// The claim name.
        claim: String,
        /// What the claim must be.
        expected: String,
    },
    /// A claim that is required is absent.
    ClaimMissing {
        /// The claim name.
        claim: String,
    },
    /// A member name appears twice in the header or payload.
    DuplicateMember {
        /// The part.
        part: Part,
        /// The repeated name.
        name: String,
    },
    /// `exp` is in the past, beyond the leeway.
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verification time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// The header is not valid for this verifier: not JSON, no `alg`, or an `alg` that is not a
    /// string.
    HeaderInvalid {
        /// What is wrong.
        detail: String,
    },
    /// `iat` is in the future, beyond the leeway.
    IssuedInFuture {
        /// The token's `iat`.
        iat: u64,
        /// The verification time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// `iss` differs from the configured issuer.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The token's issuer.
        found: String,
        /// Set when the two differ only in a way users commonly get wrong.
        near_miss: Option<IssuerNearMiss>,
    },
    /// A part is not valid JSON.
    Json {
        /// The part.
        part: Part,
        /// The parser's message.
        detail: String,
    },
    /// JSON nesting in a part exceeds the limit.
    JsonTooDeep {
        /// The part.
        part: Part,
        /// `Limits::max_json_depth`.
        limit: usize,
    },
    /// The key named by `kid` cannot verify this token's algorithm.
    KeyMismatch {
        /// The key's `kid`.
        kid: String,
        /// The token's algorithm.
        alg: Algorithm,
        /// Why the key does not fit (its type, curve or `alg`).
        reason: String,
    },
    /// The key named by `kid` was refused when the JWKS was loaded.
    KeyRefused {
        /// The key's `kid`.
        kid: String,
        /// Why it was refused.
        reason: String,
    },
    /// The token names no `kid` and no key in the JWKS fits its algorithm.
    NoCompatibleKey {
        /// The token's algorithm.
        alg: Algorithm,
    },
    /// A part is JSON but not an object.
    NotAnObject {
        /// The part.
        part: Part,
    },
    /// The token is not a compact JWS of exactly three dot-separated parts.
    NotCompact {
        /// How many parts were found.
        parts: usize,
    },
    /// `nbf` is in the future, beyond the leeway.
    NotYetValid {
        /// The token's `nbf`.
        nbf: u64,
        /// The verification time.
        now: u64,
        /// The leeway in seconds.
        leeway: u64,
    },
    /// The token is older than the configured maximum age.
    TooOld {
        /// The token's `iat`.
        iat: u64,
        /// The verification time.
        now: u64,
        /// The maximum age in seconds.
        max_age: u64,
    },
    /// The token is larger than `Limits::max_token_bytes`.
    TooLarge {
        /// The token's size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The token names no `kid` and more keys fit its algorithm than the limit allows.
    TooManyCandidateKeys {
        /// How many keys fit.
        candidates: usize,
        /// `Limits::max_keys_without_kid`.
        limit: usize,
    },
    /// The header lists a critical extension this verifier does not understand.
    UnknownCritical {
        /// The extension names.
        names: Vec<String>,
    },
    /// No key in the JWKS has the token's `kid`: the issuer may have rotated its keys.
    UnknownKid {
        /// The token's `kid`.
        kid: String,
    },
    /// The header's `alg` is not one this crate implements.
    UnsupportedAlgorithm {
        /// The token's `alg`.
        alg: String,
    },
}

impl VerifyError {
    /// A stable, kebab-case name for this kind of error, for logs, metrics and exit messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AlgorithmNotAllowed { .. } => "algorithm-not-allowed",
            Self::AlgorithmRefused { .. } => "algorithm-refused",
            Self::AudienceMismatch { .. } => "audience-mismatch",
            Self::Base64 { .. } => "base64",
            Self::BadSignature { .. } => "bad-signature",
            Self::ClaimInvalid { .. } => "claim-invalid",
            Self::ClaimMissing { .. } => "claim-missing",
            Self::DuplicateMember { .. } => "duplicate-member",
            Self::Expired { .. } => "expired",
            Self::HeaderInvalid { .. } => "header-invalid",
            Self::IssuedInFuture { .. } => "issued-in-future",
            Self::IssuerMismatch { .. } => "issuer-mismatch",
            Self::Json { .. } => "json",
            Self::JsonTooDeep { .. } => "json-too-deep",
            Self::KeyMismatch { .. } => "key-mismatch",
            Self::KeyRefused { .. } => "key-refused",
            Self::NoCompatibleKey { .. } => "no-compatible-key",
            Self::NotAnObject { .. } => "not-an-object",
            Self::NotCompact { .. } => "not-compact",
            Self::NotYetValid { .. } => "not-yet-valid",
            Self::TooOld { .. } => "too-old",
            Self::TooLarge { .. } => "too-large",
            Self::TooManyCandidateKeys { .. } => "too-many-candidate-keys",
            Self::UnknownCritical { .. } => "unknown-critical",
            Self::UnknownKid { .. } => "unknown-kid",
            Self::UnsupportedAlgorithm { .. } => "unsupported-algorithm",
        }
    }

    /// True when refetching the issuer's JWKS may fix the error (the issuer rotated its keys).
    pub fn suggests_jwks_refresh(&self) -> bool {
        matches!(self, Self::UnknownKid { .. })
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlgorithmNotAllowed { alg, allowed } => write!(
                f,
                "algorithm `{alg}` is not allowed (allowed: {}); GitLab signs with RS256, so \
                 another algorithm means another issuer or a forged token",
                list(allowed)
            ),
            Self::AlgorithmRefused { alg } => write!(
                f,
                "algorithm `{alg}` is always refused: unsigned and shared-secret (HMAC) tokens \
                 cannot be verified against a public JWKS"
            ),
            Self::AudienceMismatch { expected, found } => write!(
                f,
                "audience mismatch: expected one of {} (found {}); set `id_tokens:<NAME>:aud` in \
                 .gitlab-ci.yml to the audience this verifier expects",
                list(expected),
                list(found)
            ),
            Self::Base64 { part } => write!(
                f,
                "the {} is not strict base64url (URL-safe alphabet, no padding, no whitespace); \
                 pass the token exactly as GitLab issued it",
                part.name()
            ),
            Self::BadSignature { kid, alg, keys_tried } => {
                write!(f, "signature does not verify with {alg} ")?;
                match kid {
                    Some(kid) => write!(f, "under key `{kid}`")?,
                    None => write!(f, "under any of {keys_tried} candidate keys")?,
                }
                f.write_str("; the token was altered or not signed by this issuer")
            }
            Self::ClaimInvalid { claim, expected } => {
                write!(f, "claim `{claim}` is invalid: expected {expected}")
            }
            Self::ClaimMissing { claim } => write!(f, "required claim `{claim}` is missing"),
            Self::DuplicateMember { part, name } => write!(
                f,
                "the {} has member `{name}` twice; duplicate names are refused because parsers \
                 disagree on which one wins",
                part.name()
            ),
            Self::Expired { exp, now, leeway } => write!(
                f,
                "token expired at {exp}, {} seconds before the verification time {now} (leeway \
                 {leeway} s); GitLab sets `exp` from the job timeout, so request the token in the \
                 job that uses it",
                now.saturating_sub(*exp)
            ),
            Self::HeaderInvalid { detail } => write!(f, "invalid header: {detail}"),
            Self::IssuedInFuture { iat, now, leeway } => write!(
                f,
                "token issued at {iat}, {} seconds after the verification time {now} (leeway \
                 {leeway} s); check the clock of the verifying host",
                iat.saturating_sub(*now)
            ),
            Self::IssuerMismatch { expected, found, near_miss } => {
                write!(f, "issuer mismatch: expected `{expected}` (found `{found}`)")?;
                match near_miss {
                    Some(IssuerNearMiss::Case) => f.write_str(
                        "; they differ only in letter case, and issuers are compared exactly",
                    ),
                    Some(IssuerNearMiss::Scheme) => f.write_str(
                        "; they differ only in the scheme: ID tokens carry `https://`, legacy \
                         CI_JOB_JWT tokens carry the bare host",
                    ),
                    Some(IssuerNearMiss::TrailingSlash) => f.write_str(
                        "; they differ only by a trailing slash: GitLab's `iss` has none, so \
                         configure the issuer without it",
                    ),
                    Some(IssuerNearMiss::Whitespace) => f.write_str(
                        "; they differ only in whitespace: remove it from the configured issuer",
                    ),
                    None => f.write_str(
                        "; configure the issuer as the GitLab instance URL (CI_SERVER_URL)",
                    ),
                }
            }
            Self::Json { part, detail } => write!(f, "the {} is not JSON: {detail}", part.name()),
            Self::JsonTooDeep { part, limit } => write!(
                f,
                "the {} nests JSON deeper than the limit of {limit} (max_json_depth)",
                part.name()
            ),
            Self::KeyMismatch { kid, alg, reason } => {
                write!(f, "key `{kid}` cannot verify {alg}: {reason}")
            }
            Self::KeyRefused { kid, reason } => {
                write!(f, "key `{kid}` was refused when the JWKS was loaded: {reason}")
            }
            Self::NoCompatibleKey { alg } => write!(
                f,
                "the token has no `kid` and no key in the JWKS fits {alg}; check that the JWKS \
                 is the issuer's"
            ),
            Self::NotAnObject { part } => {
                write!(f, "the {} is JSON but not an object", part.name())
            }
            Self::NotCompact { parts } => write!(
                f,
                "a compact JWS has exactly 3 dot-separated parts (found {parts}); pass the raw \
                 ID token, not a JSON serialization or an encrypted token"
            ),
            Self::NotYetValid { nbf, now, leeway } => write!(
                f,
                "token not valid before {nbf}, {} seconds after the verification time {now} \
                 (leeway {leeway} s); check the clock of the verifying host",
                nbf.saturating_sub(*now)
            ),
            Self::TooOld { iat, now, max_age } => write!(
                f,
                "token issued at {iat} is {} seconds old, more than the maximum age of {max_age} s",
                now.saturating_sub(*iat)
            ),
            Self::TooLarge { size, limit } => {
                write!(f, "token is {size} bytes, more than the limit of {limit} (max_token_bytes)")
            }
            Self::TooManyCandidateKeys { candidates, limit } => write!(
                f,
                "the token has no `kid` and {candidates} keys fit its algorithm, more than the \
                 limit of {limit} (max_keys_without_kid)"
            ),
            Self::UnknownCritical { names } => write!(
                f,
                "the header marks extensions {} as critical and this verifier does not \
                 understand them",
                list(names)
            ),
            Self::UnknownKid { kid } => write!(
                f,
                "no key with kid `{kid}` in the JWKS; the issuer may have rotated its keys: \
                 fetch the JWKS again"
            ),
            Self::UnsupportedAlgorithm { alg } => write!(
                f,
                "algorithm `{alg}` is not supported (supported: {})",
                list(&Algorithm::ALL)
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Why a JWKS document was refused as a whole. Individual unusable keys are skipped instead and
/// listed in [`crate::Jwks::skipped`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    /// The document is not valid JSON.
    Json {
        /// The parser's message.
        detail: String,
    },
    /// A member name appears twice in one object.
    DuplicateMember {
        /// The repeated name.
        name: String,
    },
    /// JSON nesting exceeds the limit.
    JsonTooDeep {
        /// `Limits::max_json_depth`.
        limit: usize,
    },
    /// The document is not an object with a `keys` array.
    NoKeysArray,
    /// The document is larger than `Limits::max_jwks_bytes`.
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The document has more keys than `Limits::max_jwks_keys`.
    TooManyKeys {
        /// How many keys it has.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl JwksError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Json { .. } => "jwks-json",
            Self::DuplicateMember { .. } => "jwks-duplicate-member",
            Self::JsonTooDeep { .. } => "jwks-json-too-deep",
            Self::NoKeysArray => "jwks-no-keys-array",
            Self::TooLarge { .. } => "jwks-too-large",
            Self::TooManyKeys { .. } => "jwks-too-many-keys",
        }
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json { detail } => write!(f, "the JWKS is not JSON: {detail}"),
            Self::DuplicateMember { name } => {
                write!(f, "the JWKS has member `{name}` twice in one object")
            }
            Self::JsonTooDeep { limit } => {
                write!(f, "the JWKS nests JSON deeper than the limit of {limit} (max_json_depth)")
            }
            Self::NoKeysArray => f.write_str(
                "the JWKS is not an object with a `keys` array; fetch it from the issuer's \
                 `jwks_uri` (GitLab: /oauth/discovery/keys)",
            ),
            Self::TooLarge { size, limit } => write!(
                f,
                "the JWKS is {size} bytes, more than the limit of {limit} (max_jwks_bytes)"
            ),
            Self::TooManyKeys { count, limit } => write!(
                f,
                "the JWKS has {count} keys, more than the limit of {limit} (max_jwks_keys)"
            ),
        }
    }
}

impl std::error::Error for JwksError {}

/// Why a verifier configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The algorithm allow-list is empty.
    NoAlgorithms,
    /// No audience is configured and the audience check is on.
    NoAudience,
    /// The issuer is empty.
    EmptyIssuer,
    /// An algorithm name is unknown or always refused (`none`, HMAC).
    UnknownAlgorithm {
        /// The name.
        name: String,
    },
}

impl ConfigError {
    /// A stable, kebab-case name for this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoAlgorithms => "no-algorithms",
            Self::NoAudience => "no-audience",
            Self::EmptyIssuer => "empty-issuer",
            Self::UnknownAlgorithm { .. } => "unknown-algorithm",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAlgorithms => f.write_str("the algorithm allow-list is empty; allow RS256"),
            Self::NoAudience => f.write_str(
                "no audience configured; set the audience your jobs request in \
                 `id_tokens:<NAME>:aud` (only legacy CI_JOB_JWT tokens lack `aud`: for those, \
                 turn the audience check off explicitly with the dangerous skip-audience switch)",
            ),
            Self::EmptyIssuer => f.write_str(
                "the issuer is empty; set it to the GitLab instance URL, e.g. https://gitlab.com",
            ),
            Self::UnknownAlgorithm { name } => write!(
                f,
                "algorithm `{name}` cannot be allowed (supported: {}; `none` and HMAC are always \
                 refused)",
                list(&Algorithm::ALL)
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
