//! What a role allows: ARM action patterns, `notActions` subtraction, and comparisons of roles.
//!
//! An ARM action pattern is an operation name in which `*` stands for any run of characters
//! (`*`, `Microsoft.Storage/*`, `*/read`, `Microsoft.Authorization/*/write`); Azure compares
//! operation names case-insensitively (built-in roles mix `*/Write` and `*/write`). A role's
//! `permissions` is a list of blocks; each allows its `actions` minus its `notActions` (and its
//! `dataActions` minus its `notDataActions`), and the role allows what any block allows. A block
//! with an ABAC `condition` allows only what the condition lets through, which cannot be judged
//! offline: such a block still counts as *capable* of its actions (write-capable, escalation)
//! but never as *covering* a need.
//!
//! Roles are compared pattern against pattern, without a catalogue of every provider
//! operation: pattern `A` covers pattern `B` when every operation `B` matches also matches `A`
//! (decided exactly for `*`-patterns), and an excluded pattern only spoils coverage when it
//! overlaps what is needed. "Wildcards expanded" in this module therefore means each granted
//! pattern is reported with the `notActions` that carve it, not a list of concrete operations.

use std::fmt;

use super::catalogue::RoleDefinition;
use super::MAX_PATTERN_LEN;

/// Control-plane (`actions`) or data-plane (`dataActions`) operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Plane {
    /// Azure Resource Manager operations: `actions` / `notActions`.
    Control,
    /// Operations on the data inside a resource: `dataActions` / `notDataActions`.
    Data,
}

impl Plane {
    const BOTH: [Plane; 2] = [Plane::Control, Plane::Data];

    /// "action" or "data action".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Control => "action",
            Self::Data => "data action",
        }
    }
}

/// One entry of a role definition's `permissions` array.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permission {
    /// `actions`: control-plane operations allowed.
    pub actions: Vec<String>,
    /// `notActions`: control-plane operations subtracted from `actions`.
    pub not_actions: Vec<String>,
    /// `dataActions`: data-plane operations allowed.
    pub data_actions: Vec<String>,
    /// `notDataActions`: data-plane operations subtracted from `dataActions`.
    pub not_data_actions: Vec<String>,
    /// An ABAC condition that narrows this block, if any.
    pub condition: Option<String>,
    /// The condition language version (`2.0`).
    pub condition_version: Option<String>,
}

impl Permission {
    /// The patterns this block allows in `plane`.
    pub fn granted(&self, plane: Plane) -> &[String] {
        match plane {
            Plane::Control => &self.actions,
            Plane::Data => &self.data_actions,
        }
    }

    /// The patterns this block subtracts in `plane`.
    pub fn excluded(&self, plane: Plane) -> &[String] {
        match plane {
            Plane::Control => &self.not_actions,
            Plane::Data => &self.not_data_actions,
        }
    }

    /// Whether this block allows the operation `action` in `plane` (ignoring any condition).
    pub fn allows(&self, plane: Plane, action: &str) -> bool {
        self.granted(plane).iter().any(|p| action_matches(p, action))
            && !self.excluded(plane).iter().any(|p| action_matches(p, action))
    }

    /// Whether `pattern` is subtracted entirely by this block's exclusions.
    fn fully_excluded(&self, plane: Plane, pattern: &str) -> bool {
        self.excluded(plane).iter().any(|n| action_matches(n, pattern))
    }

    /// Whether this block allows everything `pattern` matches, except what is in `tolerated`
    /// (exclusions the needing role has too). A conditioned block covers nothing.
    fn covers(&self, plane: Plane, pattern: &str, tolerated: &[String]) -> bool {
        self.condition.is_none()
            && self.granted(plane).iter().any(|g| action_matches(g, pattern))
            && self.excluded(plane).iter().all(|n| {
                !patterns_overlap(n, pattern) || tolerated.iter().any(|t| action_matches(t, n))
            })
    }

    /// The patterns that count in `plane`: those not subtracted entirely.
    fn effective(&self, plane: Plane) -> impl Iterator<Item = &String> {
        self.granted(plane).iter().filter(move |p| !self.fully_excluded(plane, p))
    }
}

/// Whether the ARM pattern `pattern` matches `action`, ASCII case-insensitively; `*` in the
/// pattern matches any run of characters, `/` included.
///
/// When `action` is itself a pattern, this answers whether `pattern` matches everything
/// `action` matches (a `*` in `action` can only be matched by a `*` in `pattern`, because no
/// operation name contains a literal `*`).
///
/// ```
/// use gitlab_azure_oidc::rbac::action_matches;
/// assert!(action_matches("*/read", "Microsoft.Web/sites/read"));
/// assert!(action_matches("Microsoft.Authorization/*/Write", "microsoft.authorization/roleAssignments/write"));
/// assert!(!action_matches("Microsoft.Storage/*", "Microsoft.StorageSync/x/read"));
/// ```
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), action.as_bytes());
    let (mut pi, mut si) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                backtrack = Some((pi, si));
                pi += 1;
            }
            Some(c) if s.get(si).is_some_and(|x| x.eq_ignore_ascii_case(c)) => {
                pi += 1;
                si += 1;
            }
            _ => match backtrack {
                Some((star, from)) => {
                    pi = star + 1;
                    si = from + 1;
                    backtrack = Some((star, from + 1));
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// Whether some operation name matches both patterns. Patterns longer than
/// [`MAX_PATTERN_LEN`] are assumed to overlap (the cautious answer).
pub(crate) fn patterns_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() > MAX_PATTERN_LEN || b.len() > MAX_PATTERN_LEN {
        return true;
    }
    let width = b.len() + 1;
    // common[i * width + j]: a[i..] and b[j..] match a common string.
    let mut common = vec![false; (a.len() + 1) * width];
    let at = |common: &[bool], i: usize, j: usize| common.get(i * width + j).copied() == Some(true);
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            let (x, y) = (a.get(i), b.get(j));
            let value = match (x, y) {
                (None, None) => true,
                (Some(b'*'), _) | (_, Some(b'*')) => {
                    let mut value = false;
                    if x == Some(&b'*') {
                        value |= at(&common, i + 1, j) || (y.is_some() && at(&common, i, j + 1));
                    }
                    if y == Some(&b'*') {
                        value |= at(&common, i, j + 1) || (x.is_some() && at(&common, i + 1, j));
                    }
                    value
                }
                (Some(x), Some(y)) => x.eq_ignore_ascii_case(y) && at(&common, i + 1, j + 1),
                _ => false,
            };
            if let Some(slot) = common.get_mut(i * width + j) {
                *slot = value;
            }
        }
    }
    at(&common, 0, 0)
}

/// Control-plane patterns that do not change workloads and are left out of write-capability and
/// of "wider than needed": template deployments run with the caller's own permissions, support
/// tickets and classic alert rules touch no resource. Most built-in roles carry them.
const ANCILLARY: [&str; 4] = [
    "Microsoft.Support/*",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/deployments/*",
];

fn is_ancillary(plane: Plane, pattern: &str) -> bool {
    plane == Plane::Control && ANCILLARY.iter().any(|a| a.eq_ignore_ascii_case(pattern))
}

/// Whether a pattern allows only reads (it ends in `/read`).
fn is_read(pattern: &str) -> bool {
    pattern.len() >= 5
        && pattern.get(pattern.len() - 5..).is_some_and(|t| t.eq_ignore_ascii_case("/read"))
}

/// The operations whose holder can grant itself (or anyone) any role.
const ESCALATION_ACTIONS: [&str; 2] = [
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleDefinitions/write",
];

/// A role's ability to change role assignments or definitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    /// The operation it allows, e.g. `Microsoft.Authorization/roleAssignments/write`.
    pub action: &'static str,
    /// Whether only blocks with an ABAC condition allow it (the condition may limit which roles
    /// can be assigned; it cannot be judged offline).
    pub conditional: bool,
}

/// A pattern a role grants beyond what was needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraPermission {
    /// Control or data plane.
    pub plane: Plane,
    /// The granted pattern, e.g. `*`.
    pub pattern: String,
    /// The exclusions of the same block that carve this pattern.
    pub except: Vec<String>,
}

impl ExtraPermission {
    /// Whether this extra permission can change something (it is not a read).
    pub fn is_write(&self) -> bool {
        !is_read(&self.pattern)
    }
}

impl fmt::Display for ExtraPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.plane == Plane::Data {
            f.write_str("data ")?;
        }
        write!(f, "`{}`", self.pattern)?;
        if !self.except.is_empty() {
            let shown: Vec<String> = self.except.iter().take(3).map(|e| format!("`{e}`")).collect();
            write!(f, " except {}", shown.join(", "))?;
            if self.except.len() > 3 {
                write!(f, " and {} more", self.except.len() - 3)?;
            }
        }
        Ok(())
    }
}

impl RoleDefinition {
    /// Whether the role allows the operation `action` in `plane` (conditions ignored).
    pub fn allows(&self, plane: Plane, action: &str) -> bool {
        self.permissions.iter().any(|p| p.allows(plane, action))
    }

    /// Whether the role can do more than read: some effective pattern, control or data plane,
    /// is not a read (`*`, `*/write`, `*/delete`, `*/action`, ...). Every `*/action` counts,
    /// whatever it does (`listKeys/action` reads keys that write; `generateUserDelegationKey/
    /// action` mints SAS keys). The ancillary patterns most built-in roles carry (deployments,
    /// support tickets, classic alert rules) do not count.
    pub fn is_write_capable(&self) -> bool {
        self.first_non_read().is_some()
    }

    /// The first effective pattern that is not a read (ancillary patterns left out), as an
    /// example of what makes the role write-capable.
    pub fn first_non_read(&self) -> Option<(Plane, &str)> {
        self.permissions.iter().find_map(|block| {
            Plane::BOTH.iter().find_map(|&plane| {
                block
                    .effective(plane)
                    .find(|p| !is_read(p) && !is_ancillary(plane, p))
                    .map(|p| (plane, p.as_str()))
            })
        })
    }

    /// Whether (and how) the role can write role assignments or role definitions: `*`,
    /// `Microsoft.Authorization/*`, `Microsoft.Authorization/*/write`,
    /// `Microsoft.Authorization/roleAssignments/write` and the like, minus `notActions`.
    pub fn escalation(&self) -> Option<Escalation> {
        let mut conditional = None;
        for action in ESCALATION_ACTIONS {
            for block in &self.permissions {
                if block.allows(Plane::Control, action) {
                    if block.condition.is_none() {
                        return Some(Escalation { action, conditional: false });
                    }
                    conditional.get_or_insert(Escalation { action, conditional: true });
                }
            }
        }
        conditional
    }

    /// Whether a block without a condition grants the control-plane `*`.
    pub fn grants_all_actions(&self) -> bool {
        self.permissions.iter().any(|b| b.condition.is_none() && b.actions.iter().any(|a| a == "*"))
    }

    /// Whether this role allows everything `other` allows (both planes), judged pattern
    /// against pattern. Exclusions of this role that `other` shares do not spoil coverage;
    /// blocks of this role with a condition do not cover.
    pub fn covers(&self, other: &RoleDefinition) -> bool {
        other.permissions.iter().all(|needed| {
            Plane::BOTH.iter().all(|&plane| {
                needed.effective(plane).all(|pattern| {
                    self.permissions
                        .iter()
                        .any(|block| block.covers(plane, pattern, needed.excluded(plane)))
                })
            })
        })
    }

    /// The patterns of this role that none of `needed` covers, ancillary patterns left out,
    /// each with the exclusions that carve it. Empty when the role grants nothing beyond them.
    pub fn extra_over(&self, needed: &[&RoleDefinition]) -> Vec<ExtraPermission> {
        let mut extra: Vec<ExtraPermission> = Vec::new();
        for block in &self.permissions {
            for plane in Plane::BOTH {
                for pattern in block.effective(plane) {
                    if is_ancillary(plane, pattern) {
                        continue;
                    }
                    let covered = needed.iter().any(|role| {
                        role.permissions
                            .iter()
                            .any(|c| c.covers(plane, pattern, block.excluded(plane)))
                    });
                    let seen = extra
                        .iter()
                        .any(|e| e.plane == plane && e.pattern.eq_ignore_ascii_case(pattern));
                    if !covered && !seen {
                        let except = block
                            .excluded(plane)
                            .iter()
                            .filter(|n| patterns_overlap(n, pattern))
                            .cloned()
                            .collect();
                        extra.push(ExtraPermission { plane, pattern: pattern.clone(), except });
                    }
                }
            }
        }
        extra
    }

    /// A rough measure of how much the role allows, for choosing the narrowest of several
    /// roles: each effective pattern counts 1, one with `*` counts more the fewer path segments
    /// precede its first `*` (`*` and `*/read` count most), and a pattern that is not a read
    /// counts four times as much. Ancillary patterns count 1.
    pub(crate) fn breadth(&self) -> u64 {
        let mut total = 0u64;
        for block in &self.permissions {
            for plane in Plane::BOTH {
                for pattern in block.effective(plane) {
                    if is_ancillary(plane, pattern) {
                        total += 1;
                        continue;
                    }
                    let reach = match pattern.find('*') {
                        None => 1,
                        Some(star) => {
                            let slashes = pattern.get(..star).unwrap_or_default().matches('/');
                            let shift = (slashes.count() * 2).min(12);
                            1 + (4096u64 >> shift)
                        }
                    };
                    total += if is_read(pattern) { reach } else { reach * 4 };
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests;
