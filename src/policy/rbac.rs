//! The join the RBAC checks need: who can become each identity (the plan's credentials) times
//! what it may do (the role assignments in an `az` export).

use super::plan::{plan_unchecked, PlanOptions, REFERENCE_ISSUER};
use super::Policy;
use crate::rbac::{audit, parse_assignments, Catalogue, RbacError, Report};

/// Audits an export of `az role assignment list --all --include-inherited --include-groups -o
/// json` against the roles `policy` declares, with the built-in roles and, when given, the
/// tenant's role definitions (`az role definition list -o json`).
///
/// Each app of the policy is one identity. Who can become it is judged as the plan for an
/// issuer Entra accepts flexible credentials for would let it (the widest case): a rule whose
/// credential matches a pattern of refs makes its identity reachable from any branch, and raises
/// its risk findings one step.
///
/// # Errors
/// An [`RbacError`] for an export that does not parse (with where and what to change).
pub fn audit_rbac(
    policy: &Policy,
    assignments: &[u8],
    definitions: Option<&[u8]>,
) -> Result<Report, RbacError> {
    let assignments = parse_assignments(assignments)?;
    let custom;
    let catalogue = match definitions {
        Some(export) => {
            custom = Catalogue::with_definitions(export)?;
            &custom
        }
        None => Catalogue::builtin()?,
    };
    let plan = plan_unchecked(policy, &PlanOptions::new(REFERENCE_ISSUER));
    audit(&assignments, &plan.identities(policy), catalogue)
}

#[cfg(test)]
mod tests;
