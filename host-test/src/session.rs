//! One instance for a sequence of one-shot tooling calls: verify a token, load a policy,
//! decide on claims, plan, audit role assignments, preflight, read the claim table, lint a
//! pipeline.

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::Oidc;
use crate::engine::State;
use crate::error::classify;
use crate::{
    AuditOptions, CiFile, ClaimSpec, Decision, Failure, Host, HostError, Includes, LintContext,
    LintReport, PlanOptions, PlanReport, PreflightReport, RbacReport, Severity, VerifiedToken,
    VerifierConfig,
};

/// How many times the per-call fuel a `lint_pipeline` call gets. Linting does far more work
/// than verifying: GitLab's largest pipeline (1,000 jobs, each with several rules, checked
/// against federated credentials) takes about 7,000,000,000 units, 3.5 times the default
/// budget, and a few seconds.
const LINT_FUEL_FACTOR: u64 = 10;

/// One instance of the component; each call gets the fuel bound anew. After a
/// [`HostError::Trap`] the session is dead: start another.
pub struct Session {
    store: Store<State>,
    oidc: Oidc,
    host: Host,
}

/// A loaded policy inside a [`Session`].
#[derive(Clone, Copy, Debug)]
pub struct PolicyRef(ResourceAny);

impl Host {
    /// A fresh instance for a sequence of calls.
    ///
    /// # Errors
    /// A [`HostError`] when the component cannot be instantiated.
    pub fn session(&self) -> Result<Session, HostError> {
        let (store, oidc) = self.instantiate()?;
        Ok(Session { store, oidc, host: self.clone() })
    }
}

impl Session {
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<State>, &Oidc) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.host.refuel(&mut self.store)?;
        f(&mut self.store, &self.oidc).map_err(classify)
    }

    /// Like `call`, with `factor` times the per-call fuel (when fuel is on).
    fn call_long<R>(
        &mut self,
        factor: u64,
        f: impl FnOnce(&mut Store<State>, &Oidc) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        self.host.refuel(&mut self.store)?;
        if self.store.get_fuel().is_ok() {
            let fuel = self.host.limits().fuel_per_call.saturating_mul(factor);
            self.store.set_fuel(fuel).map_err(classify)?;
        }
        f(&mut self.store, &self.oidc).map_err(classify)
    }

    /// `verify-gitlab-token`: parses the configuration and JWKS, verifies, forgets them.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn verify_gitlab_token(
        &mut self,
        token: &str,
        jwks: &str,
        config: &VerifierConfig,
        now: u64,
    ) -> Result<Result<VerifiedToken, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_verify().call_verify_gitlab_token(s, token, jwks, config, now)
        })
    }

    /// `claim-table`: every claim this version names.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn claim_table(&mut self) -> Result<Vec<ClaimSpec>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_verify().call_claim_table(s))
    }

    /// Loads a policy document into this instance.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn load_policy(&mut self, document: &str) -> Result<Result<PolicyRef, Failure>, HostError> {
        let loaded =
            self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_constructor(s, document))?;
        Ok(loaded.map(PolicyRef))
    }

    /// `policy.decide` on claims given as JSON; `fingerprint` names the token in the audit
    /// event.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn decide(
        &mut self,
        policy: PolicyRef,
        claims_json: &str,
        fingerprint: &str,
        now: u64,
    ) -> Result<Result<Decision, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().policy().call_decide(
                s,
                policy.0,
                claims_json,
                fingerprint,
                now,
            )
        })
    }

    /// `policy.warnings`.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn policy_warnings(&mut self, policy: PolicyRef) -> Result<Vec<String>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_warnings(s, policy.0))
    }

    /// `policy.plan`: the federated credentials and role assignments the policy needs.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn plan(
        &mut self,
        policy: PolicyRef,
        options: &PlanOptions,
    ) -> Result<Result<PlanReport, Failure>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_policy().policy().call_plan(s, policy.0, options))
    }

    /// `audit-rbac`: role assignments (an `az role assignment list` export) against what the
    /// policy document declares, with the tenant's role definitions when given.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn audit_rbac(
        &mut self,
        policy: &str,
        assignments: &str,
        definitions: Option<&str>,
        options: &AuditOptions,
    ) -> Result<Result<RbacReport, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().call_audit_rbac(
                s,
                policy,
                assignments,
                definitions,
                options,
            )
        })
    }

    /// `policy.plan-broker`: what Entra needs for the broker rules, as one JSON document.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn plan_broker(
        &mut self,
        policy: PolicyRef,
        gitlab_issuer: &str,
        broker_config: Option<&str>,
        certificates: &[(String, String, String)],
        credentials: &[(String, String)],
    ) -> Result<Result<String, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().policy().call_plan_broker(
                s,
                policy.0,
                gitlab_issuer,
                broker_config,
                certificates,
                credentials,
            )
        })
    }

    /// `preflight`: would Entra accept these claims with these federated credentials?
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn preflight(
        &mut self,
        claims_json: &str,
        credentials_json: &str,
    ) -> Result<Result<PreflightReport, Failure>, HostError> {
        self.call(|s, o| {
            o.gitlab_azure_oidc_policy().call_preflight(s, claims_json, credentials_json)
        })
    }

    /// `lint.local-includes`: the local files the CI file `json` includes, with its globs
    /// expanded over `repository_files` (paths from the repository root).
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn local_includes(
        &mut self,
        json: &str,
        repository_files: &[String],
    ) -> Result<Result<Includes, Failure>, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_lint().call_local_includes(s, json, repository_files))
    }

    /// `lint.max-files`: the most CI files `lint_pipeline` takes.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn lint_max_files(&mut self) -> Result<u32, HostError> {
        self.call(|s, o| o.gitlab_azure_oidc_lint().call_max_files(s))
    }

    /// `lint.lint-pipeline`: lints `root` with the files it includes, against the policy
    /// document and the federated credentials (JSON) when given. The call gets ten times the
    /// per-call fuel: GitLab's largest pipeline needs three and a half.
    ///
    /// # Errors
    /// [`HostError`] when the guest could not answer.
    pub fn lint_pipeline(
        &mut self,
        root: &CiFile,
        included: &[CiFile],
        context: &LintContext,
        policy: Option<&str>,
        credentials: Option<&str>,
        fail_on: Severity,
    ) -> Result<Result<LintReport, Failure>, HostError> {
        self.call_long(LINT_FUEL_FACTOR, |s, o| {
            o.gitlab_azure_oidc_lint().call_lint_pipeline(
                s,
                root,
                included,
                context,
                policy,
                credentials,
                fail_on,
            )
        })
    }
}
