//! What the tooling reports share: one severity scale, fingerprints, and GitLab Code Quality
//! issues, for `lint` (the pipeline) and `audit-rbac` (role assignments) alike.

use std::fmt;

use serde_json::{json, Value};

use crate::text::hex;

/// How bad a finding is (ordered, lowest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Tidy up when convenient.
    Low,
    /// Fix soon: likely to fail, or broader than meant.
    Medium,
    /// Fix before the next deploy: it fails, or weakens the identity boundary.
    High,
    /// Fix now: the wrong code can reach Azure, an identity can do far more than it should, or
    /// a credential is exposed.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 5] = [Self::Info, Self::Low, Self::Medium, Self::High, Self::Critical];

    /// `info`, `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// The severity named `name` (any case), for `--fail-on`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(name))
    }

    /// One step higher, capped at [`Severity::Critical`].
    pub fn raised(self) -> Self {
        match self {
            Self::Info => Self::Low,
            Self::Low => Self::Medium,
            Self::Medium => Self::High,
            Self::High | Self::Critical => Self::Critical,
        }
    }

    /// GitLab Code Quality's name for it: `info`, `minor`, `major`, `critical`, `blocker`.
    pub fn code_quality(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "minor",
            Self::Medium => "major",
            Self::High => "critical",
            Self::Critical => "blocker",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stable fingerprint of a finding: SHA-256 of its identifying parts (each followed by a NUL
/// byte, so no two different tuples collide), hex. The same finding in a later run has the same
/// fingerprint, which is how GitLab tells new findings from old ones in a merge request.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part.as_bytes());
        context.update(&[0]);
    }
    hex(context.finish().as_ref())
}

/// One issue of a GitLab Code Quality report (`artifacts:reports:codequality`, a CodeClimate
/// subset): `{description, check_name, fingerprint, severity, location: {path, lines: {begin}}}`.
pub fn code_quality_issue(
    description: &str,
    check_name: &str,
    fingerprint: &str,
    severity: Severity,
    path: &str,
    line: u64,
) -> Value {
    json!({
        "description": description,
        "check_name": check_name,
        "fingerprint": fingerprint,
        "severity": severity.code_quality(),
        "location": { "path": path.strip_prefix("./").unwrap_or(path), "lines": { "begin": line.max(1) } },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_parse_and_map_to_code_quality() {
        assert!(Severity::Info < Severity::Critical);
        assert_eq!(Severity::parse("HIGH"), Some(Severity::High));
        assert_eq!(Severity::parse("blocker"), None);
        assert_eq!(Severity::High.raised(), Severity::Critical);
        assert_eq!(Severity::Critical.raised(), Severity::Critical);
        let names: Vec<&str> = Severity::ALL.iter().map(|s| s.code_quality()).collect();
        assert_eq!(names, ["info", "minor", "major", "critical", "blocker"]);
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["x"]).len(), 64);
        let issue = code_quality_issue("d", "c", "f", Severity::Low, "./a.yml", 0);
        assert_eq!(issue["location"], json!({"path": "a.yml", "lines": {"begin": 1}}));
        assert_eq!(issue["severity"], "minor");
    }
}
