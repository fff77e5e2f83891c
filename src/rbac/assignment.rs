//! Role assignments, as `az role assignment list --all --include-inherited --include-groups
//! -o json` prints them.
//!
//! Only `id`, `principalId`, `roleDefinitionId` and `scope` are required (`scope` is derived
//! from `id` when absent); `null`s and members this module does not read are accepted, and so
//! is the REST shape with the members under `properties`.

use std::fmt;

use serde_json::Value;

use super::catalogue::{members, parse_export, role_guid_from_definition_id};
use super::error::RbacError;
use super::guid::parse_guid;
use super::scope::Scope;
use super::MAX_ASSIGNMENTS;

/// `principalType` of a role assignment.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalType {
    /// `Device`.
    Device,
    /// `ForeignGroup`: a group from another tenant.
    ForeignGroup,
    /// `Group`: the assignment reaches every member of the group.
    Group,
    /// `ServicePrincipal`: an application's service principal or a managed identity.
    ServicePrincipal,
    /// `User`.
    User,
    /// Absent from the export.
    Unknown,
    /// Another value.
    Other(String),
}

impl PrincipalType {
    fn parse(value: Option<&str>) -> PrincipalType {
        let Some(value) = value else { return PrincipalType::Unknown };
        match value.to_ascii_lowercase().as_str() {
            "device" => Self::Device,
            "foreigngroup" => Self::ForeignGroup,
            "group" => Self::Group,
            "serviceprincipal" => Self::ServicePrincipal,
            "user" => Self::User,
            _ => Self::Other(value.to_owned()),
        }
    }

    /// Whether the principal is a group (whose members inherit the assignment).
    pub fn is_group(&self) -> bool {
        matches!(self, Self::Group | Self::ForeignGroup)
    }
}

impl fmt::Display for PrincipalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device => f.write_str("Device"),
            Self::ForeignGroup => f.write_str("ForeignGroup"),
            Self::Group => f.write_str("Group"),
            Self::ServicePrincipal => f.write_str("ServicePrincipal"),
            Self::User => f.write_str("User"),
            Self::Unknown => f.write_str("unknown"),
            Self::Other(other) => f.write_str(other),
        }
    }
}

/// One role assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleAssignment {
    /// `id`: `<scope>/providers/Microsoft.Authorization/roleAssignments/<guid>`, as exported;
    /// what `az role assignment delete --ids` takes.
    pub id: String,
    /// `principalId`: the object id of the user, group or service principal, lowercase.
    pub principal_id: String,
    /// `principalName`: for a service principal, its application (client) id; for a user, the
    /// UPN. Filled by the CLI only.
    pub principal_name: Option<String>,
    /// `principalType`.
    pub principal_type: PrincipalType,
    /// `roleDefinitionId`, as exported.
    pub role_definition_id: String,
    /// The role's GUID (the last segment of `roleDefinitionId`), lowercase.
    pub role_guid: String,
    /// `roleDefinitionName`: filled by the CLI only.
    pub role_definition_name: Option<String>,
    /// `scope`.
    pub scope: Scope,
    /// `condition`: an ABAC condition narrowing the assignment.
    pub condition: Option<String>,
}

impl RoleAssignment {
    /// The role for messages: the CLI's `roleDefinitionName` or the GUID.
    pub fn role_label(&self) -> &str {
        self.role_definition_name.as_deref().unwrap_or(&self.role_guid)
    }
}

/// Parses an `az role assignment list -o json` export.
///
/// # Errors
///
/// The export is larger than [`MAX_EXPORT_BYTES`](super::MAX_EXPORT_BYTES), not JSON, not an
/// array, has more than [`MAX_ASSIGNMENTS`] entries, or an entry lacks a required member or
/// has an unusable one; the error names the entry (`[3].scope`).
pub fn parse_assignments(export: &[u8]) -> Result<Vec<RoleAssignment>, RbacError> {
    const WHAT: &str = "the role assignments export";
    let entries = parse_export(export, WHAT, MAX_ASSIGNMENTS, "role assignments")?;
    entries.iter().enumerate().map(|(i, v)| assignment(v, &format!("[{i}]"))).collect()
}

fn assignment(value: &Value, at: &str) -> Result<RoleAssignment, RbacError> {
    let m = members(value, at)?;
    let id = m.required("id")?;
    let principal = m.required("principalId")?;
    let principal_id = parse_guid(principal).ok_or_else(|| RbacError::InvalidValue {
        at: m.path("principalId"),
        value: principal.to_owned(),
        expected: "an object id (GUID)".to_owned(),
    })?;
    let role_definition_id = m.required("roleDefinitionId")?;
    let role_guid = role_guid_from_definition_id(role_definition_id)
        .or_else(|| parse_guid(role_definition_id))
        .ok_or_else(|| RbacError::InvalidValue {
            at: m.path("roleDefinitionId"),
            value: role_definition_id.to_owned(),
            expected: "a role definition id (.../providers/Microsoft.Authorization/\
                       roleDefinitions/<guid>)"
                .to_owned(),
        })?;
    let scope_text = match m.string("scope")? {
        Some(scope) => scope.to_owned(),
        None => scope_of_assignment_id(id)
            .ok_or_else(|| RbacError::MissingField { at: m.path("scope") })?,
    };
    let scope = Scope::parse(&scope_text)
        .map_err(|error| RbacError::Scope { at: m.path("scope"), error })?;
    Ok(RoleAssignment {
        id: id.to_owned(),
        principal_id,
        principal_name: m.string("principalName")?.map(str::to_owned),
        principal_type: PrincipalType::parse(m.string("principalType")?),
        role_definition_id: role_definition_id.to_owned(),
        role_guid,
        role_definition_name: m.string("roleDefinitionName")?.map(str::to_owned),
        scope,
        condition: m.string("condition")?.map(str::to_owned),
    })
}

/// The scope part of `<scope>/providers/Microsoft.Authorization/roleAssignments/<name>`.
fn scope_of_assignment_id(id: &str) -> Option<String> {
    const MARKER: &str = "/providers/microsoft.authorization/roleassignments/";
    let at = id.to_ascii_lowercase().rfind(MARKER)?;
    let scope = id.get(..at)?;
    Some(if scope.is_empty() { "/".to_owned() } else { scope.to_owned() })
}

#[cfg(test)]
mod tests;
