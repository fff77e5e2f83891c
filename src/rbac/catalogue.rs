//! Role definitions: the vendored built-in roles, custom roles from an `az` export, and lookup.
//!
//! The built-in roles the checks need are vendored in `builtin-roles.json`, in the shape of
//! `az role definition list -o json` entries, transcribed from the JSON blocks of Microsoft's
//! built-in roles reference (see `src/rbac/README.md` for the file, commit and date of each).
//! Roles missing from it, and every custom role, come from an `az role definition list -o json`
//! export passed to [`Catalogue::with_definitions`]; an entry there replaces the vendored one
//! with the same GUID (the tenant's own copy is the fresher).

use std::sync::OnceLock;

use serde_json::Value;

use super::error::RbacError;
use super::guid::parse_guid;
use super::permissions::Permission;
use super::{MAX_DEFINITIONS, MAX_EXPORT_BYTES, MAX_PATTERN_LEN};
use crate::text::ident::distance;
use crate::text::json::type_name;

/// The vendored built-in roles (see `src/rbac/README.md`).
const BUILTIN_ROLES: &str = include_str!("builtin-roles.json");

/// A role definition, as `az role definition list -o json` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleDefinition {
    /// `id`: `/providers/Microsoft.Authorization/roleDefinitions/<guid>` for built-in roles,
    /// `/subscriptions/<id>/providers/...` for custom roles.
    pub id: String,
    /// `name`: the role's GUID, lowercase.
    pub name: String,
    /// `roleName`: the display name, e.g. `AcrPush`.
    pub role_name: String,
    /// `roleType`: `BuiltInRole` or `CustomRole`.
    pub role_type: String,
    /// `permissions`.
    pub permissions: Vec<Permission>,
    /// `assignableScopes`.
    pub assignable_scopes: Vec<String>,
}

impl RoleDefinition {
    /// Whether the role is built in.
    pub fn is_builtin(&self) -> bool {
        self.role_type.eq_ignore_ascii_case("BuiltInRole")
    }

    /// `AcrPush (8311e382-0749-4cb8-b61a-304f252e45ec)`: name and GUID, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.role_name, self.name)
    }
}

/// The role GUID in a role definition id: `/providers/Microsoft.Authorization/roleDefinitions/
/// <guid>`, with any scope before `/providers` (subscription, management group). `None` when
/// the id has another shape.
pub fn role_guid_from_definition_id(id: &str) -> Option<String> {
    let trimmed = id.strip_suffix('/').unwrap_or(id);
    let mut parts = trimmed.rsplit('/');
    let guid = parts.next()?;
    let kind = parts.next()?;
    let namespace = parts.next()?;
    let providers = parts.next()?;
    (kind.eq_ignore_ascii_case("roleDefinitions")
        && namespace.eq_ignore_ascii_case("Microsoft.Authorization")
        && providers.eq_ignore_ascii_case("providers")
        && trimmed.starts_with('/'))
    .then(|| parse_guid(guid))
    .flatten()
}

/// A set of role definitions with lookup by name, GUID or definition id.
#[derive(Clone, Debug)]
pub struct Catalogue {
    /// Sorted by lowercase role name.
    roles: Vec<RoleDefinition>,
}

impl Catalogue {
    /// The vendored built-in roles, loaded once.
    ///
    /// # Errors
    ///
    /// [`RbacError::Catalogue`] if the embedded data does not load (a bug; the tests load it).
    pub fn builtin() -> Result<&'static Catalogue, RbacError> {
        static BUILTIN: OnceLock<Result<Catalogue, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| load_builtin().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|detail| RbacError::Catalogue { detail: detail.clone() })
    }

    /// The built-in roles plus the definitions in an `az role definition list -o json` export
    /// (custom roles, or all roles). An exported role replaces the vendored role with the same
    /// GUID.
    ///
    /// # Errors
    ///
    /// The export is too large, not JSON, not an array, or an entry lacks `name`/`roleName`
    /// or has an unusable member ([`RbacError`] names the entry, e.g. `[2].permissions[0]`).
    pub fn with_definitions(export: &[u8]) -> Result<Catalogue, RbacError> {
        let mut roles = Self::builtin()?.roles.clone();
        for role in parse_role_definitions(export)? {
            roles.retain(|r| r.name != role.name);
            roles.push(role);
        }
        Ok(Self::from_roles(roles))
    }

    fn from_roles(mut roles: Vec<RoleDefinition>) -> Catalogue {
        roles.sort_by(|a, b| {
            a.role_name.to_ascii_lowercase().cmp(&b.role_name.to_ascii_lowercase())
        });
        Catalogue { roles }
    }

    /// Every role, sorted by name.
    pub fn roles(&self) -> &[RoleDefinition] {
        &self.roles
    }

    /// The role with this name, ignoring ASCII case.
    pub fn by_name(&self, name: &str) -> Option<&RoleDefinition> {
        self.roles.iter().find(|r| r.role_name.eq_ignore_ascii_case(name))
    }

    /// The role with this GUID.
    pub fn by_guid(&self, guid: &str) -> Option<&RoleDefinition> {
        let guid = parse_guid(guid)?;
        self.roles.iter().find(|r| r.name == guid)
    }

    /// The role a definition id names (`/subscriptions/S/providers/Microsoft.Authorization/
    /// roleDefinitions/<guid>` or `/providers/Microsoft.Authorization/roleDefinitions/<guid>`).
    pub fn by_definition_id(&self, id: &str) -> Option<&RoleDefinition> {
        self.by_guid(&role_guid_from_definition_id(id)?)
    }

    /// The role `reference` names: a role name, a GUID or a definition id.
    ///
    /// # Errors
    ///
    /// [`RbacError::UnknownRole`] (with the closest name, if one is close) at `at`.
    pub fn resolve(&self, reference: &str, at: &str) -> Result<&RoleDefinition, RbacError> {
        self.by_guid(reference)
            .or_else(|| self.by_definition_id(reference))
            .or_else(|| self.by_name(reference))
            .ok_or_else(|| RbacError::UnknownRole {
                at: at.to_owned(),
                role: reference.to_owned(),
                suggestion: self.suggest(reference).map(str::to_owned),
            })
    }

    /// The role name closest to `name` (Levenshtein distance on the lowercased names with
    /// spaces, `-` and `_` removed), when it is close enough to be a likely typo.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        let wanted = squash(name);
        if wanted.is_empty() {
            return None;
        }
        let limit = (wanted.chars().count() / 3).max(2);
        self.roles
            .iter()
            .map(|r| (distance(&wanted, &squash(&r.role_name)), r.role_name.as_str()))
            .filter(|(distance, _)| *distance <= limit)
            .min_by_key(|(distance, name)| (*distance, name.len()))
            .map(|(_, name)| name)
    }

    /// The narrowest built-in role that allows every operation (pattern) in `actions` and
    /// `data_actions`, e.g. `["Microsoft.ContainerRegistry/registries/push/write"]` gives
    /// AcrPush. `None` when no built-in role allows them all.
    pub fn narrowest_for_actions(
        &self,
        actions: &[&str],
        data_actions: &[&str],
    ) -> Option<&RoleDefinition> {
        let owned = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect();
        let needed = RoleDefinition {
            id: String::new(),
            name: String::new(),
            role_name: String::new(),
            role_type: String::new(),
            permissions: vec![Permission {
                actions: owned(actions),
                data_actions: owned(data_actions),
                ..Permission::default()
            }],
            assignable_scopes: Vec::new(),
        };
        self.narrowest_covering(&[&needed])
    }

    /// The narrowest built-in role that covers every role in `needed` (see
    /// [`RoleDefinition::covers`]); the measure is [`RoleDefinition`]'s breadth: fewer and more
    /// specific patterns are narrower. `None` when no built-in role covers them all.
    pub fn narrowest_covering(&self, needed: &[&RoleDefinition]) -> Option<&RoleDefinition> {
        self.roles
            .iter()
            .filter(|r| r.is_builtin() && needed.iter().all(|n| r.covers(n)))
            .min_by_key(|r| (r.breadth(), r.role_name.to_ascii_lowercase()))
    }
}

fn load_builtin() -> Result<Catalogue, RbacError> {
    let document: Value = serde_json::from_str(BUILTIN_ROLES)
        .map_err(|e| RbacError::Catalogue { detail: e.to_string() })?;
    let roles = document
        .get("roles")
        .and_then(Value::as_array)
        .ok_or_else(|| RbacError::Catalogue { detail: "no `roles` array".to_owned() })?;
    let roles = roles
        .iter()
        .enumerate()
        .map(|(i, v)| role_definition(v, &format!("roles[{i}]")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RbacError::Catalogue { detail: e.to_string() })?;
    Ok(Catalogue::from_roles(roles))
}

/// Parses an `az role definition list -o json` export.
///
/// # Errors
///
/// See [`Catalogue::with_definitions`].
pub fn parse_role_definitions(export: &[u8]) -> Result<Vec<RoleDefinition>, RbacError> {
    const WHAT: &str = "the role definitions export";
    let entries = parse_export(export, WHAT, MAX_DEFINITIONS, "role definitions")?;
    entries.iter().enumerate().map(|(i, v)| role_definition(v, &format!("[{i}]"))).collect()
}

/// Reads an `az ... -o json` export: size limit, JSON, array, entry limit.
pub(crate) fn parse_export(
    export: &[u8],
    what: &'static str,
    limit: usize,
    counted: &'static str,
) -> Result<Vec<Value>, RbacError> {
    if export.len() > MAX_EXPORT_BYTES {
        return Err(RbacError::TooLarge { what, size: export.len(), limit: MAX_EXPORT_BYTES });
    }
    let value: Value = serde_json::from_slice(export)
        .map_err(|e| RbacError::Json { what, detail: e.to_string() })?;
    let Value::Array(entries) = value else {
        return Err(RbacError::NotAnArray { what, found: type_name(&value) });
    };
    if entries.len() > limit {
        return Err(RbacError::TooMany { what: counted, count: entries.len(), limit });
    }
    Ok(entries)
}

/// An entry's members: the object itself, or its `properties` when it is in the REST shape
/// (`{"id", "name", "properties": {...}}`).
pub(crate) fn members<'a>(value: &'a Value, at: &str) -> Result<Members<'a>, RbacError> {
    let Value::Object(outer) = value else {
        return Err(RbacError::WrongType {
            at: at.to_owned(),
            expected: "an object",
            found: type_name(value),
        });
    };
    let inner = match outer.get("properties") {
        Some(Value::Object(inner)) => Some(inner),
        _ => None,
    };
    Ok(Members { outer, inner, at: at.to_owned() })
}

/// The members of one export entry, looked up in the entry then in its `properties`.
pub(crate) struct Members<'a> {
    outer: &'a serde_json::Map<String, Value>,
    inner: Option<&'a serde_json::Map<String, Value>>,
    at: String,
}

impl<'a> Members<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.outer.get(key) {
            Some(Value::Null) | None => self.inner.and_then(|m| m.get(key)),
            found => found,
        }
        .filter(|v| !v.is_null())
    }

    /// The path of member `key`.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.at.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.at)
        }
    }

    /// An optional string member (`null` and absent are the same).
    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>, RbacError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(RbacError::WrongType {
                at: self.path(key),
                expected: "a string",
                found: type_name(other),
            }),
        }
    }

    /// A required string member.
    pub(crate) fn required(&self, key: &str) -> Result<&'a str, RbacError> {
        self.string(key)?.ok_or_else(|| RbacError::MissingField { at: self.path(key) })
    }

    /// An optional array member (`null` is empty).
    pub(crate) fn array(&self, key: &str) -> Result<&'a [Value], RbacError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(RbacError::WrongType {
                at: self.path(key),
                expected: "an array",
                found: type_name(other),
            }),
        }
    }

    /// An optional array of strings (`null` is empty), each at most [`MAX_PATTERN_LEN`] bytes.
    fn strings(&self, key: &str) -> Result<Vec<String>, RbacError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if s.len() <= MAX_PATTERN_LEN => Ok(s.clone()),
                Value::String(s) => Err(RbacError::InvalidValue {
                    at: format!("{}[{i}]", self.path(key)),
                    value: s.chars().take(64).collect::<String>() + "...",
                    expected: format!("an operation pattern of at most {MAX_PATTERN_LEN} bytes"),
                }),
                other => Err(RbacError::WrongType {
                    at: format!("{}[{i}]", self.path(key)),
                    expected: "a string",
                    found: type_name(other),
                }),
            })
            .collect()
    }
}

fn role_definition(value: &Value, at: &str) -> Result<RoleDefinition, RbacError> {
    let m = members(value, at)?;
    let id = m.string("id")?;
    let guid = match (m.string("name")?, id) {
        (Some(name), _) => parse_guid(name).ok_or_else(|| RbacError::InvalidValue {
            at: m.path("name"),
            value: name.to_owned(),
            expected: "the role's GUID".to_owned(),
        })?,
        (None, Some(id)) => {
            role_guid_from_definition_id(id).ok_or_else(|| RbacError::InvalidValue {
                at: m.path("id"),
                value: id.to_owned(),
                expected: "a role definition id (.../providers/Microsoft.Authorization/\
                           roleDefinitions/<guid>)"
                    .to_owned(),
            })?
        }
        (None, None) => return Err(RbacError::MissingField { at: m.path("name") }),
    };
    let id = id.map_or_else(
        || format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        str::to_owned,
    );
    let permissions = m
        .array("permissions")?
        .iter()
        .enumerate()
        .map(|(i, p)| permission(p, &format!("{}[{i}]", m.path("permissions"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RoleDefinition {
        id,
        name: guid,
        role_name: m.required("roleName")?.to_owned(),
        role_type: m.string("roleType")?.unwrap_or("CustomRole").to_owned(),
        permissions,
        assignable_scopes: m.strings("assignableScopes")?,
    })
}

fn permission(value: &Value, at: &str) -> Result<Permission, RbacError> {
    let m = members(value, at)?;
    Ok(Permission {
        actions: m.strings("actions")?,
        not_actions: m.strings("notActions")?,
        data_actions: m.strings("dataActions")?,
        not_data_actions: m.strings("notDataActions")?,
        condition: m.string("condition")?.map(str::to_owned),
        condition_version: m.string("conditionVersion")?.map(str::to_owned),
    })
}

/// A name with case, spaces, `-` and `_` removed, for fuzzy comparison.
fn squash(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, ' ' | '-' | '_')).flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests;
