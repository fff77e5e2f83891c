//! Azure scopes: the resource ids a role is assigned at.
//!
//! A scope is `/` (the tenant root), a management group
//! (`/providers/Microsoft.Management/managementGroups/<name>`), a subscription
//! (`/subscriptions/<id>`), a resource group (`.../resourceGroups/<name>`) or a resource
//! (`.../providers/<namespace>/<type>/<name>[/<type>/<name>...]`, possibly with a further
//! `/providers/...` for extension resources).
//!
//! Azure compares resource ids case-insensitively and ignores a trailing slash; so does
//! [`Scope`]'s `Eq`, `Ord` and `Hash`. Containment is by whole path segments:
//! `/subscriptions/S/resourceGroups/rg` contains `/subscriptions/S/resourceGroups/rg/providers/...`
//! but not `/subscriptions/S/resourceGroups/rg2`. Which subscriptions sit under a management
//! group is not written in the ids, so [`Scope::contains`] never says a management group contains
//! a subscription; see [`Scope::applies_to`] for the rule the audit uses.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::error::ScopeError;
use super::MAX_SCOPE_LEN;

/// How wide a scope is, from the widest (`Root`) to the narrowest (`Resource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScopeLevel {
    /// `/`: every management group, subscription and resource of the tenant.
    Root,
    /// A management group: every subscription under it.
    ManagementGroup,
    /// A subscription.
    Subscription,
    /// A resource group.
    ResourceGroup,
    /// One resource (and its children).
    Resource,
}

impl ScopeLevel {
    /// The level in words, e.g. "management group".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "root",
            Self::ManagementGroup => "management group",
            Self::Subscription => "subscription",
            Self::ResourceGroup => "resource group",
            Self::Resource => "resource",
        }
    }
}

impl fmt::Display for ScopeLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed Azure scope. Build one with [`Scope::parse`].
#[derive(Clone, Debug)]
pub struct Scope {
    /// As written, without a trailing slash (except the root `/`).
    text: String,
    /// `text` in ASCII lowercase: what comparisons use.
    lower: String,
    level: ScopeLevel,
    subscription: Option<String>,
    resource_group: Option<String>,
    management_group: Option<String>,
    resource_type: Option<String>,
}

impl Scope {
    /// Parses a scope. A trailing slash is dropped; everything else must be a well-formed id.
    ///
    /// # Errors
    ///
    /// A [`ScopeError`] that names what is wrong: empty, relative, `//`, whitespace, a
    /// `/subscriptions` without an id, a resource type without a name, or an unknown first
    /// segment.
    pub fn parse(value: &str) -> Result<Self, ScopeError> {
        if value.is_empty() {
            return Err(ScopeError::Empty);
        }
        if value.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong { length: value.len(), limit: MAX_SCOPE_LEN });
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ScopeError::Whitespace { value: value.to_owned() });
        }
        if !value.starts_with('/') {
            return Err(ScopeError::MissingLeadingSlash { value: value.to_owned() });
        }
        if let Some(at) = value.find("//") {
            return Err(ScopeError::RepeatedSlash { value: value.to_owned(), position: at + 1 });
        }
        let text = match value.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped,
            _ => value,
        };
        let mut scope = Self {
            text: text.to_owned(),
            lower: text.to_ascii_lowercase(),
            level: ScopeLevel::Root,
            subscription: None,
            resource_group: None,
            management_group: None,
            resource_type: None,
        };
        if text == "/" {
            return Ok(scope);
        }
        let segments: Vec<&str> = text.get(1..).unwrap_or_default().split('/').collect();
        scope.walk(value, &segments)?;
        Ok(scope)
    }

    /// Fills level and parts from the segments after the leading `/`.
    fn walk(&mut self, value: &str, segments: &[&str]) -> Result<(), ScopeError> {
        // The segments up to `upto` (exclusive) name what lacks its name.
        let missing = |upto: usize| ScopeError::MissingName {
            value: value.to_owned(),
            after: format!("/{}", segments.get(..upto).unwrap_or_default().join("/")),
        };
        let mut i = 0;
        let first = segments.first().copied().unwrap_or_default();
        if first.eq_ignore_ascii_case("subscriptions") {
            let id = segments.get(1).ok_or_else(|| missing(1))?;
            self.subscription = Some((*id).to_owned());
            self.level = ScopeLevel::Subscription;
            i = 2;
            if let Some(next) = segments.get(i) {
                if next.eq_ignore_ascii_case("resourceGroups") {
                    let name = segments.get(i + 1).ok_or_else(|| missing(i + 1))?;
                    self.resource_group = Some((*name).to_owned());
                    self.level = ScopeLevel::ResourceGroup;
                    i += 2;
                }
            }
        } else if first.eq_ignore_ascii_case("providers") {
            let namespace = segments.get(1).copied().unwrap_or_default();
            let kind = segments.get(2).copied().unwrap_or_default();
            if namespace.eq_ignore_ascii_case("Microsoft.Management")
                && kind.eq_ignore_ascii_case("managementGroups")
            {
                let name = segments.get(3).ok_or_else(|| missing(3))?;
                self.management_group = Some((*name).to_owned());
                self.level = ScopeLevel::ManagementGroup;
                i = 4;
            }
        } else {
            return Err(ScopeError::UnexpectedSegment {
                value: value.to_owned(),
                segment: first.to_owned(),
                expected: "`subscriptions` or `providers` first",
            });
        }
        // Resources: one or more `providers/<namespace>/<type>/<name>[/<type>/<name>...]` blocks.
        while let Some(segment) = segments.get(i) {
            if !segment.eq_ignore_ascii_case("providers") {
                let expected = if self.level == ScopeLevel::Subscription {
                    "`resourceGroups` or `providers`"
                } else {
                    "`providers`"
                };
                return Err(ScopeError::UnexpectedSegment {
                    value: value.to_owned(),
                    segment: (*segment).to_owned(),
                    expected,
                });
            }
            let namespace = segments.get(i + 1).ok_or_else(|| missing(i + 1))?;
            i += 2;
            let mut types: Vec<&str> = Vec::new();
            while let Some(kind) = segments.get(i) {
                if !types.is_empty() && kind.eq_ignore_ascii_case("providers") {
                    break;
                }
                if segments.get(i + 1).is_none() {
                    return Err(ScopeError::IncompleteType {
                        value: value.to_owned(),
                        provider: (*namespace).to_owned(),
                    });
                }
                types.push(kind);
                i += 2;
            }
            if types.is_empty() {
                return Err(ScopeError::IncompleteType {
                    value: value.to_owned(),
                    provider: (*namespace).to_owned(),
                });
            }
            self.resource_type = Some(format!("{namespace}/{}", types.join("/")));
            self.level = ScopeLevel::Resource;
        }
        Ok(())
    }

    /// The scope as written, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How wide the scope is.
    pub fn level(&self) -> ScopeLevel {
        self.level
    }

    /// Whether the scope is the root, a management group or a subscription: the levels at
    /// which a write-capable role reaches far more than one workload.
    pub fn is_wide(&self) -> bool {
        self.level <= ScopeLevel::Subscription
    }

    /// The subscription id, when the scope is in a subscription.
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// The resource group's name, when the scope is in one.
    pub fn resource_group(&self) -> Option<&str> {
        self.resource_group.as_deref()
    }

    /// The management group's name, when the scope is one (or a resource in one).
    pub fn management_group(&self) -> Option<&str> {
        self.management_group.as_deref()
    }

    /// The resource type, e.g. `Microsoft.ContainerRegistry/registries` or
    /// `Microsoft.Storage/storageAccounts/blobServices/containers`; for an extension resource,
    /// the type after the last `providers`. `None` above the resource level.
    pub fn resource_type(&self) -> Option<&str> {
        self.resource_type.as_deref()
    }

    /// Whether `other` is this scope or lies under it, by whole path segments and ignoring
    /// case. The root contains everything; a management group contains only ids under its own
    /// path (the subscriptions in it are not written in their ids).
    pub fn contains(&self, other: &Scope) -> bool {
        self.level == ScopeLevel::Root
            || self.lower == other.lower
            || (other.lower.len() > self.lower.len()
                && other.lower.starts_with(&self.lower)
                && other.lower.as_bytes().get(self.lower.len()) == Some(&b'/'))
    }

    /// Whether `other` lies strictly under this scope.
    pub fn is_wider_than(&self, other: &Scope) -> bool {
        self != other && self.contains(other)
    }

    /// Whether a role assigned at this scope applies at `other`: [`contains`](Self::contains),
    /// or this is a management group and `other` is in a subscription. `az role assignment list
    /// --include-inherited` lists a management group's assignments only because they are
    /// inherited by the subscription listed, so an audit of that export may assume it; the
    /// hierarchy itself cannot be checked offline.
    pub fn applies_to(&self, other: &Scope) -> bool {
        self.contains(other)
            || (self.level == ScopeLevel::ManagementGroup
                && self.resource_type.is_none()
                && other.subscription.is_some())
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.lower == other.lower
    }
}

impl Eq for Scope {}

impl Hash for Scope {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.lower.hash(state);
    }
}

impl PartialOrd for Scope {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scope {
    fn cmp(&self, other: &Self) -> Ordering {
        self.lower.cmp(&other.lower)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests;
