//! What the linter needs to know about the project that the CI file does not say.

use super::error::PipelineError;

/// Entra's audience for workload identity federation in the public cloud.
pub const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Entra's audiences in the US Government and China clouds.
pub const SOVEREIGN_AUDIENCES: [&str; 2] =
    ["api://AzureADTokenExchangeUSGov", "api://AzureADTokenExchangeChina"];

/// The claims GitLab can put in `sub` (`ci_id_token_sub_claim_components`, facts 1.5).
pub const SUB_CLAIM_COMPONENTS: [&str; 6] = [
    "project_path",
    "ref_type",
    "ref",
    "ref_protected",
    "environment_protected",
    "deployment_tier",
];

/// The project a pipeline belongs to, and what Entra and the verifier accept.
///
/// Every field is public and documented with its default; [`LintContext::new`] sets them.
///
/// ```
/// use gitlab_azure_oidc::pipeline::LintContext;
/// let mut context = LintContext::new("acme/payments");
/// context.protected_branches = vec!["release/*".to_owned()];
/// context.project_id = Some("4242".to_owned());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LintContext {
    /// The project's path, `group/subgroup/project` (`CI_PROJECT_PATH`): the start of `sub`.
    pub project_path: String,
    /// The project's numeric id, when known: the `project_id` claim policies should pin.
    /// Defaults to `None` (a policy rule testing it is reported as not evaluated).
    pub project_id: Option<String>,
    /// The top-level namespace id, when known (`namespace_id`). Defaults to `None`.
    pub namespace_id: Option<String>,
    /// The default branch (`CI_DEFAULT_BRANCH`). Defaults to `main`.
    pub default_branch: String,
    /// Whether the default branch is protected (GitLab protects it on creation). Defaults to
    /// `true`.
    pub default_branch_protected: bool,
    /// Protected branches: names or wildcards with `*`, as in the project's settings. Defaults to
    /// none beyond the default branch. A branch not covered here is "protection unknown" when the
    /// CI file names it, and unprotected when it stands for "any other branch".
    pub protected_branches: Vec<String>,
    /// Protected tags: names or wildcards with `*`. Defaults to none (GitLab protects no tag
    /// by default).
    pub protected_tags: Vec<String>,
    /// Protected environments: names or wildcards with `*`. Defaults to none, which makes
    /// `environment_protected` unknown.
    pub protected_environments: Vec<String>,
    /// The GitLab issuer (`iss`, `CI_SERVER_URL`), no trailing slash. Defaults to
    /// `https://gitlab.com`.
    pub issuer: String,
    /// The project's `ci_id_token_sub_claim_components`. Defaults to
    /// `["project_path", "ref_type", "ref"]`; the first must be `project_path`.
    pub sub_claim_components: Vec<String>,
    /// Audiences accepted besides those the federated credentials name: Entra's own
    /// (`api://AzureADTokenExchange` and the sovereign-cloud variants) and any a verifier or
    /// broker in front of Entra is configured with. Defaults to Entra's three.
    pub accepted_audiences: Vec<String>,
    /// The app registration's application (client) id, for the `az` commands in fixes. Defaults
    /// to `None`: the policy's client id when a rule names one, else `<APP_ID>`.
    pub app_id: Option<String>,
}

impl LintContext {
    /// A context for `project_path` with every other field at its default.
    pub fn new(project_path: &str) -> Self {
        Self {
            project_path: project_path.trim_matches('/').to_owned(),
            project_id: None,
            namespace_id: None,
            default_branch: "main".to_owned(),
            default_branch_protected: true,
            protected_branches: Vec::new(),
            protected_tags: Vec::new(),
            protected_environments: Vec::new(),
            issuer: "https://gitlab.com".to_owned(),
            sub_claim_components: ["project_path", "ref_type", "ref"].map(str::to_owned).to_vec(),
            accepted_audiences: std::iter::once(ENTRA_AUDIENCE)
                .chain(SOVEREIGN_AUDIENCES)
                .map(str::to_owned)
                .collect(),
            app_id: None,
        }
    }

    /// Checks the fields the linter relies on.
    ///
    /// # Errors
    /// [`PipelineError::Context`] naming the field: an empty or malformed project path, an empty
    /// default branch, an issuer that is not an `https://` URL (or ends in `/`), or sub claim
    /// components that GitLab would refuse.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |field: &str, value: &str, expected: &str| {
            Err(PipelineError::Context {
                field: field.to_owned(),
                value: value.to_owned(),
                expected: expected.to_owned(),
            })
        };
        let path = &self.project_path;
        if path.is_empty() || !path.contains('/') || path.split('/').any(str::is_empty) {
            return bad("project_path", path, "`group/project` (CI_PROJECT_PATH)");
        }
        if self.default_branch.trim().is_empty() {
            return bad("default_branch", &self.default_branch, "a branch name");
        }
        if !self.issuer.starts_with("https://") || self.issuer.ends_with('/') {
            return bad(
                "issuer",
                &self.issuer,
                "the GitLab URL as tokens carry it, `https://host` without a trailing slash",
            );
        }
        let components = self.sub_claim_components.join(",");
        if self.sub_claim_components.first().map(String::as_str) != Some("project_path") {
            return bad("sub_claim_components", &components, "a list starting with project_path");
        }
        if let Some(unknown) =
            self.sub_claim_components.iter().find(|c| !SUB_CLAIM_COMPONENTS.contains(&c.as_str()))
        {
            return bad(
                "sub_claim_components",
                unknown,
                &format!("one of {}", SUB_CLAIM_COMPONENTS.join(", ")),
            );
        }
        Ok(())
    }

    /// Whether `name` is a protected branch: `Some(true)` for the default branch and the listed
    /// ones, `None` (unknown) otherwise.
    pub(crate) fn branch_protected(&self, name: &str) -> Option<bool> {
        if name == self.default_branch && self.default_branch_protected {
            return Some(true);
        }
        self.protected_branches.iter().any(|p| wildcard(p, name)).then_some(true)
    }

    pub(crate) fn tag_protected(&self, name: &str) -> Option<bool> {
        self.protected_tags.iter().any(|p| wildcard(p, name)).then_some(true)
    }

    pub(crate) fn environment_protected(&self, name: &str) -> Option<bool> {
        self.protected_environments.iter().any(|p| wildcard(p, name)).then_some(true)
    }

    /// The namespace part of the project path.
    pub(crate) fn namespace_path(&self) -> &str {
        self.project_path.rsplit_once('/').map_or("", |(ns, _)| ns)
    }
}

/// GitLab's protected-ref wildcard: `*` matches any run of characters (including `/`).
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
                None => return false,
            }
        }
    }
    true
}
