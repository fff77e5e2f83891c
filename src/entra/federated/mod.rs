//! Entra's side of workload identity federation: the federated identity credentials of an app
//! (exact `subject`, or the preview flexible `claimsMatchingExpression`), whether a token's claims
//! would match them ([`preflight`]), before Entra answers with an opaque AADSTS code.
//!
//! Entra matches only `iss`, `sub` and `aud` (flexible credentials add `project_id` and a few
//! more for GitLab), exactly and case-sensitively, at most 20 credentials per app.

mod credential;
mod error;
mod expression;
mod issuer;
mod preflight;

pub use credential::{ClaimsMatchingExpression, FederatedCredential};
pub use error::{CredentialError, ExpressionError, IssuerError};
pub use expression::Expression;
pub use issuer::{check_issuer, flexible_issuer_eligible, GITLAB_EXPRESSION_CLAIMS};
pub use preflight::{preflight, Difference, NearestCredential, Preflight, MAX_CREDENTIALS_PER_APP};

/// The subject of a project whose `ci_id_token_sub_claim_components` is `["project_id",
/// "ref_type", "ref"]`: `project_id:{project_id}:ref_type:{ref_type}:ref:{ref}`. A path can be
/// re-registered by someone else after a rename or deletion; an id cannot, so this subject is
/// immutable.
pub fn project_id_gitlab_subject(project_id: &str, ref_type: &str, r#ref: &str) -> String {
    format!("project_id:{project_id}:ref_type:{ref_type}:ref:{}", r#ref)
}

/// GitLab's default subject, `project_path:{project_path}:ref_type:{ref_type}:ref:{ref}` (facts
/// 1.5): what a federated credential's subject must be for a job on that project and ref when the
/// project has not customised `ci_id_token_sub_claim_components`. The one place that spells it.
#[doc(hidden)] // a test hook, re-exported as `internal::default_gitlab_subject`
pub fn default_gitlab_subject(project_path: &str, ref_type: &str, r#ref: &str) -> String {
    format!("project_path:{project_path}:ref_type:{ref_type}:ref:{}", r#ref)
}
