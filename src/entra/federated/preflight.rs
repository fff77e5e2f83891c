//! Would Entra accept this token? Checked before Entra answers with an opaque AADSTS code.
//!
//! Entra matches a federated credential when the token's `iss` equals its `issuer`, the token's
//! `aud` equals its audience, and the token's `sub` equals its `subject` (classic) or satisfies
//! its `claimsMatchingExpression` (flexible), all case-sensitively (facts 2.1 and 2.2). When no
//! credential matches, the nearest one is reported with what differs.

use std::fmt;

use super::FederatedCredential;
use crate::{Claims, IssuerNearMiss};

/// Entra's limit of federated identity credentials per app (or managed identity).
pub const MAX_CREDENTIALS_PER_APP: usize = 20;

/// One way a credential fails to match a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Difference {
    /// The token's audiences do not include the credential's (AADSTS700212).
    Audience {
        /// The credential's audiences.
        credential: Vec<String>,
        /// The token's `aud` values.
        token: Vec<String>,
    },
    /// The flexible expression reads a claim Entra does not support for GitLab issuers (it
    /// supports `sub`, and `project_id`, `namespace_id`, `user_id` next to it).
    ExpressionClaim {
        /// The expression.
        expression: String,
        /// The unsupported claim.
        claim: String,
    },
    /// The token's `sub` does not satisfy the flexible expression (AADSTS700213).
    Expression {
        /// The expression.
        expression: String,
        /// The token's `sub`.
        token: Option<String>,
        /// True when it would match but for letter case (AADSTS7002138).
        case_only: bool,
    },
    /// The token's `iss` differs from the credential's issuer (AADSTS700211).
    Issuer {
        /// The credential's issuer.
        credential: String,
        /// The token's `iss`.
        token: String,
        /// Set when they differ only by a trailing slash, the scheme or letter case.
        near_miss: Option<IssuerNearMiss>,
    },
    /// The subjects differ (AADSTS700213).
    Subject {
        /// The credential's subject.
        credential: String,
        /// The token's `sub`, if it has one.
        token: Option<String>,
    },
    /// The subjects differ only in letter case (AADSTS7002138).
    SubjectCase {
        /// The credential's subject.
        credential: String,
        /// The token's `sub`.
        token: String,
    },
    /// The subjects have the same `key:value` components in another order (AADSTS700213).
    SubjectOrder {
        /// The credential's subject.
        credential: String,
        /// The token's `sub`.
        token: String,
    },
}

impl Difference {
    /// A stable, kebab-case name for this kind of difference.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Audience { .. } => "audience",
            Self::ExpressionClaim { .. } => "expression-claim",
            Self::Expression { .. } => "expression",
            Self::Issuer { .. } => "issuer",
            Self::Subject { .. } => "subject",
            Self::SubjectCase { .. } => "subject-case",
            Self::SubjectOrder { .. } => "subject-order",
        }
    }

    /// How far this difference is from a match, to pick the nearest credential.
    fn weight(&self) -> u32 {
        match self {
            Self::SubjectCase { .. } | Self::SubjectOrder { .. } => 1,
            Self::Expression { case_only: true, .. } => 1,
            Self::Issuer { near_miss: Some(_), .. } => 2,
            Self::Audience { .. } => 3,
            Self::Expression { .. } => 3,
            Self::ExpressionClaim { .. } => 4,
            Self::Subject { .. } => 5,
            Self::Issuer { near_miss: None, .. } => 6,
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Audience { credential, token } => write!(
                f,
                "audience differs: the credential expects {}, the token has {} (AADSTS700212); \
                 set `id_tokens:<NAME>:aud` in .gitlab-ci.yml to the credential's audience",
                list(credential),
                list(token)
            ),
            Self::ExpressionClaim { expression, claim } => write!(
                f,
                "expression `{expression}` reads claim `{claim}`, but for GitLab issuers Entra \
                 supports only `sub` (matches, eq) and `project_id`, `namespace_id`, `user_id` \
                 (eq); match on those"
            ),
            Self::Expression { expression, token, case_only } => {
                match token {
                    Some(sub) => write!(f, "subject `{sub}` does not satisfy `{expression}`")?,
                    None => write!(f, "the token has no `sub`, so `{expression}` cannot hold")?,
                }
                if *case_only {
                    f.write_str(
                        " (AADSTS7002138); it would with a case-insensitive comparison, but \
                         Entra compares case-sensitively: fix the letter case",
                    )
                } else {
                    f.write_str(" (AADSTS700213); widen the pattern or add a credential")
                }
            }
            Self::Issuer { credential, token, near_miss } => {
                write!(
                    f,
                    "issuer differs: the credential has `{credential}`, the token `{token}` \
                     (AADSTS700211); "
                )?;
                f.write_str(match near_miss {
                    Some(IssuerNearMiss::TrailingSlash) => {
                        "they differ only by a trailing slash and Entra compares exactly: GitLab's \
                         `iss` has none, so remove it from the credential"
                    }
                    Some(IssuerNearMiss::Scheme) => {
                        "they differ only in the scheme: GitLab ID tokens carry `https://`, so \
                         the credential's issuer must too"
                    }
                    Some(IssuerNearMiss::Case) => {
                        "they differ only in letter case and Entra compares case-sensitively: \
                         copy the token's `iss`"
                    }
                    Some(IssuerNearMiss::Whitespace) => {
                        "they differ only in whitespace, and Entra blocks an issuer with \
                         whitespace around it: remove it from the credential"
                    }
                    None => "set the credential's issuer to the GitLab URL (CI_SERVER_URL)",
                })
            }
            Self::Subject { credential, token: Some(token) } => write!(
                f,
                "subject differs: the credential has `{credential}`, the token `{token}` \
                 (AADSTS700213); add a credential for this subject or run the job on the \
                 credential's ref"
            ),
            Self::Subject { credential, token: None } => write!(
                f,
                "the token has no `sub` and the credential expects `{credential}` (AADSTS700213)"
            ),
            Self::SubjectCase { credential, token } => write!(
                f,
                "subject differs only in letter case: the credential has `{credential}`, the \
                 token `{token}` (AADSTS7002138); Entra compares case-sensitively, so copy the \
                 token's `sub` exactly"
            ),
            Self::SubjectOrder { credential, token } => write!(
                f,
                "subject has the same components in another order: the credential has \
                 `{credential}`, the token `{token}` (AADSTS700213); the project's \
                 ci_id_token_sub_claim_components sets the order, so write the credential in it"
            ),
        }
    }
}

/// The credential nearest to matching, and what differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearestCredential {
    /// The credential's name.
    pub name: String,
    /// Every difference, most specific first.
    pub differences: Vec<Difference>,
}

/// Whether Entra would accept a token, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    /// The credential that matches, if any.
    pub accepted_by: Option<String>,
    /// When none matches: the nearest credential (none when the list is empty).
    pub nearest: Option<NearestCredential>,
    /// How many credentials the app has.
    pub credential_count: usize,
}

impl Preflight {
    /// True when Entra would accept the token (as far as federated credentials go).
    pub fn accepted(&self) -> bool {
        self.accepted_by.is_some()
    }

    /// True when the app has more credentials than Entra allows.
    pub fn over_limit(&self) -> bool {
        self.credential_count > MAX_CREDENTIALS_PER_APP
    }
}

impl fmt::Display for Preflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.accepted_by, &self.nearest) {
            (Some(name), _) => write!(f, "entra accepts the token: credential {name} matches")?,
            (None, Some(nearest)) => {
                write!(
                    f,
                    "entra would refuse the token: no federated credential matches; nearest is \
                     {}",
                    nearest.name
                )?;
                for difference in &nearest.differences {
                    write!(f, "\n  {difference}")?;
                }
            }
            (None, None) => f.write_str(
                "entra would refuse the token: the app has no federated credentials; create \
                 them with `plan`",
            )?,
        }
        if self.over_limit() {
            write!(
                f,
                "\nthe app has {} federated credentials, more than Entra's limit of \
                 {MAX_CREDENTIALS_PER_APP}; use flexible credentials or fewer subjects",
                self.credential_count
            )?;
        }
        Ok(())
    }
}

/// `key:value` pairs of a `sub`, sorted, when it splits evenly.
fn components(sub: &str) -> Option<Vec<(&str, &str)>> {
    let parts: Vec<&str> = sub.split(':').collect();
    if parts.len() < 4 || !parts.len().is_multiple_of(2) {
        return None;
    }
    let mut pairs: Vec<(&str, &str)> =
        parts.chunks(2).filter_map(|c| Some((*c.first()?, *c.get(1)?))).collect();
    pairs.sort_unstable();
    Some(pairs)
}

fn differences(claims: &Claims, credential: &FederatedCredential) -> Vec<Difference> {
    let mut out = Vec::new();
    if credential.issuer != claims.iss {
        out.push(Difference::Issuer {
            credential: credential.issuer.clone(),
            token: claims.iss.clone(),
            near_miss: IssuerNearMiss::between(&credential.issuer, &claims.iss),
        });
    }
    let token_aud: Vec<String> = claims
        .aud
        .as_ref()
        .map(|a| a.values().into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    if !token_aud.iter().any(|a| credential.audiences.contains(a)) {
        out.push(Difference::Audience {
            credential: credential.audiences.clone(),
            token: token_aud,
        });
    }
    let sub = claims.sub.as_deref();
    match (&credential.subject, &credential.claims_matching_expression) {
        (Some(subject), _) => match sub {
            Some(sub) if sub == subject => {}
            Some(sub) if sub.to_lowercase() == subject.to_lowercase() => {
                out.push(Difference::SubjectCase {
                    credential: subject.clone(),
                    token: sub.into(),
                });
            }
            Some(sub) if components(sub).is_some() && components(sub) == components(subject) => {
                out.push(Difference::SubjectOrder {
                    credential: subject.clone(),
                    token: sub.into(),
                });
            }
            token => out.push(Difference::Subject {
                credential: subject.clone(),
                token: token.map(str::to_owned),
            }),
        },
        (None, Some(cme)) => {
            let expression = cme.value.as_str().to_owned();
            let supported = |c: &&str| super::GITLAB_EXPRESSION_CLAIMS.contains(c);
            if let Some(claim) = cme.value.claims().into_iter().find(|c| !supported(c)) {
                out.push(Difference::ExpressionClaim { expression, claim: claim.to_owned() });
            } else if !cme.value.evaluate(claims) {
                let case_only = sub.is_some_and(|s| {
                    let mut lowered = claims.clone();
                    lowered.raw.insert("sub".to_owned(), s.to_lowercase().into());
                    lowercase_expression(&cme.value, &lowered)
                });
                out.push(Difference::Expression {
                    expression,
                    token: sub.map(str::to_owned),
                    case_only,
                });
            }
        }
        (None, None) => out.push(Difference::Subject { credential: String::new(), token: None }),
    }
    out.sort_by_key(Difference::weight);
    out
}

/// Whether the expression would hold with letter case ignored (comparand and `sub` lowered).
fn lowercase_expression(expression: &super::Expression, lowered: &Claims) -> bool {
    let source = expression.as_str().to_lowercase();
    super::Expression::parse(&source).is_ok_and(|e| e.evaluate(lowered))
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Checks `claims` against an app's federated credentials as Entra would.
pub fn preflight(claims: &Claims, credentials: &[FederatedCredential]) -> Preflight {
    let credential_count = credentials.len();
    let mut best: Option<(u32, usize, &FederatedCredential, Vec<Difference>)> = None;
    for credential in credentials {
        let diffs = differences(claims, credential);
        if diffs.is_empty() {
            return Preflight {
                accepted_by: Some(credential.name.clone()),
                nearest: None,
                credential_count,
            };
        }
        let score = diffs.iter().map(Difference::weight).sum::<u32>();
        let prefix = common_prefix(claims.sub.as_deref().unwrap_or(""), credential.matcher());
        let better = match &best {
            None => true,
            Some((s, p, _, _)) => score < *s || (score == *s && prefix > *p),
        };
        if better {
            best = Some((score, prefix, credential, diffs));
        }
    }
    Preflight {
        accepted_by: None,
        nearest: best
            .map(|(_, _, c, differences)| NearestCredential { name: c.name.clone(), differences }),
        credential_count,
    }
}

#[cfg(test)]
mod tests;
