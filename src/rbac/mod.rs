//! # RBAC: the Azure role assignments CI identities need, and the drift from them
//!
//! A GitLab job that becomes an Entra identity can do whatever that identity's Azure role
//! assignments allow, and who can become the identity is decided by its federated credentials.
//! The risk is the product of both: a credential any branch matches, times Contributor on the
//! subscription. This module reasons about the second factor, weighted by the first.
//!
//! - **Needs.** An allow rule may declare the roles its identity needs:
//!   `{"role": "AcrPush", "scope": "/subscriptions/.../registries/acrapp"}`
//!   ([`RoleNeed::parse`], [`RoleNeed::parse_list`]).
//! - **Plan.** [`plan`] turns needs into `az role assignment create` commands and
//!   `Microsoft.Authorization/roleAssignments` JSON with deterministic names, plus warnings
//!   ([`need_warnings`]): a write-capable role at a subscription, an escalation-capable role, a
//!   broad role where a task-sized built-in role exists, the ACR ABAC-mode caveat.
//! - **Audit.** [`audit`] reads `az role assignment list --all --include-inherited
//!   --include-groups -o json` ([`parse_assignments`]) and reports, per identity, privileged
//!   roles at wide scopes, escalation, grants wider than needed in scope or in actions, missing
//!   grants (a 403 before the deploy), indirect grants and unknown principals, each with the
//!   exact fix; as text, JSON or a GitLab Code Quality report ([`Report`]).
//!
//! The building blocks are public too: [`Scope`] (resource ids, case-insensitive, containment
//! by path segments), [`Catalogue`] (the vendored built-in roles, custom roles from
//! `az role definition list -o json`, lookup with "did you mean"), [`action_matches`] and the
//! role comparisons on [`RoleDefinition`], and [`arm_guid`] (ARM's `guid()`).
//!
//! ## What this module does not do
//!
//! - No I/O and no clock: exports arrive as bytes, and output is returned as strings.
//! - It does not read group membership or the management-group hierarchy: neither is in the
//!   exports. Group assignments count for an identity only through the groups its model lists;
//!   management-group assignments in an `--include-inherited` export are taken to apply to the
//!   exported subscription (that is why `az` listed them).
//! - It does not expand wildcards into concrete operations (no provider operations catalogue is
//!   vendored): roles are compared pattern against pattern, exactly for `*`-patterns.
//! - It cannot evaluate ABAC conditions: a conditioned role block counts as capable of its
//!   actions but never as covering a need.
//!
//! Every input is bounded ([`MAX_EXPORT_BYTES`], [`MAX_ASSIGNMENTS`], [`MAX_DEFINITIONS`],
//! [`MAX_IDENTITIES`], [`MAX_NEEDS`], [`MAX_SCOPE_LEN`], [`MAX_PATTERN_LEN`]) and every failure
//! is a typed error ([`RbacError`], [`ScopeError`]) that says what to change.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod assignment;
mod audit;
mod catalogue;
mod error;
mod guid;
mod need;
mod permissions;
mod plan;
mod report;
mod scope;

pub use assignment::{parse_assignments, PrincipalType, RoleAssignment};
pub use audit::audit;
pub use catalogue::{
    parse_role_definitions, role_guid_from_definition_id, Catalogue, RoleDefinition,
};
pub use error::{RbacError, ScopeError};
pub use guid::arm_guid;
pub use need::{Identity, Reachability, RoleNeed, RoleRef};
pub use permissions::{action_matches, Escalation, ExtraPermission, Permission, Plane};
pub use plan::{
    need_warnings, plan, IdentityPlan, PlanWarning, PlannedAssignment, RbacPlan,
    ROLE_ASSIGNMENT_API_VERSION,
};
pub use report::{AuditedIdentity, Finding, FindingKind, Report, Severity};
pub use scope::{Scope, ScopeLevel};

/// Largest `az` export read, in bytes (32 MiB).
pub const MAX_EXPORT_BYTES: usize = 32 * 1024 * 1024;
/// Most role assignments in one export.
pub const MAX_ASSIGNMENTS: usize = 100_000;
/// Most role definitions in one export.
pub const MAX_DEFINITIONS: usize = 10_000;
/// Most identities audited or planned at once.
pub const MAX_IDENTITIES: usize = 1_000;
/// Most role needs of one identity (or in one `roles` array).
pub const MAX_NEEDS: usize = 256;
/// Longest scope (resource id), in bytes.
pub const MAX_SCOPE_LEN: usize = 2_048;
/// Longest operation pattern in a role definition, in bytes.
pub const MAX_PATTERN_LEN: usize = 1_024;

#[cfg(test)]
mod tests;
