//! The identity model: who a CI identity is, what it needs, and who can become it.
//!
//! An allow rule's `azure` block may declare `roles`: the role assignments its identity needs,
//! each `{"role": ..., "scope": ...}`. [`RoleNeed::parse`] reads one such member;
//! [`RoleNeed::parse_list`] reads the array. A role is written as a built-in role's name
//! (`"AcrPush"`, any case), a GUID, or a role definition id
//! (`/subscriptions/<id>/providers/Microsoft.Authorization/roleDefinitions/<guid>` or
//! `/providers/...`). Custom roles are named by GUID or id: their names are tenant-local and
//! can change.

use std::fmt;

use serde_json::Value;

use super::catalogue::{role_guid_from_definition_id, Catalogue};
use super::error::RbacError;
use super::guid::parse_guid;
use super::scope::Scope;
use super::MAX_NEEDS;
use crate::text::json::type_name;

/// A role, as a need names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleRef {
    /// The role's GUID, lowercase.
    pub guid: String,
    /// The role's name, when the catalogue knows it (every built-in role).
    pub name: Option<String>,
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.guid),
            None => write!(f, "custom role {}", self.guid),
        }
    }
}

/// One role assignment an identity needs: a role at a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleNeed {
    /// The role.
    pub role: RoleRef,
    /// Where it is needed.
    pub scope: Scope,
}

const NEED_MEMBERS: &[&str] = &["role", "scope"];

impl RoleNeed {
    /// Reads `{"role": "AcrPush", "scope": "/subscriptions/..."}`; role names are checked
    /// against the built-in roles.
    ///
    /// # Errors
    ///
    /// An [`RbacError`] whose `at` is the member (`role`, `scope`): not an object, a member
    /// missing or of the wrong type, an unknown member, an unknown role name (with the closest
    /// built-in name), or a scope that does not parse.
    pub fn parse(value: &Value) -> Result<RoleNeed, RbacError> {
        Self::parse_with(value, Catalogue::builtin()?)
    }

    /// [`parse`](Self::parse) with role names looked up in `catalogue` (which may hold custom
    /// roles from an export).
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse).
    pub fn parse_with(value: &Value, catalogue: &Catalogue) -> Result<RoleNeed, RbacError> {
        Self::parse_at(value, catalogue, "")
    }

    /// Reads an array of needs; errors are at `[i].role` and the like.
    ///
    /// # Errors
    ///
    /// As [`parse`](Self::parse), plus: not an array, or more than [`MAX_NEEDS`] entries.
    pub fn parse_list(value: &Value) -> Result<Vec<RoleNeed>, RbacError> {
        let catalogue = Catalogue::builtin()?;
        let Value::Array(items) = value else {
            return Err(RbacError::WrongType {
                at: String::new(),
                expected: "an array of {\"role\", \"scope\"} objects",
                found: type_name(value),
            });
        };
        if items.len() > MAX_NEEDS {
            return Err(RbacError::TooMany {
                what: "role needs",
                count: items.len(),
                limit: MAX_NEEDS,
            });
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| Self::parse_at(item, catalogue, &format!("[{i}]")))
            .collect()
    }

    fn parse_at(value: &Value, catalogue: &Catalogue, at: &str) -> Result<RoleNeed, RbacError> {
        let path = |member: &str| {
            if at.is_empty() {
                member.to_owned()
            } else {
                format!("{at}.{member}")
            }
        };
        let Value::Object(object) = value else {
            return Err(RbacError::WrongType {
                at: at.to_owned(),
                expected: "an object {\"role\": ..., \"scope\": ...}",
                found: type_name(value),
            });
        };
        if let Some(field) = object.keys().find(|k| !NEED_MEMBERS.contains(&k.as_str())) {
            return Err(RbacError::UnknownField {
                at: at.to_owned(),
                field: field.clone(),
                allowed: NEED_MEMBERS,
            });
        }
        let string = |member: &str| match object.get(member) {
            None | Some(Value::Null) => Err(RbacError::MissingField { at: path(member) }),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(RbacError::WrongType {
                at: path(member),
                expected: "a string",
                found: type_name(other),
            }),
        };
        let role = resolve_role(string("role")?, catalogue, &path("role"))?;
        let scope = Scope::parse(string("scope")?)
            .map_err(|error| RbacError::Scope { at: path("scope"), error })?;
        Ok(RoleNeed { role, scope })
    }
}

/// A role as written: a GUID or definition id (any role), or a name (looked up in `catalogue`).
pub(crate) fn resolve_role(
    written: &str,
    catalogue: &Catalogue,
    at: &str,
) -> Result<RoleRef, RbacError> {
    if written.trim().is_empty() {
        return Err(RbacError::InvalidValue {
            at: at.to_owned(),
            value: written.to_owned(),
            expected: "a role name, GUID or role definition id".to_owned(),
        });
    }
    let guid = parse_guid(written).or_else(|| role_guid_from_definition_id(written));
    if let Some(guid) = guid {
        let name = catalogue.by_guid(&guid).map(|r| r.role_name.clone());
        return Ok(RoleRef { guid, name });
    }
    if written.starts_with('/') {
        return Err(RbacError::InvalidValue {
            at: at.to_owned(),
            value: written.to_owned(),
            expected: "a role definition id (.../providers/Microsoft.Authorization/\
                       roleDefinitions/<guid>)"
                .to_owned(),
        });
    }
    let role = catalogue.resolve(written, at)?;
    Ok(RoleRef { guid: role.name.clone(), name: Some(role.role_name.clone()) })
}

/// Who can become an identity, as far as Entra enforces it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// Only exact federated credentials for protected refs (or the like) lead to it.
    ProtectedRefsOnly {
        /// Why, e.g. "exact credential for ref main (protected)".
        reason: String,
    },
    /// Any branch can reach it: a wildcard or flexible credential, or a rule whose conditions
    /// Entra cannot enforce. Risk findings on it are raised one severity step.
    AnyBranch {
        /// Why, e.g. "flexible credential claims['sub'] matches '...:ref:*'".
        reason: String,
    },
}

impl Reachability {
    /// Whether any branch can reach the identity.
    pub fn is_any_branch(&self) -> bool {
        matches!(self, Self::AnyBranch { .. })
    }

    /// The stated reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::ProtectedRefsOnly { reason } | Self::AnyBranch { reason } => reason,
        }
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProtectedRefsOnly { reason } => write!(f, "protected refs only: {reason}"),
            Self::AnyBranch { reason } => write!(f, "reachable from any branch: {reason}"),
        }
    }
}

/// A CI identity: an Entra application's service principal (or a user-assigned managed
/// identity) that jobs become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// A name for people (the policy rule or app name); unique among the identities.
    pub name: String,
    /// The application (client) id jobs log in with.
    pub client_id: String,
    /// The service principal's object id, which role assignments name (`principalId`). It is
    /// not the client id; `az ad sp show --id <client-id> --query id -o tsv` prints it.
    pub principal_id: Option<String>,
    /// Object ids of Entra groups the principal is a member of (transitively), when known,
    /// e.g. from `az rest --url https://graph.microsoft.com/v1.0/servicePrincipals/<object-id>/
    /// transitiveMemberOf --query "value[].id"`. Group role assignments are attributed to the
    /// identity only through this list: membership cannot be read from an assignments export.
    pub groups: Vec<String>,
    /// The role assignments it needs.
    pub needs: Vec<RoleNeed>,
    /// Who can become it.
    pub reachability: Reachability,
}

impl Identity {
    /// An identity with no known object id, groups or needs.
    pub fn new(name: &str, client_id: &str, reachability: Reachability) -> Identity {
        Identity {
            name: name.to_owned(),
            client_id: client_id.to_owned(),
            principal_id: None,
            groups: Vec::new(),
            needs: Vec::new(),
            reachability,
        }
    }
}

/// Checks names are unique and ids are GUIDs; returns the identities with ids lowercased.
pub(crate) fn validated(identities: &[Identity]) -> Result<Vec<Identity>, RbacError> {
    if identities.len() > super::MAX_IDENTITIES {
        return Err(RbacError::TooMany {
            what: "identities",
            count: identities.len(),
            limit: super::MAX_IDENTITIES,
        });
    }
    let mut out: Vec<Identity> = Vec::with_capacity(identities.len());
    for identity in identities {
        let at = format!("identities[{}]", identity.name);
        if identity.name.trim().is_empty() {
            return Err(RbacError::InvalidValue {
                at: "identities[].name".to_owned(),
                value: identity.name.clone(),
                expected: "a non-empty name".to_owned(),
            });
        }
        if out.iter().any(|o| o.name == identity.name) {
            return Err(RbacError::InvalidValue {
                at,
                value: identity.name.clone(),
                expected: "a name no other identity has".to_owned(),
            });
        }
        if identity.needs.len() > MAX_NEEDS {
            return Err(RbacError::TooMany {
                what: "role needs",
                count: identity.needs.len(),
                limit: MAX_NEEDS,
            });
        }
        let guid = |value: &str, member: &str| {
            parse_guid(value).ok_or_else(|| RbacError::InvalidValue {
                at: format!("{at}.{member}"),
                value: value.to_owned(),
                expected: "a GUID".to_owned(),
            })
        };
        let mut identity = identity.clone();
        identity.client_id = guid(&identity.client_id, "client_id")?;
        if let Some(other) = out.iter().find(|o| o.client_id == identity.client_id) {
            return Err(RbacError::InvalidValue {
                at: format!("{at}.client_id"),
                value: identity.client_id,
                expected: format!(
                    "a client id no other identity has (identity {} has it too): merge the rules \
                     of one app into one identity, with all their needs and the widest \
                     reachability",
                    other.name
                ),
            });
        }
        identity.principal_id =
            identity.principal_id.as_deref().map(|p| guid(p, "principal_id")).transpose()?;
        identity.groups =
            identity.groups.iter().map(|g| guid(g, "groups[]")).collect::<Result<_, _>>()?;
        out.push(identity);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests;
