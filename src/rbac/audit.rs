//! The drift check: what the identities can do in Azure, against what the policy says they need.
//!
//! Input: the role assignments of `az role assignment list --all --include-inherited
//! --include-groups -o json` ([`parse_assignments`](super::parse_assignments)), the role
//! definitions ([`Catalogue`], built-in plus an optional `az role definition list` export) and
//! the identity model ([`Identity`]). Each assignment is attributed to an identity by
//! `principalId` = the identity's object id, or (for service principals) by `principalName` =
//! its client id, which the CLI fills in; group assignments only through the groups the
//! identity model lists (membership is not in the export).
//!
//! Per assignment of an identity, in this order:
//!
//! 1. **escalation** (critical): the role can write role assignments or definitions; high
//!    when only an ABAC condition stands in the way (it cannot be judged offline).
//! 2. **privileged-wide-scope** (critical): Owner, Contributor or a role granting `*`, at the
//!    root, a management group or a subscription.
//!
//!    An assignment with either finding gets no others: the fix removes it.
//! 3. **actions-wider-than-needed**: the role grants patterns that none of the needs it serves
//!    covers (high when one of them writes, medium when the extra is data access, low when it
//!    only reads); or it serves no declared need at all. An assignment *serves* a need at,
//!    above or under its scope when one role covers the other.
//! 4. **scope-wider-than-needed**: it sits above every need it serves (high when the role is
//!    write-capable, else medium). Management-group assignments in an `--include-inherited`
//!    export count as above the subscription.
//! 5. **indirect-grant** (low, medium when write-capable): an assignment kept as is that
//!    reaches the identity through a group.
//!
//! Per need: **missing-grant** (high) when nothing grants it at or above its scope (the deploy
//! will get a 403), or (medium) when only assignments this report asks to remove do. Service
//! principals the model does not know get **unknown-principal** (low; medium when privileged
//! at a wide scope). Users are out of scope.
//!
//! Risk findings (all but missing-grant and unknown-principal) of an identity that any branch
//! can reach ([`Reachability::AnyBranch`](super::Reachability)) are raised one step, capped at
//! critical, and the message says so. Every finding carries the exact fix.

use crate::text::shell_quote;
use std::collections::BTreeSet;

use super::assignment::{PrincipalType, RoleAssignment};
use super::catalogue::{Catalogue, RoleDefinition};
use super::error::RbacError;
use super::need::{validated, Identity, RoleNeed};
use super::permissions::Plane;
use super::plan::{
    assignment_name, create_command, lookup_line, object_id_argument, role_definition_id,
    CONTRIBUTOR, OWNER,
};
use super::report::{AuditedIdentity, Finding, FindingKind, Report, Severity};
use super::scope::{Scope, ScopeLevel};

/// One role assignment that reaches an identity.
struct Grant<'a> {
    assignment: &'a RoleAssignment,
    role: Option<&'a RoleDefinition>,
    via_group: bool,
}

impl Grant<'_> {
    fn scope(&self) -> &Scope {
        &self.assignment.scope
    }

    fn label(&self) -> &str {
        self.role.map_or_else(|| self.assignment.role_label(), |r| r.role_name.as_str())
    }

    /// How the assignment reaches the identity, for messages: "" when directly.
    fn route(&self) -> String {
        if self.via_group {
            format!(" through group {}", self.assignment.principal_id)
        } else {
            match (self.scope().level(), self.scope().management_group()) {
                (ScopeLevel::Root, _) => " (inherited from the root)".to_owned(),
                (ScopeLevel::ManagementGroup, Some(group)) => {
                    format!(" (inherited from management group {group})")
                }
                _ => String::new(),
            }
        }
    }

    /// Whether it grants `need`: the same role, or a role covering it, at or above the scope.
    fn covers(&self, need: &RoleNeed, need_role: Option<&RoleDefinition>) -> bool {
        if !self.scope().applies_to(&need.scope) {
            return false;
        }
        if self.assignment.role_guid == need.role.guid {
            return true;
        }
        match (self.role, need_role) {
            (Some(role), Some(needed)) => {
                self.assignment.condition.is_none() && role.covers(needed)
            }
            _ => false,
        }
    }

    /// Whether the assignment serves `need`: the need is at, above or under its scope, and one
    /// role covers the other (or they are the same).
    fn serves(&self, need: &RoleNeed, need_role: Option<&RoleDefinition>) -> bool {
        let related = self.scope().applies_to(&need.scope) || need.scope.contains(self.scope());
        related
            && (self.assignment.role_guid == need.role.guid
                || match (self.role, need_role) {
                    (Some(role), Some(needed)) => role.covers(needed) || needed.covers(role),
                    _ => false,
                })
    }
}

/// "at subscription scope /subscriptions/S" for wide scopes, "at <scope>" otherwise.
fn at_scope(scope: &Scope) -> String {
    if scope.is_wide() {
        format!("at {} scope {scope}", scope.level())
    } else {
        format!("at {scope}")
    }
}

fn need_label(need: &RoleNeed) -> String {
    format!("{} at {}", need.role.name.as_deref().unwrap_or(&need.role.guid), need.scope)
}

/// Audits `assignments` against the identities' declared needs. See the module documentation.
///
/// # Errors
///
/// An identity's name is empty or repeated, or a client, object or group id is not a GUID.
pub fn audit(
    assignments: &[RoleAssignment],
    identities: &[Identity],
    catalogue: &Catalogue,
) -> Result<Report, RbacError> {
    let identities = validated(identities)?;
    let mut grants: Vec<Vec<Grant<'_>>> = identities.iter().map(|_| Vec::new()).collect();
    let mut findings = Vec::new();
    let mut notes: BTreeSet<String> = BTreeSet::new();
    let (mut unattributed_groups, mut users) = (0usize, 0usize);

    for assignment in assignments {
        let role = catalogue.by_guid(&assignment.role_guid);
        if assignment.principal_type.is_group() {
            let mut attributed = false;
            for (k, identity) in identities.iter().enumerate() {
                if identity.groups.contains(&assignment.principal_id) {
                    if let Some(list) = grants.get_mut(k) {
                        list.push(Grant { assignment, role, via_group: true });
                    }
                    attributed = true;
                }
            }
            unattributed_groups += usize::from(!attributed);
            continue;
        }
        let owner = identities.iter().position(|i| is_principal_of(i, assignment));
        match (owner.and_then(|k| grants.get_mut(k)), &assignment.principal_type) {
            (Some(list), _) => list.push(Grant { assignment, role, via_group: false }),
            (None, PrincipalType::ServicePrincipal | PrincipalType::Unknown) => {
                findings.push(unknown_principal(assignment, role));
            }
            (None, _) => users += 1,
        }
    }

    let mut audited = Vec::with_capacity(identities.len());
    for (identity, grants) in identities.iter().zip(&grants) {
        let object_id = identity.principal_id.clone().or_else(|| {
            grants.iter().find(|g| !g.via_group).map(|g| g.assignment.principal_id.clone())
        });
        for grant in grants.iter().filter(|g| g.role.is_none()) {
            notes.insert(format!(
                "role definition {} ({}) is neither built in nor in the role definitions export: \
                 its assignments were not judged; pass `az role definition list \
                 --custom-role-only true -o json`",
                grant.assignment.role_guid,
                grant.assignment.role_label()
            ));
        }
        if grants.is_empty() && identity.principal_id.is_none() {
            notes.insert(format!(
                "identity {}: the model has no object id and no assignment's principalName is its \
                 client id {}; if the export lacks principal names, give the object id \
                 (`az ad sp show --id {} --query id -o tsv`)",
                identity.name, identity.client_id, identity.client_id
            ));
        }
        let auditor = Auditor { identity, object_id: object_id.as_deref(), catalogue };
        findings
            .extend(auditor.findings(grants).into_iter().map(|f| f.weigh(&identity.reachability)));
        audited.push(AuditedIdentity {
            name: identity.name.clone(),
            client_id: identity.client_id.clone(),
            principal_id: object_id,
            reachability: identity.reachability.clone(),
            assignments: grants.len(),
        });
    }

    if unattributed_groups > 0 {
        notes.insert(format!(
            "{unattributed_groups} group role assignment(s) were not attributed to any identity: \
             group membership is not in the export; list each identity's groups in its model \
             (`az rest --url https://graph.microsoft.com/v1.0/servicePrincipals/<object-id>/\
             transitiveMemberOf --query \"value[].id\"`)"
        ));
    }
    if users > 0 {
        notes.insert(format!(
            "{users} assignment(s) of users and other non-service principals were not audited"
        ));
    }
    if !assignments.is_empty()
        && !assignments.iter().any(|a| a.scope.level() <= ScopeLevel::ManagementGroup)
    {
        notes.insert(
            "the export has no assignment at a management group or the root: if it was made \
             without `--include-inherited`, inherited grants are missing from this audit"
                .to_owned(),
        );
    }

    findings.sort_by(|a, b| {
        (
            a.identity.is_none(),
            &a.identity,
            std::cmp::Reverse(a.severity),
            a.kind,
            &a.assignment_id,
            &a.scope,
        )
            .cmp(&(
                b.identity.is_none(),
                &b.identity,
                std::cmp::Reverse(b.severity),
                b.kind,
                &b.assignment_id,
                &b.scope,
            ))
    });
    Ok(Report { identities: audited, findings, notes: notes.into_iter().collect() })
}

/// Whether `assignment` names `identity`'s service principal: by object id, or by
/// `principalName` equal to the client id.
fn is_principal_of(identity: &Identity, assignment: &RoleAssignment) -> bool {
    identity.principal_id.as_deref() == Some(assignment.principal_id.as_str())
        || (matches!(
            assignment.principal_type,
            PrincipalType::ServicePrincipal | PrincipalType::Unknown
        ) && assignment
            .principal_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(&identity.client_id)))
}

fn unknown_principal(assignment: &RoleAssignment, role: Option<&RoleDefinition>) -> Finding {
    let label = role.map_or_else(|| assignment.role_label(), |r| r.role_name.as_str());
    let privileged = role.is_some_and(|r| r.grants_all_actions() || r.escalation().is_some());
    let severity =
        if privileged && assignment.scope.is_wide() { Severity::Medium } else { Severity::Low };
    let who = assignment.principal_name.as_deref().unwrap_or(&assignment.principal_id);
    Finding::new(
        FindingKind::UnknownPrincipal,
        severity,
        None,
        Some(&assignment.id),
        (label, &assignment.role_guid),
        assignment.scope.as_str(),
        format!(
            "service principal {who} holds {label} {} but is no identity of the policy: if it is \
             a retired CI identity it keeps this access until the assignment is deleted; if it is \
             a CI identity, add it to the policy",
            at_scope(&assignment.scope)
        ),
        format!("az role assignment delete --ids {}", shell_quote(&assignment.id)),
    )
}

/// What the first pass decided about one assignment.
struct Verdict {
    kind: FindingKind,
    severity: Severity,
    message: String,
    /// Whether the fix removes the assignment.
    removes: bool,
    /// Whether the fix first creates the needs the assignment serves.
    creates: bool,
}

struct Auditor<'a> {
    identity: &'a Identity,
    object_id: Option<&'a str>,
    catalogue: &'a Catalogue,
}

impl Auditor<'_> {
    fn findings(&self, grants: &[Grant<'_>]) -> Vec<Finding> {
        let mut needs: Vec<&RoleNeed> = Vec::new();
        for need in &self.identity.needs {
            if !needs.iter().any(|n| n.role.guid == need.role.guid && n.scope == need.scope) {
                needs.push(need);
            }
        }
        let verdicts: Vec<Vec<Verdict>> = grants.iter().map(|g| self.judge(g, &needs)).collect();
        let removed: Vec<bool> =
            verdicts.iter().map(|v| v.iter().any(|verdict| verdict.removes)).collect();
        let need_role = |need: &RoleNeed| self.catalogue.by_guid(&need.role.guid);
        let kept_cover = |need: &RoleNeed, direct_only: bool| {
            grants.iter().zip(&removed).any(|(g, removed)| {
                let skipped = *removed || (direct_only && g.via_group);
                !skipped && g.covers(need, need_role(need))
            })
        };

        let mut findings = Vec::new();
        let mut created: Vec<&RoleNeed> = Vec::new();
        for (grant, verdicts) in grants.iter().zip(&verdicts) {
            for verdict in verdicts {
                let mut steps: Vec<String> = Vec::new();
                if verdict.creates {
                    for need in needs.iter().filter(|n| grant.serves(n, need_role(n))) {
                        let wanted = if verdict.removes {
                            !kept_cover(need, false)
                        } else {
                            grant.covers(need, need_role(need)) && !kept_cover(need, true)
                        };
                        if wanted {
                            steps.push(self.create_fix(need));
                            created.push(need);
                        }
                    }
                }
                steps.push(self.removal_fix(grant));
                findings.push(Finding::new(
                    verdict.kind,
                    verdict.severity,
                    Some(&self.identity.name),
                    Some(&grant.assignment.id),
                    (grant.label(), &grant.assignment.role_guid),
                    grant.scope().as_str(),
                    verdict.message.clone(),
                    steps.join(" && "),
                ));
            }
        }

        for need in &needs {
            let label = need_label(need);
            let covered_now = grants.iter().any(|g| g.covers(need, need_role(need)));
            let (severity, message) = if !covered_now {
                (
                    Severity::High,
                    format!(
                        "nothing grants {label} (no assignment of it, or of a role covering it, \
                         at or above that scope): the job's calls will fail with 403 \
                         AuthorizationFailed"
                    ),
                )
            } else if !kept_cover(need, false) && !created.iter().any(|c| c == need) {
                (
                    Severity::Medium,
                    format!(
                        "only assignments this report asks to remove grant {label}: create the \
                         narrow assignment before removing them"
                    ),
                )
            } else {
                continue;
            };
            findings.push(Finding::new(
                FindingKind::MissingGrant,
                severity,
                Some(&self.identity.name),
                None,
                (need.role.name.as_deref().unwrap_or(&need.role.guid), &need.role.guid),
                need.scope.as_str(),
                message,
                self.create_fix(need),
            ));
        }
        findings
    }

    /// The findings about one assignment, without fixes.
    fn judge(&self, grant: &Grant<'_>, needs: &[&RoleNeed]) -> Vec<Verdict> {
        let Some(role) = grant.role else { return Vec::new() };
        let (label, route, at) = (grant.label(), grant.route(), at_scope(grant.scope()));
        let mut verdicts = Vec::new();
        if let Some(escalation) = role.escalation() {
            let conditional = escalation.conditional || grant.assignment.condition.is_some();
            verdicts.push(Verdict {
                kind: FindingKind::Escalation,
                severity: if conditional { Severity::High } else { Severity::Critical },
                message: format!(
                    "{label} {at}{route} allows {}: the identity can grant itself, or anyone, any \
                     role there{}",
                    escalation.action,
                    if conditional {
                        " (an ABAC condition may narrow which roles; it cannot be checked offline)"
                    } else {
                        ""
                    }
                ),
                removes: true,
                creates: false,
            });
        }
        let privileged =
            role.name == OWNER || role.name == CONTRIBUTOR || role.grants_all_actions();
        if privileged && grant.scope().is_wide() {
            let declared = if needs.is_empty() {
                "the policy declares no role for it".to_owned()
            } else {
                let listed: Vec<String> = needs.iter().take(3).map(|n| need_label(n)).collect();
                format!("the policy declares only {}", listed.join("; "))
            };
            verdicts.push(Verdict {
                kind: FindingKind::PrivilegedWideScope,
                severity: Severity::Critical,
                message: format!(
                    "{label} {at}{route} lets the identity change every resource in the {}; {declared}",
                    grant.scope().level()
                ),
                removes: true,
                creates: false,
            });
        }
        if !verdicts.is_empty() {
            return verdicts;
        }

        let related: Vec<&RoleNeed> = needs
            .iter()
            .copied()
            .filter(|n| grant.serves(n, self.catalogue.by_guid(&n.role.guid)))
            .collect();
        if related.is_empty() {
            verdicts.push(Verdict {
                kind: FindingKind::ActionsWiderThanNeeded,
                severity: if role.is_write_capable() { Severity::High } else { Severity::Low },
                message: format!(
                    "{label} {at}{route} serves no declared need: the policy declares no role at, \
                     above or under this scope"
                ),
                removes: true,
                creates: false,
            });
            return verdicts;
        }

        let need_roles: Vec<&RoleDefinition> =
            related.iter().filter_map(|n| self.catalogue.by_guid(&n.role.guid)).collect();
        let same_role = related.iter().any(|n| n.role.guid == role.name);
        if need_roles.len() == related.len() && !same_role {
            let extra = role.extra_over(&need_roles);
            if !extra.is_empty() {
                let severity = if extra.iter().any(|e| e.is_write()) {
                    Severity::High
                } else if extra.iter().any(|e| e.plane == Plane::Data) {
                    Severity::Medium
                } else {
                    Severity::Low
                };
                let shown: Vec<String> = extra.iter().take(3).map(ToString::to_string).collect();
                let more = if extra.len() > 3 {
                    format!(" and {} more", extra.len() - 3)
                } else {
                    String::new()
                };
                let needed: Vec<String> = related.iter().map(|n| need_label(n)).collect();
                let narrowest = self
                    .catalogue
                    .narrowest_covering(&need_roles)
                    .map(|r| format!("; {} covers what is needed", r.role_name))
                    .unwrap_or_default();
                verdicts.push(Verdict {
                    kind: FindingKind::ActionsWiderThanNeeded,
                    severity,
                    message: format!(
                        "{label} {at}{route} grants {}{more} beyond the declared need ({}){narrowest}",
                        shown.join(", "),
                        needed.join("; ")
                    ),
                    removes: true,
                    creates: true,
                });
            }
        }

        let above_all =
            related.iter().all(|n| grant.scope().applies_to(&n.scope) && n.scope != *grant.scope());
        if above_all {
            let scopes: Vec<String> = related.iter().map(|n| n.scope.to_string()).collect();
            verdicts.push(Verdict {
                kind: FindingKind::ScopeWiderThanNeeded,
                severity: if role.is_write_capable() { Severity::High } else { Severity::Medium },
                message: format!(
                    "{label} {at}{route} sits above where it is needed ({}): it reaches every \
                     other resource there too",
                    scopes.join(", ")
                ),
                removes: true,
                creates: true,
            });
        }

        if verdicts.is_empty() && grant.via_group {
            verdicts.push(Verdict {
                kind: FindingKind::IndirectGrant,
                severity: if role.is_write_capable() { Severity::Medium } else { Severity::Low },
                message: format!(
                    "{label} {at}{route} reaches the identity only through the group: it does not \
                     show on the identity's own assignments, and every member of the group holds it"
                ),
                removes: false,
                creates: true,
            });
        }
        verdicts
    }

    /// The shell prefix that reads the object id when the model lacks it.
    fn with_lookup(&self, command: String) -> String {
        match self.object_id {
            Some(_) => command,
            None => format!(
                "{} && {command}",
                lookup_line(&self.identity.name, &self.identity.client_id)
            ),
        }
    }

    fn create_fix(&self, need: &RoleNeed) -> String {
        let role = self.catalogue.by_guid(&need.role.guid);
        let definition = role_definition_id(&need.role.guid, &need.scope, role);
        let name = self.object_id.map(|p| assignment_name(&need.scope, p, &definition));
        self.with_lookup(create_command(
            self.object_id,
            &self.identity.name,
            &need.role.guid,
            &need.scope,
            name.as_deref(),
        ))
    }

    /// Removes the assignment from the identity: deletes it, or for a group's assignment (which
    /// other members hold too) takes the identity out of the group.
    fn removal_fix(&self, grant: &Grant<'_>) -> String {
        if grant.via_group {
            self.with_lookup(format!(
                "az ad group member remove --group {} --member-id {}",
                shell_quote(&grant.assignment.principal_id),
                object_id_argument(self.object_id, &self.identity.name)
            ))
        } else {
            format!("az role assignment delete --ids {}", shell_quote(&grant.assignment.id))
        }
    }
}

#[cfg(test)]
mod tests;
