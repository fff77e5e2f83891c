//! The role assignments each identity needs, as commands and ARM JSON, with warnings.
//!
//! For every declared need the plan prints an `az role assignment create` command
//! (`--assignee-object-id`, `--assignee-principal-type ServicePrincipal`, `--role <GUID>`,
//! `--scope`, `--name`) and the `Microsoft.Authorization/roleAssignments` resource (API version
//! 2022-04-01). The assignment's name is derived from scope, principal and role definition as
//! Bicep's `guid()` pattern does, so running the plan again, and applying it again, changes
//! nothing: `name = guid(toLower(concat(scope, '-', principalId, '-', roleDefinitionId)))`
//! (see [`arm_guid`] for what is confirmed about `guid()`). Output is sorted and byte-identical
//! for identical input.
//!
//! The principal is the service principal's **object id**, not the client id. When the
//! identity model does not carry it, the command reads it into a shell variable first
//! (`az ad sp show --id <client-id> --query id -o tsv`), omits `--name`, and the ARM JSON takes
//! it as a template parameter.

use crate::text::shell_quote;
use std::fmt;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::catalogue::{Catalogue, RoleDefinition};
use super::error::RbacError;
use super::guid::arm_guid;
use super::need::{validated, Identity, Reachability, RoleNeed};
use super::scope::{Scope, ScopeLevel};

/// The API version of the planned `Microsoft.Authorization/roleAssignments` resources.
pub const ROLE_ASSIGNMENT_API_VERSION: &str = "2022-04-01";

pub(crate) const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub(crate) const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const ACR_LEGACY: [&str; 3] = [
    "8311e382-0749-4cb8-b61a-304f252e45ec", // AcrPush
    "7f951dda-4ed3-4680-a7ca-43fe172d538d", // AcrPull
    "c2f4ef07-c644-48eb-af81-4b1b4947fb11", // AcrDelete
];

/// The built-in roles that do one job on one resource type, for "a narrower role exists".
/// Matched by prefix, so a blob container finds the storage account's entry.
const TASK_ROLES: &[(&str, &[(&str, &str)])] = &[
    (
        "Microsoft.ContainerRegistry/registries",
        &[
            ("push images", "AcrPush"),
            ("pull images", "AcrPull"),
            ("push to a registry in ABAC mode", "Container Registry Repository Writer"),
        ],
    ),
    (
        "Microsoft.ContainerService/managedClusters",
        &[
            ("fetch a kubeconfig", "Azure Kubernetes Service Cluster User Role"),
            (
                "deploy workloads (Azure RBAC for Kubernetes)",
                "Azure Kubernetes Service RBAC Writer",
            ),
        ],
    ),
    ("Microsoft.KeyVault/vaults", &[("read secrets", "Key Vault Secrets User")]),
    (
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        &[("assign the identity", "Managed Identity Operator")],
    ),
    ("Microsoft.OperationalInsights/workspaces", &[("query logs", "Log Analytics Reader")]),
    ("Microsoft.ServiceBus/namespaces", &[("send messages", "Azure Service Bus Data Sender")]),
    (
        "Microsoft.Storage/storageAccounts",
        &[
            ("write blobs", "Storage Blob Data Contributor"),
            ("read blobs", "Storage Blob Data Reader"),
        ],
    ),
    (
        "Microsoft.Compute/virtualMachines",
        &[("manage the virtual machine", "Virtual Machine Contributor")],
    ),
    ("Microsoft.Network", &[("manage network resources", "Network Contributor")]),
    ("Microsoft.Web/sites", &[("deploy the app", "Website Contributor")]),
];

/// Something about a declared need that its owner should know. [`need_warnings`] computes
/// them from the need alone; `plan` and `check` print them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanWarning {
    /// AcrPush, AcrPull or AcrDelete: not honoured by registries in ABAC mode.
    AcrAbacMode {
        /// The role.
        role: String,
        /// The scope.
        scope: String,
    },
    /// A role that grants every control-plane action on a resource type for which a
    /// task-sized built-in role exists (Contributor on a registry where AcrPush is enough).
    BroaderThanNeeded {
        /// The role.
        role: String,
        /// The scope.
        scope: String,
        /// The scope's resource type.
        resource_type: String,
        /// `(task, role)` pairs, e.g. `("push images", "AcrPush")`.
        suggestions: Vec<(String, String)>,
    },
    /// The same role at the same scope is declared more than once.
    DuplicateNeed {
        /// The role.
        role: String,
        /// The scope.
        scope: String,
    },
    /// A role that can write role assignments or definitions.
    EscalationCapable {
        /// The role.
        role: String,
        /// The scope.
        scope: String,
        /// The operation that allows it.
        action: String,
        /// Whether an ABAC condition in the role narrows it.
        conditional: bool,
    },
    /// A GUID that is not a role this version knows, and no definitions export was given.
    UnknownRole {
        /// The GUID.
        role: String,
        /// The scope.
        scope: String,
    },
    /// A write-capable role at the root, a management group or a subscription.
    WriteAtWideScope {
        /// The role.
        role: String,
        /// The scope.
        scope: String,
        /// Its level.
        level: ScopeLevel,
        /// A pattern of the role that is not a read, e.g. `*` or `.../push/write`.
        example: String,
    },
}

impl PlanWarning {
    /// A stable kebab-case name for the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AcrAbacMode { .. } => "acr-abac-mode",
            Self::BroaderThanNeeded { .. } => "broader-than-needed",
            Self::DuplicateNeed { .. } => "duplicate-need",
            Self::EscalationCapable { .. } => "escalation-capable",
            Self::UnknownRole { .. } => "unknown-role",
            Self::WriteAtWideScope { .. } => "write-at-wide-scope",
        }
    }
}

impl fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AcrAbacMode { role, scope } => write!(
                f,
                "{role} at {scope} is a legacy registry role, which registries in ABAC mode \
                 (\"RBAC Registry + ABAC Repository Permissions\", created with \
                 `--role-assignment-mode rbac-abac`) do not honour; if this registry is in that \
                 mode, assign Container Registry Repository Writer (push) or Reader (pull) instead"
            ),
            Self::BroaderThanNeeded { role, scope, resource_type, suggestions } => {
                write!(
                    f,
                    "{role} at {scope} grants every control-plane action on this \
                     {resource_type} and everything under it"
                )?;
                for (i, (task, suggested)) in suggestions.iter().enumerate() {
                    let lead = if i == 0 { "; if the job only needs to" } else { "; to" };
                    write!(f, "{lead} {task}, {suggested} is enough")?;
                }
                Ok(())
            }
            Self::DuplicateNeed { role, scope } => {
                write!(f, "{role} at {scope} is declared more than once; it is assigned once")
            }
            Self::EscalationCapable { role, scope, action, conditional } => {
                write!(
                    f,
                    "{role} allows {action}: every job of this identity can grant itself (or \
                     anyone) any role at {scope}"
                )?;
                if *conditional {
                    f.write_str(" (an ABAC condition in the role narrows which roles; it cannot be checked here)")?;
                }
                f.write_str("; choose a role without Microsoft.Authorization write access")
            }
            Self::UnknownRole { role, scope } => write!(
                f,
                "role {role} at {scope} is not a built-in role this version knows and no role \
                 definitions export was given, so its permissions were not checked; pass \
                 `az role definition list --custom-role-only true -o json`"
            ),
            Self::WriteAtWideScope { role, scope, level, example } => write!(
                f,
                "{role} allows more than reads (`{example}`) and is declared at {level} scope \
                 {scope}: every job of this identity can do that to everything in the {level}; \
                 name the resource group or the resource instead"
            ),
        }
    }
}

/// The warnings a need raises on its own: write-capable at a wide scope, escalation-capable,
/// broader than a task-sized built-in role for the resource type, legacy ACR role, unknown role.
pub fn need_warnings(need: &RoleNeed, catalogue: &Catalogue) -> Vec<PlanWarning> {
    let scope = need.scope.to_string();
    let Some(role) = catalogue.by_guid(&need.role.guid) else {
        return vec![PlanWarning::UnknownRole { role: need.role.guid.clone(), scope }];
    };
    let name = role.role_name.clone();
    let mut warnings = Vec::new();
    if let (Some((_, example)), true) = (role.first_non_read(), need.scope.is_wide()) {
        warnings.push(PlanWarning::WriteAtWideScope {
            role: name.clone(),
            scope: scope.clone(),
            level: need.scope.level(),
            example: example.to_owned(),
        });
    }
    if let Some(escalation) = role.escalation() {
        warnings.push(PlanWarning::EscalationCapable {
            role: name.clone(),
            scope: scope.clone(),
            action: escalation.action.to_owned(),
            conditional: escalation.conditional,
        });
    }
    if let Some((resource_type, suggestions)) = task_roles(&need.scope, role, catalogue) {
        warnings.push(PlanWarning::BroaderThanNeeded {
            role: name.clone(),
            scope: scope.clone(),
            resource_type,
            suggestions,
        });
    }
    if ACR_LEGACY.contains(&role.name.as_str()) {
        warnings.push(PlanWarning::AcrAbacMode { role: name, scope });
    }
    warnings
}

/// For a role granting every action on a resource with a task-sized built-in role: the
/// resource type and the `(task, role)` suggestions.
fn task_roles(
    scope: &Scope,
    role: &RoleDefinition,
    catalogue: &Catalogue,
) -> Option<(String, Vec<(String, String)>)> {
    let resource_type = scope.resource_type()?;
    if !role.grants_all_actions() {
        return None;
    }
    let lower = resource_type.to_ascii_lowercase();
    let (_, tasks) = TASK_ROLES.iter().find(|(prefix, _)| {
        let prefix = prefix.to_ascii_lowercase();
        lower == prefix || lower.starts_with(&format!("{prefix}/"))
    })?;
    let suggestions: Vec<(String, String)> = tasks
        .iter()
        .filter_map(|(task, name)| catalogue.by_name(name).map(|r| (task, r)))
        .filter(|(_, r)| r.name != role.name)
        .map(|(task, r)| ((*task).to_owned(), r.role_name.clone()))
        .collect();
    (!suggestions.is_empty()).then(|| (resource_type.to_owned(), suggestions))
}

/// One planned role assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedAssignment {
    /// The role's GUID.
    pub role_guid: String,
    /// The role's name, when known.
    pub role_name: Option<String>,
    /// Where it is assigned.
    pub scope: Scope,
    /// `properties.roleDefinitionId`: `/subscriptions/<id>/providers/Microsoft.Authorization/
    /// roleDefinitions/<guid>` in a subscription (what `subscriptionResourceId()` gives),
    /// `/providers/...` above one, or a custom role's own id.
    pub role_definition_id: String,
    /// The assignment's deterministic name, when the principal's object id is known.
    pub name: Option<String>,
    /// The `az role assignment create` command.
    pub command: String,
    /// The `Microsoft.Authorization/roleAssignments` resource.
    pub arm: Value,
    /// The need's warnings.
    pub warnings: Vec<PlanWarning>,
}

/// The plan for one identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityPlan {
    /// The identity's name.
    pub identity: String,
    /// Its client id.
    pub client_id: String,
    /// Its object id, when known.
    pub principal_id: Option<String>,
    /// Who can become it.
    pub reachability: Reachability,
    /// When the object id is unknown: the shell line that reads it into the variable the
    /// commands use.
    pub lookup: Option<String>,
    /// The role assignments, sorted by scope then role.
    pub assignments: Vec<PlannedAssignment>,
    /// Warnings about the identity's needs as a whole (duplicates).
    pub warnings: Vec<PlanWarning>,
}

/// The role assignment plan of every identity. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RbacPlan {
    /// By identity name.
    pub identities: Vec<IdentityPlan>,
}

/// Plans the role assignments of `identities`.
///
/// # Errors
///
/// An identity's name is empty or repeated, or a client, object or group id is not a GUID.
pub fn plan(identities: &[Identity], catalogue: &Catalogue) -> Result<RbacPlan, RbacError> {
    let identities = validated(identities)?;
    let mut plans = Vec::with_capacity(identities.len());
    for identity in &identities {
        let mut needs: Vec<&RoleNeed> = identity.needs.iter().collect();
        needs.sort_by(|a, b| (&a.scope, &a.role.guid).cmp(&(&b.scope, &b.role.guid)));
        let mut warnings = Vec::new();
        let mut assignments: Vec<PlannedAssignment> = Vec::new();
        for need in needs {
            if assignments.iter().any(|p| p.role_guid == need.role.guid && p.scope == need.scope) {
                let warning = PlanWarning::DuplicateNeed {
                    role: need.role.name.clone().unwrap_or_else(|| need.role.guid.clone()),
                    scope: need.scope.to_string(),
                };
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
                continue;
            }
            assignments.push(planned(identity, need, catalogue));
        }
        plans.push(IdentityPlan {
            identity: identity.name.clone(),
            client_id: identity.client_id.clone(),
            principal_id: identity.principal_id.clone(),
            reachability: identity.reachability.clone(),
            lookup: identity
                .principal_id
                .is_none()
                .then(|| lookup_line(&identity.name, &identity.client_id)),
            assignments,
            warnings,
        });
    }
    Ok(RbacPlan { identities: plans })
}

fn planned(identity: &Identity, need: &RoleNeed, catalogue: &Catalogue) -> PlannedAssignment {
    let role = catalogue.by_guid(&need.role.guid);
    let role_definition_id = role_definition_id(&need.role.guid, &need.scope, role);
    let principal = identity.principal_id.as_deref();
    let name = principal.map(|p| assignment_name(&need.scope, p, &role_definition_id));
    let command =
        create_command(principal, &identity.name, &need.role.guid, &need.scope, name.as_deref());
    let parameter = format!("{}PrincipalId", camel(&identity.name));
    let (arm_name, arm_principal) = match (&name, principal) {
        (Some(name), Some(principal)) => (json!(name), json!(principal)),
        _ => (
            json!(format!(
                "[guid(toLower(concat('{}', '-', parameters('{parameter}'), '-', '{}')))]",
                need.scope, role_definition_id
            )),
            json!(format!("[parameters('{parameter}')]")),
        ),
    };
    let role_name = need.role.name.clone().or_else(|| role.map(|r| r.role_name.clone()));
    let mut arm = json!({
        "type": "Microsoft.Authorization/roleAssignments",
        "apiVersion": ROLE_ASSIGNMENT_API_VERSION,
        "name": arm_name,
        "scope": need.scope.as_str(),
        "properties": {
            "roleDefinitionId": role_definition_id,
            "principalId": arm_principal,
            "principalType": "ServicePrincipal",
            "description": format!(
                "gitlab-azure-oidc: {} needs {}",
                identity.name,
                role_name.as_deref().unwrap_or(&need.role.guid)
            ),
        },
    });
    if let (Some(name), Value::Object(object)) = (&name, &mut arm) {
        object.insert(
            "id".to_owned(),
            json!(format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
                scope_prefix(&need.scope)
            )),
        );
    }
    PlannedAssignment {
        role_guid: need.role.guid.clone(),
        role_name,
        scope: need.scope.clone(),
        role_definition_id,
        name,
        command,
        arm,
        warnings: need_warnings(need, catalogue),
    }
}

/// The scope as a prefix for `/providers/...`: empty for the root.
fn scope_prefix(scope: &Scope) -> &str {
    if scope.level() == ScopeLevel::Root {
        ""
    } else {
        scope.as_str()
    }
}

/// The role definition id to assign: a custom role's own id; for built-in (and unknown)
/// roles, the subscription form inside a subscription, the tenant form above.
pub(crate) fn role_definition_id(
    guid: &str,
    scope: &Scope,
    role: Option<&RoleDefinition>,
) -> String {
    match (role, scope.subscription_id()) {
        (Some(role), _) if !role.is_builtin() => role.id.clone(),
        (_, Some(subscription)) => format!(
            "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        ),
        (_, None) => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
    }
}

/// The deterministic assignment name:
/// `guid(toLower(concat(scope, '-', principalId, '-', roleDefinitionId)))`.
pub(crate) fn assignment_name(
    scope: &Scope,
    principal_id: &str,
    role_definition_id: &str,
) -> String {
    arm_guid(&format!("{scope}-{principal_id}-{role_definition_id}").to_ascii_lowercase())
}

/// `CI_RELEASE_OBJECT_ID`: the shell variable holding an identity's object id.
pub(crate) fn shell_variable(identity: &str) -> String {
    let mut name: String = identity
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    format!("{name}_OBJECT_ID")
}

/// `ciRelease`: an identity's name as an ARM parameter name prefix.
fn camel(identity: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in identity.chars() {
        if c.is_ascii_alphanumeric() {
            if out.is_empty() {
                out.push(c.to_ascii_lowercase());
            } else if upper {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "identity");
    }
    out
}

/// The line that reads an identity's object id into its shell variable.
pub(crate) fn lookup_line(identity: &str, client_id: &str) -> String {
    format!(
        "{}=\"$(az ad sp show --id {} --query id -o tsv)\"",
        shell_variable(identity),
        shell_quote(client_id)
    )
}

/// The object id as the commands write it: the id, or the shell variable.
pub(crate) fn object_id_argument(principal_id: Option<&str>, identity: &str) -> String {
    match principal_id {
        Some(id) => shell_quote(id),
        None => format!("\"${}\"", shell_variable(identity)),
    }
}

/// `az role assignment create` for a service principal.
pub(crate) fn create_command(
    principal_id: Option<&str>,
    identity: &str,
    role_guid: &str,
    scope: &Scope,
    name: Option<&str>,
) -> String {
    let mut command = format!(
        "az role assignment create --assignee-object-id {} --assignee-principal-type \
         ServicePrincipal --role {} --scope {}",
        object_id_argument(principal_id, identity),
        shell_quote(role_guid),
        shell_quote(scope.as_str())
    );
    if let Some(name) = name {
        let _ = write!(command, " --name {}", shell_quote(name));
    }
    command
}

impl RbacPlan {
    /// How many role assignments the plan creates.
    pub fn len(&self) -> usize {
        self.identities.iter().map(|i| i.assignments.len()).sum()
    }

    /// Whether the plan creates nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The plan as a shell script: comments, then the commands of each identity.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "# role assignments: {} for {} identit{}\n",
            self.len(),
            self.identities.len(),
            if self.identities.len() == 1 { "y" } else { "ies" }
        );
        for identity in &self.identities {
            let _ = write!(
                out,
                "\n# identity {}: client {}, object {} ({})\n",
                identity.identity,
                identity.client_id,
                identity.principal_id.as_deref().unwrap_or("unknown"),
                identity.reachability
            );
            for warning in &identity.warnings {
                let _ = writeln!(out, "# warning ({}): {warning}", warning.kind());
            }
            if identity.assignments.is_empty() {
                out.push_str("# no role assignments declared\n");
                continue;
            }
            if let Some(lookup) = &identity.lookup {
                out.push_str(
                    "# the object id is not in the policy: read it first (and give it to the \
                     policy, so that the assignment names are deterministic)\n",
                );
                let _ = writeln!(out, "{lookup}");
            }
            for assignment in &identity.assignments {
                let _ = writeln!(
                    out,
                    "# {} at {}",
                    assignment.role_name.as_deref().unwrap_or(&assignment.role_guid),
                    assignment.scope
                );
                for warning in &assignment.warnings {
                    let _ = writeln!(out, "# warning ({}): {warning}", warning.kind());
                }
                let _ = writeln!(out, "{}", assignment.command);
            }
        }
        out
    }

    /// The plan as one JSON document. Deterministic.
    pub fn to_json(&self) -> String {
        let warnings = |w: &[PlanWarning]| -> Vec<Value> {
            w.iter().map(|w| json!({ "kind": w.kind(), "message": w.to_string() })).collect()
        };
        let identities: Vec<Value> = self
            .identities
            .iter()
            .map(|i| {
                json!({
                    "name": i.identity,
                    "client_id": i.client_id,
                    "principal_id": i.principal_id,
                    "reachable_from_any_branch": i.reachability.is_any_branch(),
                    "reachability": i.reachability.reason(),
                    "lookup": i.lookup,
                    "warnings": warnings(&i.warnings),
                    "role_assignments": i.assignments.iter().map(|a| json!({
                        "role": a.role_name,
                        "role_guid": a.role_guid,
                        "scope": a.scope.as_str(),
                        "role_definition_id": a.role_definition_id,
                        "name": a.name,
                        "command": a.command,
                        "arm": a.arm,
                        "warnings": warnings(&a.warnings),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        format!("{:#}\n", json!({ "identities": identities }))
    }
}

#[cfg(test)]
mod tests;
